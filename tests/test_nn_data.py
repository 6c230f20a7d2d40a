"""MNIST loading: real-data facts, IDX validation on broken files made in tmp_path, helpers."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn.data import (
    DEFAULT_ROOT,
    FILES,
    Mnist,
    MnistError,
    load_mnist,
    to_batch,
    train_val_split,
)

# Published MD5s of the official .gz files (assets/mnist/README.md).
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@pytest.fixture(scope="module")
def mnist() -> Mnist:
    return load_mnist()


def test_shipped_files_are_the_official_ones():
    for name, md5 in MD5.items():
        assert hashlib.md5((DEFAULT_ROOT / name).read_bytes()).hexdigest() == md5, name


def test_real_data_shapes_and_dtypes(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    for a in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert a.dtype == np.uint8


def test_real_data_known_facts(mnist):
    # Well-known: the first training digits are 5 0 4 1 9, the first test digits 7 2 1 0 4.
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    # Published class counts of the training set.
    counts = np.bincount(mnist.train_labels, minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert counts.sum() == 60000
    assert np.bincount(mnist.test_labels).sum() == 10000
    # Pixels span 0..255 and images are mostly background.
    assert mnist.train_images.min() == 0 and mnist.train_images.max() == 255
    assert 0.1 < (mnist.train_images[:1000] > 0).mean() < 0.25


def test_arrays_are_read_only(mnist):
    for a in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1


def test_loaded_once_per_root(mnist):
    assert load_mnist() is mnist
    assert load_mnist(str(DEFAULT_ROOT) + "/.") is mnist  # same resolved directory


# --- small synthetic IDX sets written into tmp_path ------------------------------------


def write_idx_images(path: Path, images: np.ndarray, magic: int = 2051, count=None) -> None:
    n, r, c = images.shape
    header = struct.pack(">iiii", magic, n if count is None else count, r, c)
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray, magic: int = 2049, count=None) -> None:
    header = struct.pack(">ii", magic, len(labels) if count is None else count)
    with gzip.open(path, "wb") as f:
        f.write(header + labels.astype(np.uint8).tobytes())


def make_set(root: Path, n_train: int = 6, n_test: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    tri = rng.integers(0, 256, (n_train, 28, 28))
    trl = rng.integers(0, 10, n_train)
    tei = rng.integers(0, 256, (n_test, 28, 28))
    tel = rng.integers(0, 10, n_test)
    write_idx_images(root / FILES["train_images"], tri)
    write_idx_labels(root / FILES["train_labels"], trl)
    write_idx_images(root / FILES["test_images"], tei)
    write_idx_labels(root / FILES["test_labels"], tel)
    return tri, trl, tei, tel


def test_small_synthetic_set_round_trips(tmp_path):
    tri, trl, tei, tel = make_set(tmp_path)
    m = load_mnist(tmp_path)
    np.testing.assert_array_equal(m.train_images, tri)
    np.testing.assert_array_equal(m.train_labels, trl)
    np.testing.assert_array_equal(m.test_images, tei)
    np.testing.assert_array_equal(m.test_labels, tel)


@contextlib.contextmanager
def mnist_error(tmp_path, code: str, message: str, **params):
    """Expect a ``MnistError`` with ``code`` and ``params``; no path in its params or text."""
    with pytest.raises(MnistError) as e:
        yield
    err = e.value
    assert err.code == code
    assert {k: err.params[k] for k in params} == params
    assert str(tmp_path) not in str(err) and str(tmp_path) not in repr(err.params)
    assert re.search(message, str(err)), str(err)
    assert err.path is not None and str(err.path).startswith(str(tmp_path))  # for the CLI
    pt = translator("pt")(err.code, **err.params)
    assert pt != str(err) and str(tmp_path) not in pt


def test_missing_directory_names_the_expected_files(tmp_path):
    with mnist_error(tmp_path, "err.nn.mnist_missing", r"^MNIST files not found: train-images"):
        load_mnist(tmp_path / "nowhere")


def test_one_missing_file_is_named(tmp_path):
    make_set(tmp_path)
    (tmp_path / FILES["test_labels"]).unlink()
    with mnist_error(
        tmp_path, "err.nn.mnist_missing", "not found", missing="t10k-labels-idx1-ubyte.gz"
    ):
        load_mnist(tmp_path)


def test_truncated_gzip(tmp_path):
    make_set(tmp_path)
    path = tmp_path / FILES["train_images"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with mnist_error(
        tmp_path,
        "err.nn.mnist_bad_gzip",
        r"^train-images-idx3-ubyte\.gz is not a valid gzip file",
        file="train-images-idx3-ubyte.gz",
    ):
        load_mnist(tmp_path)


def test_not_gzip_at_all(tmp_path):
    make_set(tmp_path)
    (tmp_path / FILES["test_images"]).write_bytes(b"<html>404 not found</html>")
    with mnist_error(tmp_path, "err.nn.mnist_bad_gzip", "not a valid gzip file"):
        load_mnist(tmp_path)


def test_real_file_cut_short_is_rejected(tmp_path):
    # The real test-labels file with its last 1000 compressed bytes missing.
    make_set(tmp_path)
    data = (DEFAULT_ROOT / FILES["test_labels"]).read_bytes()
    (tmp_path / FILES["test_labels"]).write_bytes(data[:-1000])
    with mnist_error(tmp_path, "err.nn.mnist_bad_gzip", "not a valid gzip file"):
        load_mnist(tmp_path)


def test_wrong_magic_images(tmp_path):
    make_set(tmp_path)
    # A label file where the images should be.
    write_idx_labels(tmp_path / FILES["train_images"], np.zeros(6))
    with mnist_error(
        tmp_path, "err.nn.mnist_bad_magic", "magic number is 2049, not 2051", magic="2049"
    ):
        load_mnist(tmp_path)


def test_wrong_magic_labels(tmp_path):
    make_set(tmp_path)
    write_idx_labels(tmp_path / FILES["test_labels"], np.zeros(4), magic=2051)
    with mnist_error(tmp_path, "err.nn.mnist_bad_magic", "magic number is 2051, not 2049"):
        load_mnist(tmp_path)


def test_header_count_disagrees_with_data(tmp_path):
    make_set(tmp_path)
    write_idx_images(tmp_path / FILES["test_images"], np.zeros((4, 28, 28)), count=5)
    with mnist_error(
        tmp_path,
        "err.nn.mnist_bad_length",
        r"has 3,152 bytes, but its header \(5 items\) needs 3,936",
        size=3152,
        expected=3936,
    ):
        load_mnist(tmp_path)


def test_label_count_disagrees_with_data(tmp_path):
    make_set(tmp_path)
    write_idx_labels(tmp_path / FILES["train_labels"], np.zeros(6), count=7)
    with mnist_error(tmp_path, "err.nn.mnist_bad_length", r"header \(7 items\) needs 15"):
        load_mnist(tmp_path)


def test_images_and_labels_counts_must_match(tmp_path):
    make_set(tmp_path)
    write_idx_labels(tmp_path / FILES["train_labels"], np.zeros(5))
    with mnist_error(
        tmp_path,
        "err.nn.mnist_count_mismatch.train",
        "training files disagree: 6 images but 5 labels",
        images=6,
        labels=5,
    ):
        load_mnist(tmp_path)


def test_wrong_image_size(tmp_path):
    make_set(tmp_path)
    write_idx_images(tmp_path / FILES["train_images"], np.zeros((6, 32, 32)))
    with mnist_error(tmp_path, "err.nn.mnist_bad_side", "holds 32x32 images, not 28x28"):
        load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    make_set(tmp_path)
    write_idx_labels(tmp_path / FILES["test_labels"], np.array([1, 2, 10, 3]))
    with mnist_error(tmp_path, "err.nn.mnist_bad_label", "the label 10; MNIST labels are 0 to 9"):
        load_mnist(tmp_path)


def test_header_too_short(tmp_path):
    make_set(tmp_path)
    with gzip.open(tmp_path / FILES["test_labels"], "wb") as f:
        f.write(b"\x00\x00")
    with mnist_error(tmp_path, "err.nn.mnist_too_short", "too short for an IDX header", size=2):
        load_mnist(tmp_path)


def test_mnist_error_is_a_coded_value_error():
    assert issubclass(MnistError, CodedError) and issubclass(MnistError, ValueError)


def test_a_failed_load_is_not_cached(tmp_path):
    with pytest.raises(MnistError):
        load_mnist(tmp_path)
    for name in FILES.values():
        shutil.copy(DEFAULT_ROOT / name, tmp_path / name)
    assert load_mnist(tmp_path).train_images.shape == (60000, 28, 28)


# --- helpers ------------------------------------------------------------------------------


def test_to_batch_scales_and_adds_channel(mnist):
    x = to_batch(mnist.test_images[:3])
    assert x.shape == (3, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], mnist.test_images[:3] / 255.0, rtol=1e-6)
    assert x.min() == 0.0 and x.max() == 1.0


def test_to_batch_keeps_float_and_channels():
    f = np.full((2, 5, 5, 3), 0.5)
    out = to_batch(f)
    assert out.dtype == np.float32 and out.shape == (2, 5, 5, 3)
    np.testing.assert_array_equal(out, 0.5)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((28, 28), np.uint8), r"`images` must have shape \(N, H, W\)"),
        (np.zeros((2, 28, 28), np.int64), "`images` must be uint8 or floating point"),
    ],
)
def test_to_batch_validation(images, match):
    with pytest.raises(ValueError, match=match):
        to_batch(images)


def test_train_val_split_is_a_seeded_partition(mnist):
    x, y = mnist.train_images, mnist.train_labels
    tx, ty, vx, vy = train_val_split(x, y, val_size=5000, seed=0)
    assert (len(tx), len(vx)) == (55000, 5000)
    # Same seed, same split; another seed, another split.
    _, _, vx2, vy2 = train_val_split(x, y, val_size=5000, seed=0)
    np.testing.assert_array_equal(vy, vy2)
    np.testing.assert_array_equal(vx, vx2)
    _, _, _, vy3 = train_val_split(x, y, val_size=5000, seed=1)
    assert not np.array_equal(vy, vy3)
    # A partition: label counts add up to the whole set's.
    np.testing.assert_array_equal(
        np.bincount(ty, minlength=10) + np.bincount(vy, minlength=10), np.bincount(y)
    )
    # Random, so every class shows up in validation in about its proportion.
    assert np.all(np.abs(np.bincount(vy) / 5000 - np.bincount(y) / 60000) < 0.02)


def test_train_val_split_pairs_stay_aligned():
    x = np.arange(100) * 3
    y = np.arange(100)
    tx, ty, vx, vy = train_val_split(x, y, val_size=30, seed=5)
    np.testing.assert_array_equal(tx, ty * 3)
    np.testing.assert_array_equal(vx, vy * 3)
    assert sorted(np.concatenate([ty, vy]).tolist()) == list(range(100))


def test_train_val_split_zero_validation():
    x = np.arange(10)
    tx, _, vx, vy = train_val_split(x, x, val_size=0)
    np.testing.assert_array_equal(tx, x)
    assert vx.shape == (0,) and vy.shape == (0,)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"val_size": -1}, r"`val_size` must be in \[0, 10\)"),
        ({"val_size": 10}, r"`val_size` must be in \[0, 10\)"),
        ({"val_size": 2.5}, "`val_size` must be an integer"),
    ],
)
def test_train_val_split_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        train_val_split(np.arange(10), np.arange(10), **kw)


def test_train_val_split_labels_length():
    with pytest.raises(ValueError, match="`labels` must have one entry per image"):
        train_val_split(np.arange(10), np.arange(9))


# --- faults told plainly: no server path, no exception text ------------------------------


def test_an_unreadable_file_names_only_the_file(tmp_path, monkeypatch):
    make_set(tmp_path)
    secret = "/srv/secret/mnist/train-images-idx3-ubyte.gz"

    def denied(path, mode="rb"):
        raise PermissionError(13, "Permission denied", secret)

    monkeypatch.setattr("convviz.nn.data.gzip.open", denied)
    with mnist_error(tmp_path, "err.nn.mnist_bad_gzip", "not a valid gzip file"):
        load_mnist(tmp_path)
    try:
        load_mnist(tmp_path)
    except MnistError as err:
        for text in (str(err), repr(err.params), translator("pt")(err.code, **err.params)):
            assert secret not in text and "Permission denied" not in text and "/srv" not in text


def test_a_directory_where_a_file_should_be_counts_as_missing(tmp_path):
    make_set(tmp_path)
    (tmp_path / FILES["train_labels"]).unlink()
    (tmp_path / FILES["train_labels"]).mkdir()
    with mnist_error(tmp_path, "err.nn.mnist_missing", "not found"):
        load_mnist(tmp_path)


def test_every_refusal_keeps_paths_and_exception_text_out_of_its_params(tmp_path):
    # Each damage in turn; the params are numbers and bare file names only.
    make_set(tmp_path)
    good = {name: (tmp_path / name).read_bytes() for name in FILES.values()}
    damages = [b"", b"\x1f\x8b garbage", gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12)]
    for name in FILES.values():
        for bad in damages:
            (tmp_path / name).write_bytes(bad)
            with pytest.raises(MnistError) as e:
                load_mnist(tmp_path)
            for value in e.value.params.values():
                assert isinstance(value, int) or "/" not in str(value), e.value.params
                assert "Error" not in str(value) and "gzip" not in str(value).lower()
            (tmp_path / name).write_bytes(good[name])
