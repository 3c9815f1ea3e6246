"""The data stage's job (rule ``data``): a configured data set written atomically, after the same
checks its readers apply; a malformed data set is refused and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest

from flowtheory.datasets.build import make_dataset
from flowtheory.pipeline import storage
from flowtheory.stages import data as data_stage

#: the Gaussian spec of the toy tests
GAUSSIAN = {"kind": "gaussian", "n_train": 40, "n_valid": 10, "mean": [1.0, -1.0], "cov": [[2.0, 1.2], [1.2, 1.0]]}


def test_make_data_file_round_trips_through_load_dataset(tmp_path):
    spec = GAUSSIAN
    out = tmp_path / "sub" / "gaussian.npz"
    data_stage.run(spec, 2, str(out))
    loaded = storage.load_dataset(out)
    expected = make_dataset(spec, 2)
    assert set(loaded) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(loaded[key], expected[key])
    assert [p.name for p in out.parent.iterdir()] == ["gaussian.npz"]


@pytest.mark.parametrize(
    ("key", "bad", "match"),
    [
        (
            "x_train",
            lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x),
            r"x_train contains NaN or inf",
        ),
        ("c_valid", lambda c: c[:-1], r"c_valid has shape \(9,\), expected \(10,\)"),
    ],
)
def test_make_data_file_refuses_a_malformed_data_set_and_writes_nothing(tmp_path, monkeypatch, key, bad, match):
    spec = GAUSSIAN
    good = make_dataset(spec, 2)
    monkeypatch.setattr(data_stage, "make_dataset", lambda s, seed: {**good, key: bad(good[key])})
    out = tmp_path / "gaussian.npz"
    with pytest.raises(storage.DataError, match=match) as err:
        data_stage.run(spec, 2, str(out))
    assert str(out) in str(err.value)
    assert list(tmp_path.iterdir()) == []
