"""The answer first: the scorecard (every check of ``paper_map.yaml`` × every experiment) and the
conclusion for each of the paper's five claims (docs/theory.md §1), read from ``results/claims.json``.

``results/claims.json`` is a list of claim records (:mod:`flowtheory.stages.claims`); each has per
experiment a ``verdict`` (``PASS``, ``FAIL``, ``NOT_AT_OPTIMUM``, ``N/A``, ``NOT RUN``), ``measured``
and ``threshold``, and may have ``direction`` (``<=``, ``>=``) and ``margin``; a conclusion per
paper claim (``reproduces``, ``within stated limits``, ``does not reproduce``) may come as a
record's ``conclusion`` or in a top-level ``conclusions`` mapping. Anything missing is derived here
and said to be (an older claims file still draws):

* the direction from the claim's check (:data:`flowtheory.stages.figstyle.CHECK_DIRECTIONS`);
* the margin as the signed distance to the threshold in the check's direction, relative to the
  threshold (:func:`margin`);
* the conclusion from the verdicts (:func:`conclusions`).

A cell is coloured by its margin (green passes, red fails, darker further from the threshold); a run
that is not at the optimum (hatched ``///``) and one whose flow cannot reach the optimum (hatched
``xxx``) are marked apart from a plain failure (:func:`category`).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.stages import figstyle as fs

__all__ = [
    "CATEGORIES",
    "CONCLUSIONS",
    "PAPER_CLAIMS",
    "category",
    "conclusions",
    "conclusions_table",
    "draw",
    "load",
    "margin",
]

#: the five claims of the paper, in short (docs/theory.md §1)
PAPER_CLAIMS = {
    1: "An optimal linear flow whitens the data: WᵀW = Σ⁻¹",
    2: "A nonlinear flow learns the local covariance: J_fᵀJ_f ≈ Σ_loc⁻¹",
    3: "Maximum likelihood is ill-posed on data of low intrinsic dimension: training diverges",
    4: "Tikhonov regularization (weight, Jacobian, noise) shrinks the covariance by λ and stabilizes training",
    5: "Un-whitened components are local principal components; their scales show the intrinsic dimension",
}
#: the conclusions (the claims stage's words, flowtheory.stages.claims.conclude), with their colours
CONCLUSIONS = {
    "reproduces": "#1a9850",
    "reproduces within stated limits": "#d9a400",
    "does not reproduce": "#d73027",
    "not conclusive": "#7f7f7f",
    "not tested in this config": "#bdbdbd",
}
#: the frame of a fragile cell: a verdict a round-off perturbation flipped (``fragile`` in claims.json)
FRAGILE_EDGE = {"fill": False, "edgecolor": "black", "lw": 1.4, "ls": (0, (2, 1.5))}
#: cell categories: (legend text, fill, hatch)
CATEGORIES = {
    "pass": ("pass (shade: margin)", None, None),
    "fail": ("fail (shade: margin)", None, None),
    "not_at_optimum": ("not at the optimum, or not far enough (training stopped short)", "#f6e8c3", "///"),
    "cannot_reach": ("the flow cannot reach the optimum (capacity)", "#d8daeb", "xxx"),
    "not_run": ("not run (summary lacks the runs)", "#bdbdbd", None),
    "na": ("N/A for this experiment", "#f0f0f0", None),
    "blank": ("check does not apply", "white", None),
}
_UNREACHABLE = {"CANNOT_REACH", "UNREACHABLE", "NOT_REACHABLE", "FLOW_CANNOT_REACH", "CANNOT_REACH_OPTIMUM"}
_UNDECIDED = {"NOT_AT_OPTIMUM", "NOT_FAR_ENOUGH"}


def load(path) -> tuple[list[dict], dict]:
    """``results/claims.json`` as (claim records, conclusions by paper claim number); both empty when
    the file is absent or unreadable. Accepts the sectioned mapping the claims stage writes
    (``claims``, ``conclusions`` as a list with ``paper_claim``, ``conclusion``, ``statement``,
    ``cause``), a mapping of conclusions by number, and the plain list of records of older files."""
    if not path or not Path(path).is_file():
        return [], {}
    try:
        data = storage.load_json(path)
    except storage.DataError:
        return [], {}
    if isinstance(data, dict):
        records = data.get("claims") or data.get("records") or []
        raw = data.get("conclusions") or data.get("paper_claims") or {}
    else:
        records, raw = data, {}
    found: dict[int, dict] = {}
    items = raw.items() if isinstance(raw, dict) else ((c.get("paper_claim"), c) for c in raw if isinstance(c, dict))
    for key, value in items:
        try:
            n = int(str(key).removeprefix("claim").strip())
        except ValueError:
            continue
        value = value if isinstance(value, dict) else {"conclusion": value}
        if value.get("conclusion"):
            found[n] = {
                "conclusion": str(value["conclusion"]),
                "statement": value.get("statement"),
                "cause": value.get("cause"),
                "source": "claims.json",
            }
    for r in records:
        if isinstance(r, dict) and r.get("conclusion") and r.get("paper_claim") is not None:
            found.setdefault(int(r["paper_claim"]), {"conclusion": str(r["conclusion"]), "source": "claims.json"})
    return [r for r in records if isinstance(r, dict) and "id" in r], found


def _verdict(res: dict) -> str:
    return str(res.get("verdict", "")).strip().upper().replace(" ", "_").replace("-", "_")


def category(res: dict | None) -> str:
    """The cell category of one claim × experiment result (:data:`CATEGORIES`): ``cannot_reach`` for
    a run not at the optimum because its flow family cannot reach it (``optimum_state: capacity``
    of the claims stage), ``not_at_optimum`` for NOT_AT_OPTIMUM and NOT_FAR_ENOUGH otherwise."""
    if res is None:
        return "blank"
    v = _verdict(res)
    reason = " ".join(str(res.get(k, "")) for k in ("note", "reason", "cause")).lower()
    capacity = res.get("optimum_state") == "capacity" or res.get("reachable") is False
    if v in _UNREACHABLE or ((capacity or "cannot reach" in reason) and v not in ("PASS", "FAIL")):
        return "cannot_reach"
    if v in _UNDECIDED:
        return "not_at_optimum"
    if v == "PASS":
        return "pass"
    if v == "FAIL":
        return "fail"
    if v in ("NOT_RUN", "NOTRUN"):
        return "not_run"
    return "na"


def _scale(threshold: float, measured: float | None, direction: str | None) -> float:
    """What a margin is relative to: the threshold, or its distance to 1 for a threshold in (0.5, 1)
    on a quantity bounded by 1 that must reach it (a correlation against 0.999)."""
    if direction == ">=" and 0.5 < threshold < 1 and (measured is None or measured <= 1):
        return 1 - threshold
    return abs(threshold) if threshold else 1.0


def margin(res: dict, record: dict, entry: dict | None = None) -> float:
    """The result's margin in its check's direction, relative to the threshold (positive: the
    prediction holds with room): the claims stage's own signed ``margin`` (in the metric's units)
    divided by the threshold's scale (:func:`_scale`), else (threshold − measured) for ``<=`` and
    (measured − threshold) for ``>=`` over the same scale; ±1 for an equality check; NaN when
    unknown."""
    direction = res.get("direction") or record.get("direction") or fs.direction(entry)
    measured, thr = res.get("measured"), res.get("threshold")
    numeric = isinstance(thr, int | float) and not isinstance(thr, bool)
    value = float(measured) if isinstance(measured, int | float) and not isinstance(measured, bool) else None
    given = res.get("margin")
    if isinstance(given, int | float) and not isinstance(given, bool):
        return float(given) / _scale(float(thr), value, direction) if numeric else float(given)
    if direction == "==" or not numeric:
        return {"pass": 1.0, "fail": -1.0}.get(category(res), math.nan)
    if value is None or math.isnan(value):
        return math.nan
    thr = float(thr)
    if direction == ">=":
        return (value - thr) / _scale(thr, value, direction)
    if direction == "<=":
        return (thr - value) / _scale(thr, value, direction)
    return math.nan


def conclusions(records: list[dict], given: dict[int, dict], statements: dict[int, str] | None = None) -> list[dict]:
    """One row per paper claim (1 to 5): its conclusion, from ``claims.json`` where it has one, else
    derived from the verdicts as the claims stage derives it (any FAIL: does not reproduce; every
    verdict PASS: reproduces; some PASS and the rest not at the optimum: reproduces within stated
    limits; no PASS or FAIL: not conclusive; no applicable check: not tested in this config), and the
    counts of its verdicts. ``statements``: the claims in words (``paper_claims`` of paper_map.yaml)."""
    out = []
    for n, default in PAPER_CLAIMS.items():
        cats = [
            category(res) for r in records if r.get("paper_claim") == n for res in (r.get("experiments") or {}).values()
        ]
        counts = {c: cats.count(c) for c in ("pass", "fail", "not_at_optimum", "cannot_reach", "not_run", "na")}
        statement = (given.get(n) or {}).get("statement") or (statements or {}).get(n) or default
        if n in given:
            text, source = given[n]["conclusion"], "claims.json"
        elif not any(counts[c] for c in ("pass", "fail", "not_at_optimum", "cannot_reach", "not_run")):
            text, source = "not tested in this config", "derived from the verdicts"
        elif counts["fail"]:
            text, source = "does not reproduce", "derived from the verdicts"
        elif counts["pass"] and counts["pass"] == len(cats) - counts["na"]:
            text, source = "reproduces", "derived from the verdicts"
        elif counts["pass"]:
            text, source = "reproduces within stated limits", "derived from the verdicts"
        else:
            text, source = "not conclusive", "derived from the verdicts"
        cause = (given.get(n) or {}).get("cause")
        out.append({"claim": n, "statement": statement, "conclusion": text, "source": source, "cause": cause, **counts})
    return out


def conclusions_table(records: list[dict], given: dict[int, dict], statements: dict[int, str] | None = None):
    """:func:`conclusions` as the table the report's front page includes."""
    rows = conclusions(records, given, statements)
    return pd.DataFrame(
        [
            {
                "claim": r["claim"],
                "the paper's claim": r["statement"],
                "conclusion": r["conclusion"],
                "checks passed": r["pass"],
                "failed": r["fail"],
                "not at the optimum": r["not_at_optimum"],
                "flow cannot reach": r["cannot_reach"],
                "why": r["cause"] or "",
                "source": r["source"],
            }
            for r in rows
        ]
    )


def _cell_color(cat: str, m: float):
    import matplotlib

    if cat in ("pass", "fail"):
        strength = 0.35 + 0.55 * math.sqrt(min(abs(m), 1.0)) if math.isfinite(m) else 0.5
        return matplotlib.colormaps["Greens" if cat == "pass" else "Reds"](strength)
    return CATEGORIES[cat][1]


def draw(
    records: list[dict],
    given: dict[int, dict],
    experiments: list[str],
    pm: dict,
    statements: dict[int, str] | None = None,
):
    """The scorecard: rows the checks grouped by paper claim, columns the experiments, each cell
    coloured by the margin in the check's direction (hatched where not at or not reachable to the
    optimum); beside it the five conclusions."""
    from matplotlib.patches import Patch, Rectangle

    fig, _ = fs.figure(fs.SCORECARD, "Scorecard: every check on every experiment it applies to")
    grid = fig.add_gridspec(1, 2, width_ratios=[3.3, 1])
    ax = fig.add_subplot(grid[0, 0])
    side = fig.add_subplot(grid[0, 1])
    rows = sorted(records, key=lambda r: (r.get("paper_claim") or 9, records.index(r)))
    cols = list(experiments)
    n_r, n_c = len(rows), len(cols)
    if not n_r or not n_c:
        ax.axis("off")
        fs.note(ax, "no claim records in results/claims.json" if not n_r else "no experiment in this config")
    else:
        text_size = max(3.5, min(8.0, 230.0 / max(n_c, n_r * 1.6)))
        for i, r in enumerate(rows):
            res_by_exp = r.get("experiments") or {}
            for j, e in enumerate(cols):
                res = res_by_exp.get(e)
                cat = category(res)
                m = margin(res, r, pm.get(r["id"])) if res is not None else math.nan
                exact = (res or {}).get("direction", r.get("direction") or fs.direction(pm.get(r["id"]))) == "=="
                face = _cell_color(cat, m)
                hatch = CATEGORIES[cat][2]
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", lw=1.0, hatch=hatch))
                if hatch:
                    ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="0.35", lw=0, hatch=hatch))
                if (res or {}).get("fragile"):  # flipped by a round-off perturbation (results/chaos.json)
                    ax.add_patch(Rectangle((j + 0.06, i + 0.06), 0.88, 0.88, **FRAGILE_EDGE))
                if cat in ("pass", "fail", "not_at_optimum", "cannot_reach") and n_c <= 60:
                    glyph = {"pass": "✓", "fail": "✗", "not_at_optimum": "◔", "cannot_reach": "⊘"}[cat]
                    if cat == "fail" and math.isfinite(m) and m > 0:
                        glyph = "✗*"  # the measured value is within its threshold; another condition fails
                    txt = (
                        glyph
                        if not math.isfinite(m) or cat in ("not_at_optimum", "cannot_reach") or exact
                        else f"{glyph}{m:+.0%}"
                        if abs(m) >= 0.01
                        else f"{glyph}{m:+.1%}"
                    )
                    if cat in ("pass", "fail") and not exact and math.isfinite(m) and abs(m) >= 10:
                        txt = f"{glyph}{'≫' if m > 0 else '≪'}"
                    dark = cat in ("pass", "fail") and math.isfinite(m) and abs(m) > 0.3
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        txt,
                        ha="center",
                        va="center",
                        fontsize=text_size * 0.85,
                        color="white" if dark else "black",
                    )
                elif cat == "not_run":
                    ax.text(j + 0.5, i + 0.5, "–", ha="center", va="center", fontsize=text_size)
        # claim group separators and labels
        prev = None
        for i, r in enumerate(rows):
            if r.get("paper_claim") != prev and i:
                ax.axhline(i, color="black", lw=1.2)
            prev = r.get("paper_claim")
        ax.set_xlim(0, n_c)
        ax.set_ylim(n_r, 0)
        ax.set_xticks(np.arange(n_c) + 0.5, cols, rotation=90, fontsize=text_size)
        ax.set_yticks(
            np.arange(n_r) + 0.5,
            [f"claim {r.get('paper_claim', '?')} · {r['id']}" for r in rows],
            fontsize=max(text_size, 6.5),
        )
        ax.tick_params(length=0)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        handles = [
            Patch(
                facecolor=_cell_color("pass", 1.0), label="pass: ✓ margin (green, darker = further from the threshold)"
            ),
            Patch(
                facecolor=_cell_color("fail", -1.0),
                label="fail: ✗ margin (red, darker = further; ✗* another condition of the check fails)",
            ),
        ] + [
            Patch(facecolor=CATEGORIES[c][1], edgecolor="0.35", hatch=CATEGORIES[c][2], label=CATEGORIES[c][0])
            for c in ("not_at_optimum", "cannot_reach", "not_run", "na")
        ]
        if any((res or {}).get("fragile") for r in rows for res in (r.get("experiments") or {}).values()):
            handles.append(
                Patch(
                    facecolor="white",
                    **{k: v for k, v in FRAGILE_EDGE.items() if k != "fill"},
                    label="dashed frame: fragile, flipped by a round-off perturbation (results/chaos.json); "
                    "no conclusion rests on it",
                )
            )
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02 - 0.0009 * max(len(c) for c in cols) * text_size),
            ncols=3,
            fontsize=7,
            frameon=False,
        )
        ax.set_title(
            "margin = distance to the threshold in the check's direction, relative to the threshold",
            fontsize=9,
            fontweight="normal",
        )
    # the five conclusions
    side.axis("off")
    side.set_title("The paper's claims (docs/theory.md §1)", fontsize=10)
    y = 0.97
    for c in conclusions(records, given, statements):
        colour = CONCLUSIONS.get(c["conclusion"], "#555555")
        side.text(0.0, y, f"Claim {c['claim']}", fontsize=9, fontweight="bold", transform=side.transAxes, va="top")
        side.text(0.0, y - 0.035, textwrap.fill(c["statement"], 52), fontsize=7.5, transform=side.transAxes, va="top")
        side.text(
            0.0,
            y - 0.095,
            f" {c['conclusion']} ",
            fontsize=9,
            fontweight="bold",
            color="white",
            transform=side.transAxes,
            va="top",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": colour, "edgecolor": "none"},
        )
        counts = f"{c['pass']} pass · {c['fail']} fail · {c['not_at_optimum']} not at optimum · {c['cannot_reach']} unreachable"
        why = textwrap.shorten(c["cause"], 150, placeholder=" …") if c.get("cause") else f"({c['source']})"
        side.text(
            0.0,
            y - 0.138,
            f"{counts}\n{textwrap.fill(why, 75)}",
            fontsize=6.5,
            color="0.35",
            transform=side.transAxes,
            va="top",
        )
        y -= 0.2
    return fig
