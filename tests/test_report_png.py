"""The report's PNG encoder (converter/report/png.py): the pixels and chunks Pillow would write, other bytes.

Data: random RGBA arrays and a small matplotlib figure drawn here.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from converter.report.png import PngCanvas, encode_png


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        out.append((png[i + 4 : i + 8], png[i + 8 : i + 8 + n]))
        i += 12 + n
    return out


def test_random_pixels_decode_unchanged() -> None:
    rng = np.random.default_rng(15)
    for shape in ((1, 1, 4), (7, 13, 4), (64, 3, 4)):
        rgba = rng.integers(0, 256, size=shape, dtype=np.uint8)
        png = encode_png(rgba, 300.0, {"Software": "x"})
        with Image.open(io.BytesIO(png)) as im:
            assert im.mode == "RGBA" and im.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(im), rgba)
            assert im.info["Software"] == "x" and round(im.info["dpi"][0]) == 300


def test_chunks_as_pillow_writes_them() -> None:
    rgba = np.full((5, 6, 4), 255, dtype=np.uint8)
    ours = _chunks(encode_png(rgba, 300.0, {"Software": "s"}))
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="png", dpi=(300.0, 300.0), pnginfo=_info({"Software": "s"}))
    theirs = _chunks(buf.getvalue())
    kinds = [k for k, _ in theirs if k != b"IDAT"]
    assert [k for k, _ in ours if k != b"IDAT"] == kinds == [b"IHDR", b"tEXt", b"pHYs", b"IEND"]
    assert {k: v for k, v in ours if k != b"IDAT"} == {k: v for k, v in theirs if k != b"IDAT"}


def _info(text: dict[str, str]) -> object:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return info


def test_not_rgba_is_refused() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        encode_png(np.zeros((4, 4, 3), dtype=np.uint8), 72.0)


def test_canvas_draws_the_pixels_of_matplotlibs_png() -> None:
    """Same figure, same dpi and bbox: the canvas's PNG decodes to the pixels of matplotlib's own Agg PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    files = []
    for canvas in (FigureCanvasAgg, PngCanvas):
        fig = Figure(figsize=(2.0, 1.5))
        canvas(fig)
        ax = fig.add_subplot()
        ax.step([0, 1, 2, 3], [1.0, 0.8, 0.5, 0.4], where="post")
        ax.text(1.5, 0.9, "34", ha="center")
        bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, bbox_inches=bbox, metadata={})
        files.append(buf.getvalue())
    old, new = (Image.open(io.BytesIO(f)) for f in files)
    assert old.size == new.size and old.mode == new.mode == "RGBA"
    assert np.array_equal(np.asarray(old), np.asarray(new))
    assert old.info == new.info  # Software text, dpi
