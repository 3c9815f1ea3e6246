"""One run's name, formatted and parsed in one place.

A run is (experiment, stabilizer, seed). Its files live under
``results/<stage>/<experiment>/<stabilizer>/seed<k>/`` (:mod:`flowtheory.pipeline.paths`); the stage
summaries key it as ``{experiment: {stabilizer: {"seed<k>": ...}}}``; the claims name it within
an experiment as ``<stabilizer>/seed<k>`` and the logs as ``<experiment>/<stabilizer>/seed<k>``.
Everything that writes or reads one of these forms goes through :class:`RunKey`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunKey"]

SEED_PREFIX = "seed"


@dataclass(frozen=True, order=True)
class RunKey:
    experiment: str
    stabilizer: str
    seed: int

    @staticmethod
    def seed_name(seed: int) -> str:
        """``seed<k>``: the seed's directory and summary key."""
        return f"{SEED_PREFIX}{int(seed)}"

    @staticmethod
    def parse_seed(name: str | int) -> int:
        """``seed<k>`` (or k itself) -> k."""
        if isinstance(name, int):
            return name
        if not name.startswith(SEED_PREFIX) or not name[len(SEED_PREFIX) :].isdigit():
            raise ValueError(f"not a seed name: {name!r} (expected '{SEED_PREFIX}<k>')")
        return int(name[len(SEED_PREFIX) :])

    @property
    def label(self) -> str:
        """``<stabilizer>/seed<k>``: the run within its experiment."""
        return f"{self.stabilizer}/{self.seed_name(self.seed)}"

    def __str__(self) -> str:
        """``<experiment>/<stabilizer>/seed<k>``."""
        return f"{self.experiment}/{self.label}"

    @classmethod
    def from_label(cls, experiment: str, label: str) -> RunKey:
        stabilizer, seed = label.rsplit("/", 1)
        return cls(experiment, stabilizer, cls.parse_seed(seed))

    @classmethod
    def from_path(cls, path: str, stage_dir: str) -> RunKey:
        """``.../<stage_dir>/<experiment>/<stabilizer>/seed<k>/...`` -> the run."""
        parts = str(path).replace("\\", "/").split("/")
        i = parts.index(stage_dir)
        return cls(parts[i + 1], parts[i + 2], cls.parse_seed(parts[i + 3]))
