"""Shared helpers for the figure notebooks (``workflow/notebooks/*.py``, jupytext percent files).

* :func:`context` gives a notebook its inputs and outputs: the ``snakemake`` object when run by the
  pipeline, or the same paths computed from ``config/config.yaml`` when opened in Jupyter.
* :func:`save` writes PNG and PDF with deterministic bytes (no timestamps or versions in metadata),
  atomically.
* :func:`load_runs` reads per-run ``.npz``/``.csv`` outputs keyed by (experiment, stabilizer, seed).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.stages.summarize import run_key

__all__ = ["STYLE", "context", "load_runs", "save", "settings_caption"]

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


def context(namespace: dict, name: str, config_path: str = "config/config.yaml"):
    """The notebook's ``snakemake``-like object (``input`` and ``output``)."""
    _setup()
    if "snakemake" in namespace:
        return namespace["snakemake"]
    from flowtheory.pipeline.config import load
    from flowtheory.pipeline.paths import NOTEBOOKS, notebook_inputs

    root = Path.cwd()
    while not (root / "Snakefile").exists() and root != root.parent:
        root = root.parent
    os.chdir(root)  # paths are relative to the repository root, as in the pipeline
    config = load(config_path)
    outs = NOTEBOOKS[name]
    out = {"png": outs[0], "pdf": outs[1]} if name.startswith("fig_") else {"csv": outs[0], "md": outs[1]}
    return SimpleNamespace(input=SimpleNamespace(**notebook_inputs(config, name)), output=SimpleNamespace(**out))


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
