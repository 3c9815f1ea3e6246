"""The data stage's job (rule ``data``, ``workflow/scripts/data.py``): build one configured data
set, check it as its readers will, and write it."""

from __future__ import annotations

from flowtheory.datasets.build import make_dataset
from flowtheory.pipeline.storage import check_dataset, save_npz

__all__ = ["run"]


def run(spec: dict, seed: int, out: str) -> None:
    """Builds the configured data set, checks it as its readers will, and writes it (atomically)
    to ``out``: a malformed data set is refused here rather than by every job that reads it."""
    data = make_dataset(spec, seed)
    check_dataset(data, out)
    save_npz(out, **data)
