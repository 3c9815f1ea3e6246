"""The chaos measurement as the claims read it (``results/chaos.json``, written by ``python -m
bench.chaos`` through :mod:`flowtheory.pipeline.verify`, which documents its format): the document
itself, its fragile verdicts, and which experiments it still speaks for.

A small module on purpose: the claims rule declares it, and the train jobs do not, so what the claims
need from a chaos measurement changes no training run."""

from __future__ import annotations

import json
import math
from pathlib import Path

from flowtheory.pipeline.config import digest

__all__ = [
    "CHAOS_FORMAT",
    "experiment_digests",
    "fragile_verdicts",
    "load_chaos",
    "merge_measurement",
    "merge_replicas",
    "restrict_to_unchanged",
    "same_settings",
    "summary_digests",
]

CHAOS_FORMAT = "flowtheory-chaos/1"


def experiment_digests(config: dict) -> dict[str, str]:
    """Per experiment, a digest of what its results depend on: the config with ``experiments``,
    ``data.datasets``, ``flows`` and ``stabilizers`` cut down to that experiment, its dataset, its
    flow and its stabilizers (every other section stays, so a change there moves every digest). A
    chaos measurement's fragile verdicts of an experiment stay valid while its digest is the one
    measured: adding or editing another experiment does not void them
    (:func:`flowtheory.stages.claims.write_claims`)."""
    out = {}
    for name, exp in config["experiments"].items():
        own = {
            **config,
            "experiments": {name: exp},
            "data": {**config["data"], "datasets": {exp["dataset"]: config["data"]["datasets"][exp["dataset"]]}},
            "flows": {exp["flow"]: config["flows"][exp["flow"]]},
            "stabilizers": {s: config["stabilizers"][s] for s in exp["stabilizers"]},
        }
        out[name] = digest(own)
    return out


def load_chaos(source: str | Path | bytes | dict | None) -> dict | None:
    """A chaos document (``results/chaos.json``) from a path, its bytes or itself; None when absent.
    Raises ValueError for a file that is not one."""
    if source is None or isinstance(source, dict):
        doc = source
    else:
        data = source if isinstance(source, bytes) else (Path(source).read_bytes() if Path(source).is_file() else None)
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise ValueError(f"chaos file is not JSON: {e}") from None
    if doc is not None and (not isinstance(doc, dict) or doc.get("format") != CHAOS_FORMAT):
        raise ValueError(f"not a chaos file (expected format {CHAOS_FORMAT!r})")
    return doc


def fragile_verdicts(chaos: dict | str | Path | None) -> set[tuple[str, str | None]]:
    """The (claim id, experiment) verdicts a round-off perturbation flipped (experiment None: the
    claim's overall verdict); empty without a chaos file. The hook for ``results/claims.md``::

        from flowtheory.pipeline.chaos import fragile_verdicts, load_chaos
        fragile = fragile_verdicts(load_chaos(CHAOS_JSON))  # mark these claim x experiment cells
    """
    doc = load_chaos(chaos)
    if not doc:
        return set()
    return {(f["claim"], f.get("experiment")) for f in doc.get("fragile", []) if f.get("claim") is not None}


def same_settings(doc: dict, config_digest: str | None, digests: dict[str, str]) -> set[str]:
    """The experiments (of ``digests``, :func:`experiment_digests` of the config at hand) whose
    settings are those the chaos document was measured on: all of them when the whole config is the
    measured one (``config_digest``), else each whose own digest is unchanged. Settings, not
    results: which verdicts round-off can flip is a property of a config's runs, on any machine."""
    if config_digest is not None and doc.get("config_digest") == config_digest:
        return set(digests)
    measured = doc.get("experiment_digests") or {}
    return {e for e, d in digests.items() if d is not None and measured.get(e) == d}


def summary_digests(train_summary: bytes | dict | None) -> dict[str, str]:
    """Per experiment, a digest of its entry in ``metrics/train.json`` (canonical JSON): which
    experiments' committed results a chaos measurement was taken on (its ``measured_on_experiments``)."""
    doc = json.loads(train_summary) if isinstance(train_summary, bytes) else train_summary
    return {e: digest(v) for e, v in (doc or {}).items()}


def restrict_to_unchanged(doc: dict, train_summary: bytes | dict | None) -> tuple[dict, list[str]]:
    """A chaos document cut down to the experiments whose committed training results are those it
    was measured on (``measured_on_experiments`` against ``train_summary``, the committed
    ``metrics/train.json``), and the experiments it still speaks for. Dropped experiments (changed
    since, or new) fall back to the round-off tier. Its ``other`` record (values that name no
    experiment: a claim's overall numbers) and the claim-level fragile verdicts are kept only while
    every experiment it measured chaotic is kept: they move with those experiments' runs."""
    measured = doc.get("measured_on_experiments") or {}
    now = summary_digests(train_summary)
    kept = sorted(e for e in doc.get("experiments", {}) if e in measured and measured[e] == now.get(e))
    chaotic = [e for e, r in doc.get("experiments", {}).items() if r.get("class") == "chaotic"]
    keep_other = all(e in kept for e in chaotic)
    out = {
        **doc,
        "experiments": {e: r for e, r in doc.get("experiments", {}).items() if e in kept},
        "other": doc.get("other") if keep_other else None,
        "fragile": [
            f
            for f in doc.get("fragile", [])
            if (f.get("experiment") in kept) or (f.get("experiment") is None and keep_other)
        ],
    }
    return out, kept


def merge_measurement(old: dict, new: dict, experiments: list[str]) -> dict:
    """A measurement of ``experiments`` alone merged into ``old``, the measurement of the rest
    (``python -m bench.chaos --experiments``: after adding or retraining a few experiments, their
    replicas retrain only them, with every other experiment's results copied from the original,
    unperturbed). ``new`` is the chaos document of those replicas, so its records of the other
    experiments say nothing (their results were copies) and are not taken. Taken from ``new``: the
    records, fragile verdicts and digests of ``experiments``, its claim-level fragile verdicts
    (flipped by perturbing ``experiments`` alone, so a lower bound, added to those of ``old``) and
    its ``other`` spreads (the larger of the two per key). The merged document speaks for the whole
    config (``config_digest``, ``measured_on``) only when every experiment of ``new``'s config has a
    record measured on its current settings and results; else each experiment stands on its own
    digests, as after any edit (:func:`same_settings`, :func:`restrict_to_unchanged`). The parts are
    listed in ``parts``. Raises ValueError when the two were not measured with the same
    perturbations, or an experiment is not in ``new``."""
    if old.get("format") != CHAOS_FORMAT or new.get("format") != CHAOS_FORMAT:
        raise ValueError(f"not chaos documents (expected format {CHAOS_FORMAT!r})")
    if old.get("perturbations") != new.get("perturbations"):
        raise ValueError(
            f"measured with other perturbations ({new.get('perturbations')} against {old.get('perturbations')}): "
            "a partial measurement must use the same ones"
        )
    chosen = set(experiments)
    missing = sorted(chosen - set(new.get("experiments", {})))
    if missing:
        raise ValueError(f"not measured: {', '.join(missing)}")
    records = {e: r for e, r in old.get("experiments", {}).items() if e not in chosen}
    records.update({e: new["experiments"][e] for e in chosen})
    records = dict(sorted(records.items()))

    def own(doc: dict, key: str, keep: bool) -> dict:
        return {e: d for e, d in (doc.get(key) or {}).items() if (e in chosen) == keep}

    measured_on = {**own(old, "measured_on_experiments", False), **own(new, "measured_on_experiments", True)}
    settings = {**own(old, "experiment_digests", False), **own(new, "experiment_digests", True)}
    now_results, now_settings = new.get("measured_on_experiments") or {}, new.get("experiment_digests") or {}
    whole = bool(now_settings) and all(
        e in records and settings.get(e) == d and measured_on.get(e) == now_results.get(e)
        for e, d in now_settings.items()
    )
    fragile: dict[tuple[str, str], dict] = {}
    for f in old.get("fragile", []):
        if f.get("experiment") not in chosen:
            fragile[(f["file"], f["where"])] = dict(f)
    for f in new.get("fragile", []):
        if f.get("experiment") is not None and f.get("experiment") not in chosen:
            continue
        _add_flip(fragile, f, ordered=False)
    chaotic = [e for e, r in records.items() if r.get("class") == "chaotic"]
    parts = list(old.get("parts") or [{"experiments": sorted(old.get("experiments", {})), "replicas": "whole config"}])
    parts.append({"experiments": sorted(chosen), "replicas": "these experiments retrained, the others' results copied"})
    return {
        **old,
        "measured_on": new.get("measured_on") if whole else old.get("measured_on"),
        "measured_on_experiments": dict(sorted(measured_on.items())),
        "config_digest": new.get("config_digest") if whole else None,
        "experiment_digests": dict(sorted(settings.items())),
        "compared": sorted(set(old.get("compared", [])) | set(new.get("compared", []))),
        "parts": parts,
        "summary": {
            "stable": [e for e in records if e not in chaotic],
            "chaotic": chaotic,
            "fragile": len(fragile),
        },
        "experiments": records,
        "other": _merge_other(old.get("other"), new.get("other")),
        "fragile": [fragile[k] for k in sorted(fragile)],
    }


def merge_replicas(old: dict, new: dict, merged: bool = False) -> dict:
    """A measurement of the same committed results with more perturbations: ``new``'s replicas, run
    on the whole config, added to ``old``'s (``python -m bench.chaos --add``), or, with ``merged``,
    measurements run separately, side by side or on other machines, merged (``--merge``). Either way
    each part of the result names its experiments and perturbations. What a single
    measurement of all the replicas would have written: over replicas a key's spread is the largest,
    a run or experiment is chaotic when one replica says so, and a verdict is fragile when one
    replica flipped it (each replica's own value kept). Raises ValueError when the two were not
    measured on the same results and config, a perturbation is in both, or ``new`` is a partial
    measurement."""
    if old.get("format") != CHAOS_FORMAT or new.get("format") != CHAOS_FORMAT:
        raise ValueError(f"not chaos documents (expected format {CHAOS_FORMAT!r})")
    for key in ("measured_on", "measured_on_experiments", "config_digest"):
        if old.get(key) != new.get(key):
            raise ValueError(f"measured on other results or another config ({key} differs): measure all replicas again")
    if new.get("parts"):
        raise ValueError("the added replicas must be a whole-config measurement, not a merged one")
    both = sorted(set(old.get("perturbations", [])) & set(new.get("perturbations", [])))
    if both:
        raise ValueError(f"already measured: {', '.join(both)}")
    records = {}
    for e in sorted(set(old.get("experiments", {})) | set(new.get("experiments", {}))):
        a, b = old.get("experiments", {}).get(e), new.get("experiments", {}).get(e)
        records[e] = _merge_record(a, b) if a and b else (a or b)
    fragile = {(f["file"], f["where"]): {**f, "flipped_by": list(f["flipped_by"])} for f in old.get("fragile", [])}
    for f in new.get("fragile", []):
        _add_flip(fragile, f, ordered=True)
    chaotic = [e for e, r in records.items() if r.get("class") == "chaotic"]
    how = "whole config, run separately, merged" if merged else "whole config, added"
    first = {
        "experiments": sorted(old.get("experiments", {})),
        "replicas": how if merged else "whole config",
        "perturbations": list(old.get("perturbations", [])),
    }
    parts = list(old.get("parts") or [first])
    parts.append(
        {
            "experiments": sorted(new.get("experiments", {})),
            "replicas": how,
            "perturbations": list(new.get("perturbations", [])),
        }
    )
    return {
        **old,
        "perturbations": list(old.get("perturbations", [])) + list(new.get("perturbations", [])),
        "compared": sorted(set(old.get("compared", [])) | set(new.get("compared", []))),
        "parts": parts,
        "summary": {"stable": [e for e in records if e not in chaotic], "chaotic": chaotic, "fragile": len(fragile)},
        "experiments": records,
        "other": _merge_other(old.get("other"), new.get("other")),
        "fragile": [fragile[k] for k in sorted(fragile)],
    }


def _add_flip(fragile: dict[tuple[str, str], dict], f: dict, ordered: bool) -> None:
    """One fragile record ``f`` into ``fragile`` (keyed by file and place): a verdict flipped again
    gains the new replicas (``flipped_by``: in replica order when ``ordered``, else sorted) and each
    one's own value (``replicas``, where the records carry them)."""
    key = (f["file"], f["where"])
    if key not in fragile:
        fragile[key] = dict(f)
        return
    known = fragile[key]
    added = [p for p in f["flipped_by"] if p not in known["flipped_by"]]
    known["flipped_by"] = known["flipped_by"] + added if ordered else sorted({*known["flipped_by"], *added})
    if "replicas" in f or "replicas" in known:
        known["replicas"] = {**known.get("replicas", {}), **f.get("replicas", {})}


def _merge_record(a: dict, b: dict) -> dict:
    """Two measurements of one experiment (other replicas): :func:`_merge_other`, and per run
    chaotic when either is, with the larger of the two largest changes (None: not finite)."""
    out = _merge_other(a, b)
    runs = {}
    for run in sorted(set(a.get("runs", {})) | set(b.get("runs", {}))):
        ra, rb = a.get("runs", {}).get(run), b.get("runs", {}).get(run)
        if not ra or not rb or ra.get("class") != "chaotic" or rb.get("class") != "chaotic":
            runs[run] = next((r for r in (ra, rb) if r and r.get("class") == "chaotic"), ra or rb)
            continue
        size = [math.inf if r["largest"][0] is None else r["largest"][0] for r in (ra, rb)]
        runs[run] = ra if size[0] >= size[1] else rb
    return {**out, "runs": runs}


def _merge_other(a: dict | None, b: dict | None) -> dict | None:
    """Two measurements of the values that name no experiment: chaotic when either is, each key's
    spread the larger, the changed keys of both."""
    if not a or not b:
        return a or b
    if a.get("class") != "chaotic" and b.get("class") != "chaotic":
        return {**a, "largest_round_off": max(a.get("largest_round_off") or 0, b.get("largest_round_off") or 0)}
    spread = dict(a.get("spread") or {})
    for k, v in (b.get("spread") or {}).items():
        # None is a spread that was not finite: the larger of any two
        spread[k] = v if k not in spread else (None if v is None or spread[k] is None else max(spread[k], v))
    out = {k: v for k, v in a.items() if k != "largest_round_off"}
    out.update(
        {
            "class": "chaotic",
            "numbers": max(a.get("numbers", 0), b.get("numbers", 0)),
            "beyond_round_off": max(a.get("beyond_round_off", 0), b.get("beyond_round_off", 0)),
            "spread": dict(sorted(spread.items())),
            "changed": sorted(set(a.get("changed") or []) | set(b.get("changed") or [])),
        }
    )
    return out
