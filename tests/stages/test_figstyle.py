"""The one visual language (src/flowtheory/stages/figstyle.py): a stabilizer kind has one hue in every
figure, shaded by λ on a fixed scale; a flow family one marker; an outlier cannot flatten an axis;
a threshold's label names its claim and direction; sizes fit the limit."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv, to_rgb

from flowtheory.stages import figstyle as fs
from pipeline_project import fresh_python

matplotlib.use("Agg")


def _hue(c) -> float:
    return float(rgb_to_hsv(np.array(to_rgb(c)))[0])


def test_one_hue_per_kind_shaded_by_lambda_on_a_fixed_scale():
    kinds = ["weight", "jacobian", "noise"]
    hues = {k: _hue(fs.color(k)) for k in kinds}
    assert len({round(h, 2) for h in hues.values()}) == 3
    for k in kinds:
        shades = [fs.color(k, lam) for lam in (1e-3, 1e-2, 1e-1)]
        assert all(abs(_hue(c) - hues[k]) < 0.06 for c in shades), k  # the same hue at every λ
        values = [float(np.mean(to_rgb(c))) for c in shades]
        assert values[0] > values[1] > values[2], (k, values)  # darker for larger λ
    assert fs.color("jacobian", 0.01) == fs.color("jacobian", 0.01)  # no state: the same in every figure
    assert fs.color("none", 0.0) == fs.color("none")


def test_one_marker_per_family():
    markers = [fs.marker(f) for f in fs.FAMILIES]
    assert len(set(markers)) == len(fs.FAMILIES)
    assert fs.marker("some_new_family") not in markers


def test_an_outlier_does_not_set_the_limits_but_thresholds_do():
    nll = np.r_[np.linspace(1.0, 2.0, 200), 1e14]
    lo, hi = fs.robust_limits(nll)
    assert hi < 3 and lo > 0.5
    lo, hi = fs.robust_limits(nll, include=[15.0])
    assert hi >= 15
    lo, hi = fs.robust_limits([1e-3, 2e-3, 5e-3, 1e-2], log=True)
    assert 0 < lo < 1e-3 and 1e-2 < hi < 0.1
    assert fs.robust_limits([np.nan, np.inf]) is None
    # a handful of values spanning two decades is kept whole on a log axis
    lo, hi = fs.robust_limits([0.12, 0.4, 0.8, 1.0, 1.0, 1.1], log=True)
    assert lo < 0.12 and hi > 1.1


def test_clip_marks_what_it_moves():
    v, side = fs.clip([0.5, 5.0, -5.0, np.inf, np.nan], (0.0, 1.0))
    assert side.tolist() == [0, 1, -1, 1, 0]
    assert v[:4].tolist() == [0.5, 1.0, 0.0, 1.0] and np.isnan(v[4])


def test_threshold_labels_name_the_claim_and_direction():
    entry = {"id": "local_covariance_oracle", "check": "max_below", "threshold": 15.0}
    assert fs.threshold_label(entry, unit="°") == "threshold of local_covariance_oracle (≤ 15°)"
    assert "≥ 0.999" in fs.threshold_label({"id": "pca", "check": "pca", "threshold": 0.999})
    assert fs.direction({"id": "x", "check": "max_below", "direction": ">="}) == ">="  # the claims stage's own


@pytest.mark.parametrize("size", [fs.MAIN, fs.WIDE, fs.SCORECARD])
def test_main_sizes_fit_the_limit(size):
    w, h = (round(v * fs.PNG_DPI) for v in size)
    assert w <= fs.MAX_PX[0] and h <= fs.MAX_PX[1]
    assert round(fs.GALLERY[0] * fs.GALLERY_DPI) <= fs.MAX_PX[0]


def test_scatter_draws_clipped_points_on_the_edge_and_names_them():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    fs.scatter(ax, [1, 2, 3], [0.5, 0.6, 1e14], "noise", 0.01, "mlp", ylim=(0, 1))
    labels = ax.get_legend_handles_labels()[1]
    assert fs.CLIPPED_LABEL in labels
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert offsets[:, 1].max() == 1.0
    plt.close(fig)


def test_the_theme_is_what_seaborn_sets():
    """figstyle.THEME and COLOR_CODES stand in for ``seaborn.set_theme(**STYLE)`` in the figure jobs:
    every rcParam seaborn changes is in THEME with seaborn's value (equal, not close), and nothing
    else, bar the colormap that exists only after seaborn's import (THEME_OMITS); the colour codes
    are seaborn's."""
    theirs, codes = fs.seaborn_theme()
    assert set(theirs) - set(fs.THEME_OMITS) == set(fs.THEME)
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(fs.THEME)
        ours = {k: matplotlib.rcParams[k] for k in fs.THEME}
    assert ours == {k: theirs[k] for k in fs.THEME}
    assert {k: type(v) for k, v in ours.items()} == {k: type(theirs[k]) for k in fs.THEME}
    assert codes == fs.COLOR_CODES
    assert fs.seaborn_theme({**fs.STYLE, "font_scale": 1.0})[0] != theirs, "the comparison can fail"


_DRAW = """
import hashlib, io, sys, matplotlib
matplotlib.use("Agg")
from flowtheory.stages import figstyle as fs
if sys.argv[1] == "seaborn":
    import seaborn as sns
    sns.set_theme(**fs.STYLE)
else:
    fs.apply_theme()
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot([0, 1, 2], [0, 1, 0.5], "k-", label="k")
ax.plot([0, 1, 2], [1, 0, 0.2], label="cycle")
ax.table(cellText=[["a", "1.3"], ["b", "2.5"]], colLabels=["x", "y"], loc="lower right")
ax.legend(title="t")
ax.set_title("title")
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=80)
print(hashlib.sha256(buf.getvalue()).hexdigest())
"""


def test_a_figure_drawn_with_the_theme_is_seaborns_to_the_byte():
    """One figure with lines in a colour code and the cycle, a table, a legend and a title, drawn
    in two fresh processes: under seaborn's set_theme and under apply_theme. Same PNG bytes."""
    digests = [fresh_python(_DRAW, how) for how in ("seaborn", "ours")]
    assert digests[0] == digests[1]


def test_a_figure_job_does_not_import_seaborn():
    code = (
        "import sys; from flowtheory.stages import figures; figures._setup(); "
        "import matplotlib; assert matplotlib.rcParams['axes.grid']; print('seaborn' in sys.modules)"
    )
    assert fresh_python(code).strip() == "False"
