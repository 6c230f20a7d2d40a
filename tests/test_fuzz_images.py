"""Fuzzing `load_image` (issue 17): mutated valid images never escape as anything but
`ImageLoadError`, never return a broken array, and never cost more than the budget.

Every seed image is made here with Pillow (PNG in five modes, JPEG, GIF, BMP, TIFF,
WebP); hypothesis then flips bits, truncates, rewrites header bytes and writes huge or
zero sizes into the width/height fields each format keeps at a fixed offset. Each case
runs with the default budgets, and its peak RSS (``VmHWM``, reset before each case via
``/proc/self/clear_refs``) must stay under the decoded-bytes budget plus the output
stage's allowance measured in ``test_images``.

Bounded in time: ``max_examples`` per format (9 seeds x 80 = 720 cases, about 20-60 s
on the project's 2 shared cores); no per-example deadline (a loaded CI machine would
make a time limit flaky) and no example database (nothing written to the checkout).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in requirements-test.txt")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from convviz.images import DEFAULT_MAX_DECODED_BYTES, ImageLoadError, load_image  # noqa: E402

EXAMPLES = 80
_CLEAR_REFS = Path("/proc/self/clear_refs")
# The budget, Pillow's resize intermediate (a quarter of it) and the output stage (48 MB):
# the bound test_images measures accepted images against.
PEAK_BOUND_MB = 1.25 * DEFAULT_MAX_DECODED_BYTES / 2**20 + 48


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    rgba = np.dstack([rgb, rng.integers(0, 256, (12, 16), dtype=np.uint8)])
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png-L": _encode(Image.fromarray(grey), "PNG"),
        "png-RGBA": _encode(Image.fromarray(rgba), "PNG", exif=exif),
        "png-P": _encode(Image.fromarray(rgb).convert("P"), "PNG", transparency=3),
        "png-I16": _encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "jpeg": _encode(Image.fromarray(rgb), "JPEG", quality=90, exif=exif.tobytes()),
        "gif": _encode(
            Image.fromarray(rgb).convert("P"),
            "GIF",
            save_all=True,
            append_images=[Image.fromarray(rgb[::-1]).convert("P")],
        ),
        "bmp": _encode(Image.fromarray(rgb), "BMP"),
        "tiff": _encode(Image.fromarray(rgb), "TIFF", compression="tiff_deflate"),
        "webp": _encode(Image.fromarray(rgba), "WEBP", quality=80),
    }


SEEDS = _seeds()

# (offset, struct format) of the width and height fields in each seed's header.
SIZE_FIELDS = {
    "png": [(16, ">I"), (20, ">I")],  # IHDR (the CRC then fails: Pillow checks it or not)
    "gif": [(6, "<H"), (8, "<H")],  # logical screen
    "bmp": [(18, "<i"), (22, "<i")],  # BITMAPINFOHEADER (negative height: top-down)
    "webp": [(24, "<H"), (26, "<H")],  # VP8X canvas (3 bytes each; two are enough)
}
BIG = [0, 1, 2**15, 2**16 - 1, 2**24, 2**31 - 1, 2**32 - 1]


def _mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise AssertionError(key)


@st.composite
def mutated(draw, name: str) -> bytes:
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "header", "size", "splice"]))
        if not data:
            break
        if kind == "flip":
            for _ in range(draw(st.integers(1, 8))):
                pos = draw(st.integers(0, len(data) - 1))
                data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "header":
            pos = draw(st.integers(0, min(63, len(data) - 1)))
            chunk = draw(st.binary(min_size=1, max_size=4))
            data[pos : pos + len(chunk)] = chunk
        elif kind == "size":
            fields = SIZE_FIELDS.get(name.split("-")[0])
            if fields:
                offset, fmt = draw(st.sampled_from(fields))
                value = draw(st.sampled_from(BIG) | st.integers(0, 2**16))
                limit = 2 ** (8 * struct.calcsize(fmt) - (1 if fmt[-1].islower() else 0))
                packed = struct.pack(fmt, value % limit)
                if offset + len(packed) <= len(data):
                    data[offset : offset + len(packed)] = packed
        else:  # splice: a run of bytes repeated (chunk lengths and counts go wrong)
            start = draw(st.integers(0, len(data) - 1))
            end = min(len(data), start + draw(st.integers(1, 32)))
            data[start:start] = data[start:end] * draw(st.integers(1, 4))
    return bytes(data)


def _check_one(data: bytes) -> None:
    measure = _CLEAR_REFS.exists()
    if measure:
        _CLEAR_REFS.write_text("5")  # the peak RSS starts again from the current RSS
        base = _mb("VmRSS")
    try:
        out = load_image(data)
    except ImageLoadError as exc:
        assert exc.code.startswith("err.image."), exc.code
        assert "PIL" not in str(exc) and "Traceback" not in str(exc)
        out = None
    if out is not None:
        assert out.dtype == np.float32 and out.ndim == 2 and out.flags.c_contiguous
        assert out.size > 0 and np.isfinite(out).all()
        assert 0.0 <= out.min() and out.max() <= 1.0
    if measure:
        growth = _mb("VmHWM") - base
        assert growth < PEAK_BOUND_MB, f"peak RSS grew by {growth:.0f} MB"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_load(name):
    assert load_image(SEEDS[name]).shape[:2] in ((12, 16), (16, 12))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_mutated_images_only_raise_image_load_error(name):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(name))
    def run(data):
        _check_one(data)

    run()


def test_size_fields_claiming_the_largest_images_are_refused_cheaply():
    """Every size-field edit of every format: refused or decoded, never over the bound."""
    cases = 0
    for name, data in SEEDS.items():
        for offset, fmt in SIZE_FIELDS.get(name.split("-")[0], []):
            for value in BIG:
                limit = 2 ** (8 * struct.calcsize(fmt) - (1 if fmt[-1].islower() else 0))
                edited = bytearray(data)
                edited[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value % limit)
                _check_one(bytes(edited))
                cases += 1
    assert cases == 2 * len(BIG) * 7  # 4 PNG seeds + GIF + BMP + WebP, two fields each
