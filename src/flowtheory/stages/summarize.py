"""Per-stage summaries: every run's metrics in one JSON (``dvc metrics diff`` reads them) and tidy
tables for the figures (``dvc plots diff`` reads them)."""

from __future__ import annotations

import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.pipeline.runkey import RunKey

__all__ = ["run_key", "summarize_components", "summarize_metrics", "summarize_train"]

#: columns of the history table kept for the figures and ``dvc plots``
HISTORY_COLUMNS = ["epoch", "phase", "lr", "train_nll", "valid_nll", "objective", "smax", "smin", "cond"]


def run_key(path: str, stage_dir: str) -> tuple[str, str, int]:
    """``results/<stage>/<experiment>/<stabilizer>/seed<k>/<file>`` -> (experiment, stabilizer, k)
    (:meth:`RunKey.from_path`)."""
    key = RunKey.from_path(path, stage_dir)
    return key.experiment, key.stabilizer, key.seed


def summarize_metrics(metric_paths: list[str], stage_dir: str, out_json: str) -> dict:
    """Collects per-run metrics JSONs into ``{experiment: {stabilizer: {seed<k>: metrics}}}``."""
    out: dict = {}
    for path in metric_paths:
        e, s, k = run_key(path, stage_dir)
        out.setdefault(e, {}).setdefault(s, {})[RunKey.seed_name(k)] = storage.load_json(path)
    storage.save_json(out_json, out)
    return out


def summarize_train(metric_paths: list[str], history_paths: list[str], out_json: str, out_csv: str) -> None:
    summarize_metrics(metric_paths, "runs", out_json)
    frames = []
    for path in history_paths:
        e, s, k = run_key(path, "runs")
        h = pd.read_csv(path)
        h = h[[c for c in HISTORY_COLUMNS if c in h]]
        frames.append(h.assign(experiment=e, stabilizer=s, seed=k))
    tidy = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=HISTORY_COLUMNS)
    cols = ["experiment", "stabilizer", "seed", *[c for c in HISTORY_COLUMNS if c in tidy]]
    storage.save_csv(out_csv, tidy[cols])


def summarize_components(metric_paths: list[str], out_json: str, out_csv: str) -> None:
    """Component spectra in tidy form: one row per run and component."""
    summary = summarize_metrics(metric_paths, "components", out_json)
    rows = []
    for e, stabs in summary.items():
        for s, seeds in stabs.items():
            for seed, m in seeds.items():
                for k, var in enumerate(m["var_yhat"]):
                    rows.append(
                        {
                            "experiment": e,
                            "stabilizer": s,
                            "seed": RunKey.parse_seed(seed),
                            "component": k,
                            "var_yhat": var,
                            "var_y": m["var_y"][k],
                            "scale_median": m["scale_median"][k],
                            "pca_eigenvalue": m["pca_eigenvalues"][k],
                        }
                    )
    storage.save_csv(out_csv, pd.DataFrame(rows))
