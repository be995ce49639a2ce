"""converter.report.png: the image data deflated row by row is the zlib stream of the whole filtered image."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from converter.report.png import encode_png


def _idat(png: bytes) -> bytes:
    at, data = 8, b""
    while at < len(png):
        (size,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            data += png[at + 8 : at + 8 + size]
        at += 12 + size
    return data


@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (3, 7), (64, 33), (401, 250)])
@pytest.mark.parametrize("level", [1, 3, 6])
def test_the_rows_deflate_as_one_filtered_image(shape: tuple[int, int], level: int) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    flat = np.full((*shape, 4), 255, dtype=np.uint8)  # mostly flat, as a plot is, with noisy stripes
    flat[::7] = rng.integers(0, 256, flat[::7].shape, dtype=np.uint8)
    for pixels in (flat, flat[:, ::-1]):  # a view that is not contiguous too
        rows = np.concatenate([np.zeros((shape[0], 1), np.uint8), pixels.reshape(shape[0], shape[1] * 4)], axis=1)
        want = zlib.compress(rows.tobytes(), level)
        assert _idat(encode_png(pixels, 300.0, {"Software": "x"}, level=level)) == want
