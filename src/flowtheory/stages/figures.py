"""Shared helpers for the figure notebooks (``workflow/notebooks/*.py``, jupytext percent files).

* :func:`context` gives a notebook its inputs, outputs, log and the experiments it shows
  (``params.experiments``: selected by their properties, :data:`flowtheory.pipeline.paths.NOTEBOOK_SHOWS`):
  the ``snakemake`` object when run by the pipeline, or the same computed from
  ``config/config.yaml`` when opened in Jupyter. Under the pipeline it also sends an uncaught
  exception's traceback to the rule's log and one line to the console.
* :func:`nothing` is the figure (or table) written when the config has no experiment of the
  kind a notebook shows: one panel that says what is missing. No notebook fails on a valid config.
* :func:`plane` projects points of any dimension onto two axes for a scatter plot.
* :func:`save` writes PNG and PDF with deterministic bytes (no timestamps or versions in metadata),
  atomically.
* :func:`load_runs` reads per-run ``.npz``/``.csv`` outputs keyed by (experiment, stabilizer, seed).
* :func:`run_table` joins the stage summaries into one tidy table, one row per run with the
  experiment's properties (data set, flow family, stabilizer kind and λ): what every figure that
  summarizes across experiments draws from.
* :func:`optional_json` and :func:`paper_map` read inputs that may be absent or older than the code
  (a figure says what is missing instead of failing).

The visual language (sizes, colours, markers, reference lines, limits) is
:mod:`flowtheory.stages.figstyle`.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import yaml

from flowtheory.pipeline import storage
from flowtheory.pipeline.runkey import RunKey
from flowtheory.stages import figstyle
from flowtheory.stages.summarize import run_key

__all__ = [
    "RUN_COLUMNS",
    "config_of",
    "context",
    "dataset_label",
    "first_two",
    "load_runs",
    "nothing",
    "nothing_table",
    "optional_json",
    "paper_claims",
    "paper_map",
    "plane",
    "run_table",
    "save",
    "setting",
    "shown_runs",
    "settings_caption",
]

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
PNG_DPI = figstyle.PNG_DPI


def _setup() -> None:
    import matplotlib

    matplotlib.use("Agg")
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    figstyle.apply_theme()  # seaborn.set_theme(**figstyle.STYLE), without importing seaborn
    matplotlib.rcParams["svg.hashsalt"] = "flowtheory"
    matplotlib.rcParams["pdf.compression"] = 6


def _log_errors(smk) -> None:
    """An uncaught exception: its traceback to the rule's log, one line to the console (as
    :func:`flowtheory.pipeline.jobs.run` does for the scripts), exit status 1."""
    log = smk.log[0] if len(smk.log) else None
    rule = getattr(smk, "rule", "figure")

    def hook(kind, err, tb):
        if log:
            with open(log, "a") as fh:
                traceback.print_exception(kind, err, tb, file=fh)
        message = " ".join(str(err).split()) or kind.__name__
        print(f"flowtheory: error in {rule}: {message} (traceback in {log})", file=sys.stderr, flush=True)

    sys.excepthook = hook


def _write_log(smk, name: str) -> None:
    if not len(smk.log):
        return
    shown = getattr(smk.params, "experiments", {}) or {}
    lines = [f"notebook {name}: shows {len(shown)} experiment(s)"]
    lines += [f"  {e}: runs {', '.join(p['runs'])}" for e, p in shown.items()]
    Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
    Path(smk.log[0]).write_text("\n".join(lines) + "\n")


def context(namespace: dict, name: str, config_path: str = "config/config.yaml", experiment: str | None = None):
    """The notebook's ``snakemake``-like object: ``input``, ``output``, ``log``, ``config`` and
    ``params.experiments`` (``{experiment: properties + runs}``, the experiments it shows). In
    Jupyter the gallery page (``name`` ``gallery``) is that of ``experiment`` (default: the first)."""
    _setup()
    if "snakemake" in namespace:
        smk = namespace["snakemake"]
        _write_log(smk, name)
        _log_errors(smk)
        return smk
    from flowtheory.pipeline import paths
    from flowtheory.pipeline.config import load

    root = Path.cwd()
    while not (root / "Snakefile").exists() and root != root.parent:
        root = root.parent
    os.chdir(root)  # paths are relative to the repository root, as in the pipeline
    config = load(config_path)
    if name == paths.GALLERY_NOTEBOOK:
        experiment = experiment or next(iter(config["experiments"]))
        return SimpleNamespace(
            input=SimpleNamespace(**paths.gallery_inputs(config, experiment)),
            output=SimpleNamespace(png=paths.GALLERY_PNG.format(experiment=experiment)),
            params=SimpleNamespace(notebook=name, **paths.gallery_params(config, experiment)),
            wildcards=SimpleNamespace(experiment=experiment),
            config=config,
            log=[],
            rule=name,
        )
    outs = paths.NOTEBOOKS[name]
    out = {"png": outs[0], "pdf": outs[1]} if name.startswith("fig_") else {"csv": outs[0], "md": outs[1]}
    return SimpleNamespace(
        input=SimpleNamespace(**paths.notebook_inputs(config, name)),
        output=SimpleNamespace(**out),
        params=SimpleNamespace(
            notebook=name,
            experiments=paths.notebook_experiments(config, name),
            **paths.notebook_files(config, name),
        ),
        config=config,
        log=[],
        rule=name,
    )


def config_of(smk) -> dict:
    """The run's config (``snakemake.config``; empty when the caller passed none)."""
    return dict(getattr(smk, "config", None) or {})


def optional_json(path, default=None):
    """A JSON input that may be absent, unreadable or older than the code: its contents, else
    ``default`` (a figure then says what is missing)."""
    if not path or not Path(path).is_file():
        return default
    try:
        return storage.load_json(path)
    except storage.DataError:
        return default


def paper_claims(path) -> dict[int, str]:
    """The five claims of the paper in words (``paper_claims`` of ``paper_map.yaml``, by number);
    empty when the file has none."""
    if not path or not Path(path).is_file():
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {int(n): str(c.get("statement", "")) for n, c in (data.get("paper_claims") or {}).items() if c}


def paper_map(path) -> dict[str, dict]:
    """``paper_map.yaml``'s claims by id (empty when absent): every threshold, bound and k a figure
    draws comes from here or from the config, never from the notebook."""
    if not path or not Path(path).is_file():
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {c["id"]: c for c in data.get("claims", []) if isinstance(c, dict) and "id" in c}


def _missing_text(name: str) -> str:
    from flowtheory.pipeline.experiments import describe_selector
    from flowtheory.pipeline.paths import NOTEBOOK_SHOWS

    shows = NOTEBOOK_SHOWS[name]
    sel = shows.selector
    how = " or ".join(f"({describe_selector(x)})" for x in sel) if isinstance(sel, list) else describe_selector(sel)
    return f"No experiment of this kind in this config: {shows.what}\n(selected by: {how})"


def nothing(name: str, figsize: tuple[float, float] = (9.0, 1.8)):
    """A one-panel figure (of a fixed size) saying which kind of experiment notebook ``name`` shows
    and that the config has none."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, _missing_text(name), ha="center", va="center", wrap=True, fontsize=10)
    ax.set_title(name)
    return fig


def nothing_table(name: str) -> pd.DataFrame:
    """The one-row table written when a table notebook has nothing to show."""
    return pd.DataFrame({"note": [" ".join(_missing_text(name).split())]})


def plane(x: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """Two coordinates of points ``x`` (n, d) for a scatter plot, and their axis labels.

    d = 1: (x₁, 0); d = 2: the points themselves; d = 3: (x₁, x₃), the plane where the S-curve and
    the Swiss roll bend; d > 3: the scores on the two leading PCA axes of ``x``.
    """
    x = np.asarray(x, dtype=float)
    d = x.shape[1]
    if d == 1:
        return np.column_stack([x[:, 0], np.zeros(len(x))]), ("x₁", "")
    if d <= 3:
        return x[:, [0, d - 1]], ("x₁", f"x{d}".translate(_SUBSCRIPTS))
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:2].T, ("PCA 1", "PCA 2")


def first_two(y: np.ndarray) -> np.ndarray:
    """The first two columns of ``y`` (n, d), a zero column appended when d = 1."""
    y = np.asarray(y, dtype=float)
    return y[:, :2] if y.shape[1] >= 2 else np.column_stack([y[:, 0], np.zeros(len(y))])


def save(fig, png: str, pdf: str | None = None, dpi: int = PNG_DPI) -> None:
    """PNG (and PDF) of exactly the figure's size (no tight bounding box: the size never depends on
    what is drawn), with no timestamps or software versions in their metadata."""
    figstyle.finish(fig)
    with storage.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    if pdf is None:
        return
    with storage.atomic_path(pdf) as tmp:
        fig.savefig(
            tmp,
            format="pdf",
            metadata={"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
        )


def load_runs(paths: list[str], stage_dir: str) -> dict[tuple[str, str, int], dict]:
    """Per-run files keyed by (experiment, stabilizer, seed): npz as dicts, csv as DataFrames. A file
    that is absent (a checkout without the DVC-cached stage outputs, opened in Jupyter) is left out:
    the figure draws what it has and says what it lacks."""
    out = {}
    for p in paths:
        if not Path(p).is_file():
            continue
        key = run_key(str(p), stage_dir)
        if str(p).endswith(".npz"):
            with np.load(p) as z:
                out[key] = {k: z[k] for k in z.files}
        else:
            out[key] = pd.read_csv(p)
    return out


def settings_caption(authors: str, ours: str) -> str:
    return f"Authors' code defaults: {authors}. Our choices: {ours}."


#: columns of :func:`run_table` beyond the metrics (which are copied as the summaries have them)
RUN_COLUMNS = [
    "experiment",
    "stabilizer",
    "seed",
    "kind",
    "lam",
    "family",
    "linear",
    "dataset",
    "data_kind",
    "d",
    "intrinsic_dim",
    "noise",
    "manifold",
    "degenerate",
    "singular_cov",
    "known_cov",
    "sweep",
    "status",
]

#: metrics copied from each stage summary into :func:`run_table` (absent ones are NaN)
_TRAIN_KEYS = (
    "final_train_nll",
    "final_valid_nll",
    "smax_last",
    "smax_rel_growth",
    "nll_tail_drop",
    "epochs_completed",
)
_ANALYSIS_KEYS = (
    "tangent_angle_true_deg_median",
    "knn_tangent_angle_true_deg_median",
    "tangent_angle_knn_deg_median",
    "normal_std_median",
    "normal_std_predicted",
    "normal_std_ratio",
    "wtw_relerr",
    "wtw_relerr_unshrunk",
    "smax_median",
    "gap_nats",
    "gap_se",
    "gap_kind",
)
_COMPONENT_KEYS = ("intrinsic_dim", "floor", "scale_median", "pca_eigenvalues", "pca_abs_corr", "pca_var_ratio")


def dataset_label(dataset: dict) -> str:
    """A data set's short name for an axis: its kind, with the noise level when noisy."""
    noise = dataset.get("noise") or 0.0
    return f"{dataset['kind']} σ={noise:g}" if noise else str(dataset["kind"])


def _num(v):
    """A summary value for the table: numbers as float (None as NaN); strings and lists as they are."""
    if v is None:
        return np.nan
    if isinstance(v, str | list):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def run_table(
    experiments: dict[str, dict], train: dict | None, analysis: dict | None = None, components: dict | None = None
) -> pd.DataFrame:
    """One row per run (experiment × selected stabilizer × seed) of ``experiments`` (a notebook's
    ``params.experiments``), with the experiment's properties (:data:`RUN_COLUMNS`) and the metrics
    of each stage summary that has the run (a run missing from a summary, or a metric missing from
    an older summary, gives NaN). ``status`` is the training status as written (``converged``,
    ``not_converged``, ``diverged``; empty when unknown)."""
    train, analysis, components = train or {}, analysis or {}, components or {}
    rows = []
    for exp, props in experiments.items():
        ds = props["dataset"]
        for stab in props.get("runs", list(props["stabilizers"])):
            st = props["stabilizers"][stab]
            seeds = {
                *train.get(exp, {}).get(stab, {}),
                *analysis.get(exp, {}).get(stab, {}),
                *components.get(exp, {}).get(stab, {}),
            }
            for seed in sorted(seeds, key=RunKey.parse_seed):
                t = train.get(exp, {}).get(stab, {}).get(seed, {})
                a = analysis.get(exp, {}).get(stab, {}).get(seed, {})
                c = components.get(exp, {}).get(stab, {}).get(seed, {})
                row = {
                    "experiment": exp,
                    "stabilizer": stab,
                    "seed": RunKey.parse_seed(seed),
                    "kind": st["kind"],
                    "lam": float(st.get("lam", 0.0)),
                    "family": props["flow"]["family"],
                    "linear": bool(props["flow"]["linear"]),
                    "dataset": dataset_label(ds),
                    "data_kind": ds["kind"],
                    "d": ds["d"],
                    "intrinsic_dim": ds.get("intrinsic_dim"),
                    "noise": float(ds.get("noise") or 0.0),
                    "manifold": bool(ds.get("manifold")),
                    "degenerate": bool(ds.get("degenerate")),
                    "singular_cov": ds.get("singular_cov"),
                    "known_cov": bool(ds.get("known_cov")),
                    "sweep": bool(props["experiment"].get("sweep")),
                    "status": str(t.get("status", a.get("status", ""))),
                }
                row.update({k: _num(t.get(k)) for k in _TRAIN_KEYS})
                row.update({k: _num(a.get(k)) for k in _ANALYSIS_KEYS})
                row.update({f"comp_{k}": _num(c.get(k)) for k in _COMPONENT_KEYS})
                rows.append(row)
    cols = RUN_COLUMNS + list(_TRAIN_KEYS) + list(_ANALYSIS_KEYS) + [f"comp_{k}" for k in _COMPONENT_KEYS]
    return pd.DataFrame(rows, columns=cols)


def shown_runs(smk, every_run: bool = False) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The run table (:func:`run_table`) of the experiments a notebook shows (their selected runs;
    ``every_run``: all their runs), from the stage summaries it has as inputs, and the claims of
    ``paper_map.yaml`` by id (:func:`paper_map`)."""
    inp = smk.input
    shown = smk.params.experiments
    if every_run:
        shown = {e: {**p, "runs": list(p["stabilizers"])} for e, p in shown.items()}
    table = run_table(
        shown,
        optional_json(getattr(inp, "train_summary", None), {}),
        optional_json(getattr(inp, "analysis_summary", None), {}),
        optional_json(getattr(inp, "components_summary", None), {}),
    )
    return table, paper_map(getattr(inp, "paper_map", None))


def setting(smk, section: str, key: str, default=None):
    """One value of the run's config (``config[section][key]``), e.g. the kNN k of the analysis."""
    return (config_of(smk).get(section) or {}).get(key, default)
