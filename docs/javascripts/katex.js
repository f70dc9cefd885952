// Render the formulas that pymdownx.arithmatex (generic mode) leaves as \( ... \) and \[ ... \]
// in spans and divs of class "arithmatex" (the formulas of the loss and metric docstrings).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});
