"""Tests for convviz.images: safe decoding, samples and display helpers.

Every odd or hostile file is generated here with Pillow. Decoded values are
checked against oracles: hand-built pixel patterns, Pillow's own conversions
(CMYK -> RGB, "L" luma, alpha_composite, Lanczos resize), numpy rotations and
scikit-image's data arrays.
"""

from __future__ import annotations

import io
import pickle
import socket
import struct
import warnings
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageFile

from convviz import images
from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.images import (
    SAMPLES,
    ImageLoadError,
    encode_png,
    load_image,
    sample_image,
    symmetric_range,
    to_display,
    to_uint8,
)

U8 = 1 / 255  # one 8-bit step
JPEG_TOL = 6 / 255  # flat, block-aligned colour areas survive JPEG within a few levels


# --------------------------------------------------------------------------- helpers


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def f32(x) -> np.ndarray:
    """The float32 value an exact result must have (computed in float64, then rounded)."""
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def check_contract(a: np.ndarray, shape: tuple[int, ...]) -> None:
    """Shape, then dtype, then layout, then value range, with readable failures."""
    assert a.shape == shape, f"shape {a.shape} != {shape}"
    assert a.dtype == np.float32, f"dtype {a.dtype} != float32"
    assert a.flags.c_contiguous, "result is not C-contiguous"
    assert np.isfinite(a).all(), "result has non-finite values"
    assert a.min() >= 0.0 and a.max() <= 1.0, f"range [{a.min()}, {a.max()}] not in [0, 1]"


def check_friendly(exc: ImageLoadError, *forbidden: str) -> str:
    """The message is for a person: no Pillow names, tracebacks, reprs or paths."""
    msg = str(exc)
    assert msg and msg[0].isupper() and msg.endswith("."), msg
    for bad in ("PIL", "pil", "Traceback", "BytesIO", "0x", "<", "Errno", *forbidden):
        assert bad not in msg, f"{bad!r} leaked into {msg!r}"
    assert exc.__cause__ is None, "internal exception chained"
    assert exc.__context__ is None or exc.__suppress_context__, "internal exception shown"
    return msg


def gray_pattern(h: int, w: int) -> np.ndarray:
    return ((np.arange(h * w).reshape(h, w) * 37) % 256).astype(np.uint8)  # (H, W)


def noise_png(h: int = 64, w: int = 64) -> bytes:
    rng = np.random.default_rng(0)  # noise does not compress, so half a file is half the pixels
    return encode(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "PNG")


def png_with_declared_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR (with a correct CRC) claims ``width x height``."""
    data = bytearray(encode(Image.new("L", (4, 4), 128), "PNG"))
    # signature (8) | length (4) | b"IHDR" (4) | width, height, ... (13) | crc (4)
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --------------------------------------------------------------------------- refusals


def test_truncated_png_is_damaged():
    data = noise_png()
    with pytest.raises(ImageLoadError) as ei:
        load_image(data[: len(data) // 2])
    assert "damaged or incomplete" in check_friendly(ei.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # we did not flip global state


@pytest.mark.parametrize(
    "source", [b"", bytearray(), io.BytesIO(b"")], ids=["bytes", "bytearray", "file"]
)
def test_empty_input(source):
    with pytest.raises(ImageLoadError) as ei:
        load_image(source)
    assert check_friendly(ei.value) == "The file is empty."


def test_empty_file_on_disk(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as ei:
        load_image(path)
    check_friendly(ei.value, str(tmp_path), "empty.png")


def test_text_named_png_is_refused_without_path(tmp_path):
    path = tmp_path / "holiday.png"
    path.write_text("this is a shopping list, not a picture\n" * 5)
    with pytest.raises(ImageLoadError) as ei:
        load_image(path)
    msg = check_friendly(ei.value, str(tmp_path), "holiday")
    assert msg == "This file is not an image we can read (PNG, JPEG, GIF, WebP, BMP or TIFF)."


@pytest.mark.parametrize("name", ["secret-dir/nope.png", "secret-dir", "nul\x00byte.png"])
def test_unreadable_path_message_has_no_path(tmp_path, name):
    (tmp_path / "secret-dir").mkdir()
    with pytest.raises(ImageLoadError) as ei:
        load_image(str(tmp_path / name))
    assert (
        check_friendly(ei.value, str(tmp_path), "secret", "nope") == "The file could not be read."
    )


def test_broken_exif_does_not_lose_the_picture(monkeypatch):
    def broken(im):
        raise SyntaxError("bad EXIF in /internal/path")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    arr = gray_pattern(3, 4)
    np.testing.assert_array_equal(load_image(encode(Image.fromarray(arr), "PNG")), f32(arr / 255))


def test_huge_declared_png_is_refused_by_pillow_guard():
    # 400 MP is past 2x Pillow's default MAX_IMAGE_PIXELS: DecompressionBombError.
    with pytest.raises(ImageLoadError) as ei:
        load_image(png_with_declared_size(20000, 20000), max_pixels=10**12)
    assert "too large" in check_friendly(ei.value)


def test_huge_declared_png_is_refused_before_decoding(monkeypatch):
    # With Pillow's guard off, only our header check stands. The body holds 4x4
    # pixels, so had we decoded anything the error would say "damaged" instead.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageLoadError) as ei:
        load_image(png_with_declared_size(20000, 20000))
    msg = check_friendly(ei.value)
    assert "too large" in msg and "20000 x 20000" in msg and "40,000,000" in msg


def test_max_pixels_budget_uses_width_times_height():
    data = encode(Image.new("L", (100, 50)), "PNG")
    assert load_image(data, max_pixels=5000).shape == (50, 100)
    with pytest.raises(ImageLoadError) as ei:
        load_image(data, max_pixels=4999)
    assert "100 x 50" in check_friendly(ei.value)


@pytest.mark.parametrize("size", [(40, 30), (50, 50)], ids=["warning-band", "error"])
def test_pillow_decompression_bomb_becomes_load_error(monkeypatch, size):
    # 1200 px is in Pillow's 1x-2x warning band for a 1000 px limit, 2500 is past 2x.
    data = encode(Image.new("L", size), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        # Ignore warnings as an app would: pytest's own "error" filter must not be
        # what turns Pillow's warning into a refusal.
        warnings.simplefilter("ignore")
        filters_before = list(warnings.filters)
        with pytest.raises(ImageLoadError) as ei:
            load_image(data, max_pixels=10**9)
        assert warnings.filters == filters_before  # the local "error" filter was undone
    assert "too large" in check_friendly(ei.value)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_over_max_bytes_is_refused_before_decoding(tmp_path):
    data = noise_png()
    with pytest.raises(ImageLoadError) as ei:
        load_image(data, max_bytes=len(data) - 1)
    assert "too large" in check_friendly(ei.value)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError):
        load_image(path, max_bytes=100)
    assert load_image(data, max_bytes=len(data)).shape == (64, 64)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX"])
def test_format_outside_allow_list_is_refused(fmt):
    data = encode(Image.new("RGB", (16, 16), (10, 20, 30)), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself could read it
    with pytest.raises(ImageLoadError) as ei:
        load_image(data)
    assert "not an image we can read" in check_friendly(ei.value)


def test_real_format_wins_over_file_name(tmp_path):
    arr = gray_pattern(5, 7)
    path = tmp_path / "photo.jpg"  # actually a PNG
    path.write_bytes(encode(Image.fromarray(arr), "PNG"))
    np.testing.assert_array_equal(load_image(path), f32(arr / 255))


def test_load_errors_are_coded_in_both_languages(tmp_path):
    """A refusal carries a catalogue code and parameters (never a path or Pillow's text)."""
    path = tmp_path / "secret-dir" / "holiday.png"
    path.parent.mkdir()
    path.write_text("not a picture\n" * 5)
    cases = [
        (lambda: load_image(b""), "err.image.empty"),
        (lambda: load_image(path), "err.image.not_image"),
        (lambda: load_image(str(tmp_path / "missing.png")), "err.image.unreadable"),
        (lambda: load_image(noise_png()[:200]), "err.image.damaged"),
        (lambda: load_image(noise_png(), max_bytes=100), "err.image.file_too_large"),
        (lambda: load_image(png_with_declared_size(300, 200), max_pixels=1000),
         "err.image.too_many_pixels"),
    ]  # fmt: skip
    pt = translator("pt")
    for load, code in cases:
        with pytest.raises(ImageLoadError) as ei:
            load()
        err = ei.value
        assert isinstance(err, CodedError) and isinstance(err, ValueError)
        assert err.code == code
        for value in err.params.values():
            assert str(tmp_path) not in str(value) and "PIL" not in str(value)
        assert pt(err.code, **err.params) != str(err)  # a Portuguese message exists
        assert pickle.loads(pickle.dumps(err)).code == code  # crosses process boundaries
    err = ImageLoadError("err.image.too_many_pixels", width="300", height="200", limit=1000,
                         megapixels=0.001)  # fmt: skip
    assert pt(err.code, **err.params) == (
        "Esta imagem é grande demais: declara 300 x 200 pixels, e o limite é de 1.000 pixels "
        "(0,001 megapixels)."
    )


# --------------------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "grey"}, r"`mode` must be one of 'gray', 'rgb', got 'grey'"),
        ({"max_side": 0}, r"`max_side` must be >= 1"),
        ({"max_side": 2.5}, r"`max_side` must be an integer"),
        ({"max_side": True}, r"`max_side` must be an integer"),
        ({"max_pixels": 0}, r"`max_pixels` must be >= 1"),
        ({"max_pixels": 1e6}, r"`max_pixels` must be an integer"),
        ({"max_bytes": 0}, r"`max_bytes` must be >= 1"),
        ({"max_bytes": "20MB"}, r"`max_bytes` must be an integer"),
    ],
)
def test_load_image_argument_validation(kwargs, match):
    data = encode(Image.new("L", (2, 2)), "PNG")
    with pytest.raises(ValueError, match=match) as ei:
        load_image(data, **kwargs)
    assert not isinstance(ei.value, ImageLoadError)


@pytest.mark.parametrize("source", [12, None, ["a"]])
def test_unsupported_source_type(source):
    with pytest.raises(TypeError, match="`source`"):
        load_image(source)


def test_text_stream_source():
    with pytest.raises(TypeError, match="binary mode"):
        load_image(io.StringIO("abc"))


# --------------------------------------------------------------------------- sources


class UploadedLike(io.BytesIO):
    """Streamlit's UploadedFile is a BytesIO subclass with a name."""

    name = "../../etc/passwd.png"


def test_all_source_kinds_agree(tmp_path):
    arr = gray_pattern(6, 9)
    data = encode(Image.fromarray(arr), "PNG")
    path = tmp_path / "p.png"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        from_handle = load_image(fh)
    sources = [
        data,
        bytearray(data),
        memoryview(data),
        str(path),
        path,
        io.BytesIO(data),
        UploadedLike(data),
    ]
    for src in [*(load_image(s) for s in sources), from_handle]:
        check_contract(src, (6, 9))
        np.testing.assert_array_equal(src, f32(arr / 255))


def test_file_like_is_read_from_current_position():
    data = encode(Image.new("L", (3, 2), 200), "PNG")
    buf = io.BytesIO(b"JUNK" + data)
    buf.seek(4)
    np.testing.assert_array_equal(load_image(buf), np.full((2, 3), 200 / 255, np.float32))


# --------------------------------------------------------------------------- formats and modes


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("GIF", {})],
)
def test_lossless_formats_exact_gray(fmt, kw):
    arr = gray_pattern(7, 11)
    out = load_image(encode(Image.fromarray(arr), fmt, **kw))
    check_contract(out, (7, 11))
    np.testing.assert_array_equal(out, (arr / 255).astype(np.float32))


def test_jpeg_and_mpo_load_within_jpeg_tolerance():
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = (200, 40, 90)
    rgb[:, 16:] = (20, 180, 250)
    im = Image.fromarray(rgb)
    for data in (
        encode(im, "JPEG", quality=95, subsampling=0),
        encode(
            im,
            "MPO",
            quality=95,
            subsampling=0,
            save_all=True,
            append_images=[Image.new("RGB", (32, 16))],
        ),
    ):
        out = load_image(data, mode="rgb")
        check_contract(out, (16, 32, 3))
        np.testing.assert_allclose(out, rgb / 255, atol=JPEG_TOL)


def test_one_by_one_image():
    out = load_image(encode(Image.new("RGB", (1, 1), (255, 128, 0)), "PNG"), mode="rgb")
    check_contract(out, (1, 1, 3))
    np.testing.assert_array_equal(out, np.array([[[1.0, 128 / 255, 0.0]]], np.float32))
    check_contract(load_image(encode(Image.new("L", (1, 1), 7), "PNG")), (1, 1))


def test_gray_and_rgb_modes():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[1:, :, 1] = 100
    rgb[:, 3:, 2] = 30
    data = encode(Image.fromarray(rgb), "PNG")
    out_rgb = load_image(data, mode="rgb")
    check_contract(out_rgb, (4, 6, 3))
    np.testing.assert_array_equal(out_rgb, (rgb / 255).astype(np.float32))
    out_gray = load_image(data, mode="gray")
    check_contract(out_gray, (4, 6))
    # Pillow's "L" is the same ITU-R 601-2 luma, rounded to 8 bits.
    pillow_l = np.asarray(Image.fromarray(rgb).convert("L")) / 255
    np.testing.assert_allclose(out_gray, pillow_l, atol=0.5 * U8 + 1e-6)
    # A grey source in "rgb" mode: three equal channels.
    arr = gray_pattern(3, 5)
    out = load_image(encode(Image.fromarray(arr), "PNG"), mode="rgb")
    check_contract(out, (3, 5, 3))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], f32(arr / 255))


def test_sixteen_bit_png_not_clipped():
    values = np.array([[0, 1000, 40000, 65535], [255, 256, 30000, 12345]], np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = load_image(data)
    check_contract(out, (2, 4))
    np.testing.assert_allclose(out, values / 65535, rtol=0, atol=1e-7)
    assert out[0, 2] == pytest.approx(40000 / 65535, abs=1e-7)  # not clipped at 255
    # 256 and 255 stay distinct: precision beyond 8 bits survives.
    assert out[1, 1] > out[1, 0]
    np.testing.assert_allclose(load_image(data, mode="rgb")[..., 1], values / 65535, atol=1e-7)


@pytest.mark.parametrize(("pil_mode", "dtype"), [("I;16B", ">u2"), ("I;16", "<u2")])
def test_sixteen_bit_tiff_byte_orders(pil_mode, dtype):
    values = np.array([[0, 1000, 40000, 65535]], np.uint16)
    im = Image.frombytes(pil_mode, (4, 1), values.astype(dtype).tobytes())
    out = load_image(encode(im, "TIFF"))
    np.testing.assert_allclose(out, values / 65535, atol=1e-7)


def test_thirty_two_bit_int_tiff_read_as_sixteen_bit():
    values = np.array([[0, 1000, 65535, 70000]], np.int32)
    out = load_image(encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_allclose(out, [[0, 1000 / 65535, 1.0, 1.0]], atol=1e-7)


def test_float_tiff_in_unit_range_unchanged():
    values = np.array([[0.0, 0.125, 0.3333, 1.0]], np.float32)
    out = load_image(encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(out, values)


def test_float_tiff_out_of_range_is_min_max_stretched():
    values = np.array([[-10.0, 0.0, 30.0, np.nan]], np.float32)
    out = load_image(encode(Image.fromarray(values), "TIFF"))
    check_contract(out, (1, 4))
    np.testing.assert_allclose(out, [[0.0, 0.25, 1.0, 0.0]], atol=1e-7)


def test_one_bit_image_is_zero_or_one():
    bits = np.array([[True, False, True], [False, False, True]])
    im = Image.fromarray(bits)
    assert im.mode == "1"
    out = load_image(encode(im, "PNG"))
    np.testing.assert_array_equal(out, bits.astype(np.float32))


def test_cmyk_jpeg_matches_pillow_conversion():
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :16] = (0, 200, 255, 0)  # orange-red
    cmyk[:, 16:] = (180, 40, 0, 60)  # blue-ish
    im = Image.frombytes("CMYK", (32, 16), cmyk.tobytes())
    data = encode(im, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = load_image(data, mode="rgb")
    check_contract(out, (16, 32, 3))
    expected = np.asarray(im.convert("RGB")) / 255  # Pillow's CMYK -> RGB on the source
    np.testing.assert_allclose(out, expected, atol=JPEG_TOL)


def test_palette_with_transparency_composited_on_white():
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.fromarray(idx, mode="L").convert("P")  # indices kept: greyscale palette
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (3 * 253))
    expected_rgb = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 1]], np.float64)[idx]  # (2, 3, 3)
    for fmt in ("PNG", "GIF"):
        data = encode(im, fmt, transparency=0)
        out = load_image(data, mode="rgb")
        check_contract(out, (2, 3, 3))
        np.testing.assert_array_equal(out, expected_rgb.astype(np.float32), err_msg=fmt)
        np.testing.assert_allclose(
            load_image(data), expected_rgb @ [0.299, 0.587, 0.114], atol=1e-6, err_msg=fmt
        )
    # Without transparency index 0 is plain black.
    out = load_image(encode(im, "PNG"), mode="rgb")
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])


def test_rgba_and_la_alpha_composited_on_white():
    rgba = np.array(
        [[[200, 100, 0, 128], [10, 250, 60, 0]], [[0, 0, 0, 255], [90, 30, 220, 17]]], np.uint8
    )
    im = Image.fromarray(rgba)
    out = load_image(encode(im, "PNG"), mode="rgb")
    check_contract(out, (2, 2, 3))
    a = rgba[..., 3:] / 255
    np.testing.assert_allclose(out, a * rgba[..., :3] / 255 + (1 - a), atol=1e-6)
    # Oracle 2: Pillow's own compositing over a white canvas (8-bit rounding).
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    pillow = np.asarray(Image.alpha_composite(white, im).convert("RGB")) / 255
    np.testing.assert_allclose(out, pillow, atol=U8)

    la = np.array([[[0, 0], [0, 128]], [[200, 255], [50, 64]]], np.uint8)  # (H, W, [L, A])
    out = load_image(encode(Image.fromarray(la, mode="LA"), "PNG"))
    check_contract(out, (2, 2))
    a = la[..., 1] / 255
    np.testing.assert_allclose(out, a * la[..., 0] / 255 + (1 - a), atol=1e-6)


def test_animated_gif_webp_and_multipage_tiff_use_first_frame():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (8, 6), c) for c in colours]
    for fmt, kw in [("GIF", {}), ("WEBP", {"lossless": True}), ("TIFF", {})]:
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)
        assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3, fmt
        out = load_image(data, mode="rgb")
        check_contract(out, (6, 8, 3))
        np.testing.assert_array_equal(out, np.broadcast_to([1.0, 0.0, 0.0], (6, 8, 3)), fmt)


def test_exif_orientation_6_png_rotates_clockwise():
    arr = np.array([[0, 50], [100, 150], [200, 250]], np.uint8)  # 3 rows x 2 cols
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = load_image(encode(Image.fromarray(arr), "PNG", exif=exif))
    check_contract(out, (2, 3))
    np.testing.assert_array_equal(out, f32(np.rot90(arr, k=-1) / 255))
    assert out[0, 0] == pytest.approx(200 / 255)  # old bottom-left is the new top-left


def test_exif_orientation_6_jpeg_rotates_clockwise():
    # Blocks of 8x8 so JPEG keeps each flat; 3x2 blocks -> 2x3 blocks after rotation.
    blocks = np.array([[0, 60], [120, 180], [240, 30]], np.uint8)
    arr = np.kron(blocks, np.ones((8, 8), np.uint8))  # (24, 16)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = load_image(encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes()))
    check_contract(out, (16, 24))
    np.testing.assert_allclose(out, np.rot90(arr, k=-1) / 255, atol=JPEG_TOL)


def test_downscale_keeps_aspect_and_matches_pillow_lanczos():
    x = np.linspace(0, 1, 2000)
    y = np.linspace(0, 1, 1000)[:, None]
    arr = np.rint(255 * (0.5 + 0.5 * np.sin(6 * x) * np.cos(4 * y))).astype(np.uint8)
    im = Image.fromarray(arr)  # 2000 x 1000
    out = load_image(encode(im, "PNG"), max_side=1024)
    check_contract(out, (512, 1024))
    ref = np.asarray(im.resize((1024, 512), Image.Resampling.LANCZOS)) / 255
    np.testing.assert_allclose(out, ref, atol=2 * U8)
    portrait = load_image(encode(im.transpose(Image.Transpose.TRANSPOSE), "PNG"), max_side=1024)
    check_contract(portrait, (1024, 512))
    np.testing.assert_allclose(portrait, ref.T, atol=2 * U8)


def test_small_images_are_not_enlarged():
    arr = gray_pattern(50, 100)
    out = load_image(encode(Image.fromarray(arr), "PNG"), max_side=1024)
    np.testing.assert_array_equal(out, f32(arr / 255))
    assert load_image(encode(Image.fromarray(arr), "PNG"), max_side=1).shape == (1, 1)


def test_large_jpeg_downscale_close_to_full_decode():
    # Exercises libjpeg's reduced-scale decoding (draft): compare with a full decode.
    x = np.linspace(0, 1, 3000)
    y = np.linspace(0, 1, 1500)[:, None]
    arr = np.rint(255 * (0.5 + 0.4 * np.sin(5 * x + 3 * y))).astype(np.uint8)
    data = encode(Image.fromarray(arr), "JPEG", quality=90)
    out = load_image(data, max_side=1024)
    check_contract(out, (512, 1024))
    full = Image.open(io.BytesIO(data)).convert("L")
    ref = np.asarray(full.resize((1024, 512), Image.Resampling.LANCZOS)) / 255
    np.testing.assert_allclose(out, ref, atol=3 * U8)


def test_sixteen_bit_downscale_keeps_precision():
    from skimage.transform import resize

    x = np.linspace(0, 1, 400)
    y = np.linspace(0, 1, 200)[:, None]
    values = np.rint(65535 * (0.5 + 0.5 * np.sin(4 * x) * np.cos(3 * y))).astype(np.uint16)
    out = load_image(encode(Image.fromarray(values), "PNG"), max_side=100)
    check_contract(out, (50, 100))
    ref = resize(values / 65535, (50, 100), anti_aliasing=True)
    np.testing.assert_allclose(out, ref, atol=0.01)
    assert out.max() > 0.9  # full 16-bit scale, not 255/65535
    assert len(np.unique(out)) > 256  # more levels than 8 bits could hold


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_sample_loads(name):
    assert isinstance(SAMPLES[name], str) and SAMPLES[name]
    gray = sample_image(name)
    assert gray.ndim == 2 and max(gray.shape) <= 512
    check_contract(gray, gray.shape)
    assert gray.max() > gray.min()  # a real picture, not a blank
    rgb = sample_image(name, mode="rgb", max_side=64)
    assert max(rgb.shape[:2]) == 64 or max(gray.shape) < 64
    check_contract(rgb, (*rgb.shape[:2], 3))


def test_samples_match_skimage_data():
    np.testing.assert_array_equal(sample_image("Cameraman"), f32(skimage.data.camera() / 255))
    astro = skimage.data.astronaut()
    np.testing.assert_array_equal(sample_image("Astronaut", mode="rgb"), f32(astro / 255))
    pillow_l = np.asarray(Image.fromarray(astro).convert("L")) / 255
    np.testing.assert_allclose(sample_image("Astronaut"), pillow_l, atol=0.5 * U8 + 1e-6)
    horse = sample_image("Horse")
    np.testing.assert_array_equal(horse, skimage.data.horse().astype(np.float32))
    assert sample_image("Coffee", max_side=300).shape == (200, 300)  # 400 x 600 source


def test_sample_returns_fresh_writeable_copies():
    a = sample_image("Coins")
    assert a.flags.writeable
    a[:] = 0
    assert sample_image("Coins").max() > 0


def test_unknown_sample_name():
    with pytest.raises(ValueError, match=r"`name` must be one of .*Cameraman"):
        sample_image("lena")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": "RGB"}, "`mode`"), ({"max_side": 0}, "`max_side` must be >= 1")],
)
def test_sample_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_image("Moon", **kwargs)


def test_samples_need_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("sample_image tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    images._sample_cached.cache_clear()
    for name in SAMPLES:
        sample_image(name, max_side=32)


# --------------------------------------------------------------------------- display helpers


def test_to_display_min_max_and_negative():
    out = to_display(np.array([[-2.0, 0.0], [1.0, 2.0]]))
    check_contract(out, (2, 2))
    np.testing.assert_array_equal(out, [[0.0, 0.5], [0.75, 1.0]])


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0, 0.0), (1.0, 1.0), (0.25, 0.25), (7.0, 0.5), (-3.0, 0.5)]
)
def test_to_display_constant(value, expected):
    out = to_display(np.full((3, 4), value))
    check_contract(out, (3, 4))
    np.testing.assert_array_equal(out, np.full((3, 4), expected, np.float32))


def test_to_display_nan_and_inf_are_missing():
    a = np.array([[np.nan, 1.0, 3.0], [np.inf, -np.inf, 2.0]])
    out = to_display(a)
    check_contract(out, (2, 3))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 1.0], [0.0, 0.0, 0.5]])
    np.testing.assert_array_equal(to_display(np.full((2, 2), np.nan)), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("shape", "expected"), [((0, 0), (1, 1)), ((0, 5), (1, 1)), ((4, 0, 3), (1, 1, 3))]
)
def test_to_display_empty_gives_black_pixel(shape, expected):
    out = to_display(np.zeros(shape))
    check_contract(out, expected)
    assert out.max() == 0.0


def test_to_display_bool_and_ints():
    mask = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(to_display(mask), mask.astype(np.float32))
    np.testing.assert_array_equal(to_display(np.ones((2, 2), bool)), np.ones((2, 2)))
    u8 = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(to_display(u8), u8 / 255, atol=1e-7)
    big = np.array([[-(2**40), 0, 2**40]], np.int64)
    np.testing.assert_allclose(to_display(big), [[0.0, 0.5, 1.0]], atol=1e-7)


def test_to_display_3d_and_explicit_range():
    a = np.stack([np.full((2, 2), -1.0), np.zeros((2, 2)), np.full((2, 2), 4.0)], axis=-1)
    out = to_display(a, vmin=-2.0, vmax=2.0)
    check_contract(out, (2, 2, 3))
    np.testing.assert_array_equal(out[0, 0], [0.25, 0.5, 1.0])  # 4.0 clipped to 1
    # One-sided limits: everything below vmin is black, above vmax is white.
    np.testing.assert_array_equal(to_display(np.ones((1, 2)), vmin=5.0), [[0.0, 0.0]])
    np.testing.assert_array_equal(to_display(np.ones((1, 2)), vmax=-5.0), [[1.0, 1.0]])
    vmin, vmax = symmetric_range(np.array([[-1.0, 3.0]]))
    np.testing.assert_array_equal(
        to_display(np.array([[-1.0, 3.0, 0.0]]), vmin=vmin, vmax=vmax), f32([[1 / 3, 1.0, 0.5]])
    )


@pytest.mark.parametrize(
    ("a", "kwargs", "match"),
    [
        (np.zeros(3), {}, "`a` must be a 2-D or 3-D array"),
        (np.zeros((1, 1, 1, 1)), {}, "`a` must be a 2-D or 3-D array"),
        (np.zeros((2, 2), complex), {}, "`a` must hold bool, integer or float"),
        (np.zeros((2, 2)), {"vmin": 1.0, "vmax": 1.0}, "`vmax` must be greater than `vmin`"),
        (np.zeros((2, 2)), {"vmin": np.nan}, "`vmin` must be finite"),
        (np.zeros((2, 2)), {"vmax": "1"}, "`vmax` must be a real number"),
    ],
)
def test_to_display_validation(a, kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_display(a, **kwargs)


def test_to_uint8_and_encode_png_roundtrip():
    a = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, np.nan]])
    u8 = to_uint8(a)
    assert u8.dtype == np.uint8
    np.testing.assert_array_equal(u8, [[0, 128, 255], [64, 191, 0]])
    for arr, mode in [
        (a, "L"),
        (np.random.default_rng(1).random((4, 5, 3)), "RGB"),
        (np.random.default_rng(2).random((4, 5, 4)), "RGBA"),
        (np.random.default_rng(3).random((4, 5, 1)), "L"),
    ]:
        decoded = Image.open(io.BytesIO(encode_png(arr)))
        assert (decoded.format, decoded.mode) == ("PNG", mode)
        np.testing.assert_array_equal(
            np.asarray(decoded),
            to_uint8(arr).squeeze(-1) if arr.ndim == 3 and arr.shape[2] == 1 else to_uint8(arr),
        )
    with pytest.raises(ValueError, match="channels"):
        encode_png(np.zeros((2, 2, 2)))
    # Exported PNGs load back through load_image (an end-to-end sanity check).
    img = np.random.default_rng(4).random((6, 7))
    np.testing.assert_allclose(load_image(encode_png(img, vmin=0, vmax=1)), img, atol=0.5 * U8)


def test_symmetric_range():
    assert symmetric_range(np.array([[-3.0, 1.0], [2.0, np.inf]])) == (-3.0, 3.0)
    assert symmetric_range(np.array([[0.5, 2.0]])) == (-2.0, 2.0)
    for a in (np.zeros((2, 2)), np.zeros((0, 3)), np.full((2, 2), np.nan)):
        assert symmetric_range(a) == (-1.0, 1.0)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("max_side", [64, 16], ids=["full-size", "resized"])
def test_every_exif_orientation_matches_pillow_exif_transpose(orientation, max_side):
    # The transpose is applied after resizing (it commutes with it); Pillow's
    # ImageOps.exif_transpose on the full picture, then the same resize, is the oracle.
    from PIL import ImageOps

    arr = gray_pattern(24, 40)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(arr), "PNG", exif=exif)
    ref_im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    size = images._target_size(*ref_im.size, max_side)
    ref = np.asarray(ref_im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)) / 255
    out = load_image(data, max_side=max_side)
    check_contract(out, ref.shape)
    np.testing.assert_allclose(out, ref, atol=0 if max_side == 64 else 2 * U8)


# --------------------------------------------------------------------------- memory budgets


def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise AssertionError(key)


# Runs in a fresh interpreter: VmHWM (the peak RSS) starts at that process's own baseline
# (ru_maxrss would not: Linux keeps the parent's across exec).
_PEAK_SCRIPT = """
import sys
from convviz.images import load_image, ImageLoadError
def mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
data = open(sys.argv[1], "rb").read()
base = mb("VmRSS")
try:
    out = load_image(data, max_side=1024)
    result = "ok"
except ImageLoadError as exc:
    result = exc.code
print(result, base, mb("VmHWM"))
"""


def peak_growth(tmp_path, data: bytes) -> tuple[str, float]:
    """(result, MB the peak RSS grew by) of ``load_image(data)`` in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "case.bin"
    path.write_bytes(data)
    root = Path(images.__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        capture_output=True, text=True, check=True, cwd=root, timeout=120,
    ).stdout.split()  # fmt: skip
    return out[0], float(out[2]) - float(out[1])


def sixteen_bit_png(side: int) -> bytes:
    """A 16-bit grey PNG of ``side`` squared pixels that compresses to almost nothing."""
    a = np.zeros((side, side), np.uint16)
    a[::97, :] = 40000
    return encode(Image.fromarray(a), "PNG", optimize=True)


def test_decoded_bytes_by_mode_depth_and_channels():
    # Pillow's storage per pixel, then the conversion's full-size copy, then the decoder's.
    w, h = 100, 50
    px = w * h
    table = {
        "L": 1, "1": 1 + 1, "P": 1 + 8, "LA": 4 + 4, "RGB": 4, "RGBA": 4 + 4, "CMYK": 4 + 8,
        "I;16": 2 + 4, "I;16B": 2 + 4, "I": 4 + 12, "F": 4 + 9,
    }  # fmt: skip
    for mode, per in table.items():
        assert images.decoded_bytes(mode, w, h) == per * px, mode
    assert images.decoded_bytes("RGB", w, h, "WEBP") == (4 + 8) * px
    assert images.decoded_bytes("RGB", w, h, "TIFF") == (4 + 4) * px
    # 16-bit data costs more than 8-bit, not the same: bit depth counts, not only pixels.
    assert images.decoded_bytes("I;16", w, h) > images.decoded_bytes("L", w, h)


def test_issue_17_sixteen_bit_png_is_refused_from_its_header(tmp_path, monkeypatch):
    """Issue 17: a 90 KB 16-bit PNG took the server from ~250 MB to 1.3 GB.

    This one is 6000 x 6000 (70 KB): 216 MB of decoded work. Before the budget it
    took a fresh process from 35 MB to 997 MB (measured with this test's script); now
    it is refused from its header, and the peak grows by a few MB.
    """
    data = sixteen_bit_png(6000)
    assert len(data) < 100_000
    with pytest.raises(ImageLoadError) as ei:
        load_image(data)
    err = ei.value
    assert err.code == "err.image.too_much_memory"
    assert "6000 x 6000" in check_friendly(err) and "64 MB" in str(err)
    assert translator("pt")(err.code, **err.params).startswith("Esta imagem precisaria")

    # Refused before any pixel is decoded: a decoder that fails would have said "damaged".
    def never(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    with pytest.raises(ImageLoadError, match="too much memory"):
        load_image(data)
    monkeypatch.undo()

    result, growth = peak_growth(tmp_path, data)
    assert result == "err.image.too_much_memory"
    assert growth < 20, f"peak RSS grew by {growth:.0f} MB for a refused image"


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("I;16", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("RGB", "PNG"), ("RGB", "WEBP")],
)
def test_image_just_under_the_budget_stays_within_it(tmp_path, mode, fmt):
    """Accepted images cost about their decoded bytes: the peak is bounded by the budget,
    plus Pillow's resize intermediate (max_side columns by the full height: a quarter of
    the budget here) and the output stage (a 1024 x 1024 picture in float32: ~30 MB).
    Measured growth at the budget (2 cores, 2026-12-02): I;16 82 MB, P 51, RGBA 80,
    RGB 87-115, WebP 94-125; the bound is 1.25 x 64 + 48 = 128 MB."""
    budget = images.DEFAULT_MAX_DECODED_BYTES
    per = images.decoded_bytes(mode, 1, 1, fmt)
    side = int((budget / per) ** 0.5) - 4
    ramp = (np.add.outer(np.arange(side), np.arange(side)) % 251).astype(np.uint8)
    if mode == "I;16":
        im = Image.fromarray(ramp.astype(np.uint16) * 257)
    elif mode == "P":
        im = Image.fromarray(ramp).convert("P")
        im.info["transparency"] = 0  # palette with transparency: converted to RGBA
    else:
        im = Image.fromarray(np.repeat(ramp[..., None], len(mode), axis=2))
    data = encode(im, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    del im, ramp
    result, growth = peak_growth(tmp_path, data)
    assert result == "ok"
    assert growth < 1.25 * budget / 2**20 + 48, f"{mode} {fmt}: peak grew by {growth:.0f} MB"
    # One row more and it is over the budget: refused.
    assert images.decoded_bytes(mode, side + 5, side + 5, fmt) > budget


def test_decoded_budget_is_a_parameter_and_checked_after_jpeg_draft():
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    rgb[:, 2000:] = (200, 40, 90)
    data = encode(Image.fromarray(rgb), "JPEG", quality=80)
    del rgb
    # 12 MP of RGB = 46 MiB at full size; libjpeg's 1/2 draft leaves 2000 x 1500 = 11 MiB.
    assert images.decoded_bytes("RGB", 4000, 3000) > 40 * 2**20
    assert load_image(data, max_side=1024, max_decoded_bytes=12 * 2**20).shape == (768, 1024)
    with pytest.raises(ImageLoadError) as ei:
        load_image(data, max_side=4000, max_decoded_bytes=12 * 2**20)
    assert ei.value.code == "err.image.too_much_memory"
    small = encode(Image.new("RGB", (100, 50)), "PNG")
    assert load_image(small, max_decoded_bytes=100 * 50 * 4).shape == (50, 100)
    with pytest.raises(ImageLoadError, match="100 x 50 pixels"):
        load_image(small, max_decoded_bytes=100 * 50 * 4 - 1)
    with pytest.raises(ValueError, match="`max_decoded_bytes` must be >= 1"):
        load_image(small, max_decoded_bytes=0)


def test_upload_limit_matches_streamlit_config():
    """convviz's own size check equals the server's `maxUploadSize` (MB, as Streamlit counts)."""
    import tomllib
    from pathlib import Path

    root = Path(images.__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert images.DEFAULT_MAX_BYTES == config["server"]["maxUploadSize"] * 2**20
    just_over = b"\x89PNG" + bytes(images.DEFAULT_MAX_BYTES - 3)
    with pytest.raises(ImageLoadError) as ei:
        load_image(just_over)
    assert ei.value.code == "err.image.file_too_large"
