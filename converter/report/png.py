"""The figures' PNG files, encoded here from matplotlib's Agg pixels: the same pixels, about a quarter of the CPU.

matplotlib hands its RGBA buffer to Pillow, whose PNG encoder tries the five PNG row filters on every row and keeps
the best (libpng's heuristic), then deflates at zlib's default level: about 0.2 s of a 2,000 x 2,000 figure. A
plot is mostly flat colour, so rows left unfiltered (filter type 0) deflate well at a fast level: 0.04-0.06 s per
figure, files about a third larger (240-280 KiB against 180-230 KiB on the bundled example). Decoded, the pixels
are those Pillow would have written (RGBA, 8 bits a sample), with the same ``Software`` text and ``pHYs``
resolution chunks; only the compressed bytes differ. The chunks (IHDR, tEXt, pHYs, IDAT, IEND) and filter type 0
are those of the PNG specification (W3C Recommendation, Portable Network Graphics, 2nd edition = ISO/IEC 15948).

:class:`PngCanvas` is matplotlib's Agg canvas with its ``print_png`` replaced: ``figure.savefig(..., format="png")``
draws as before (same dpi, same ``bbox_inches``) and writes :func:`encode_png` of the drawn buffer.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import IO, Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

#: zlib level of the pixel data: 1-3 are zlib's fast (greedy) deflate, alike in time here; 3 is the smallest of them
LEVEL = 3
SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgba: np.ndarray, dpi: float, text: Mapping[str, str] | None = None, level: int = LEVEL) -> bytes:
    """A PNG file of an (height, width, 4) uint8 RGBA array: rows unfiltered, deflated at ``level``; ``dpi`` as
    pixels per metre rounded as Pillow does; each of ``text`` a Latin-1 ``tEXt`` chunk (keyword, then value)."""
    pixels = np.asarray(rgba, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 4:
        raise ValueError(f"expected an (height, width, 4) RGBA array, got shape {pixels.shape}")
    height, width, _ = pixels.shape
    per_metre = int(dpi / 0.0254 + 0.5)
    parts = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))]
    parts += [_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")) for k, v in (text or {}).items()]
    parts.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    parts.append(_chunk(b"IDAT", _deflated_rows(pixels, level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _deflated_rows(pixels: np.ndarray, level: int) -> bytes:
    """The image data: each row after its filter-type byte 0 (None), deflated as one zlib stream. Fed to the
    compressor row by row: the same bytes as one call on the whole filtered image (zlib, fed without a flush,
    gives one stream however its input is split; tests/test_png_rows.py), without the 18 MB copy of a 300-dpi
    figure that call needs."""
    rows = np.ascontiguousarray(pixels).reshape(-1).data
    stride = pixels.shape[1] * 4
    deflate = zlib.compressobj(level)
    out: list[bytes] = []
    for start in range(0, pixels.shape[0] * stride, stride):
        out.append(deflate.compress(b"\0"))
        out.append(deflate.compress(rows[start : start + stride]))
    out.append(deflate.flush())
    return b"".join(out)


class PngCanvas(FigureCanvasAgg):
    """The Agg canvas, writing its PNG with :func:`encode_png` (the other formats as matplotlib does)."""

    def print_png(
        self, filename_or_obj: IO[bytes], *, metadata: Mapping[str, str] | None = None, **_ignored: Any
    ) -> None:
        """Draw, then write the PNG to a binary file object. ``facecolor``, ``bbox_inches_restore`` and the like,
        which ``print_figure`` passes to every format's printer, are applied by ``print_figure`` itself."""
        FigureCanvasAgg.draw(self)  # type: ignore[no-untyped-call]
        text = {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/", **(metadata or {})}
        pixels = np.asarray(self.buffer_rgba())  # type: ignore[no-untyped-call]
        filename_or_obj.write(encode_png(pixels, float(self.figure.dpi), text))
