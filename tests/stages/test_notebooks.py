"""Every figure notebook on shapes of config the shipped ones lack, in-process on small synthetic
stage outputs: a 1-D Gaussian, a singular 3-D Gaussian, a manifold in R⁸ (a kind being added),
MNIST-sized data that is not 28 × 28, two experiments of one kind, and a config with nothing a
notebook shows. No notebook may fail on a valid config; each writes its PNG and PDF (or CSV and
Markdown) and logs what it showed.

The main figures have a size that does not depend on the config: rendered on the odd shapes, on the
paper config's experiments and on a config of many more experiments (fabricated outputs with the
keys the stages are adding: a training status ``not_converged``, the gap to the optimum, claim
verdicts ``NOT_AT_OPTIMUM`` with a direction, a margin and a conclusion), each is the same number of
pixels, and at most :data:`flowtheory.stages.figstyle.MAX_PX`. The gallery page has one size too."""

from __future__ import annotations

import json
import runpy
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from flowtheory.datasets.truth import Truth, truth
from flowtheory.pipeline.experiments import describe, select
from flowtheory.pipeline.paths import (
    ANALYSIS_POINTS,
    COMPONENTS_NPZ,
    GALLERY_NOTEBOOK,
    NOTEBOOK_SHOWS,
    NOTEBOOKS,
    run_files,
    select_shown,
)
from flowtheory.stages import figstyle

ROOT = Path(__file__).resolve().parents[2]
N_POINTS = 40
N_EPOCHS = 6
HIGHDIM = 16
SETTINGS = {"analysis": {"knn_k": 20}, "components": {"floor_factor": 3.0}}


def _props(
    t: Truth, linear: bool, stabs: dict[str, tuple[str, float]], sweep: bool = False, family: str | None = None
) -> dict:
    return {
        "dataset": t.as_dict(),
        "flow": {"family": family or ("linear" if linear else "mlp"), "linear": linear},
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
            {"none": NONE, "jac": JAC, "jac_big": JAC_BIG, "jac_small": ("jacobian", 0.001)},
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


def _paper_table() -> dict:
    return describe(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


def _many_table(copies: int = 4) -> dict:
    """The paper config's experiments ``copies`` times over (about 120 experiments), with the flow
    families rotated through every family a figure knows."""
    out = {}
    families = list(figstyle.FAMILIES)
    for i in range(copies):
        for j, (name, props) in enumerate(_paper_table().items()):
            p = json.loads(json.dumps(props))
            if not p["flow"]["linear"]:
                p["flow"]["family"] = families[1 + (i + j) % (len(families) - 1)]
            out[f"{name}_{i}"] = p
    return out


def _config_for(table: dict) -> dict:
    """Just enough of a config for :func:`run_files` (the training grid)."""
    return {"seeds": [0], "experiments": {e: {"stabilizers": list(p["stabilizers"])} for e, p in table.items()}}


def _claims(table: dict, modern: bool):
    """``results/claims.json`` for ``table``: every claim of paper_map.yaml on every experiment it
    selects. Old style: a list of records, verdicts PASS and FAIL. New style (``modern``): the
    sectioned file of the claims stage (``claims``, ``conclusions``, ``error_vs_gap``), verdicts
    cycling through PASS, FAIL, NOT_AT_OPTIMUM (some for capacity), NOT_FAR_ENOUGH and N/A, with a
    direction and a margin."""
    paper_map = yaml.safe_load((ROOT / "paper_map.yaml").read_text())
    verdicts = ["PASS", "FAIL", "NOT_AT_OPTIMUM", "NOT_FAR_ENOUGH", "PASS", "N/A"] if modern else ["PASS", "FAIL"]
    out, n = [], 0
    for entry in paper_map["claims"]:
        results = {}
        for exp, stabs in select(table, entry["applies_to"]).items():
            thr = entry["threshold"] if isinstance(entry["threshold"], int | float) else 2
            res = {"verdict": verdicts[n % len(verdicts)], "measured": thr * (0.5 + n % 3), "threshold": thr}
            res["passed"] = res["verdict"] == "PASS"
            res["stabilizers"] = stabs
            if modern:
                res.update(direction="<=", margin=thr * (0.5 - n % 3), flow_family=table[exp]["flow"]["family"])
                res["optimum_state"] = "capacity" if n % 4 == 2 else "at_optimum"
            results[exp] = res
            n += 1
        out.append(
            {
                "id": entry["id"],
                "claim": entry["claim"],
                "paper_claim": entry["paper_claim"],
                "figure": entry["figure"],
                "threshold": entry["threshold"],
                "verdict": "PASS" if results else "N/A",
                "experiments": results,
            }
        )
    if not modern:
        return out
    words = ["reproduces", "reproduces within stated limits", "does not reproduce", "not conclusive"]
    conclusions = [
        {"paper_claim": k, "conclusion": words[k % 4], "statement": c["statement"], "cause": f"because {k}"}
        for k, c in paper_map["paper_claims"].items()
    ]
    return {"claims": out, "conclusions": conclusions, "error_vs_gap": {}}


def _write_stage_outputs(root: Path, table: dict, modern: bool = False) -> dict[str, str]:
    """Per-run files and summaries for every run of ``table``; ``modern`` adds the keys being added
    by the other stages (status not_converged, gap_nats, claim directions and conclusions) and an NLL
    spike of 1e14 in one run's history."""
    rng = np.random.default_rng(0)
    train, analysis, components, history, spectra = {}, {}, {}, [], []
    for n_exp, (exp, props) in enumerate(table.items()):
        d = props["dataset"]["d"]
        k = props["dataset"]["intrinsic_dim"]
        keep = min(d, HIGHDIM)
        for n_run, (stab, st) in enumerate(props["stabilizers"].items()):
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
                    points["tangent_angle_true_deg"] = rng.uniform(0, 30, N_POINTS)
                    points["knn_tangent_angle_true_deg"] = rng.uniform(0, 10, N_POINTS)
                    points["normal_std"] = rng.uniform(0.05, 0.5, N_POINTS)
                if d <= 3:
                    for i in range(d):
                        for j in range(d):
                            eye = float(i == j)
                            points[f"cov_flow_{i}{j}"] = np.full(N_POINTS, eye + 0.1)
                            points[f"cov_knn_{i}{j}"] = np.full(N_POINTS, eye + 0.2 * (i != j))
            csv = root / ANALYSIS_POINTS.format(**run)
            csv.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(points).to_csv(csv, index=False)
            lam = st["lam"]
            statuses = ["converged", "not_converged", "diverged"] if modern else ["converged", "diverged"]
            status = statuses[(n_exp + n_run) % len(statuses)]
            train.setdefault(exp, {}).setdefault(stab, {})["seed0"] = {
                "status": status,
                "diverged_step": 10 if status == "diverged" else None,
                "lam": lam,
                "final_train_nll": 1.0,
                "final_valid_nll": 1.1 + lam,
                "smax_last": 3.0,
                "smax_rel_growth": 0.2 if st["kind"] == "none" else 0.01,
                "nll_tail_drop": 0.1 if st["kind"] == "none" else -0.01,
            }
            noise = props["dataset"].get("noise") or 0.0
            pred = float(np.sqrt(noise**2 + lam))
            a = {
                "lam": lam,
                "smax_median": 2.0 + lam,
                "wtw_relerr": 0.01 if props["flow"]["linear"] else None,
                "wtw_relerr_unshrunk": None if props["dataset"]["singular_cov"] else 0.02,
            }
            if k is not None and k < d:
                a.update(
                    tangent_angle_true_deg_median=5.0 + n_run,
                    knn_tangent_angle_true_deg_median=2.0,
                    tangent_angle_knn_deg_median=6.0 + n_run,
                    normal_std_median=1.5 * pred if pred else 0.3,
                    normal_std_predicted=pred,
                    normal_std_ratio=1.5 if pred else None,
                )
            if modern:
                gap = [0.01, 0.3, None, float("nan"), 2.0][(n_exp + n_run) % 5]
                a.update(gap_nats=gap, gap_se=0.005 if gap else None, gap_kind="kl" if gap else "unknown")
            analysis.setdefault(exp, {}).setdefault(stab, {})["seed0"] = a
            scales = [max(1.0 / (i + 1), 0.01) for i in range(keep)]
            eig = [s * s for s in scales]
            if props["dataset"]["singular_cov"]:
                eig[-1] = 0.0
            components.setdefault(exp, {}).setdefault(stab, {})["seed0"] = {
                "lam": lam,
                "scale_median": scales,
                "pca_eigenvalues": eig,
                "pca_abs_corr": [0.9999] * keep,
                "pca_var_ratio": [1.01] * keep,
                "intrinsic_dim": k if k is not None else 1,
                "floor": 3 * pred if pred else 0.0,
                "var_y": [1.0] * keep,
                "var_yhat": eig,
            }
            spike = modern and n_exp == 0 and n_run == 0
            history += [
                {
                    **run,
                    "epoch": e,
                    "train_nll": 1e14 if spike and e == 3 else 2.0 - e / 10,
                    "valid_nll": 2.1,
                    "smax": 1 + e,
                    "smin": 1,
                    "cond": 1,
                }
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
        "claims": root / "results" / "claims.json",
    }
    for p in out.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    out["train_summary"].write_text(json.dumps(train))
    out["analysis_summary"].write_text(json.dumps(analysis))
    out["components_summary"].write_text(json.dumps(components))
    out["claims"].write_text(json.dumps(_claims(table, modern)))
    pd.DataFrame(history).to_csv(out["train_history"], index=False)
    pd.DataFrame(spectra).to_csv(out["component_spectra"], index=False)
    return {key: str(p) for key, p in out.items()} | {"paper_map": str(ROOT / "paper_map.yaml")}


@pytest.fixture(params=list(TABLES))
def stage_outputs(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # per-run paths are relative to the project root
    table = TABLES[request.param]
    return request.param, table, _write_stage_outputs(tmp_path, table)


def _smk(name: str, inputs: dict, outputs: dict, params: dict, log: Path):
    log.parent.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=SimpleNamespace(**outputs),
        params=SimpleNamespace(notebook=name, **params),
        config=SETTINGS,
        log=[str(log)],
        rule=name,
    )


def _run_notebook(name: str, table: dict, summaries: dict[str, str], out: Path) -> dict:
    shows = NOTEBOOK_SHOWS[name]
    selected = select_shown(table, shows.selector)
    config = _config_for(table)
    inputs = {**summaries, "data": []}
    files = {  # as paths.notebook_files: the per-run files inside the input directories
        "components": run_files(COMPONENTS_NPZ, config, selected) if "components" in shows.reads else [],
        "analysis": run_files(ANALYSIS_POINTS, config, selected) if "analysis" in shows.reads else [],
    }
    first, second = NOTEBOOKS[name]
    outputs = {"png": first, "pdf": second} if name.startswith("fig_") else {"csv": first, "md": second}
    outputs = {k: str(out / Path(v).name) for k, v in outputs.items()}
    log = out / "logs" / f"{name}.log"
    experiments = {e: {**table[e], "runs": s} for e, s in selected.items()}
    smk = _smk(name, inputs, outputs, {"experiments": experiments, **files}, log)
    runpy.run_path(str(ROOT / "workflow" / "notebooks" / f"{name}.py"), init_globals={"snakemake": smk})
    return {"selected": selected, "log": log.read_text(), "outputs": [Path(p) for p in outputs.values()]}


def _run_gallery(experiment: str, table: dict, summaries: dict[str, str], out: Path) -> Path:
    only = {experiment: list(table[experiment]["stabilizers"])}
    config = _config_for(table)
    params = {
        "experiments": {experiment: {**table[experiment], "runs": only[experiment]}},
        "analysis": run_files(ANALYSIS_POINTS, config, only),
        "components": run_files(COMPONENTS_NPZ, config, only),
    }
    png = out / "gallery" / f"{experiment}.png"
    smk = _smk(GALLERY_NOTEBOOK, {**summaries, "data": []}, {"png": str(png)}, params, out / "logs" / "g.log")
    runpy.run_path(str(ROOT / "workflow" / "notebooks" / f"{GALLERY_NOTEBOOK}.py"), init_globals={"snakemake": smk})
    return png


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


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
    if case == "nothing_to_show" and name not in ("table_f_nll", "table_conclusions") and NOTEBOOK_SHOWS[name].selector:
        assert not result["selected"]
    if case == "odd_shapes":
        assert result["selected"], f"{name} selects nothing from the odd shapes"


def test_gallery_renders_every_kind_of_experiment(stage_outputs, tmp_path):
    import matplotlib.pyplot as plt

    _, table, summaries = stage_outputs
    sizes = set()
    try:
        for exp in table:
            sizes.add(_png_size(_run_gallery(exp, table, summaries, tmp_path)))
    finally:
        plt.close("all")
    (w, h), *rest = sizes
    assert not rest, sizes
    assert (w, h) == tuple(round(v * figstyle.GALLERY_DPI) for v in figstyle.GALLERY)


# ----------------------------------------------------------------------------- fixed sizes

SIZE_CASES = {"odd_shapes": TABLES["odd_shapes"], "paper": None, "many": None}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every main figure rendered on the odd shapes (old-style outputs), on the paper config's
    experiments and on about 120 experiments (new-style outputs): {case: {figure: (w, h)}}."""
    import os

    import matplotlib.pyplot as plt

    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    cwd = os.getcwd()
    try:
        for case in SIZE_CASES:
            table = {"odd_shapes": TABLES["odd_shapes"], "paper": _paper_table(), "many": _many_table()}[case]
            root = tmp_path_factory.mktemp(f"sizes_{case}")
            os.chdir(root)
            summaries = _write_stage_outputs(root, table, modern=case != "odd_shapes")
            sizes[case] = {}
            for name in NOTEBOOKS:
                if name.startswith("fig_"):
                    result = _run_notebook(name, table, summaries, root / "out")
                    assert result["selected"], (case, name)
                    sizes[case][name] = _png_size(result["outputs"][0])
                    plt.close("all")
            sizes[case]["gallery"] = _png_size(_run_gallery(next(iter(table)), table, summaries, root / "out"))
            plt.close("all")
    finally:
        os.chdir(cwd)
    return sizes


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n.startswith("fig_")] + ["gallery"])
def test_figure_size_does_not_depend_on_the_config(rendered, name):
    """The same pixels on 7, 30 and about 120 experiments, and never more than 2,400 × 1,600."""
    sizes = {case: rendered[case][name] for case in rendered}
    assert len(set(sizes.values())) == 1, sizes
    w, h = next(iter(sizes.values()))
    assert w <= figstyle.MAX_PX[0] and h <= figstyle.MAX_PX[1], (name, w, h)
    assert len(_many_table()) >= 100


def test_no_number_is_typed_into_a_notebook():
    """Thresholds, bounds, k and factors come from paper_map.yaml and the config, never from a
    notebook's code: no numeric literal beyond 0 and 1 in any notebook."""
    import ast

    for path in sorted((ROOT / "workflow" / "notebooks").glob("*.py")):
        numbers = [
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value not in (0, 1)
        ]
        assert not numbers, f"{path.name}: {numbers}"
