"""Image decoding with safety checks and bundled sample images.

Everything that turns bytes into pixels lives here, so that the rest of
convviz only ever sees C-contiguous ``float32`` arrays in ``[0, 1]``:
``(H, W)`` for grey images and ``(H, W, 3)`` for colour.

Untrusted uploads are handled defensively, in this order:

1. refuse empty input and input over ``max_bytes`` before decoding;
2. let Pillow identify the *real* format from the bytes, restricted to an
   allow-list (PNG, JPEG, GIF, WebP, BMP, TIFF), whatever the file is called;
3. refuse images whose header declares more than ``max_pixels`` pixels before
   any pixel data is decoded (Pillow's own decompression-bomb warning and
   error are turned into the same refusal, without touching global Pillow
   state);
4. refuse images whose *decoded* pixels would take more than ``max_decoded_bytes``
   (:func:`decoded_bytes`: width x height x bytes per pixel of the mode the header
   declares, 16-bit and palette and alpha modes included, plus the full-size copy
   the conversion makes), again from the header alone: a 70 KB 16-bit PNG of
   6000 x 6000 pixels declares 216 MB of work and is refused unread (before this
   check it took a process from 35 MB to 997 MB);
5. decode fully inside the guard, so truncated files fail here and not later.

Memory: nothing of full size is ever held in float64. The picture is converted in
Pillow (8-bit, or 32-bit float for 16-bit data), resized there, and only the
resized picture (at most ``max_side`` on its longer side) becomes a NumPy array, so
the peak is about ``decoded_bytes`` plus a few copies of the output.

Turning arrays back into pixels (``to_display``, ``to_uint8``, ``encode_png``,
``symmetric_range``) is :mod:`convviz.render`'s job; the names are re-exported here.

Every failure is an :class:`ImageLoadError` (a
:class:`~convviz.errors.CodedError`: a catalogue code, ``err.image.*``, with
named parameters) whose message is written for a person and never contains
Pillow's own text or a path (either can hold internal names or URLs).
"""

from __future__ import annotations

import functools
import io
import logging
import numbers
import os
import warnings
from collections.abc import Callable
from typing import IO, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL import ImageMode as _pil_modes

from convviz.errors import CodedError

# Scaling and PNG encoding live in convviz.render; re-exported for the pages and Python users.
from convviz.render import encode_png, symmetric_range, to_display, to_uint8
from convviz.shapes import check_choice, shown

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_PIXELS",
    "SAMPLES",
    "ImageLoadError",
    "decoded_bytes",
    "encode_png",
    "load_image",
    "sample_image",
    "symmetric_range",
    "to_display",
    "to_uint8",
]

_log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # 20 MiB: well above any photo a phone uploads
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: ~160 MB decoded as RGBA
#: Decoded-pixel budget per image (see :func:`decoded_bytes`): 16 megapixels of RGB(A),
#: 13 of palette colour, 11 of 16-bit grey. Phone photos are JPEGs, which libjpeg
#: decodes at 1/2, 1/4 or 1/8 scale first, so a 48-megapixel photo costs 12 MB here.
DEFAULT_MAX_DECODED_BYTES = 64 * 2**20

# Pillow plugins allowed to identify the bytes (passed as `Image.open(formats=...)`).
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
# `im.format` values we accept: the JPEG plugin reports the multi-picture JPEGs
# that many phone cameras write as "MPO".
_OPENED_FORMATS = frozenset((*ALLOWED_FORMATS, "MPO"))

ImageMode = Literal["gray", "rgb"]
Source = bytes | bytearray | memoryview | str | os.PathLike | IO[bytes]

# ITU-R 601-2 luma weights, the ones Pillow uses for mode "L".
_LUMA = np.array([0.299, 0.587, 0.114])

# Catalogue codes (the core domain) of the refusals that carry no parameters.
_MSG_NOT_IMAGE = "err.image.not_image"
_MSG_DAMAGED = "err.image.damaged"
_MSG_EMPTY = "err.image.empty"
_MSG_UNREADABLE = "err.image.unreadable"
_MSG_TOO_BIG_TO_PROCESS = "err.image.too_big_to_process"


class ImageLoadError(CodedError):
    """An image could not be loaded; the message is safe to show to a user.

    A :class:`~convviz.errors.CodedError` (so a ``ValueError``): ``str(exc)``
    is the English text, ``exc.code`` / ``exc.params`` give it in the reader's
    language. Neither ever holds internals (Pillow's own error text, paths,
    tracebacks): the underlying exception is logged at DEBUG level on the
    ``convviz.images`` logger instead of being chained.

    >>> ImageLoadError("err.image.empty").code, str(ImageLoadError("err.image.empty"))
    ('err.image.empty', 'The file is empty.')
    """


# --------------------------------------------------------------------------- validation


def _check_int(value: object, name: str, minimum: int) -> int:
    # Stricter than shapes.check_integer: a size limit given as 1e6 is a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CodedError("err.not_an_integer", name=name, value=shown(value))
    if value < minimum:
        if minimum == 1:
            raise CodedError("err.must_be_positive", name=name, value=int(value))
        raise CodedError("err.must_be_at_least", name=name, minimum=minimum, value=int(value))
    return int(value)


def _check_mode(mode: object) -> str:
    return check_choice(mode, "mode", ("gray", "rgb"))


def _too_large(width: int, height: int, limit: int) -> ImageLoadError:
    # Sides as plain digits ("20000 x 20000", as image sizes are written); the
    # limit with the reader's grouping.
    return ImageLoadError(
        "err.image.too_many_pixels",
        width=str(width),
        height=str(height),
        limit=limit,
        megapixels=shown(limit / 1e6),
    )


# --------------------------------------------------------------------------- reading bytes


def _read_source(source: Source, max_bytes: int) -> bytes:
    """Return at most ``max_bytes`` bytes of ``source``, refusing empty or larger input."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as fh:
                data = fh.read(max_bytes + 1)  # one byte more tells us it is too big
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            _log.debug("could not read image file", exc_info=True)
            raise ImageLoadError(_MSG_UNREADABLE) from None
    elif hasattr(source, "read"):
        # A file-like object (Streamlit's UploadedFile is a BytesIO): read from
        # its current position, like Image.open does.
        try:
            data = source.read(max_bytes + 1)
        except OSError:
            _log.debug("could not read image stream", exc_info=True)
            raise ImageLoadError(_MSG_UNREADABLE) from None
        if isinstance(data, str):
            raise TypeError("`source` must be opened in binary mode, got a text stream")
        data = bytes(data)
    else:
        raise TypeError(
            "`source` must be bytes, a path or a binary file-like object, "
            f"got {type(source).__name__}"
        )
    if not data:
        raise ImageLoadError(_MSG_EMPTY)
    if len(data) > max_bytes:
        raise ImageLoadError(
            "err.image.file_too_large",
            megabytes=shown(float(f"{max_bytes / 2**20:.3g}")),
            limit=max_bytes,
        )
    return data


# --------------------------------------------------------------------------- decoding


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) with the format allow-list and both pixel budgets."""
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between 1x and 2x MAX_IMAGE_PIXELS; make it an
            # error here without changing Pillow's (or the process's) settings.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        _log.debug("Pillow decompression-bomb guard tripped", exc_info=True)
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ImageLoadError("err.image.bomb", limit=limit, megapixels=shown(limit / 1e6)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(_MSG_NOT_IMAGE) from None
    except Exception:
        # A recognised format whose header is broken.
        _log.debug("image header could not be parsed", exc_info=True)
        raise ImageLoadError(_MSG_DAMAGED) from None
    width, height = im.size
    error = None
    if im.format not in _OPENED_FORMATS:  # defence in depth; `formats=` already limits this
        error = ImageLoadError(_MSG_NOT_IMAGE)
    elif width < 1 or height < 1:
        error = ImageLoadError(_MSG_DAMAGED)
    elif width * height > max_pixels:
        error = _too_large(width, height, max_pixels)
    if error is not None:
        im.close()
        raise error
    return im


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side <= ``max_side``, aspect ratio kept."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _pixel_bytes(mode: str) -> int:
    """Bytes Pillow holds per pixel of ``mode``: 1 for "1", "L" and "P", 4 for every other
    8-bit mode (Pillow stores RGB as RGBX), 2 for "I;16*", 4 for "I" and "F"."""
    info = _pil_modes.getmode(mode)
    itemsize = int(info.typestr[-1])
    if itemsize == 1 or mode == "1":
        return 1 if len(info.bands) == 1 else 4
    return itemsize * len(info.bands)


# Bytes per pixel of the full-size copies made after decoding (see _to_channels): a
# conversion to a mode _to_channels works in, and for float data NumPy's working arrays.
# LA and RGBA: Pillow's resize premultiplies alpha into a full-size copy.
_CONVERT_BYTES = {"1": 1, "L": 0, "LA": 4, "RGB": 0, "RGBA": 4, "F": 9}
_CONVERT_BYTES_16 = 4  # "I;16*" -> "F"
_CONVERT_BYTES_I = 12  # "I" -> int32 copy clipped in place -> float32 -> "F"
_CONVERT_BYTES_OTHER = 8  # P, PA, La, RGBa, CMYK, YCbCr, LAB, HSV, RGBX -> RGB(A) or LA,
# and the premultiplied copy when that has alpha
# Decoders that hold a full-size buffer of their own besides Pillow's (libwebp's RGBA,
# libtiff's strip or RGBA buffer), measured with the peak-RSS test in test_images.
_FORMAT_BYTES = {"WEBP": 8, "TIFF": 4}


def decoded_bytes(mode: str, width: int, height: int, fmt: str | None = None) -> int:
    """Bytes of the full-size pixels :func:`load_image` holds for a ``width x height`` image.

    ``width * height`` times the bytes per pixel of the decoded ``mode`` (Pillow's
    storage: 1 for "L", "P" and "1", 4 for RGB, RGBA, LA and CMYK, 2 for 16-bit
    grey, 4 for 32-bit) plus those of the conversion's full-size copy (palette to
    RGB(A): 4; 16-bit to float: 4) and of the decoder's own buffer (WebP, TIFF: 4).
    Known from the header alone, so it is checked before any pixel is decoded.

    >>> decoded_bytes("I;16", 6000, 6000) / 1e6  # the 70 KB PNG of issue 17
    216.0
    >>> decoded_bytes("RGB", 4000, 3000) / 2**20
    45.7763671875
    """
    if mode.startswith("I;16"):
        extra = _CONVERT_BYTES_16
    elif mode == "I":
        extra = _CONVERT_BYTES_I
    else:
        extra = _CONVERT_BYTES.get(mode, _CONVERT_BYTES_OTHER)
    try:
        own = _pixel_bytes(mode)
    except KeyError:  # a mode Pillow does not list: assume the widest
        own = 16
    return int(width) * int(height) * (own + extra + _FORMAT_BYTES.get(fmt or "", 0))


def _check_budget(im: Image.Image, max_decoded_bytes: int) -> None:
    """Refuse, from the header (after JPEG's draft scaling), what would cost too much."""
    width, height = im.size
    need = decoded_bytes(im.mode, width, height, im.format)
    if need > max_decoded_bytes:
        raise ImageLoadError(
            "err.image.too_much_memory",
            width=str(width),
            height=str(height),
            megabytes=shown(float(f"{need / 2**20:.3g}")),
            limit=shown(float(f"{max_decoded_bytes / 2**20:.3g}")),
        )


def _decode(im: Image.Image, max_side: int, max_decoded_bytes: int) -> int:
    """Decode the first frame in place, within the budget; return its EXIF orientation."""
    try:
        im.seek(0)  # first frame of animated GIF/WebP and multi-page TIFF
        if im.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves
            # at least the final size: big phone photos decode several times faster.
            im.draft(None, _target_size(*im.size, max_side))
    except Exception:
        _log.debug("image header could not be prepared", exc_info=True)
        raise ImageLoadError(_MSG_DAMAGED) from None
    _check_budget(im, max_decoded_bytes)  # im.size and im.mode are final now, nothing decoded
    try:
        im.load()
    except MemoryError:
        raise ImageLoadError(_MSG_TOO_BIG_TO_PROCESS) from None
    except Exception:
        _log.debug("image data could not be decoded", exc_info=True)
        raise ImageLoadError(_MSG_DAMAGED) from None
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:
        # Broken EXIF metadata should not cost the user a good picture.
        _log.debug("EXIF orientation could not be read", exc_info=True)
        orientation = 1
    return orientation if orientation in _ORIENT else 1


# EXIF orientation -> the transpose that shows the picture upright (ImageOps.exif_transpose's
# table), applied to the resized picture: it commutes with resizing, and costs nothing there.
_ORIENT = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _float_image(im: Image.Image) -> Image.Image:
    """Mode "I;16*", "I" or "F" -> mode "F" in [0, 1] scale units (full size, float32).

    16-bit data keeps its 0..65535 values (exact in float32; divided by 65535 after
    resizing, which is linear); "I" is clipped to 16 bits first; "F" in [0, 1] passes
    through, other ranges are stretched min-max (non-finite values become 0).
    """
    if im.mode.startswith("I;16"):
        return im.convert("F")
    if im.mode == "I":
        a = np.array(im, dtype=np.int32)  # (H, W), 32-bit assumed to hold 16-bit data
        np.clip(a, 0, 65535, out=a)
        return Image.fromarray(a.astype(np.float32), "F")
    a = np.array(im, dtype=np.float32)  # (H, W) writeable copy
    bad = ~np.isfinite(a)
    a[bad] = np.nan
    lo, hi = np.nanmin(a, initial=np.inf), np.nanmax(a, initial=-np.inf)
    if np.isfinite(lo) and (lo < 0.0 or hi > 1.0):
        if hi > lo:
            a -= lo
            a /= hi - lo
        else:
            np.clip(a, 0.0, 1.0, out=a)
    a[bad] = 0.0
    del bad
    # Scaled to 65535 so every float path divides by the same full scale afterwards.
    a *= 65535.0
    return Image.fromarray(a, "F")


def _to_float_channels(im: Image.Image, max_side: int, orientation: int = 1) -> np.ndarray:
    """Decoded Pillow image -> float32 ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1].

    Alpha is composited onto white; the image is resized (in Pillow, before it
    becomes an array) so that its longer side is at most ``max_side``, then turned
    upright by its EXIF ``orientation``.
    """
    size = _target_size(*im.size, max_side)
    transpose = _ORIENT.get(orientation)
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        f = _float_image(im)
        if size != f.size:
            f = f.resize(size, Image.Resampling.LANCZOS)
        if transpose is not None:
            f = f.transpose(transpose)
        a = np.array(f, dtype=np.float32)[..., None]  # (h, w, 1)
        a /= np.float32(65535.0)
        return np.clip(a, 0.0, 1.0, out=a)

    # 8-bit family: bring everything to L, LA, RGB or RGBA first.
    if mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
    elif mode in ("PA", "RGBa"):
        mode = "RGBA"
    elif mode == "La":
        mode = "LA"
    elif mode == "1":
        mode = "L"  # 0/255, so resizing can blend (Pillow resizes "1" with NEAREST)
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        mode = "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX: Pillow's own conversion
    if mode != im.mode:
        im = im.convert(mode)
    if size != im.size:
        # Pillow premultiplies alpha while resizing LA/RGBA, so edges stay clean.
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if transpose is not None:
        im = im.transpose(transpose)
    # float32 and in place from here: the output stage of a 1024 x 1024 RGBA picture
    # took 93 MB in float64 copies, 33 MB this way.
    a = np.array(im, dtype=np.float32)  # (h, w) or (h, w, C), a fresh writeable array
    a /= np.float32(255.0)
    if a.ndim == 2:
        a = a[..., None]
    if mode in ("LA", "RGBA"):
        alpha = a[..., -1:]
        colour = a[..., :-1]
        colour *= alpha
        colour += 1.0 - alpha  # composite on white: a * c + (1 - a)
        a = colour
    return a


def _finish(channels: np.ndarray, mode: str) -> np.ndarray:
    """``(H, W, 1|3)`` float -> contract output for ``mode``."""
    if mode == "gray":
        out = channels[..., 0] if channels.shape[-1] == 1 else channels @ _LUMA
    else:
        out = np.repeat(channels, 3, axis=-1) if channels.shape[-1] == 1 else channels
    out = np.ascontiguousarray(out, dtype=np.float32)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def _from_pil(im: Image.Image, mode: str, max_side: int, orientation: int = 1) -> np.ndarray:
    return _finish(_to_float_channels(im, max_side, orientation), mode)


def load_image(
    source: Source,
    *,
    max_side: int = 1024,
    mode: ImageMode = "gray",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> np.ndarray:
    """Decode an image safely into a float array in ``[0, 1]``.

    Parameters
    ----------
    source : bytes, str, os.PathLike or binary file-like
        The encoded image. A file-like object (for example Streamlit's
        ``UploadedFile``) is read from its current position.
    max_side : int, default 1024
        The image is downscaled (Lanczos, aspect ratio kept) so that its longer
        side is at most this many pixels. Smaller images are never enlarged.
    mode : {"gray", "rgb"}, default "gray"
        ``"gray"`` gives ITU-R 601-2 luma (the weights of Pillow's mode ``"L"``,
        computed in float so 16-bit precision survives).
    max_pixels : int, default 40_000_000
        Largest accepted ``width * height`` declared by the header; checked
        before any pixel data is decoded.
    max_bytes : int, default 20 MiB
        Largest accepted encoded size.
    max_decoded_bytes : int, default 64 MiB
        Largest accepted :func:`decoded_bytes` (pixels decoded at full size, by bit
        depth and channels, and the conversion's copy); checked from the header,
        after JPEG's draft scaling, before any pixel data is decoded.

    Returns
    -------
    ndarray of float32, shape (H, W) or (H, W, 3)
        C-contiguous, finite, in ``[0, 1]``.

    Raises
    ------
    ImageLoadError
        Empty, too large (bytes, pixels or decoded bytes), not an allowed format
        (PNG, JPEG, GIF, WebP, BMP, TIFF -- detected from the bytes, not the name),
        damaged or truncated.
    ValueError
        Invalid arguments (``ImageLoadError`` is a ``ValueError`` too).
    TypeError
        ``source`` is of an unsupported type or a text stream.

    Notes
    -----
    Conversions: the first frame of animated or multi-page files is used; EXIF
    orientation is applied; palette images (with or without transparency), CMYK
    and other colour spaces go through Pillow's conversion to RGB(A); alpha is
    composited onto a white background (``a * c + (1 - a)``); 1-bit images give
    exactly 0 and 1; 16-bit images (``"I;16"``, ``"I;16B"``, ``"I;16L"``, and
    ``"I"``, read as 16-bit data) are divided by 65535; float (``"F"``) images
    already within ``[0, 1]`` are kept as they are, other ranges are stretched
    min-max (non-finite values become 0). Pillow itself reduces 16-bit-per-channel
    *colour* PNGs to 8 bits.

    Examples
    --------
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (4, 2), (255, 0, 0)).save(buf, "PNG")
    >>> img = load_image(buf.getvalue())
    >>> img.shape, img.dtype, round(float(img[0, 0]), 3)
    ((2, 4), dtype('float32'), 0.299)
    >>> try:
    ...     load_image(b"hello, I am text")
    ... except ImageLoadError as exc:
    ...     print(exc)
    This file is not an image we can read (PNG, JPEG, GIF, WebP, BMP or TIFF).
    """
    mode = _check_mode(mode)
    max_side = _check_int(max_side, "max_side", 1)
    max_pixels = _check_int(max_pixels, "max_pixels", 1)
    max_bytes = _check_int(max_bytes, "max_bytes", 1)
    max_decoded_bytes = _check_int(max_decoded_bytes, "max_decoded_bytes", 1)

    data = _read_source(source, max_bytes)
    im = _open_checked(data, max_pixels)
    try:
        orientation = _decode(im, max_side, max_decoded_bytes)
        try:
            return _from_pil(im, mode, max_side, orientation)
        except MemoryError:
            raise ImageLoadError(_MSG_TOO_BIG_TO_PROCESS) from None
        except ImageLoadError:
            raise
        except Exception:
            _log.debug("image could not be converted", exc_info=True)
            raise ImageLoadError(_MSG_DAMAGED) from None
    finally:
        im.close()


# --------------------------------------------------------------------------- samples


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        # Imported lazily: skimage.data is slow to import and only samples need it.
        import skimage.data

        return getattr(skimage.data, name)()

    return load


# Display name -> (one-line description, skimage.data function). Every file
# below ships inside the scikit-image wheel (no download, works offline).
_SAMPLE_SOURCES: dict[str, tuple[str, str]] = {
    "Cameraman": (
        "Classic 512x512 grey photo: a man with a camera, sharp edges and sky.",
        "camera",
    ),
    "Astronaut": ("Colour portrait of astronaut Eileen Collins, 512x512.", "astronaut"),
    "Coins": ("Grey coins on a dark background: round blobs for edge and blob filters.", "coins"),
    "Checkerboard": (
        "Black and white squares: the simplest test for edge kernels.",
        "checkerboard",
    ),
    "Moon": ("Low-contrast grey lunar surface, good for sharpening.", "moon"),
    "Text": ("Handwritten-looking text on a gradient background.", "text"),
    "Coffee": ("Colour photo of a coffee cup on a saucer.", "coffee"),
    "Cat": ("Chelsea the cat, colour: fur texture and whiskers.", "chelsea"),
    "Brick": ("Grey brick wall texture: strong horizontal and vertical lines.", "brick"),
    "Horse": ("Binary silhouette of a horse (pixels are exactly 0 or 1).", "horse"),
    "Page": ("Scanned page of a book with uneven lighting.", "page"),
}

#: Sample display name -> one-line description.
SAMPLES: dict[str, str] = {name: desc for name, (desc, _) in _SAMPLE_SOURCES.items()}


@functools.lru_cache(maxsize=32)
def _sample_cached(name: str, mode: str, max_side: int) -> np.ndarray:
    raw = _skimage_loader(_SAMPLE_SOURCES[name][1])()
    out = _from_pil(Image.fromarray(raw), mode, max_side)
    out.setflags(write=False)  # the cached copy is never handed out
    return out


def sample_image(name: str, *, mode: ImageMode = "gray", max_side: int = 512) -> np.ndarray:
    """Load a bundled sample image (from ``skimage.data``, no network needed).

    Parameters
    ----------
    name : str
        A key of :data:`SAMPLES`.
    mode : {"gray", "rgb"}, default "gray"
    max_side : int, default 512
        Longer side limit, as in :func:`load_image`.

    Returns
    -------
    ndarray of float32, shape (H, W) or (H, W, 3)
        A fresh, writeable copy in ``[0, 1]`` (decoded samples are cached; the
        cache is never exposed, so callers may modify the result freely).

    Examples
    --------
    >>> img = sample_image("Checkerboard", max_side=100)
    >>> img.shape, img.dtype
    ((100, 100), dtype('float32'))
    """
    check_choice(name, "name", SAMPLES)
    mode = _check_mode(mode)
    max_side = _check_int(max_side, "max_side", 1)
    return _sample_cached(name, mode, max_side).copy()
