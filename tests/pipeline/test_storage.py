"""File I/O (src/flowtheory/pipeline/storage.py): atomic writes that leave nothing behind on failure,
byte-stable JSON and npz, and checked reads that raise DataError naming the file."""

from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
import pytest
import torch

from flowtheory.pipeline import storage
from flowtheory.pipeline.storage import (
    DataError,
    atomic_path,
    load_checkpoint,
    load_dataset,
    load_json,
    save_json,
    save_npz,
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- atomic_path


def test_atomic_path_writes_on_success_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "deep" / "er" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing under the final name while the body runs
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    # the usual permissions, not mkstemp's owner-only 0600
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_path_leaves_nothing_when_the_body_raises(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new but unfinished")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_writer_failing_half_way_leaves_nothing(tmp_path, monkeypatch):
    """A write killed after some bytes are out (here: a full disk at the second array, the first
    one's entry already in the archive)."""
    import zipfile

    writestr = zipfile.ZipFile.writestr
    calls = []

    def write_then_fail(self, entry, data, *args, **kwargs):
        calls.append(entry)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return writestr(self, entry, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_npz(tmp_path / "a.npz", x=np.zeros(3), y=np.ones(3))
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_unwritable_values_are_refused_before_any_file_is_made(tmp_path):
    with pytest.raises(ValueError, match="'bad' has dtype object"):
        save_npz(tmp_path / "a.npz", good=np.zeros(3), bad=np.array([{}, None], dtype=object))
    with pytest.raises(TypeError):
        save_json(tmp_path / "a.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- JSON


def test_save_json_writes_nonfinite_as_null(tmp_path):
    obj = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -np.inf,
        "np32": np.float32("nan"),
        "nested": [1.5, {"deep": np.inf}, (np.nan, 2)],
        "array": np.array([1.0, np.nan, -np.inf]),
        "int": np.int64(3),
        "bool": np.bool_(True),
        "ok": 0.25,
    }
    path = tmp_path / "m.json"
    save_json(path, obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def strict(token):
        raise AssertionError(f"non-standard JSON token {token}")

    back = json.loads(text, parse_constant=strict)
    assert back == {
        "nan": None,
        "inf": None,
        "ninf": None,
        "np32": None,
        "nested": [1.5, {"deep": None}, [None, 2]],
        "array": [1.0, None, None],
        "int": 3,
        "bool": True,
        "ok": 0.25,
    }
    assert load_json(path) == back


def test_save_json_is_byte_stable(tmp_path):
    a = {"b": [1.0, float("nan")], "a": {"z": 1, "y": np.float64(0.1)}}
    b = {"a": {"y": 0.1, "z": 1}, "b": [1.0, float("nan")]}  # equal content, other key order
    save_json(tmp_path / "1.json", a)
    save_json(tmp_path / "2.json", a)
    save_json(tmp_path / "3.json", b)
    first = (tmp_path / "1.json").read_bytes()
    assert first == (tmp_path / "2.json").read_bytes() == (tmp_path / "3.json").read_bytes()
    assert first.endswith(b"\n")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b""], ids=["syntax", "not-utf8", "empty"])
def test_load_json_raises_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot read JSON") as err:
        load_json(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="cannot read JSON"):
        load_json(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- npz


def _arrays():
    x = np.random.default_rng(0).normal(size=(30, 3))
    return {
        "x_train": x[:20],
        "x_valid": x[20:],
        "c_train": np.arange(20.0),
        "c_valid": np.arange(10.0),
        "oracle_cov": np.empty((0, 0)),
    }


def test_save_npz_bytes_are_deterministic(tmp_path, monkeypatch):
    """Equal arrays give equal bytes: at another time (zip entries carry timestamps), in another
    memory layout, in another byte order."""
    arrays = _arrays()
    save_npz(tmp_path / "a.npz", **arrays)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # 2033: a different zip timestamp
    other = {k: np.asfortranarray(v) for k, v in arrays.items()}
    other["x_train"] = other["x_train"].astype(">f8")
    save_npz(tmp_path / "b.npz", **other)
    save_npz(tmp_path / "c.npz", **{k: v.copy() for k, v in arrays.items()})
    a = (tmp_path / "a.npz").read_bytes()
    assert a == (tmp_path / "b.npz").read_bytes() == (tmp_path / "c.npz").read_bytes()
    arrays["x_train"] = arrays["x_train"] + 1e-12
    save_npz(tmp_path / "d.npz", **arrays)
    assert (tmp_path / "d.npz").read_bytes() != a


#: save_npz's bytes for _golden()'s arrays, written under Python 3.11.2 and 3.11.7 (numpy 2.4.6): the
#: same digest under both, where np.savez's differ (docs/measurements.md#npz-bytes)
_GOLDEN_SHA256 = "da9189854cc15432ca3b54e76babc41f86f96389608d68f320afb2e1dc7377d1"


def _golden() -> dict[str, np.ndarray]:
    return {
        "a": np.arange(10.0),
        "b": np.eye(3, dtype=np.float32),
        "s": np.array(0.5),
        "i": np.arange(6).reshape(2, 3).T,
    }


def test_save_npz_bytes_do_not_depend_on_the_python_version(tmp_path):
    """The arrays alone decide the bytes: each entry is written whole (no zip64 forced, whose headers
    differ between Python patch releases), with a fixed time and mode, so the digest recorded under
    two Pythons holds here; np.load reads the arrays back exactly."""
    import hashlib
    import zipfile

    path = tmp_path / "g.npz"
    save_npz(path, **_golden())
    with zipfile.ZipFile(path) as zf:
        for entry in zf.infolist():
            assert (entry.create_version, entry.extract_version) == (20, 20), entry
            assert entry.extra == b"" and entry.date_time == (1980, 1, 1, 0, 0, 0)
    with np.load(path) as z:
        for key, value in _golden().items():
            assert z[key].dtype == value.dtype and np.array_equal(z[key], value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _GOLDEN_SHA256


def test_save_npz_keeps_scalars_zero_dimensional(tmp_path):
    save_npz(tmp_path / "s.npz", s=np.float64(2.5), v=[1, 2])
    with np.load(tmp_path / "s.npz") as z:
        assert z["s"].shape == () and z["s"] == 2.5
        assert z["v"].tolist() == [1, 2]


def test_load_dataset_round_trip(tmp_path):
    arrays = _arrays()
    save_npz(tmp_path / "d.npz", **arrays)
    data = load_dataset(tmp_path / "d.npz")
    assert set(data) == set(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(data[k], v)


def _write(path, **over):
    arrays = {**_arrays(), **over}
    save_npz(path, **{k: v for k, v in arrays.items() if v is not None})


def _nan_in_x_train(path):
    a = _arrays()
    a["x_train"][3, 1] = np.nan
    save_npz(path, **a)


def _inf_in_x_train(path):
    a = _arrays()
    a["x_train"][0, 0] = -np.inf
    save_npz(path, **a)


def _npy_file(path):
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((3, 2)))


def _truncated_npz(path):
    _write(path)
    path.write_bytes(path.read_bytes()[:300])


#: name -> (writes a broken file at the path or not, regex the message must match)
BROKEN_DATASETS = {
    "missing-file": (lambda p: None, r"data set file not found"),
    "text-file": (lambda p: p.write_text("x_train,x_valid\n1,2\n"), r"cannot read data set, expected an npz archive"),
    "random-bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(512)), r"cannot read data set"),
    "empty-file": (lambda p: p.write_bytes(b""), r"cannot read data set"),
    "npy-not-npz": (_npy_file, r"not an npz archive \(a single \.npy array\)"),
    "truncated-npz": (_truncated_npz, r"cannot read data set"),
    "missing-keys": (
        lambda p: _write(p, oracle_cov=None, c_valid=None),
        r"missing arrays \['c_valid', 'oracle_cov'\]; expected \['x_train'",
    ),
    "nan-x_train": (_nan_in_x_train, r"x_train contains NaN or inf values; expected finite data"),
    "inf-x_train": (_inf_in_x_train, r"x_train contains NaN or inf values"),
    "1d-x_train": (
        lambda p: _write(p, x_train=np.zeros(20)),
        r"x_train must be a non-empty 2-D array \(n, d\), got shape \(20,\)",
    ),
    "empty-x_valid": (lambda p: _write(p, x_valid=np.zeros((0, 3))), r"x_valid must be a non-empty 2-D array"),
    "dimension-mismatch": (
        lambda p: _write(p, x_valid=np.zeros((10, 2))),
        r"x_train and x_valid have different dimensions \(3 and 2\); expected equal",
    ),
    "string-array": (lambda p: _write(p, c_train=np.array(["a"] * 20)), r"c_train must hold real numbers"),
    "c-length": (lambda p: _write(p, c_valid=np.zeros(9)), r"c_valid has shape \(9,\), expected \(10,\)"),
    "oracle-shape": (
        lambda p: _write(p, oracle_cov=np.eye(2)),
        r"oracle_cov has shape \(2, 2\), expected \(0, 0\) or \(3, 3\)",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_DATASETS))
def test_load_dataset_raises_data_error_naming_the_file(tmp_path, name):
    write, match = BROKEN_DATASETS[name]
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_load_dataset_accepts_an_oracle_cov(tmp_path):
    _write(tmp_path / "d.npz", oracle_cov=np.eye(3))
    np.testing.assert_array_equal(load_dataset(tmp_path / "d.npz")["oracle_cov"], np.eye(3))


# ----------------------------------------------------------------------------- checkpoints


def _state():
    return {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}


def test_checkpoint_round_trip_and_bytes(tmp_path):
    meta = {"kind": "mlp", "dim": 3, "hidden": [8, 8]}
    storage.save_checkpoint(tmp_path / "a.pt", _state(), meta)
    storage.save_checkpoint(tmp_path / "b.pt", _state(), meta)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    state, back = load_checkpoint(tmp_path / "a.pt")
    assert back == meta
    for k, v in _state().items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=0)


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), r"corrupt or unreadable checkpoint"),
        (lambda p: p.write_bytes(b""), r"corrupt or unreadable checkpoint"),
        (lambda p: None, r"checkpoint file not found"),
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), r"not a flowtheory checkpoint \(expected keys"),
        (lambda p: torch.save(torch.zeros(3), p), r"not a flowtheory checkpoint"),
        (lambda p: torch.save({"state_dict": _state(), "meta": {}, "extra": 1}, p), r"not a flowtheory checkpoint"),
        (lambda p: torch.save({"state_dict": [1, 2], "meta": {}}, p), r"to be dicts"),
    ],
    ids=["random-bytes", "empty", "missing", "other-keys", "bare-tensor", "extra-key", "state-not-dict"],
)
def test_load_checkpoint_raises_data_error(tmp_path, write, match):
    path = tmp_path / "model.pt"
    write(path)
    with pytest.raises(DataError, match=match) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_load_checkpoint_refuses_pickled_objects(tmp_path):
    """weights_only=True: a checkpoint carrying an arbitrary Python object is not unpickled."""
    path = tmp_path / "model.pt"
    torch.save({"state_dict": _state(), "meta": {"cls": _Sneaky()}}, path)
    with pytest.raises(DataError, match="corrupt or unreadable checkpoint"):
        load_checkpoint(path)


class _Sneaky:
    pass
