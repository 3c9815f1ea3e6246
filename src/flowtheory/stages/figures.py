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
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.stages.summarize import run_key

__all__ = [
    "STYLE",
    "context",
    "first_two",
    "load_runs",
    "nothing",
    "nothing_table",
    "plane",
    "save",
    "settings_caption",
]

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 0.9}
PNG_DPI = 130


def _setup() -> None:
    import matplotlib

    matplotlib.use("Agg")
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    import seaborn as sns

    sns.set_theme(**STYLE)
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


def context(namespace: dict, name: str, config_path: str = "config/config.yaml"):
    """The notebook's ``snakemake``-like object: ``input``, ``output``, ``log`` and
    ``params.experiments`` (``{experiment: properties + runs}``, the experiments it shows)."""
    _setup()
    if "snakemake" in namespace:
        smk = namespace["snakemake"]
        _write_log(smk, name)
        _log_errors(smk)
        return smk
    from flowtheory.pipeline.config import load
    from flowtheory.pipeline.paths import NOTEBOOKS, notebook_experiments, notebook_files, notebook_inputs

    root = Path.cwd()
    while not (root / "Snakefile").exists() and root != root.parent:
        root = root.parent
    os.chdir(root)  # paths are relative to the repository root, as in the pipeline
    config = load(config_path)
    outs = NOTEBOOKS[name]
    out = {"png": outs[0], "pdf": outs[1]} if name.startswith("fig_") else {"csv": outs[0], "md": outs[1]}
    return SimpleNamespace(
        input=SimpleNamespace(**notebook_inputs(config, name)),
        output=SimpleNamespace(**out),
        params=SimpleNamespace(
            notebook=name, experiments=notebook_experiments(config, name), **notebook_files(config, name)
        ),
        log=[],
        rule=name,
    )


def _missing_text(name: str) -> str:
    from flowtheory.pipeline.experiments import describe_selector
    from flowtheory.pipeline.paths import NOTEBOOK_SHOWS

    shows = NOTEBOOK_SHOWS[name]
    return (
        f"No experiment of this kind in this config: {shows.what}\n(selected by: {describe_selector(shows.selector)})"
    )


def nothing(name: str, figsize: tuple[float, float] = (9.0, 1.8)):
    """A one-panel figure saying which kind of experiment notebook ``name`` shows and that the
    config has none."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
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


def save(fig, png: str, pdf: str) -> None:
    """PNG and PDF with no timestamps or software versions in their metadata."""
    with storage.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
    with storage.atomic_path(pdf) as tmp:
        fig.savefig(
            tmp,
            format="pdf",
            bbox_inches="tight",
            metadata={"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
        )


def load_runs(paths: list[str], stage_dir: str) -> dict[tuple[str, str, int], dict]:
    """Per-run files keyed by (experiment, stabilizer, seed): npz as dicts, csv as DataFrames."""
    out = {}
    for p in paths:
        key = run_key(str(p), stage_dir)
        if str(p).endswith(".npz"):
            with np.load(p) as z:
                out[key] = {k: z[k] for k in z.files}
        else:
            out[key] = pd.read_csv(p)
    return out


def settings_caption(authors: str, ours: str) -> str:
    return f"Authors' code defaults: {authors}. Our choices: {ours}."
