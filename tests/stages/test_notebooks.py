"""Every figure notebook on shapes of config the shipped ones lack, in-process on small synthetic
stage outputs: a 1-D Gaussian, a singular 3-D Gaussian, a manifold in R⁸ (a kind being added),
MNIST-sized data that is not 28 × 28, two experiments of one kind, and a config with nothing a
notebook shows. No notebook may fail on a valid config; each writes its PNG and PDF (or CSV and
Markdown) and logs what it showed."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flowtheory.datasets.truth import Truth, truth
from flowtheory.pipeline.experiments import select
from flowtheory.pipeline.paths import (
    ANALYSIS_POINTS,
    COMPONENTS_NPZ,
    NOTEBOOK_SHOWS,
    NOTEBOOKS,
    run_files,
)

ROOT = Path(__file__).resolve().parents[2]
N_POINTS = 40
N_EPOCHS = 6
HIGHDIM = 16


def _props(t: Truth, linear: bool, stabs: dict[str, tuple[str, float]], sweep: bool = False) -> dict:
    return {
        "dataset": t.as_dict(),
        "flow": {"family": "linear" if linear else "mlp", "linear": linear},
        "stabilizers": {s: {"kind": k, "lam": lam} for s, (k, lam) in stabs.items()},
        "experiment": {"epochs": N_EPOCHS, "dtype": "float64", "seeds": [0], "sweep": sweep},
    }


NONE, JAC, NOISE, JAC_BIG = ("none", 0.0), ("jacobian", 0.01), ("noise", 0.01), ("jacobian", 0.1)

TABLES = {
    "odd_shapes": {
        "g1": _props(truth({"kind": "gaussian", "mean": [0.0], "cov": [[2.0]]}), True, {"none": NONE, "jac": JAC}),
        "g3_singular": _props(
            truth({"kind": "gaussian", "mean": [0, 0, 0], "cov": [[1, 1, 0], [1, 1, 0], [0, 0, 2]]}),
            True,
            {"none": NONE, "noise": NOISE},
        ),
        "sheet8": _props(
            Truth(kind="sheet8", d=8, intrinsic_dim=2, degenerate=True, singular_cov=False),
            False,
            {"none": NONE, "jac": JAC, "jac_big": JAC_BIG},
            sweep=True,
        ),
        "sheet8_single": _props(
            Truth(kind="sheet8", d=8, intrinsic_dim=2, degenerate=True, singular_cov=False), False, {"jac": JAC}
        ),
        "images_30": _props(
            Truth(kind="mnist", d=30, intrinsic_dim=None, degenerate=True, singular_cov=None),
            False,
            {"none": NONE, "jac": JAC},
        ),
        "scurve_a": _props(truth({"kind": "scurve"}), False, {"none": NONE, "jac": JAC}),
        "scurve_b": _props(truth({"kind": "scurve", "noise": 0.1}), False, {"noise": NOISE}),
    },
    "nothing_to_show": {
        # a nonlinear flow on a full-rank Gaussian: no figure shows it, the table does
        "g2_mlp": _props(truth({"kind": "gaussian", "mean": [0, 0], "cov": [[1, 0], [0, 2]]}), False, {"jac": JAC}),
    },
}


def _config_for(table: dict) -> dict:
    """Just enough of a config for :func:`run_files` (the training grid)."""
    return {"seeds": [0], "experiments": {e: {"stabilizers": list(p["stabilizers"])} for e, p in table.items()}}


def _write_stage_outputs(root: Path, table: dict) -> dict[str, str]:
    rng = np.random.default_rng(0)
    train, analysis, components, history, spectra = {}, {}, {}, [], []
    for exp, props in table.items():
        d = props["dataset"]["d"]
        k = props["dataset"]["intrinsic_dim"]
        keep = min(d, HIGHDIM)
        for stab, st in props["stabilizers"].items():
            x = rng.normal(size=(N_POINTS, d))
            y = rng.normal(size=(N_POINTS, d))
            yhat = (x - x.mean(0))[:, :keep]
            run = dict(experiment=exp, stabilizer=stab, seed=0)
            npz = root / COMPONENTS_NPZ.format(**run)
            npz.parent.mkdir(parents=True, exist_ok=True)
            np.savez(
                npz,
                x=x,
                c=rng.integers(0, 10, N_POINTS).astype(float),
                y=y,
                yhat=yhat,
                scale=np.abs(yhat),
                directions=rng.normal(size=(N_POINTS, d, keep)),
            )
            points = {"point": np.arange(N_POINTS), "smax": rng.uniform(1, 2, N_POINTS)}
            if d <= HIGHDIM:
                points.update({f"x{i}": x[:, i] for i in range(d)})
                points["lead_angle_knn_deg"] = rng.uniform(0, 90, N_POINTS)
                if k is not None and k < d:
                    points["tangent_angle_knn_deg"] = rng.uniform(0, 90, N_POINTS)
                if d <= 3:
                    for i in range(d):
                        for j in range(d):
                            eye = float(i == j)
                            points[f"cov_flow_{i}{j}"] = np.full(N_POINTS, eye + 0.1)
                            points[f"cov_knn_{i}{j}"] = np.full(N_POINTS, eye + 0.2 * (i != j))
            csv = root / ANALYSIS_POINTS.format(**run)
            csv.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(points).to_csv(csv, index=False)
            metrics = {
                "status": "converged",
                "lam": st["lam"],
                "final_train_nll": 1.0,
                "final_valid_nll": 1.1,
                "smax_last": 3.0,
            }
            train.setdefault(exp, {}).setdefault(stab, {})["seed0"] = metrics
            analysis.setdefault(exp, {}).setdefault(stab, {})["seed0"] = {
                "lam": st["lam"],
                "smax_median": 2.0 + st["lam"],
                "wtw_relerr": 0.01 if props["flow"]["linear"] else None,
                "wtw_relerr_unshrunk": None if props["dataset"]["singular_cov"] else 0.02,
            }
            history += [
                {**run, "epoch": e, "train_nll": 2.0 - e / 10, "valid_nll": 2.1, "smax": 1 + e, "smin": 1, "cond": 1}
                for e in range(1, N_EPOCHS + 1)
            ]
            spectra += [
                {
                    **run,
                    "component": c,
                    "var_yhat": 2.0**-c,
                    "var_y": 1.0,
                    "scale_median": 1.0,
                    "pca_eigenvalue": 2.0**-c,
                }
                for c in range(keep)
            ]
    out = {
        "train_summary": root / "metrics" / "train.json",
        "analysis_summary": root / "metrics" / "analysis.json",
        "components_summary": root / "metrics" / "components.json",
        "train_history": root / "plots" / "train_history.csv",
        "component_spectra": root / "plots" / "component_spectra.csv",
    }
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    out["train_summary"].write_text(json.dumps(train))
    out["analysis_summary"].write_text(json.dumps(analysis))
    out["components_summary"].write_text(json.dumps(components))
    pd.DataFrame(history).to_csv(out["train_history"], index=False)
    pd.DataFrame(spectra).to_csv(out["component_spectra"], index=False)
    return {key: str(p) for key, p in out.items()}


@pytest.fixture(params=list(TABLES))
def stage_outputs(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # per-run paths are relative to the project root
    table = TABLES[request.param]
    return request.param, table, _write_stage_outputs(tmp_path, table)


def _run_notebook(name: str, table: dict, summaries: dict[str, str], out: Path) -> dict:
    shows = NOTEBOOK_SHOWS[name]
    selected = select(table, shows.selector)
    config = _config_for(table)
    inputs = {**summaries, "data": []}
    files = {  # as paths.notebook_files: the per-run files inside the input directories
        "components": run_files(COMPONENTS_NPZ, config, selected) if "components" in shows.reads else [],
        "analysis": run_files(ANALYSIS_POINTS, config, selected) if "analysis" in shows.reads else [],
    }
    first, second = NOTEBOOKS[name]
    outputs = {"png": first, "pdf": second} if name.startswith("fig_") else {"csv": first, "md": second}
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    smk = SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=SimpleNamespace(**outputs),
        params=SimpleNamespace(
            notebook=name, experiments={e: {**table[e], "runs": s} for e, s in selected.items()}, **files
        ),
        log=[str(log)],
        rule=name,
    )
    runpy.run_path(str(ROOT / "workflow" / "notebooks" / f"{name}.py"), init_globals={"snakemake": smk})
    return {"selected": selected, "log": log.read_text(), "outputs": [Path(p) for p in outputs.values()]}


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_renders_any_config(stage_outputs, name, tmp_path):
    import matplotlib.pyplot as plt

    case, table, summaries = stage_outputs
    try:
        result = _run_notebook(name, table, summaries, tmp_path)
    finally:
        plt.close("all")
    for p in result["outputs"]:
        assert p.is_file() and p.stat().st_size > 0, p
    assert result["log"].startswith(f"notebook {name}: shows {len(result['selected'])} experiment(s)")
    if case == "nothing_to_show" and name != "table_f_nll":
        assert not result["selected"]
    if case == "odd_shapes":
        assert result["selected"], f"{name} selects nothing from the odd shapes"
