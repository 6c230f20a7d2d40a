"""MNIST: reading the four gzipped IDX files, batching, and a seeded validation split.

The files ship in ``assets/mnist/`` (see its README for provenance and
checksums). ``load_mnist`` checks every header field against the data so a
truncated download or a wrong file fails with a ``MnistError`` that says what is
wrong, instead of a reshape error deep in NumPy. A ``MnistError`` is a
:class:`~convviz.errors.CodedError` (``err.nn.mnist_*`` in the ``nn`` catalogue):
its parameters name the file (``train-images-idx3-ubyte.gz``) but never its
directory, which stays in ``exc.path`` for the command line. Loaded arrays are cached per
directory and marked read-only, so every caller (and every Streamlit session)
can share them safely.

IDX format: big-endian int32 header -- magic ``2051``, count, rows, cols for
images; magic ``2049``, count for labels -- then one uint8 per pixel/label.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convviz.errors import CodedError

__all__ = [
    "DEFAULT_ROOT",
    "FILES",
    "Mnist",
    "MnistError",
    "load_mnist",
    "to_batch",
    "train_val_split",
]

# <repo>/assets/mnist, found from this file: convviz/nn/data.py -> parents[2] is the repo.
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "assets" / "mnist"

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
SIDE = 28


class MnistError(CodedError):
    """The MNIST files are missing or do not parse as valid IDX (a ``ValueError``).

    >>> err = MnistError("err.nn.mnist_bad_magic", file="t10k-labels-idx1-ubyte.gz",
    ...                  magic="2051", expected="2049")
    >>> str(err)
    't10k-labels-idx1-ubyte.gz is not an MNIST file: its magic number is 2051, not 2049'
    """

    def __init__(self, code: str, /, *, path: Path | None = None, **params: object) -> None:
        super().__init__(code, **params)
        self.path = path  # the file or directory at fault; never part of the message


@dataclass(frozen=True)
class Mnist:
    """The MNIST database as read-only uint8 arrays.

    Attributes
    ----------
    train_images : ndarray, shape (60000, 28, 28), uint8
    train_labels : ndarray, shape (60000,), uint8, values 0..9
    test_images : ndarray, shape (10000, 28, 28), uint8
    test_labels : ndarray, shape (10000,), uint8
    """

    train_images: np.ndarray  # (N, 28, 28) uint8, 0 = background, 255 = ink
    train_labels: np.ndarray  # (N,) uint8
    test_images: np.ndarray  # (M, 28, 28) uint8
    test_labels: np.ndarray  # (M,) uint8


def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off file raises EOFError.
        raise MnistError("err.nn.mnist_bad_gzip", path=path, file=path.name) from exc


def _header(data: bytes, n_ints: int, path: Path) -> list[int]:
    if len(data) < 4 * n_ints:
        raise MnistError("err.nn.mnist_too_short", path=path, file=path.name, size=len(data))
    return [int(v) for v in np.frombuffer(data, dtype=">i4", count=n_ints)]


def _check_magic(data: bytes, path: Path, expected: int) -> None:
    (magic,) = _header(data, 1, path)  # the magic first: a wrong file type says so
    if magic != expected:
        # As text: a magic number is a code, not a quantity to write as 2.051.
        raise MnistError(
            "err.nn.mnist_bad_magic",
            path=path,
            file=path.name,
            magic=str(magic),
            expected=str(expected),
        )


def _parse_images(data: bytes, path: Path) -> np.ndarray:
    _check_magic(data, path, IMAGE_MAGIC)
    _, n, rows, cols = _header(data, 4, path)
    if (rows, cols) != (SIDE, SIDE):
        raise MnistError("err.nn.mnist_bad_side", path=path, file=path.name, side=f"{rows}x{cols}")
    expected = 16 + n * rows * cols
    if len(data) != expected:
        raise MnistError(
            "err.nn.mnist_bad_length",
            path=path,
            file=path.name,
            size=len(data),
            expected=expected,
            count=n,
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _parse_labels(data: bytes, path: Path) -> np.ndarray:
    _check_magic(data, path, LABEL_MAGIC)
    _, n = _header(data, 2, path)
    if len(data) != 8 + n:
        raise MnistError(
            "err.nn.mnist_bad_length",
            path=path,
            file=path.name,
            size=len(data),
            expected=8 + n,
            count=n,
        )
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if n and labels.max() > 9:
        raise MnistError(
            "err.nn.mnist_bad_label", path=path, file=path.name, value=int(labels.max())
        )
    return labels


def _load(root: Path) -> Mnist:
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise MnistError("err.nn.mnist_missing", path=root, missing=", ".join(missing))
    arrays: dict[str, np.ndarray] = {}
    for key, name in FILES.items():
        path = root / name
        data = _read_gz(path)
        arr = _parse_images(data, path) if key.endswith("images") else _parse_labels(data, path)
        arr = arr.copy()  # own the memory (frombuffer views a bytes object) ...
        arr.setflags(write=False)  # ... and share it read-only
        arrays[key] = arr
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise MnistError(
                f"err.nn.mnist_count_mismatch.{split}", path=root, images=n_img, labels=n_lab
            )
    return Mnist(**arrays)


_cache: dict[Path, Mnist] = {}
_cache_lock = threading.Lock()


def load_mnist(root: str | Path | None = None) -> Mnist:
    """Load (once per directory) the MNIST train and test sets.

    Parameters
    ----------
    root : str or Path, optional
        Directory holding the four ``*-ubyte.gz`` files; default ``assets/mnist``
        in the repository.

    Returns
    -------
    Mnist
        Read-only uint8 arrays; the same object is returned for the same directory.

    Raises
    ------
    MnistError
        If a file is missing (``err.nn.mnist_missing``), is not gzip
        (``err.nn.mnist_bad_gzip``), or its IDX header disagrees with its data
        (``err.nn.mnist_too_short``, ``_bad_magic``, ``_bad_side``, ``_bad_length``,
        ``_bad_label``, ``_count_mismatch``).

    Examples
    --------
    >>> m = load_mnist()
    >>> m.train_images.shape, m.train_labels[:5].tolist(), m.test_images.shape
    ((60000, 28, 28), [5, 0, 4, 1, 9], (10000, 28, 28))
    """
    path = Path(DEFAULT_ROOT if root is None else root).expanduser().resolve()
    with _cache_lock:  # two sessions asking at once decode the files once
        if path not in _cache:
            _cache[path] = _load(path)
        return _cache[path]


def to_batch(images: np.ndarray) -> np.ndarray:
    """Images as a model batch: ``(N, H, W)`` or ``(N, H, W, C)`` -> ``(N, H, W, C)`` float32.

    uint8 pixels are scaled by 1/255 into [0, 1]; floating images are assumed to
    be in [0, 1] already and only cast.

    >>> to_batch(np.full((2, 3, 3), 255, dtype=np.uint8)).shape
    (2, 3, 3, 1)
    >>> b = to_batch(np.array([[[0, 255]]], dtype=np.uint8)); b.dtype, b.max()
    (dtype('float32'), np.float32(1.0))
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4:
        raise ValueError(f"`images` must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(images.dtype, np.floating):
        return images.astype(np.float32, copy=False)
    raise ValueError(f"`images` must be uint8 or floating point, got {images.dtype}")


def train_val_split(
    images: np.ndarray,
    labels: np.ndarray,
    val_size: int = 5000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``val_size`` random examples for validation (seeded, without replacement).

    Parameters
    ----------
    images : ndarray, shape (N, ...)
    labels : ndarray, shape (N,)
    val_size : int, default 5000
        0 gives an empty validation set; must be < N.
    seed : int, default 0

    Returns
    -------
    train_images, train_labels, val_images, val_labels
        Both parts keep the original order of the examples they hold.

    >>> x, y = np.arange(10), np.arange(10)
    >>> tx, ty, vx, vy = train_val_split(x, y, val_size=3, seed=1)
    >>> len(tx), len(vx), sorted(set(tx) | set(vx)) == list(range(10))
    (7, 3, True)
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"`labels` must have one entry per image ({n}), got {len(labels)}")
    if isinstance(val_size, bool) or not isinstance(val_size, int | np.integer):
        raise ValueError(f"`val_size` must be an integer, got {val_size!r}")
    if not 0 <= val_size < n:
        raise ValueError(f"`val_size` must be in [0, {n}), got {val_size}")
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:val_size]] = True
    return images[~is_val], labels[~is_val], images[is_val], labels[is_val]
