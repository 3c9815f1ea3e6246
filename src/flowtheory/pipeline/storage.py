"""All file I/O of the pipeline: atomic writes, deterministic bytes, checked reads.

Every writer writes to a temporary file in the target's directory and renames it into place, so a
killed job never leaves a half-written file under its final name. Readers check what they load and
raise :class:`DataError` naming the file and what was expected.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "atomic_path",
    "check_dataset",
    "load_checkpoint",
    "load_dataset",
    "load_json",
    "save_checkpoint",
    "save_csv",
    "save_json",
    "save_npz",
    "save_text",
]

DATASET_KEYS = ("x_train", "x_valid", "c_train", "c_valid", "oracle_cov")
#: floats in CSV tables: 10 significant digits, enough for every check and byte-stable
CSV_FLOAT_FORMAT = "%.10g"


class DataError(ValueError):
    """A missing, unreadable or malformed pipeline file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's umask, read once (os.umask can only be read by setting it)
_UMASK = _umask()


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path next to ``path``; renames it to ``path`` only on success.

    If the body raises, the temporary file is removed and ``path`` is left as it was (absent, or
    its previous content). The final file gets the usual permissions (0666 less the umask), not
    the owner-only 0600 of ``mkstemp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _clean(obj):
    """JSON-safe: non-finite floats become None, numpy scalars and arrays Python numbers and lists."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save_json(path: str | Path, obj) -> None:
    """Strict JSON (NaN and ±inf written as ``null``), sorted keys: the same object gives the same
    bytes."""
    save_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def load_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path}: cannot read JSON ({e})") from None


def save_csv(path: str | Path, frame) -> None:
    """A pandas DataFrame as CSV with a fixed float format (byte-stable across runs)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")
    save_text(path, buf.getvalue())


#: the zip entry of every array in an npz: a fixed time and mode, so that the bytes are the arrays'
_NPZ_ENTRY = {"date_time": (1980, 1, 1, 0, 0, 0), "external_attr": 0o644 << 16}


def save_npz(path: str | Path, **arrays) -> None:
    """Uncompressed npz (``np.load`` reads it) whose bytes depend only on the arrays.

    Arrays are stored C-ordered in native byte order, so equal arrays give equal bytes whatever
    their memory layout; object arrays (which would need pickle to load) are refused. Each entry is
    written whole with a fixed time and mode: ``np.savez`` streams its entries with zip64 forced,
    whose headers Python 3.11.2's zipfile and 3.11.7's write differently (version 2.0 against 4.5),
    so the same arrays came out in other bytes under the two, and DVC saw a change
    (docs/measurements.md#npz-bytes). Entries larger than 4 GiB still get zip64 headers.
    """
    clean = {}
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise ValueError(f"{path}: array {key!r} has dtype object, which cannot be loaded without pickle")
        clean[key] = np.asarray(a, dtype=a.dtype.newbyteorder("="), order="C")  # keeps 0-d arrays 0-d
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, a in clean.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                entry = zipfile.ZipInfo(f"{key}.npy", date_time=_NPZ_ENTRY["date_time"])
                entry.external_attr = _NPZ_ENTRY["external_attr"]
                entry.compress_type = zipfile.ZIP_STORED
                zf.writestr(entry, buf.getvalue())


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Loads and checks a data set written by the data stage.

    Raises:
        DataError: naming the file, for a missing or unreadable file, a file that is not an npz
            archive, missing arrays, non-numeric arrays, an ``x_train`` / ``x_valid`` that is not a
            non-empty finite 2-D array, different dimensions in the two, colouring arrays whose
            length differs from the data's, or an ``oracle_cov`` that is neither empty nor d × d.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data set file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: not an npz archive (a single .npy array); expected {list(DATASET_KEYS)}")
        with loaded as z:
            data = {k: z[k] for k in z.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        # numpy takes a file with neither a zip nor an .npy header for a pickle, and its message
        # advises loading it unsafely
        detail = "neither a zip nor an .npy header" if "pickled" in str(e) else f"{type(e).__name__}: {e}"
        raise DataError(f"{path}: cannot read data set, expected an npz archive ({detail})") from None
    check_dataset(data, path)
    return data


def check_dataset(data: dict[str, np.ndarray], path: str | Path) -> None:
    """Raises :class:`DataError` naming ``path`` unless ``data`` is a well-formed data set (the checks
    :func:`load_dataset` lists); the data stage runs them before writing, the readers after loading."""
    missing = [k for k in DATASET_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; expected {list(DATASET_KEYS)}")
    for key in DATASET_KEYS:
        dtype = data[key].dtype
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
            raise DataError(f"{path}: {key} must hold real numbers, got dtype {dtype}")
    for key in ("x_train", "x_valid"):
        x = data[key]
        if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
            raise DataError(f"{path}: {key} must be a non-empty 2-D array (n, d), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise DataError(f"{path}: {key} contains NaN or inf values; expected finite data")
    d_train, d_valid = data["x_train"].shape[1], data["x_valid"].shape[1]
    if d_train != d_valid:
        raise DataError(
            f"{path}: x_train and x_valid have different dimensions ({d_train} and {d_valid}); expected equal"
        )
    for c, x in (("c_train", "x_train"), ("c_valid", "x_valid")):
        if data[c].shape != (len(data[x]),):
            raise DataError(f"{path}: {c} has shape {data[c].shape}, expected ({len(data[x])},) like {x}")
    if data["oracle_cov"].shape not in {(0, 0), (d_train, d_train)}:
        raise DataError(
            f"{path}: oracle_cov has shape {data['oracle_cov'].shape}, expected (0, 0) or ({d_train}, {d_train})"
        )
    # a manifold's ground truth (optional): orthonormal tangent bases at the points, and the noise std
    if ("tangent_train" in data) != ("tangent_valid" in data):
        raise DataError(f"{path}: tangent_train and tangent_valid must come together")
    for t, x in (("tangent_train", "x_train"), ("tangent_valid", "x_valid")):
        if t in data:
            T = data[t]
            if T.ndim != 3 or T.shape[:2] != (len(data[x]), d_train) or not 0 < T.shape[2] < d_train:
                raise DataError(f"{path}: {t} has shape {T.shape}, expected ({len(data[x])}, {d_train}, k), 0 < k < d")
            if not np.isfinite(T).all():
                raise DataError(f"{path}: {t} contains NaN or inf values")
    if "noise" in data and not (data["noise"].shape == () and np.isfinite(data["noise"]) and data["noise"] >= 0):
        raise DataError(f"{path}: noise must be one finite number ≥ 0, got {data['noise']!r}")


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict) -> None:
    """A state dict plus the flow's config (plain types only, so it loads with weights_only)."""
    import torch

    # through a buffer: torch.save names the archive's root folder after the file it writes to,
    # so saving to a temporary name would make the bytes differ from run to run
    buf = io.BytesIO()
    torch.save({"state_dict": state_dict, "meta": meta}, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _load_error(e: Exception) -> str:
    """One line for an error of ``torch.load``. Its unpickling errors span many lines and advise
    ``weights_only=False``, which would run whatever code the file carries."""
    if isinstance(e, pickle.UnpicklingError):
        return f"{type(e).__name__}: not a torch archive of tensors and plain values"
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0].strip()}" if lines else type(e).__name__


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Loads a checkpoint with ``weights_only=True``; returns ``(state_dict, meta)``."""
    import torch

    if not Path(path).is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise DataError(
            f"{path}: corrupt or unreadable checkpoint ({_load_error(e)}); expected a checkpoint written by the "
            "train stage"
        ) from None
    if not isinstance(ckpt, dict) or set(ckpt) != {"state_dict", "meta"}:
        raise DataError(f"{path}: not a flowtheory checkpoint (expected keys 'state_dict' and 'meta')")
    if not isinstance(ckpt["state_dict"], dict) or not isinstance(ckpt["meta"], dict):
        raise DataError(f"{path}: not a flowtheory checkpoint (expected 'state_dict' and 'meta' to be dicts)")
    return ckpt["state_dict"], ckpt["meta"]
