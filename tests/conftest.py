"""Shared test settings: float64 by default, one torch thread, seeded RNG that never leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _float64_and_seed():
    torch.set_num_threads(1)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
    torch.set_default_dtype(old)


@pytest.fixture
def root() -> Path:
    return ROOT


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
