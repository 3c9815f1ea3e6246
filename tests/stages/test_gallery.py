"""The gallery page's verdict panel (flowtheory.stages.gallery): every claim on the experiment, its
verdict as the scorecard categorizes it, and the fragile mark of results/claims.md."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from flowtheory.stages import gallery  # noqa: E402


def _record(fragile: bool) -> dict:
    result = {
        "verdict": "PASS",
        "measured": 0.24,
        "threshold": 0.25,
        "direction": "<=",
        "metric": "nll_log_smax_slope_rel_dev",
        "fragile": fragile,
    }
    return {"id": "manifold_unregularized_illposed", "paper_claim": 3, "experiments": {"e": result}}


@pytest.mark.parametrize("fragile", [False, True])
def test_the_verdict_panel_marks_a_fragile_verdict(fragile):
    fig, ax = plt.subplots()
    try:
        gallery._verdicts(ax, [_record(fragile)], "e", {})
        texts = [t.get_text() for t in ax.texts]
    finally:
        plt.close(fig)
    assert "PASS" in texts and any("manifold_unregularized_illposed" in t for t in texts)
    assert ("(fragile)" in texts) is fragile


def test_an_optimum_level_far_off_the_curves_is_named_not_drawn():
    """A level 10⁵ nats below curves spanning a nat (sphere_realnvp's Jacobian run: a flow whose
    density misses some of the truth's samples by far) would flatten the NLL panel; a near one, and a
    missing one (NaN: no gap known), are drawn as before."""
    import numpy as np

    nll = np.linspace(3.0, 1.5, 50)
    near = gallery._near_levels(np.array([1.4, 1.5 - 9.4e4, np.nan, 2.0]), nll)
    assert near.tolist() == [True, False, False, True]
    # with no finite curve every finite level is drawn (nothing to flatten)
    assert gallery._near_levels(np.array([1.0, np.nan]), np.array([np.nan])).tolist() == [True, False]


def test_a_page_with_nothing_to_show_is_placed_without_a_layout_engine():
    """The page is placed by PAGE_MARGINS, not measured by a layout engine (half of its drawing
    time): an experiment with no runs yet still gives the page, every panel saying what it lacks."""
    import pandas as pd

    props = {
        "dataset": {"kind": "scurve", "d": 3, "intrinsic_dim": 2},
        "flow": {"family": "mlp"},
        "experiment": {"epochs": 10},
    }
    columns = ["experiment", "stabilizer", "seed", "kind", "lam", "status", "gap_nats", "final_train_nll"]
    fig = gallery.page("e", props, pd.DataFrame(columns=columns), pd.DataFrame(), {}, {}, None, [], {})
    try:
        assert fig.get_layout_engine() is None
        assert len(fig.axes) == 11  # the NLL panel spans two columns
        for ax in fig.axes:
            box = ax.get_position()
            assert 0 < box.x0 < box.x1 < 1 and 0 < box.y0 < box.y1 < 1
    finally:
        plt.close(fig)
