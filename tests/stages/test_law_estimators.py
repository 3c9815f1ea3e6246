"""``bench.law_estimators`` (docs/measurements.md#illposed-law): the three estimates of the
ill-posedness law's slope against closed-form cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def estimates(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ sits beside the package, not in it
    from bench.law_estimators import estimates

    return estimates


def _history(log_smax, nll):
    n = len(log_smax)
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "phase": "adam", "train_nll": nll, "smax": np.exp(log_smax)})


def test_on_an_exact_law_every_estimate_is_the_law(estimates):
    epoch = np.arange(1, 401)
    x = 0.01 * epoch + 0.05 * np.sin(epoch / 7)  # a trend and a shared wiggle: the NLL follows both
    got = estimates(_history(x, 3.0 - 2.0 * x))
    assert got["ols"] == pytest.approx(-2.0) and got["iv"] == pytest.approx(-2.0)
    # the wiggle is smooth (first differences small): log s_max is reliable, so the correction is small
    assert 0.9 < got["reliability"] <= 1 and got["eiv"] == pytest.approx(-2.0, rel=0.1)


def test_jitter_the_nll_does_not_share_dilutes_the_least_squares_slope_only(estimates):
    rng = np.random.default_rng(0)
    n = 20_000  # long enough that the estimates' sampling spread (sd 0.004 to 0.013 over seeds) is small
    epoch = np.arange(1, n + 1)
    trend = 2 * epoch / n
    x = trend + rng.normal(0, 0.3, n)  # over the second half: trend 1.0 (variance 1/12), jitter sd 0.3
    got = estimates(_history(x, 3.0 - trend))  # the NLL follows the trend, not the jitter
    reliability = (1 / 12) / (1 / 12 + 0.09)  # the dilution: var(trend) / (var(trend) + var(jitter))
    assert got["ols"] == pytest.approx(-reliability, abs=0.02)
    assert got["reliability"] == pytest.approx(reliability, abs=0.03)
    assert got["eiv"] == pytest.approx(-1.0, abs=0.05) and got["iv"] == pytest.approx(-1.0, abs=0.03)
