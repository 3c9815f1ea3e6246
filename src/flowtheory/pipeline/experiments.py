"""What each experiment of a config *is*, and a small language to select experiments by it.

:func:`describe` gives every experiment its properties, as plain JSON-ready dicts (they travel to
the ``claims`` and figure rules as ``params``, so a change reruns them):

.. code-block:: yaml

    dataset:     {kind, d, intrinsic_dim, degenerate, singular_cov, noise, known_cov, manifold, cov}
                 # the data set's ground truth (flowtheory.datasets.truth)
    flow:        {family, linear}
    stabilizers: {<name>: {kind, lam}, ...}   # in config order
    experiment:  {epochs, dtype, seeds, sweep}  # sweep: two or more strengths λ > 0

**Selectors.** A claim (``applies_to`` in ``paper_map.yaml``) or a figure
(``flowtheory.pipeline.paths.NOTEBOOK_SHOWS``) picks experiments, and runs of them, by these
properties, never by name. A selector is a mapping of facets; every condition must hold:

.. code-block:: yaml

    dataset:    {<field>: <condition>, ...}   # fields above (cov excepted)
    flow:       {family: <condition>, linear: <condition>}
    experiment: {epochs: ..., dtype: ..., sweep: ...}
    stabilizers: none | any_stabilized | any | {kind: <condition>, lam: <condition>}

A condition is a value (equality; ``true``/``false`` match booleans only, numbers compare with a
relative tolerance of 1e-9), a list (any of), ``known`` / ``unknown`` (the field is / is not None),
``{min: a, max: b}`` (a ≤ value ≤ b, either bound optional) or ``{not: <condition>}``. The
``stabilizers`` facet selects the runs: ``none`` the unregularized ones, ``any_stabilized`` every
other, ``any`` (the default) all. An experiment is selected when its data set, flow and experiment
facets match and at least one of its stabilizers does. Example, the shrinkage claim::

    applies_to:
      dataset: {known_cov: true, singular_cov: false}
      flow: {linear: true}
      stabilizers: {kind: [weight, jacobian], lam: 0.1}
"""

from __future__ import annotations

import math

from flowtheory.datasets.truth import truth
from flowtheory.science.kinds import FLOW_REGISTRY

__all__ = [
    "FLOW_FAMILIES",
    "LINEAR_FAMILIES",
    "check_selector",
    "describe",
    "describe_selector",
    "matches",
    "select",
]

#: flow kind (config ``flows.<name>.kind``) -> family
FLOW_FAMILIES = {kind: facts.family for kind, facts in FLOW_REGISTRY.items()}
#: families whose flow is one affine map (the linear theory is exact)
LINEAR_FAMILIES = frozenset(facts.family for facts in FLOW_REGISTRY.values() if facts.linear)

#: the fields a selector may name, per facet
FIELDS = {
    "dataset": ("kind", "d", "intrinsic_dim", "degenerate", "singular_cov", "noise", "known_cov", "manifold"),
    "flow": ("family", "linear"),
    "experiment": ("epochs", "dtype", "sweep"),
    "stabilizers": ("kind", "lam"),
}
STABILIZER_WORDS = ("none", "any_stabilized", "any")
_RTOL = 1e-9


def describe(config: dict) -> dict[str, dict]:
    """Every experiment's properties (see the module docstring), in config order."""
    out = {}
    for name, exp in config["experiments"].items():
        flow_kind = config["flows"][exp["flow"]]["kind"]
        family = FLOW_FAMILIES[flow_kind]
        stabs = {s: config["stabilizers"][s] for s in exp["stabilizers"]}
        strengths = {float(st.get("lam", 0.0)) for st in stabs.values() if st["kind"] != "none"}
        out[name] = {
            "dataset": truth(config["data"]["datasets"][exp["dataset"]]).as_dict(),
            "flow": {"family": family, "linear": family in LINEAR_FAMILIES},
            "stabilizers": {
                s: {"kind": st["kind"], "lam": float(st.get("lam", 0.0)) if st["kind"] != "none" else 0.0}
                for s, st in stabs.items()
            },
            "experiment": {
                "epochs": exp["epochs"],
                "dtype": exp.get("dtype", "float64"),
                "seeds": list(exp.get("seeds", config["seeds"])),
                "sweep": len(strengths) >= 2,
            },
        }
    return out


def _equal(value, want) -> bool:
    if isinstance(want, bool) or isinstance(value, bool):
        return value is want
    if isinstance(want, int | float) and isinstance(value, int | float):
        return math.isclose(value, want, rel_tol=_RTOL, abs_tol=0.0)
    return value == want


def matches(value, cond) -> bool:
    """Whether a property value satisfies a condition (grammar in the module docstring)."""
    if isinstance(cond, list):
        return any(matches(value, c) for c in cond)
    if isinstance(cond, dict):
        if "not" in cond:
            return not matches(value, cond["not"])
        if value is None or isinstance(value, bool | str):
            return False
        return ("min" not in cond or value >= cond["min"]) and ("max" not in cond or value <= cond["max"])
    if cond == "known":
        return value is not None
    if cond == "unknown":
        return value is None
    return _equal(value, cond)


def _check_condition(cond, where: str) -> None:
    if isinstance(cond, list):
        if not cond:
            raise ValueError(f"{where}: an empty list matches nothing")
        for c in cond:
            _check_condition(c, where)
    elif isinstance(cond, dict):
        keys = set(cond)
        if keys == {"not"}:
            _check_condition(cond["not"], where)
        elif not keys or not keys <= {"min", "max"}:
            raise ValueError(f"{where}: a mapping condition is {{min, max}} or {{not}}, got {sorted(keys)}")
        elif any(isinstance(cond[k], bool) or not isinstance(cond[k], int | float) for k in keys):
            raise ValueError(f"{where}: min and max must be numbers, got {cond}")
    elif cond is None:
        raise ValueError(f"{where}: use `unknown` to select a missing value, not null")


def check_selector(selector: dict, where: str = "selector") -> None:
    """Raises ValueError naming ``where`` and the field for a selector outside the grammar (a
    typo would otherwise silently select nothing)."""
    if not isinstance(selector, dict):
        raise ValueError(f"{where}: a selector is a mapping of facets {list(FIELDS)}, got {selector!r}")
    for facet, conds in selector.items():
        if facet not in FIELDS:
            raise ValueError(f"{where}: unknown facet {facet!r}; expected one of {list(FIELDS)}")
        if facet == "stabilizers" and isinstance(conds, str):
            if conds not in STABILIZER_WORDS:
                raise ValueError(f"{where}.stabilizers: {conds!r} is not one of {list(STABILIZER_WORDS)} or a mapping")
            continue
        if not isinstance(conds, dict) or not conds:
            raise ValueError(f"{where}.{facet}: expected a mapping of conditions, got {conds!r}")
        for field, cond in conds.items():
            if field not in FIELDS[facet]:
                raise ValueError(f"{where}.{facet}: unknown field {field!r}; expected one of {list(FIELDS[facet])}")
            _check_condition(cond, f"{where}.{facet}.{field}")


def _facet_matches(props: dict, conds: dict) -> bool:
    return all(matches(props.get(field), cond) for field, cond in conds.items())


def _stabilizer_matches(stab: dict, conds) -> bool:
    if conds == "any":
        return True
    if conds == "none":
        return stab["kind"] == "none"
    if conds == "any_stabilized":
        return stab["kind"] != "none"
    return _facet_matches(stab, conds)


def select(table: dict[str, dict], selector: dict | None) -> dict[str, list[str]]:
    """The experiments of ``table`` (:func:`describe`) that ``selector`` picks, each with its
    selected stabilizers, in config order; ``None`` selects everything."""
    selector = selector or {}
    check_selector(selector)
    out = {}
    for name, props in table.items():
        if not all(_facet_matches(props[f], selector[f]) for f in ("dataset", "flow", "experiment") if f in selector):
            continue
        stabs = [
            s for s, st in props["stabilizers"].items() if _stabilizer_matches(st, selector.get("stabilizers", "any"))
        ]
        if stabs:
            out[name] = stabs
    return out


def _condition_text(cond) -> str:
    if isinstance(cond, list):
        return " or ".join(_condition_text(c) for c in cond)
    if isinstance(cond, dict):
        if "not" in cond:
            return f"not {_condition_text(cond['not'])}"
        return " and ".join(f"{'≥' if k == 'min' else '≤'} {v:g}" for k, v in cond.items())
    if isinstance(cond, bool):
        return str(cond).lower()
    return f"{cond:g}" if isinstance(cond, float) else str(cond)


def describe_selector(selector: dict | None) -> str:
    """A selector in one line of words, e.g. ``dataset known_cov = true; flow linear = true; runs: none``."""
    parts = []
    for facet, conds in (selector or {}).items():
        if facet == "stabilizers":
            text = conds if isinstance(conds, str) else ", ".join(f"{k} {_condition_text(v)}" for k, v in conds.items())
            parts.append(f"runs: {text}")
        else:
            parts.append(f"{facet} " + ", ".join(f"{k} = {_condition_text(v)}" for k, v in conds.items()))
    return "; ".join(parts) or "every experiment"
