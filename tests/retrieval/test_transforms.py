import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from retrieval.transforms import (
    FASHION_MEAN,
    FASHION_STD,
    SmallTest,
    SmallTrain,
    normalize,
    random_flip,
    resize,
    to_tensor,
)


def reference_small_train(image, channels, size, pad):
    """Pad the float image with zeros, random crop, resize, flip, normalize: with tensor ops."""
    x = F.pad(to_tensor(image, channels), (pad,) * 4)
    top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    x = resize(x[:, top : top + x.shape[1] - 2 * pad, left : left + x.shape[2] - 2 * pad], (size, size))
    return normalize(random_flip(x), FASHION_MEAN * channels, FASHION_STD * channels)


@pytest.mark.parametrize(("channels", "size", "mode"), [(1, 28, "L"), (3, 28, "L"), (3, 28, "RGB"), (1, 32, "L")])
def test_small_train_equals_the_tensor_reference_bit_for_bit(channels, size, mode):
    g = np.random.default_rng(channels * 100 + size)
    shape = (28, 28) if mode == "L" else (28, 28, 3)
    images = [Image.fromarray(g.integers(0, 256, shape, dtype=np.uint8)) for _ in range(40)]
    transform = SmallTrain(channels, size)
    torch.manual_seed(0)
    got = torch.stack([transform(im) for im in images])
    torch.manual_seed(0)
    expected = torch.stack([reference_small_train(im, channels, size, 2) for im in images])
    assert got.dtype == torch.float32 and got.shape == (40, channels, size, size)
    assert torch.equal(got, expected)
    assert len({tuple(x.flatten()[:5].tolist()) for x in got}) > 1  # crops and flips vary


def test_small_train_flips_and_shifts_a_known_image():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[0, 0] = 255  # one white pixel in the corner
    torch.manual_seed(0)
    x = SmallTrain(1, 28)(Image.fromarray(image))[0]
    white = (1.0 - FASHION_MEAN[0]) / FASHION_STD[0]
    rows, cols = torch.nonzero(torch.isclose(x, torch.tensor(white))).T.tolist()
    # the pixel moves by the crop offset (at most 2 pixels), mirrored to the right edge when flipped
    assert len(rows) <= 1
    if rows:
        assert rows[0] <= 2 and (cols[0] <= 2 or cols[0] >= 25)
    assert torch.equal(SmallTest(1, 28)(Image.fromarray(image)), normalize(to_tensor(Image.fromarray(image), 1), FASHION_MEAN, FASHION_STD))



def test_array_to_tensor_of_read_only_pixels_is_exact_and_silent():
    """PIL hands out read-only arrays; converting them must not make PyTorch warn (it warns once per
    process, so the check runs in a fresh one)."""
    import subprocess
    import sys

    from retrieval.transforms import array_to_tensor

    pixels = np.asarray(Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20))
    assert not pixels.flags.writeable
    x = array_to_tensor(pixels)
    assert x.shape == (1, 3, 4) and x.dtype == torch.float32
    assert torch.equal(x[0] * 255, torch.arange(12, dtype=torch.float32).reshape(3, 4) * 20)
    rgb = np.asarray(Image.fromarray(np.stack([pixels] * 3, axis=-1)))
    assert torch.equal(array_to_tensor(rgb), x.expand(3, 3, 4))
    code = ("import numpy as np; from PIL import Image; from retrieval.transforms import array_to_tensor; "
            "array_to_tensor(np.asarray(Image.fromarray(np.zeros((3, 4), np.uint8))))")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
