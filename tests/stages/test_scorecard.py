"""The scorecard and the conclusions (src/flowtheory/stages/scorecard.py) on claims files old and new:
the verdicts the claims stage writes today, and those it is adding (NOT_AT_OPTIMUM, a direction, a
margin, a conclusion per paper claim), with every key optional."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest

from flowtheory.stages import scorecard

matplotlib.use("Agg")


def _record(cid, paper_claim, results, **extra):
    return {"id": cid, "paper_claim": paper_claim, "claim": cid, "experiments": results, **extra}


OLD = [
    _record("a", 1, {"e1": {"verdict": "PASS", "measured": 0.01, "threshold": 0.02}}),
    _record("b", 2, {"e1": {"verdict": "FAIL", "measured": 30.0, "threshold": 15.0}}),
    _record("c", 3, {}),
]
NEW = [
    _record("a", 1, {"e1": {"verdict": "PASS", "measured": 0.01, "threshold": 0.02, "direction": "<=", "margin": 0.5}}),
    _record(
        "b",
        2,
        {
            "e1": {"verdict": "NOT_AT_OPTIMUM", "measured": 30.0, "threshold": 15.0, "direction": "<="},
            "e2": {"verdict": "PASS", "measured": 3.0, "threshold": 15.0, "direction": "<="},
        },
        conclusion="within stated limits",
    ),
]


@pytest.mark.parametrize(
    "res,cat",
    [
        ({"verdict": "PASS"}, "pass"),
        ({"verdict": "FAIL"}, "fail"),
        ({"verdict": "NOT_AT_OPTIMUM"}, "not_at_optimum"),
        ({"verdict": "not at optimum"}, "not_at_optimum"),
        ({"verdict": "NOT_AT_OPTIMUM", "optimum_state": "capacity"}, "cannot_reach"),
        ({"verdict": "NOT_FAR_ENOUGH"}, "not_at_optimum"),
        ({"verdict": "PASS", "optimum_state": "capacity"}, "pass"),
        ({"verdict": "FAIL", "reachable": False}, "fail"),
        ({"verdict": "CANNOT_REACH"}, "cannot_reach"),
        ({"verdict": "N/A", "note": "the flow cannot reach the optimum"}, "cannot_reach"),
        ({"verdict": "N/A"}, "na"),
        ({"verdict": "NOT RUN"}, "not_run"),
        (None, "blank"),
    ],
)
def test_every_verdict_has_its_category(res, cat):
    assert scorecard.category(res) == cat


def test_margin_in_the_checks_direction():
    rec = {"id": "x"}
    below = {"id": "x", "check": "max_below"}
    assert scorecard.margin({"verdict": "PASS", "measured": 5.0, "threshold": 15.0}, rec, below) == pytest.approx(2 / 3)
    assert scorecard.margin({"verdict": "FAIL", "measured": 30.0, "threshold": 15.0}, rec, below) == pytest.approx(-1)
    above = {"id": "x", "check": "diverges"}
    assert scorecard.margin({"verdict": "PASS", "measured": 0.1, "threshold": 0.05}, rec, above) == pytest.approx(1)
    # a correlation against 0.999: the distances to 1 count
    pca = {"id": "x", "check": "pca"}
    assert scorecard.margin({"verdict": "PASS", "measured": 0.9995, "threshold": 0.999}, rec, pca) == pytest.approx(0.5)
    # the claims stage's own margin (in the metric's units) over the threshold; an equality check is
    # ±1; nothing known is NaN
    assert scorecard.margin({"verdict": "PASS", "margin": 0.5, "measured": 1.5, "threshold": 2}, rec, below) == 0.25
    res = {"verdict": "PASS", "margin": 0.0005, "measured": 0.9995, "threshold": 0.999, "direction": ">="}
    assert scorecard.margin(res, rec) == pytest.approx(0.5)
    assert scorecard.margin({"verdict": "FAIL", "measured": 3, "threshold": 2}, rec, {"check": "intrinsic_dim"}) == -1
    assert math.isnan(scorecard.margin({"verdict": "PASS", "measured": None, "threshold": 1.0}, rec, below))


def test_conclusions_derived_or_as_given(tmp_path):
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(OLD))
    records, given = scorecard.load(path)
    rows = {r["claim"]: r for r in scorecard.conclusions(records, given)}
    assert rows[1]["conclusion"] == "reproduces" and rows[1]["source"] == "derived from the verdicts"
    assert rows[2]["conclusion"] == "does not reproduce"
    assert rows[3]["conclusion"] == rows[5]["conclusion"] == "not tested in this config"
    path.write_text(json.dumps(NEW))
    records, given = scorecard.load(path)
    rows = {r["claim"]: r for r in scorecard.conclusions(records, given)}
    assert rows[2]["conclusion"] == "within stated limits" and rows[2]["source"] == "claims.json"
    assert rows[2]["not_at_optimum"] == 1 and rows[2]["pass"] == 1
    # the sectioned file of the claims stage: conclusions as a list with statements and causes
    sectioned = {
        "claims": NEW,
        "conclusions": [
            {"paper_claim": 1, "conclusion": "does not reproduce", "statement": "Linear flows whiten", "cause": "x"},
        ],
        "error_vs_gap": {},
    }
    path.write_text(json.dumps(sectioned))
    records, given = scorecard.load(path)
    rows = {r["claim"]: r for r in scorecard.conclusions(records, given, {5: "Components"})}
    assert rows[1]["conclusion"] == "does not reproduce" and rows[1]["statement"] == "Linear flows whiten"
    assert rows[1]["cause"] == "x" and rows[5]["statement"] == "Components"
    # derived as the claims stage derives it: PASS and NOT_AT_OPTIMUM only: within stated limits
    rows = {r["claim"]: r for r in scorecard.conclusions(records, {})}
    assert rows[2]["conclusion"] == "reproduces within stated limits"
    table = scorecard.conclusions_table(records, given)
    assert list(table["claim"]) == [1, 2, 3, 4, 5] and "conclusion" in table


def test_absent_or_broken_claims_file_draws(tmp_path):
    import matplotlib.pyplot as plt

    assert scorecard.load(tmp_path / "missing.json") == ([], {})
    (tmp_path / "bad.json").write_text("{not json")
    assert scorecard.load(tmp_path / "bad.json") == ([], {})
    fig = scorecard.draw([], {}, ["e1"], {})
    assert fig.get_size_inches().tolist() == list(scorecard.fs.SCORECARD)
    fig = scorecard.draw(NEW, {}, ["e1", "e2", "e3"], {})
    assert fig.get_size_inches().tolist() == list(scorecard.fs.SCORECARD)
    plt.close("all")


def test_a_fragile_cell_is_framed_and_named_in_the_legend():
    """A verdict a round-off perturbation flipped (``fragile`` in claims.json) gets a dashed frame
    and a legend entry; without one there is neither."""
    import matplotlib.pyplot as plt

    def dashed(fig):
        ax = fig.axes[0]
        frames = [p for p in ax.patches if not p.get_fill() and p.get_linestyle() not in ("solid", "-")]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        return len(frames), any("fragile" in t for t in labels)

    assert dashed(scorecard.draw(NEW, {}, ["e1", "e2"], {})) == (0, False)
    fragile = json.loads(json.dumps(NEW))
    fragile[1]["experiments"]["e2"]["fragile"] = True
    assert dashed(scorecard.draw(fragile, {}, ["e1", "e2"], {})) == (1, True)
    plt.close("all")
