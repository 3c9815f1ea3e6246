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
