"""The paper figures' panels (src/flowtheory/stages/paperfigs.py) on hand-made inputs: Figure E's
variance spectra on a log axis leave zero variances out (MNIST's constant pixels) and say so."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from flowtheory.stages import paperfigs

matplotlib.use("Agg")


def test_nonzero_drops_the_zero_tail_of_a_decreasing_spectrum():
    v = np.array([4.0, 1.0, 1e-9, 3e-16, 0.0, -2e-17])
    np.testing.assert_array_equal(paperfigs._nonzero(v), [4.0, 1.0, 1e-9])
    assert paperfigs._nonzero(np.zeros(3)).size == 0 and paperfigs._nonzero(np.array([])).size == 0


def test_the_mnist_spectra_leave_zero_variances_out_and_count_them():
    """Two constant pixels: two zero PCA eigenvalues, and a linear run whose latents have zero
    variance along them. No drawn value is zero (a log axis would drop it to its bottom edge) and
    the panel names both counts."""
    import matplotlib.pyplot as plt

    d, zero = 6, 2
    pca = np.r_[np.geomspace(10.0, 0.01, d - zero), np.zeros(zero)]
    spectra = pd.DataFrame(
        {
            "experiment": "mnist_linear",
            "stabilizer": "none",
            "seed": 0,
            "component": np.arange(d),
            "pca_eigenvalue": pca,
            "var_yhat": pca * 1.1,
            "var_y": np.r_[np.ones(d - zero), np.zeros(zero)],
        }
    )
    runs = pd.DataFrame([{"experiment": "mnist_linear", "stabilizer": "none", "seed": 0, "kind": "none",
                          "lam": 0.0, "family": "linear"}])  # fmt: skip
    fig, ax = plt.subplots()
    try:
        paperfigs._mnist_spectrum(ax, spectra, runs)
        drawn = [line.get_ydata() for line in ax.get_lines()]
        assert [len(y) for y in drawn] == [d - zero] * 3
        assert all(np.all(np.asarray(y) > 0) for y in drawn)
        notes = " ".join(t.get_text() for t in ax.texts)
        assert f"{zero} global PCA eigenvalues" in notes and f"up to {zero} per run" in notes
    finally:
        plt.close(fig)


def test_the_law_panel_bins_the_checks_own_window():
    """fig_b's Eq. (10) panel and ``manifold_unregularized_illposed`` read one window of epochs
    (``claims.second_half``): 9 epochs leave 6 to 9, one row per epoch when there are fewer than
    ``LAW_BINS``, not 5 to 9 (the panel's own ``epoch >= max / 2`` before)."""
    from flowtheory.stages.claims import _history_fit, second_half

    epoch = np.arange(1, 10, dtype=float)
    h = pd.DataFrame(
        {"experiment": "e", "stabilizer": "none", "seed": 0, "epoch": epoch, "train_nll": -epoch, "smax": np.exp(epoch)}
    )
    assert second_half(epoch).tolist() == [False] * 5 + [True] * 4
    law = paperfigs._tail_law(h)
    assert len(law) == second_half(epoch).sum() == _history_fit(h.to_dict("list"))["n_epochs"]
    np.testing.assert_allclose(law["dnll"], -law["dlog"])
