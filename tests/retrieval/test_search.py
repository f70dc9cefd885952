"""Search output a person can read: class names where the dataset has them, TrueType captions."""

from __future__ import annotations

from PIL import ImageFont

from retrieval.fashion_mnist import CLASSES
from retrieval.search import caption_font, label_text


def test_fashion_mnist_labels_are_named():
    assert label_text("fashion_mnist", (7, 2)) == "Sneaker (footwear)"
    assert label_text("fashion_mnist", (8,)) == "Bag"
    assert [label_text("fashion_mnist", (c,)) for c in range(10)] == list(CLASSES)


def test_other_datasets_show_their_own_labels():
    assert label_text("csv", ("red_sneaker", "shoes")) == "red_sneaker, shoes"


def test_captions_use_a_truetype_font():
    font = caption_font()
    assert isinstance(font, ImageFont.FreeTypeFont) and "DejaVu" in font.getname()[0]
    # "0.995 · Sneaker": the score and the label are separated by visible space, not run together
    assert font.getlength("0.995 · 7") > font.getlength("0.9957") + 8
