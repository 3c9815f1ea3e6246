"""The train stage's job (rule ``train``): resolved run spec and data file in, checkpoint, history
and metrics out; bad specs and bad data rejected before any training step; divergence recorded."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from flowtheory.pipeline import storage
from flowtheory.pipeline.checkpoints import load_flow
from flowtheory.stages import train as train_stage


def _quiet(_message: str) -> None:
    pass


def _run_spec(**over) -> dict:
    spec = {
        "experiment": "exp",
        "stabilizer": "none",
        "seed": 0,
        "dataset": "toy",
        "flow": {"kind": "linear"},
        "stab": {"kind": "none"},
        "epochs": 2,
        "lr": 1e-3,
        "batch_size": 100,
        "probe_points": 16,
        "diagnostics_every": 1,
        "dtype": "float64",
        "device": "cpu",
    }
    spec.update(over)
    return spec


@pytest.fixture
def good_data(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 2))
    path = tmp_path / "data.npz"
    storage.save_npz(
        path,
        x_train=x[:200],
        x_valid=x[200:],
        c_train=np.zeros(200),
        c_valid=np.zeros(100),
        oracle_cov=np.empty((0, 0)),
    )
    return path


def _outputs(tmp_path):
    return [str(tmp_path / n) for n in ("model.pt", "history.csv", "metrics.json")]


def test_train_run_happy_path(good_data, tmp_path):
    """The reference for the error cases below: the same spec and data train fine."""
    metrics = train_stage.run(_run_spec(), str(good_data), *_outputs(tmp_path), log=_quiet)
    assert metrics["status"] != "diverged" and metrics["steps"] == 4


@pytest.mark.parametrize(
    "over, match",
    [
        ({"stab": {"kind": "dropout", "lam": 0.1}}, "unknown kind 'dropout'"),
        ({"stab": {"kind": "weight", "lam": -1.0}}, "lam must be a finite number >= 0"),
        ({"stab": {"kind": "weight", "lam": 0.0}}, "kind 'weight' needs lam > 0"),
        ({"stab": {"kind": "weight"}}, "kind 'weight' needs lam > 0"),
        ({"flow": {"kind": "glow"}}, "unknown flow kind 'glow'"),
    ],
)
def test_train_run_rejects_bad_specs_before_training(good_data, tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        train_stage.run(_run_spec(**over), str(good_data), *_outputs(tmp_path), log=_quiet)
    assert not any(os.path.exists(p) for p in _outputs(tmp_path))


def test_bad_stabilizer_is_rejected_before_the_data_are_read(tmp_path):
    with pytest.raises(ValueError, match="needs lam > 0") as err:
        train_stage.run(_run_spec(stab={"kind": "noise"}), str(tmp_path / "missing.npz"), *_outputs(tmp_path))
    assert not isinstance(err.value, storage.DataError)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("key", ["x_train", "x_valid"])
def test_nonfinite_data_file_raises_data_error_before_training(tmp_path, bad, key):
    x = np.random.default_rng(0).normal(size=(300, 2))
    arrays = {
        "x_train": x[:200].copy(),
        "x_valid": x[200:].copy(),
        "c_train": np.zeros(200),
        "c_valid": np.zeros(100),
        "oracle_cov": np.empty((0, 0)),
    }
    arrays[key][5, 0] = bad
    path = tmp_path / "data.npz"
    storage.save_npz(path, **arrays)
    with pytest.raises(storage.DataError, match=f"{key} contains NaN or inf"):
        storage.load_dataset(path)
    logged: list[str] = []
    with pytest.raises(storage.DataError, match=f"{key} contains NaN or inf"):
        train_stage.run(_run_spec(), str(path), *_outputs(tmp_path), log=logged.append)
    assert logged == []  # not even the run header: nothing was built or trained
    assert not any(os.path.exists(p) for p in _outputs(tmp_path))


# --- the optimizer -----------------------------------------------------------------------------------


def test_diverged_run_through_train_run_writes_its_outputs(tmp_path):
    x = 1e3 * np.random.default_rng(0).normal(size=(300, 2))
    data = tmp_path / "data.npz"
    storage.save_npz(
        data,
        x_train=x[:200],
        x_valid=x[200:],
        c_train=np.zeros(200),
        c_valid=np.zeros(100),
        oracle_cov=np.empty((0, 0)),
    )
    spec = _run_spec(flow={"kind": "mlp", "hidden_layers": 2, "activation": "asinh"})
    out = [tmp_path / n for n in ("model.pt", "history.csv", "metrics.json")]
    metrics = train_stage.run(spec, str(data), *map(str, out), log=_quiet)
    assert (metrics["status"], metrics["diverged_step"]) == ("diverged", 1)
    assert metrics["message"] == "diverged at step 1"
    assert all(p.exists() for p in out)
    flow, _ = load_flow(str(out[0]))
    assert all(torch.isfinite(p).all() for p in flow.parameters())


# ------------------------------------------------------------- the round-off switch (FLOWTHEORY_PERTURB_INIT)


@pytest.mark.parametrize(("value", "ulps"), [("up", 1), ("1", 1), ("down", -1), ("-1", -1), ("+2", 2), ("-3", -3)])
def test_perturb_init_moves_every_parameter_by_whole_ulps(value, ulps):
    from flowtheory.science.flows import build_flow

    spec = {"kind": "realnvp", "couplings": 2, "hidden": [8]}
    ref, flow = build_flow(spec, 2, torch.float64, seed=0), build_flow(spec, 2, torch.float64, seed=0)
    assert train_stage.perturb_init(flow, value) == ulps
    for p0, p in zip(ref.parameters(), flow.parameters(), strict=True):
        expected = p0.detach().clone()
        for _ in range(abs(ulps)):
            expected = torch.nextafter(expected, torch.full_like(expected, ulps * float("inf")))
        assert torch.equal(p.detach(), expected)  # zeros too: they become the smallest subnormals


@pytest.mark.parametrize("value", ["", "0", None])
def test_perturb_init_off_leaves_the_flow_alone(value):
    assert train_stage.perturb_ulps(value) == 0


def test_perturb_init_rejects_an_unknown_value():
    with pytest.raises(ValueError, match="FLOWTHEORY_PERTURB_INIT='sideways'"):
        train_stage.perturb_ulps("sideways")


def test_the_switch_perturbs_a_run_and_nothing_else(good_data, tmp_path, monkeypatch):
    """Set, the environment variable moves the run's initial parameters (so its training differs
    from the unperturbed run's by round-off only: a linear flow is stable); the run's settings and
    outputs are otherwise those of the unperturbed run."""
    plain = train_stage.run(_run_spec(), str(good_data), *_outputs(tmp_path / "a"), log=_quiet)
    monkeypatch.setenv(train_stage.PERTURB_INIT, "up")
    lines = []
    moved = train_stage.run(_run_spec(), str(good_data), *_outputs(tmp_path / "b"), log=lines.append)
    assert any("initial parameters moved +1 ulp(s) (FLOWTHEORY_PERTURB_INIT)" in line for line in lines)
    (a, _), (b, _) = (storage.load_checkpoint(tmp_path / d / "model.pt") for d in "ab")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the trained parameters differ ...
    assert all(torch.allclose(a[k], b[k], rtol=1e-12, atol=1e-300) for k in a)  # ... by round-off
    assert moved["final_train_nll"] == pytest.approx(plain["final_train_nll"], rel=1e-12)
    assert {k: v for k, v in moved.items() if not isinstance(v, float)} == {
        k: v for k, v in plain.items() if not isinstance(v, float)
    }


def test_an_experiments_zuko_runs_train_mapped_as_alone(good_data, tmp_path):
    """run_many: the zuko NSF runs of one experiment without a penalty term (none, noise) train as one
    mapped ensemble (training.batching), each with the metrics it has trained alone, to float64
    round-off."""
    nsf = {"kind": "zuko_nsf", "transforms": 2, "hidden": [8, 8]}
    stabs = [("none", {"kind": "none"}), ("noise_1e-2", {"kind": "noise", "lam": 0.01})]
    runs = []
    for name, stab in stabs:
        out = tmp_path / name
        out.mkdir()
        spec = _run_spec(stabilizer=name, stab=stab, flow=nsf, epochs=3)
        runs.append({"spec": spec, **dict(zip(("model", "history", "metrics"), _outputs(out), strict=True))})
    lines = []
    together = train_stage.run_many(runs, str(good_data), lines.append)
    assert sum("batched with 1 other run(s)" in line for line in lines) == 2
    alone = train_stage.run_many(runs, str(good_data), _quiet, batched=False)
    for m, m0 in zip(together, alone, strict=True):
        assert m["status"] == m0["status"] and m["steps"] == m0["steps"]
        for key in ("final_train_nll", "final_valid_nll", "smax_last", "objective_final"):
            assert m[key] == pytest.approx(m0[key], rel=1e-9), key
