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
#: the conclusions in order of strength, with their colours
CONCLUSIONS = {
    "reproduces": "#1a9850",
    "within stated limits": "#d9a400",
    "does not reproduce": "#d73027",
    "not tested in this config": "#9e9e9e",
}
#: cell categories: (legend text, fill, hatch)
CATEGORIES = {
    "pass": ("pass (shade: margin)", None, None),
    "fail": ("fail (shade: margin)", None, None),
    "not_at_optimum": ("not at the optimum (training stopped short)", "#f6e8c3", "///"),
    "cannot_reach": ("the flow cannot reach the optimum", "#d8daeb", "xxx"),
    "not_run": ("not run (summary lacks the runs)", "#bdbdbd", None),
    "na": ("N/A for this experiment", "#f0f0f0", None),
    "blank": ("check does not apply", "white", None),
}
_UNREACHABLE = {"CANNOT_REACH", "UNREACHABLE", "NOT_REACHABLE", "FLOW_CANNOT_REACH", "CANNOT_REACH_OPTIMUM"}


def load(path) -> tuple[list[dict], dict]:
    """``results/claims.json`` as (claim records, conclusions by paper claim number); both empty when
    the file is absent or unreadable. Accepts the list the claims stage writes today and a mapping
    with ``claims`` (or ``records``) and ``conclusions``."""
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
        text = value.get("conclusion") if isinstance(value, dict) else value
        if text:
            found[n] = {"conclusion": str(text), "source": "claims.json"}
    for r in records:
        if r.get("conclusion") and r.get("paper_claim") is not None:
            found.setdefault(int(r["paper_claim"]), {"conclusion": str(r["conclusion"]), "source": "claims.json"})
    return [r for r in records if isinstance(r, dict) and "id" in r], found


def _verdict(res: dict) -> str:
    return str(res.get("verdict", "")).strip().upper().replace(" ", "_").replace("-", "_")


def category(res: dict | None) -> str:
    """The cell category of one claim × experiment result (:data:`CATEGORIES`)."""
    if res is None:
        return "blank"
    v = _verdict(res)
    reason = " ".join(str(res.get(k, "")) for k in ("note", "reason", "gap_kind")).lower()
    if v in _UNREACHABLE or res.get("reachable") is False or "cannot reach" in reason or "unreachable" in reason:
        return "cannot_reach"
    if v == "NOT_AT_OPTIMUM":
        return "not_at_optimum"
    if v == "PASS":
        return "pass"
    if v == "FAIL":
        return "fail"
    if v in ("NOT_RUN", "NOTRUN"):
        return "not_run"
    return "na"


def margin(res: dict, record: dict, entry: dict | None = None) -> float:
    """The result's margin in its check's direction: the claims stage's own ``margin`` when it writes
    one, else (threshold − measured)/|threshold| for ``<=`` and (measured − threshold)/|threshold| for
    ``>=`` (positive passes; for a threshold in (0.5, 1) on a quantity bounded by 1, such as a
    correlation, the same on the distances to 1); ±1 for an equality check; NaN when unknown."""
    if isinstance(res.get("margin"), int | float) and not isinstance(res.get("margin"), bool):
        return float(res["margin"])
    direction = res.get("direction") or record.get("direction") or fs.direction(entry)
    measured, thr = res.get("measured"), res.get("threshold")
    if direction == "==" or not isinstance(thr, int | float) or isinstance(thr, bool):
        return {"pass": 1.0, "fail": -1.0}.get(category(res), math.nan)
    if not isinstance(measured, int | float) or measured is None or math.isnan(float(measured)):
        return math.nan
    measured, thr = float(measured), float(thr)
    scale = abs(thr) if thr else 1.0
    if direction == ">=" and 0.5 < thr < 1 and measured <= 1:
        # a threshold near 1 on a quantity bounded by 1 (a correlation): the distance to 1 counts
        return ((1 - thr) - (1 - measured)) / (1 - thr)
    if direction == ">=":
        return (measured - thr) / scale
    if direction == "<=":
        return (thr - measured) / scale
    return math.nan


def conclusions(records: list[dict], given: dict[int, dict]) -> list[dict]:
    """One row per paper claim (1 to 5): its conclusion (from ``claims.json`` where it has one, else
    derived: any failing check → does not reproduce; any not at the optimum, unreachable or not run →
    within stated limits; all passing → reproduces; no applicable check → not tested) and the counts
    of its verdicts."""
    out = []
    for n, statement in PAPER_CLAIMS.items():
        cats = [
            category(res) for r in records if r.get("paper_claim") == n for res in (r.get("experiments") or {}).values()
        ]
        counts = {c: cats.count(c) for c in ("pass", "fail", "not_at_optimum", "cannot_reach", "not_run", "na")}
        if n in given:
            text, source = given[n]["conclusion"], "claims.json"
        elif not any(counts[c] for c in ("pass", "fail", "not_at_optimum", "cannot_reach", "not_run")):
            text, source = "not tested in this config", "derived from the verdicts"
        elif counts["fail"]:
            text, source = "does not reproduce", "derived from the verdicts"
        elif counts["not_at_optimum"] or counts["cannot_reach"] or counts["not_run"]:
            text, source = "within stated limits", "derived from the verdicts"
        else:
            text, source = "reproduces", "derived from the verdicts"
        out.append({"claim": n, "statement": statement, "conclusion": text, "source": source, **counts})
    return out


def conclusions_table(records: list[dict], given: dict[int, dict]) -> pd.DataFrame:
    """:func:`conclusions` as the table the report's front page includes."""
    rows = conclusions(records, given)
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


def draw(records: list[dict], given: dict[int, dict], experiments: list[str], pm: dict):
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
                    if abs(m) >= 10 and math.isfinite(m):
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
    for c in conclusions(records, given):
        colour = CONCLUSIONS.get(c["conclusion"], "#555555")
        side.text(0.0, y, f"Claim {c['claim']}", fontsize=9, fontweight="bold", transform=side.transAxes, va="top")
        side.text(0.0, y - 0.035, textwrap.fill(c["statement"], 52), fontsize=7.5, transform=side.transAxes, va="top")
        side.text(
            0.0,
            y - 0.105,
            f" {c['conclusion']} ",
            fontsize=9,
            fontweight="bold",
            color="white",
            transform=side.transAxes,
            va="top",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": colour, "edgecolor": "none"},
        )
        counts = f"{c['pass']} pass · {c['fail']} fail · {c['not_at_optimum']} not at optimum · {c['cannot_reach']} unreachable"
        side.text(
            0.0, y - 0.15, f"{counts}\n({c['source']})", fontsize=6.5, color="0.35", transform=side.transAxes, va="top"
        )
        y -= 0.195
    return fig
