"""The MLflow UI of a finished run opens in headless Chromium and renders (a real PNG, not blank)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageStat

from benchmarks.mlflow_ui_screenshot import chromium, main


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_run_page_screenshot(tmp_path):
    out = main(tmp_path / "run.png", tmp_path / "work", epochs=1)
    image = Image.open(out).convert("L")
    assert image.size == (1440, 1000)
    assert ImageStat.Stat(image).stddev[0] > 10  # a rendered page, not an empty white or black frame
