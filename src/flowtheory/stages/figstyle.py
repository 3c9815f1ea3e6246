"""The one visual language of every figure: sizes, colours, markers, reference lines, axis limits.

Every figure (``workflow/notebooks/*.py`` through :mod:`flowtheory.stages.paperfigs`,
:mod:`flowtheory.stages.scorecard` and :mod:`flowtheory.stages.gallery`) draws with these, so that one
stabilizer, one flow family or one kind of reference line looks the same in every panel:

* **Sizes** (:data:`MAIN`, :data:`WIDE`, :data:`GALLERY`): fixed in inches and saved at a fixed dpi,
  never computed from the number of experiments, so that a figure's pixel size does not depend on
  the config (at most :data:`MAX_PX` as saved; a test checks it).
* **Colour = stabilizer kind** (:func:`color`): none grey, weight blue, Jacobian orange, noise green;
  the shade darkens with the strength λ on a fixed log scale (the same λ has the same shade in every
  figure and config).
* **Marker = flow family** (:func:`marker`): linear square, MLP circle, RealNVP triangle, zuko MAF
  diamond, zuko NSF inverted triangle.
* **Reference lines** (:func:`ref_line`, :func:`hline`, :func:`vline`, :func:`identity`): one style
  per role (:data:`REF`) and always a legend label; thresholds carry the claim they come from
  (:func:`threshold_label`), read from ``paper_map.yaml``, never typed into a notebook.
* **Robust limits** (:func:`robust_limits`, :func:`clip`): axis limits from percentiles, so that one
  outlier (an NLL of 1e14) cannot flatten a panel; what falls outside is drawn on the edge with an
  arrow-head marker (:func:`scatter`) and said in the legend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from cycler import cycler

__all__ = [
    "CLIPPED_LABEL",
    "FAMILIES",
    "FAMILY_LABELS",
    "GALLERY",
    "GALLERY_DPI",
    "KINDS",
    "KIND_LABELS",
    "KIND_SHORT",
    "MAIN",
    "MAX_PX",
    "PNG_DPI",
    "REF",
    "WIDE",
    "CHECK_DIRECTIONS",
    "SCORECARD",
    "STYLE",
    "THEME",
    "THEME_OMITS",
    "COLOR_CODES",
    "clip",
    "color",
    "direction",
    "family_handles",
    "figure",
    "finish",
    "hline",
    "identity",
    "kind_handles",
    "lam_text",
    "legend",
    "marker",
    "note",
    "ref_line",
    "robust_limits",
    "scatter",
    "seaborn_theme",
    "apply_theme",
    "print_theme",
    "threshold_label",
    "vline",
]

PNG_DPI = 130
GALLERY_DPI = 100
#: the largest a main figure may be as saved (width, height in pixels)
MAX_PX = (2400, 1600)
#: figure sizes in inches: a main figure, a wide one of two or three panels, a gallery page
MAIN = (15.0, 9.0)
WIDE = (15.0, 5.2)
GALLERY = (18.0, 12.0)
SCORECARD = (18.0, 11.0)

#: the figures' seaborn theme: ``seaborn.set_theme(**STYLE)``
STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 0.9}

#: what ``seaborn.set_theme(**STYLE)`` sets, as matplotlib rcParams that differ from matplotlib's
#: defaults (seaborn 0.13.2), applied by :func:`apply_theme`. A figure job applies these instead of
#: importing seaborn, which took most of a second of every figure job (it imports scipy.stats;
#: docs/measurements.md#figure-jobs). Written by :func:`print_theme`;
#: ``tests/stages/test_figstyle.py`` checks that it equals what seaborn sets, so a change of
#: :data:`STYLE` or of seaborn fails there. One key is left out (:data:`THEME_OMITS`): seaborn's
#: default colormap ``image.cmap`` = ``rocket`` exists only once seaborn is imported, and every
#: figure names its own colormap.
THEME: dict = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "axes.labelsize": 8.640000000000002,
    "axes.linewidth": 1.0,
    "axes.prop_cycle": cycler(
        color=[
            (0.2980392156862745, 0.4470588235294118, 0.6901960784313725),
            (0.8666666666666667, 0.5176470588235295, 0.3215686274509804),
            (0.3333333333333333, 0.6588235294117647, 0.40784313725490196),
            (0.7686274509803922, 0.3058823529411765, 0.3215686274509804),
            (0.5058823529411764, 0.4470588235294118, 0.7019607843137254),
            (0.5764705882352941, 0.47058823529411764, 0.3764705882352941),
            (0.8549019607843137, 0.5450980392156862, 0.7647058823529411),
            (0.5490196078431373, 0.5490196078431373, 0.5490196078431373),
            (0.8, 0.7254901960784313, 0.4549019607843137),
            (0.39215686274509803, 0.7098039215686275, 0.803921568627451),
        ]
    ),
    "axes.titlesize": 8.640000000000002,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 8.640000000000002,
    "grid.color": ".8",
    # 'image.cmap': 'rocket' (see THEME_OMITS)
    "legend.fontsize": 7.920000000000001,
    "legend.title_fontsize": 8.640000000000002,
    "lines.linewidth": 1.2000000000000002,
    "lines.markersize": 4.800000000000001,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.bottom": False,
    "xtick.color": ".15",
    "xtick.labelsize": 7.920000000000001,
    "xtick.major.size": 4.800000000000001,
    "xtick.major.width": 1.0,
    "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8,
    "ytick.color": ".15",
    "ytick.labelsize": 7.920000000000001,
    "ytick.left": False,
    "ytick.major.size": 4.800000000000001,
    "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2,
    "ytick.minor.width": 0.8,
}

#: the rcParams of :func:`seaborn_theme` that :data:`THEME` leaves out (see there)
THEME_OMITS = ("image.cmap",)

#: matplotlib's one-letter colour codes as ``seaborn.set_theme`` redefines them (its ``deep``
#: palette, and ``k`` a dark grey): a figure that draws in ``"k"`` draws in (0.1, 0.1, 0.1)
COLOR_CODES: dict = {
    "b": (0.2980392156862745, 0.4470588235294118, 0.6901960784313725),
    "g": (0.3333333333333333, 0.6588235294117647, 0.40784313725490196),
    "r": (0.7686274509803922, 0.3058823529411765, 0.3215686274509804),
    "m": (0.5058823529411764, 0.4470588235294118, 0.7019607843137254),
    "y": (0.8, 0.7254901960784313, 0.4549019607843137),
    "c": (0.39215686274509803, 0.7098039215686275, 0.803921568627451),
    "k": (0.1, 0.1, 0.1),
}


def apply_theme() -> None:
    """Sets :data:`THEME` and :data:`COLOR_CODES`: ``seaborn.set_theme(**STYLE)`` without importing
    seaborn."""
    import matplotlib
    import matplotlib.colors

    matplotlib.rcParams.update(THEME)
    matplotlib.colors.colorConverter.colors.update(COLOR_CODES)


def seaborn_theme(style: dict | None = None) -> tuple[dict, dict]:
    """What ``seaborn.set_theme(**style)`` changes: the rcParams that differ from matplotlib's
    defaults, and the colour codes ``bgrmyck``. Imports seaborn (for the test and
    :func:`print_theme`, not for a figure job); leaves matplotlib's state as it found it."""
    import matplotlib
    import matplotlib.colors

    codes = matplotlib.colors.colorConverter.colors
    saved = {c: codes[c] for c in "bgrmyck"}
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        before = dict(matplotlib.rcParams)
        import seaborn as sns

        sns.set_theme(**(STYLE if style is None else style))
        after = dict(matplotlib.rcParams)
        set_codes = {c: tuple(codes[c]) for c in "bgrmyck"}
    codes.update(saved)
    return {k: v for k, v in after.items() if v != before[k]}, set_codes


def print_theme() -> None:
    """Prints :func:`seaborn_theme` as the literals of :data:`THEME` and :data:`COLOR_CODES` (as
    this file has them after ``ruff format``)."""
    rc, set_codes = seaborn_theme()
    print("THEME: dict = {")
    for k, v in sorted(rc.items()):
        if k in THEME_OMITS:
            print(f"    # {k!r}: {v!r} (see THEME_OMITS)")
        elif k == "axes.prop_cycle":
            print(f"    {k!r}: cycler(color=[")
            for c in v.by_key()["color"]:
                print(f"        {tuple(c)!r},")
            print("    ]),")
        else:
            print(f"    {k!r}: {getattr(v, 'value', v)!r},")  # an enum (a cap style) as its string
    print("}")
    print("COLOR_CODES: dict = {")
    for c, v in set_codes.items():
        print(f"    {c!r}: {v!r},")
    print("}")


#: stabilizer kinds in legend order, their names and colour maps (shade by λ)
KINDS = ("none", "weight", "jacobian", "noise")
KIND_LABELS = {
    "none": "none (unregularized)",
    "weight": "weight penalty",
    "jacobian": "Jacobian penalty",
    "noise": "noise",
}
#: the same, short, for a categorical axis
KIND_SHORT = {"none": "none", "weight": "weight", "jacobian": "Jacobian", "noise": "noise"}
_KIND_CMAPS = {"weight": "Blues", "jacobian": "Oranges", "noise": "Greens"}
_NONE_COLOR = "#3a3a3a"
_OTHER_CMAP = "Purples"
#: λ range of the shade scale (log10): lighter at 1e-4, darker at 1
_LAM_LOG10 = (-4.0, 0.0)

#: flow families in legend order, their names and markers
FAMILIES = ("linear", "radial", "mlp", "realnvp", "zuko_maf", "zuko_nsf")
FAMILY_LABELS = {
    "linear": "linear",
    "radial": "radial",
    "mlp": "MLP",
    "realnvp": "RealNVP",
    "zuko_maf": "MAF (zuko)",
    "zuko_nsf": "NSF (zuko)",
}
_MARKERS = {"linear": "s", "radial": "X", "mlp": "o", "realnvp": "^", "zuko_maf": "D", "zuko_nsf": "v"}

#: one style per role of a reference line
REF = {
    "identity": {"color": "black", "ls": "-", "lw": 1.0},
    "prediction": {"color": "black", "ls": "--", "lw": 1.2},
    "threshold": {"color": "#c51b7d", "ls": "--", "lw": 1.3},
    "bound": {"color": "#762a83", "ls": "-.", "lw": 1.2},
    "chance": {"color": "0.45", "ls": ":", "lw": 1.5},
    "baseline": {"color": "#2166ac", "ls": ":", "lw": 1.3},
}
CLIPPED_LABEL = "beyond the axis (drawn on its edge)"


def _setup_rc() -> None:
    import matplotlib

    matplotlib.rcParams.update(
        {
            "figure.constrained_layout.use": True,
            "legend.fontsize": 8,
            "legend.title_fontsize": 8,
            "axes.titlesize": 10,
            "axes.titleweight": "bold",
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
        }
    )


def figure(size: tuple[float, float] = MAIN, title: str | None = None, layout: str = "constrained", **subplots):
    """A figure of a fixed size with constrained layout: ``(fig, axes)`` from ``plt.subplots`` when
    ``subplots`` are given (``nrows``, ``ncols``, ``sharey``...), else ``(fig, None)``. ``layout``
    ``"none"``: the caller places the axes itself (fixed margins, as on a gallery page: constrained
    layout measures every text twice per save, most of a page's drawing time)."""
    import matplotlib.pyplot as plt

    _setup_rc()
    if subplots:
        fig, axes = plt.subplots(figsize=size, layout=layout, **subplots)
    else:
        fig, axes = plt.figure(figsize=size, layout=layout), None
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


# ----------------------------------------------------------------------------- colour and marker


def _shade(lam: float) -> float:
    """Position in the kind's colour map: 0.4 (light, λ = 1e-4) to 0.85 (dark, λ = 1)."""
    if not lam or not math.isfinite(lam) or lam <= 0:
        return 0.65
    lo, hi = _LAM_LOG10
    v = min(max((math.log10(lam) - lo) / (hi - lo), 0.0), 1.0)
    return 0.4 + 0.45 * v


def color(kind: str, lam: float | None = None):
    """The colour of a stabilizer ``kind`` at strength ``lam`` (None: the kind's own colour, as in
    legends): one hue per kind, darker for larger λ on a fixed scale."""
    import matplotlib

    if kind == "none":
        return _NONE_COLOR
    cmap = matplotlib.colormaps[_KIND_CMAPS.get(kind, _OTHER_CMAP)]
    return cmap(0.7 if lam is None else _shade(float(lam)))


def marker(family: str) -> str:
    """The marker of a flow family (an unknown family: a plus)."""
    return _MARKERS.get(family, "P")


def lam_text(lam: float) -> str:
    """λ as written in the config's names: 1e-2, 0.1 -> 1e-1, 0 -> 0."""
    if not lam:
        return "0"
    exp = math.floor(math.log10(abs(lam)) + 1e-9)
    mant = lam / 10**exp
    return f"1e{exp}" if abs(mant - 1) < 1e-9 else f"{lam:g}"


# ----------------------------------------------------------------------------- legends


def kind_handles(kinds: Iterable[str], lams: Iterable[float] = ()) -> list:
    """Legend handles for the stabilizer kinds present (in :data:`KINDS` order), plus one line on
    the shade scale when several strengths are present."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    present = list(dict.fromkeys(kinds))
    order = [k for k in KINDS if k in present] + sorted(k for k in present if k not in KINDS)
    handles = [Patch(facecolor=color(k), edgecolor="none", label=KIND_LABELS.get(k, k)) for k in order]
    lams = sorted({float(x) for x in lams if x and np.isfinite(x) and x > 0})
    if len(lams) > 1:
        text = f"darker = larger λ ({lam_text(lams[0])} … {lam_text(lams[-1])})"
        handles.append(Line2D([], [], ls="none", label=text))
    return handles


def family_handles(families: Iterable[str]) -> list:
    """Legend handles (grey markers) for the flow families present, in :data:`FAMILIES` order."""
    from matplotlib.lines import Line2D

    present = list(dict.fromkeys(families))
    order = [f for f in FAMILIES if f in present] + sorted(f for f in present if f not in FAMILIES)
    return [
        Line2D([], [], ls="none", marker=marker(f), color="0.35", markersize=7, label=FAMILY_LABELS.get(f, f))
        for f in order
    ]


#: legend labels are wrapped at this many characters, so that a legend stays inside its panel
LEGEND_WIDTH = 46


def legend(ax, extra: list | None = None, width: int = LEGEND_WIDTH, **kw):
    """The axes' labelled artists (reference lines, clipped markers) plus ``extra`` handles, in one
    legend with labels wrapped at ``width`` characters; nothing when there is nothing to name."""
    import textwrap

    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))
    for h in extra or []:
        seen.setdefault(h.get_label(), h)
    if not seen:
        return None
    kw.setdefault("fontsize", 7)
    kw.setdefault("framealpha", 0.9)
    return ax.legend(list(seen.values()), [textwrap.fill(t, width) for t in seen], **kw)


# ----------------------------------------------------------------------------- reference lines


#: the direction in which each check of ``paper_map.yaml`` passes (measured <op> threshold)
CHECK_DIRECTIONS = {
    "max_below": "<=",
    "ratio_within": "<=",
    "noise_tikhonov": "<=",
    "spectrum_decay": "<=",
    "local_overlap": "<=",
    "stable": "<=",
    "pca": ">=",
    "diverges": ">=",
    "intrinsic_dim": "==",
    "sweep_intrinsic_dim": "==",
}
_OPS = {"<=": "≤", ">=": "≥", "==": "=", "<": "<", ">": ">"}


def direction(entry: dict | None) -> str | None:
    """A claim's direction (``<=``, ``>=`` or ``==``): its own ``direction`` where the claims stage
    writes one, else that of its check."""
    if not entry:
        return None
    return entry.get("direction") or CHECK_DIRECTIONS.get(entry.get("check", ""))


def threshold_label(entry: dict | None, value=None, unit: str = "", what: str = "threshold") -> str:
    """``"<what> of <claim id> (<direction> <value><unit>)"`` for a ``paper_map.yaml`` entry."""
    if entry is None:
        return f"{what} {value:g}{unit}" if isinstance(value, int | float) else what
    value = entry.get("threshold") if value is None else value
    op = _OPS.get(direction(entry) or "", "")
    shown = f"{value:g}" if isinstance(value, int | float) else str(value)
    return f"{what} of {entry['id']} ({(op + ' ') if op else ''}{shown}{unit})"


def open_marker(label: str):
    """The legend entry of the runs drawn as open (hollow) markers."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", marker="o", markerfacecolor="none", color="0.3", label=label)


def hline(ax, y: float, label: str, role: str = "threshold", **kw):
    """A horizontal reference line with its legend label."""
    return ax.axhline(y, label=label, **{**REF[role], **kw})


def vline(ax, x: float, label: str, role: str = "threshold", **kw):
    """A vertical reference line with its legend label."""
    return ax.axvline(x, label=label, **{**REF[role], **kw})


def ref_line(ax, x, y, label: str, role: str = "prediction", **kw):
    """A reference curve through ``(x, y)`` with its legend label."""
    return ax.plot(x, y, label=label, **{**REF[role], **kw})[0]


def identity(ax, lo: float, hi: float, label: str = "y = x", role: str = "identity"):
    """The line y = x over [lo, hi]."""
    return ref_line(ax, [lo, hi], [lo, hi], label, role)


# ----------------------------------------------------------------------------- limits


def robust_limits(
    values,
    log: bool = False,
    q: tuple[float, float] = (25.0, 75.0),
    pad: float = 0.08,
    include: Iterable[float] = (),
    whisker: float = 3.0,
) -> tuple[float, float] | None:
    """Axis limits that show the bulk of ``values`` and every value in ``include`` (reference
    lines), but not a far outlier: the range of the values inside fences ``whisker`` inter-quartile
    ranges (``q``) beyond the quartiles (in log10 when ``log``, where non-positive values are
    ignored), padded by ``pad`` of it. One NLL of 1e14 among values of order 1 is left out (and
    drawn on the edge by :func:`scatter`); a genuinely wide spread is kept. None when nothing is
    finite."""
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
    v = v[np.isfinite(v)]
    inc = np.asarray([x for x in include if x is not None], dtype=float)
    inc = inc[np.isfinite(inc)]
    if log:
        v, inc = v[v > 0], inc[inc > 0]
        v, inc = np.log10(v), np.log10(inc)
    if not len(v) and not len(inc):
        return None
    if len(v):
        lo_q, hi_q = np.percentile(v, q)
        # at least a decade on a log axis (a handful of points is not clipped for its quartiles)
        floor = 1.0 if log else 1e-3 * max(abs(hi_q), abs(lo_q), 1e-12)
        spread = max(hi_q - lo_q, floor)
        inside = v[(v >= lo_q - whisker * spread) & (v <= hi_q + whisker * spread)]
        lo, hi = float(inside.min()), float(inside.max())
    else:
        lo, hi = float(inc.min()), float(inc.max())
    if len(inc):
        lo, hi = min(lo, float(inc.min())), max(hi, float(inc.max()))
    span = hi - lo
    if span <= 0:
        span = 1.0 if log else max(abs(hi), 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    return (10**lo, 10**hi) if log else (lo, hi)


def clip(values, limits: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """``values`` clipped to ``limits`` and a mask of the clipped ones (-1 below, +1 above, 0 inside;
    a non-finite value counts as above when +inf, below when -inf, and stays NaN when NaN)."""
    v = np.asarray(values, dtype=float)
    side = np.zeros(v.shape, dtype=int)
    if limits is None:
        return v, side
    lo, hi = limits
    side[(v < lo) | (v == -np.inf)] = -1
    side[(v > hi) | (v == np.inf)] = 1
    out = v.copy()
    out[side < 0] = lo
    out[side > 0] = hi
    return out, side


def scatter(
    ax, x, y, kind: str, lam: float | None, family: str, xlim=None, ylim=None, label=None, hollow: bool = False, **kw
):
    """Points of one stabilizer kind and family, in the shared colour and marker (``hollow``: open),
    clipped to the given limits: a clipped point is drawn on the edge as an open arrow head
    (``CLIPPED_LABEL``)."""
    xv, xs = clip(x, xlim)
    yv, ys = clip(y, ylim)
    inside = (xs == 0) & (ys == 0)
    c = color(kind, lam)
    kw.setdefault("s", 36)
    kw.setdefault("zorder", 3)
    if hollow:
        kw.update(facecolor="none", edgecolor=c, linewidths=1.3)
    else:
        kw.setdefault("edgecolor", "white")
        kw.setdefault("linewidths", 0.5)
        kw["color"] = c
    ax.scatter(xv[inside], yv[inside], marker=marker(family), label=label, **kw)
    out = ~inside
    if out.any():
        heads = np.where(ys[out] > 0, "^", np.where(ys[out] < 0, "v", np.where(xs[out] > 0, ">", "<")))
        for h in np.unique(heads):
            sel = heads == h
            ax.scatter(
                xv[out][sel],
                yv[out][sel],
                marker=h,
                facecolor="none",
                edgecolor=c,
                s=kw["s"] * 1.3,
                linewidths=1.2,
                zorder=4,
                clip_on=False,
                label=CLIPPED_LABEL,
            )


def note(ax, text: str, loc: str = "center", **kw):
    """A short grey note in an axes (what is missing, what was left out); ``loc`` center or a corner."""
    places = {
        "center": (0.5, 0.5, "center", "center"),
        "upper left": (0.02, 0.98, "left", "top"),
        "upper right": (0.98, 0.98, "right", "top"),
        "lower left": (0.02, 0.02, "left", "bottom"),
        "lower right": (0.98, 0.02, "right", "bottom"),
    }
    x, y, ha, va = places[loc]
    kw.setdefault("fontsize", 8)
    kw.setdefault("color", "0.3")
    return ax.text(x, y, text, ha=ha, va=va, transform=ax.transAxes, wrap=True, **kw)


def finish(fig) -> None:
    """Last touches before saving: a log axis spanning less than two decades gets plain numbers (0.5,
    2, 3) at its ticks instead of 5 × 10⁻¹."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax in fig.axes:
        for axis, scale, lim in (
            (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
            (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
        ):
            lo, hi = sorted(lim)
            if scale == "log" and lo > 0 and math.log10(hi / lo) < 2:
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(plain if math.log10(hi / lo) < 1 else NullFormatter())
