"""Experiment properties and the selector language (src/flowtheory/pipeline/experiments.py): what
:func:`describe` says about each experiment, each rule of the condition grammar, the selector
checks, and which experiments the claims of paper_map.yaml select in the two shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowtheory.pipeline.config import load
from flowtheory.pipeline.experiments import check_selector, describe, describe_selector, matches, select
from flowtheory.stages.claims import load_paper_map

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper():
    return describe(load(ROOT / "config" / "config.yaml"))


@pytest.fixture(scope="module")
def ci():
    return describe(load(ROOT / "config" / "ci.yaml"))


def test_describe_gives_every_property(paper):
    g, s, m = paper["gaussian_linear"], paper["scurve_mlp"], paper["mnist_mlp"]
    assert g["dataset"]["kind"] == "gaussian" and g["dataset"]["known_cov"] and not g["dataset"]["degenerate"]
    assert g["flow"] == {"family": "linear", "linear": True}
    assert g["stabilizers"]["weight_1e-1"] == {"kind": "weight", "lam": 0.1}
    assert g["stabilizers"]["none"] == {"kind": "none", "lam": 0.0}
    assert s["dataset"]["intrinsic_dim"] == 2 and s["dataset"]["degenerate"] and s["dataset"]["manifold"]
    assert s["flow"] == {"family": "mlp", "linear": False}
    assert s["experiment"] == {"epochs": 1000, "dtype": "float64", "seeds": [0, 1, 2], "sweep": False}
    assert m["experiment"]["dtype"] == "float64" and m["experiment"]["seeds"] == [0]
    assert m["dataset"]["kind"] == "mnist" and m["dataset"]["d"] == 196 and m["dataset"]["singular_cov"]
    assert m["stabilizers"]["jacobian_hutch_1e-2"] == {"kind": "jacobian", "lam": 0.01}
    assert paper["scurve_sweep"]["experiment"]["sweep"] and not paper["gaussian_linear"]["experiment"]["sweep"]
    assert list(paper) == list(load(ROOT / "config" / "config.yaml")["experiments"]), "config order"


@pytest.mark.parametrize(
    "value,cond,expected",
    [
        (2, 2, True),
        (2, 3, False),
        (0.1, 0.1 * (1 + 1e-12), True),  # numbers compare with a relative tolerance
        (0.1, 0.1001, False),
        (True, True, True),
        (1, True, False),  # booleans match booleans only
        (True, 1, False),
        ("scurve", "scurve", True),
        ("scurve", ["line", "scurve"], True),
        ("circle", ["line", "scurve"], False),
        (None, "known", False),
        (2, "known", True),
        (None, "unknown", True),
        (0.01, {"max": 0.01}, True),
        (0.1, {"max": 0.01}, False),
        (0.1, {"min": 0.1, "max": 1}, True),
        (None, {"min": 0}, False),
        ("scurve", {"not": "scurve"}, False),
        ("line", {"not": ["scurve", "circle"]}, True),
    ],
)
def test_condition_grammar(value, cond, expected):
    assert matches(value, cond) is expected


@pytest.mark.parametrize(
    "selector,words",
    [
        ({"data": {"kind": "line"}}, ["unknown facet 'data'"]),
        ({"dataset": {"intrinsic": 2}}, ["selector.dataset", "unknown field 'intrinsic'"]),
        ({"dataset": {"name": "line"}}, ["unknown field 'name'"]),  # no names
        ({"flow": {"linear": None}}, ["selector.flow.linear", "unknown"]),
        ({"flow": {}}, ["selector.flow", "expected a mapping of conditions"]),
        ({"dataset": {"d": {"between": [1, 2]}}}, ["{min, max} or {not}"]),
        ({"dataset": {"d": {"min": "two"}}}, ["min and max must be numbers"]),
        ({"dataset": {"kind": []}}, ["an empty list matches nothing"]),
        ({"stabilizers": "stabilized"}, ["'stabilized' is not one of"]),
        ({"stabilizers": {"strength": 0.1}}, ["unknown field 'strength'"]),
        ("dataset", ["a selector is a mapping"]),
    ],
)
def test_malformed_selectors_are_refused(selector, words):
    with pytest.raises(ValueError) as err:
        check_selector(selector)
    for w in words:
        assert w in str(err.value)


def test_select_by_facets_and_stabilizers(ci):
    assert select(ci, {"dataset": {"known_cov": True}, "stabilizers": "none"}) == {"gaussian_linear": ["none"]}
    assert select(ci, {"flow": {"linear": True}, "stabilizers": {"kind": "noise"}}) == {
        "gaussian_linear": ["noise_1e-1"],
        "line_linear": ["noise_1e-1"],
    }
    # an experiment without a selected run is not selected (circle_mlp has no unregularized run)
    assert "circle_mlp" not in select(ci, {"dataset": {"kind": "circle"}, "stabilizers": "none"})
    assert select(ci, {"dataset": {"kind": "circle"}, "stabilizers": "any_stabilized"}) == {
        "circle_mlp": ["jacobian_1e-2"]
    }
    assert select(ci, {"stabilizers": {"kind": "jacobian", "lam": {"min": 0.05}}}) == {
        "gaussian_linear": ["jacobian_1e-1"],
        "scurve_sweep": ["jacobian_1e-1"],
        "scurve_realnvp_sweep": ["jacobian_1e-1"],
    }
    assert select(ci, {"experiment": {"sweep": True}}) == {
        "scurve_sweep": ["jacobian_1e-3", "jacobian_1e-2", "noise_1e-2", "jacobian_1e-1"],
        "scurve_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
    }
    assert select(ci, {"dataset": {"kind": "sphere"}}) == {}
    assert list(select(ci, None)) == list(ci), "no selector: everything, in config order"


def test_describe_selector_in_words():
    text = describe_selector(
        {
            "dataset": {"known_cov": True, "kind": {"not": "scurve"}},
            "stabilizers": {"kind": ["weight", "jacobian"], "lam": {"max": 0.01}},
        }
    )
    assert text == "dataset known_cov = true, kind = not scurve; runs: kind weight or jacobian, lam ≤ 0.01"
    assert describe_selector(None) == "every experiment"


#: which experiments (and runs) each claim applies to in config/config.yaml: the claims follow the
#: experiments' properties, so a renamed experiment keeps its verdicts and a new one of the same
#: kind gains them
PAPER_SCOPE = {
    "linear_whitening": {"gaussian_linear": ["none"]},
    "linear_components_pca": {"gaussian_linear": ["none"]},
    "shrinkage_closed_form": {"gaussian_linear": ["weight_1e-1", "jacobian_1e-1"]},
    "linear_singular_illposed": {"line_linear": ["none"], "mnist_linear": ["none"]},
    "manifold_unregularized_illposed": {
        "scurve_mlp": ["none"],
        "circle_mlp": ["none"],
        "swissroll_mlp": ["none"],
        "scurve_realnvp": ["none"],
        "circle_realnvp": ["none"],
        "swissroll_realnvp": ["none"],
        "sphere_realnvp": ["none"],
        "sheet8_realnvp": ["none"],
        "sphere_mlp": ["none"],
        "sheet8_mlp": ["none"],
        "scurve_nsf": ["none"],
        "swissroll_nsf": ["none"],
        "circle_nsf_none": ["none"],
        "sphere_nsf_none": ["none"],
        "sphere_realnvp_none": ["none"],
        "sphere_radial_none": ["none"],
    },
    "regularized_stable_weight": {
        "line_linear": ["weight_1e-1"],
        "scurve_mlp": ["weight_1e-2"],
        "mnist_mlp": ["weight_1e-2"],
        "mnist_linear": ["weight_1e-3"],
    },
    "regularized_stable_jacobian": {
        "scurve_mlp": ["jacobian_1e-2"],
        "circle_mlp": ["jacobian_1e-2"],
        "swissroll_mlp": ["jacobian_1e-2"],
        "scurve_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "scurve_realnvp": ["jacobian_1e-2"],
        "circle_realnvp": ["jacobian_1e-2"],
        "swissroll_realnvp": ["jacobian_1e-2"],
        "sphere_realnvp": ["jacobian_1e-2"],
        "sheet8_realnvp": ["jacobian_1e-2"],
        "scurve_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "circle_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "swissroll_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sphere_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sheet8_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sphere_mlp": ["jacobian_1e-2"],
        "sheet8_mlp": ["jacobian_1e-2"],
        "mnist_mlp": ["jacobian_hutch_1e-2"],
        "mnist_linear": ["jacobian_1e-3"],
    },
    "regularized_stable_noise": {
        "line_linear": ["noise_1e-1"],
        "scurve_mlp": ["noise_1e-2"],
        "scurve_sweep": ["noise_1e-3", "noise_1e-2", "noise_1e-1"],
        "scurve_realnvp": ["noise_1e-2"],
        "circle_realnvp": ["noise_1e-2"],
        "swissroll_realnvp": ["noise_1e-2"],
        "sphere_realnvp": ["noise_1e-2"],
        "sheet8_realnvp": ["noise_1e-2"],
        "sphere_mlp": ["noise_1e-2"],
        "sheet8_mlp": ["noise_1e-2"],
        "scurve_nsf": ["noise_1e-2"],
        "swissroll_nsf": ["noise_1e-2"],
        "circle_nsf": ["noise_1e-2"],
        "sphere_nsf": ["noise_1e-2"],
        "sheet8_nsf": ["noise_1e-2"],
        "mnist_mlp": ["noise_1e-2"],
        "mnist_linear": ["noise_1e-3"],
        "scurve_nsf_sweep": ["noise_1e-3", "noise_1e-2", "noise_1e-1"],
    },
    "noise_equals_tikhonov": {"gaussian_linear": ["noise_1e-1"]},
    "intrinsic_dimension_manifolds": {
        "scurve_mlp": ["weight_1e-2", "jacobian_1e-2", "noise_1e-2"],
        "circle_mlp": ["jacobian_1e-2"],
        "swissroll_mlp": ["jacobian_1e-2"],
        "scurve_sweep": ["jacobian_1e-3", "jacobian_1e-2", "noise_1e-3", "noise_1e-2"],
        "scurve_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "circle_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "swissroll_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "sphere_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "sheet8_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "scurve_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2"],
        "circle_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2"],
        "swissroll_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2"],
        "sphere_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2"],
        "sheet8_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2"],
        "sphere_mlp": ["jacobian_1e-2", "noise_1e-2"],
        "sheet8_mlp": ["jacobian_1e-2", "noise_1e-2"],
        "scurve_nsf": ["noise_1e-2"],
        "swissroll_nsf": ["noise_1e-2"],
        "circle_nsf": ["noise_1e-2"],
        "sphere_nsf": ["noise_1e-2"],
        "sheet8_nsf": ["noise_1e-2"],
        "scurve_nsf_sweep": ["noise_1e-3", "noise_1e-2"],
    },
    "local_covariance_oracle": {
        "scurve_mlp": ["jacobian_1e-2", "noise_1e-2"],
        "circle_mlp": ["jacobian_1e-2"],
        "swissroll_mlp": ["jacobian_1e-2"],
        "scurve_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1", "noise_1e-3", "noise_1e-2", "noise_1e-1"],
        "scurve_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "circle_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "swissroll_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "sphere_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "sheet8_realnvp": ["jacobian_1e-2", "noise_1e-2"],
        "scurve_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "circle_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "swissroll_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sphere_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sheet8_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sphere_mlp": ["jacobian_1e-2", "noise_1e-2"],
        "sheet8_mlp": ["jacobian_1e-2", "noise_1e-2"],
        "scurve_nsf": ["noise_1e-2"],
        "swissroll_nsf": ["noise_1e-2"],
        "circle_nsf": ["noise_1e-2"],
        "sphere_nsf": ["noise_1e-2"],
        "sheet8_nsf": ["noise_1e-2"],
        "scurve_noisy_nsf": ["noise_1e-2"],
        "circle_noisy_mlp": ["jacobian_1e-2"],
        "scurve_noisy_mlp": ["jacobian_1e-2"],
        "swissroll_noisy_mlp": ["jacobian_1e-2"],
        "sphere_noisy_mlp": ["jacobian_1e-2"],
        "sheet8_noisy_mlp": ["jacobian_1e-2"],
        "circle_noisy_realnvp": ["jacobian_1e-2"],
        "scurve_noisy_realnvp": ["jacobian_1e-2"],
        "swissroll_noisy_realnvp": ["jacobian_1e-2"],
        "sphere_noisy_realnvp": ["jacobian_1e-2"],
        "sheet8_noisy_realnvp": ["jacobian_1e-2"],
        "circle_noisy_nsf": ["noise_1e-2"],
        "swissroll_noisy_nsf": ["noise_1e-2"],
        "sphere_noisy_nsf": ["noise_1e-2"],
        "sheet8_noisy_nsf": ["noise_1e-2"],
        "scurve_nsf_sweep": ["noise_1e-3", "noise_1e-2", "noise_1e-1"],
    },
    "intrinsic_dimension_sweep": {
        "scurve_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "scurve_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "circle_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "swissroll_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sphere_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
        "sheet8_realnvp_sweep": ["jacobian_1e-3", "jacobian_1e-2", "jacobian_1e-1"],
    },
    "intrinsic_dimension_sweep_noise": {
        "scurve_sweep": ["noise_1e-3", "noise_1e-2", "noise_1e-1"],
        "scurve_nsf_sweep": ["noise_1e-3", "noise_1e-2", "noise_1e-1"],
    },
    "mnist_unregularized_illposed": {"mnist_mlp": ["none"], "mnist_linear": ["none"]},
    "mnist_spectrum_decay": {
        "mnist_mlp": ["weight_1e-2", "noise_1e-2", "jacobian_hutch_1e-2"],
        "mnist_linear": ["weight_1e-3", "noise_1e-3", "jacobian_1e-3"],
    },
    "mnist_components_local": {"mnist_mlp": ["weight_1e-2", "noise_1e-2", "jacobian_hutch_1e-2"]},
}
#: the same selector as the tangent-space claim: every nonlinear flow on a manifold, penalty or noise
PAPER_SCOPE["normal_std_shrinkage"] = PAPER_SCOPE["local_covariance_oracle"]


def test_paper_map_selects_by_properties_in_the_paper_config(paper):
    paper_map = load_paper_map(ROOT / "paper_map.yaml")
    scope = {c["id"]: select(paper, c["applies_to"]) for c in paper_map["claims"]}
    assert scope == PAPER_SCOPE


def test_renaming_experiments_keeps_every_verdict(paper):
    renamed = {f"run{i}": props for i, props in enumerate(paper.values())}
    paper_map = load_paper_map(ROOT / "paper_map.yaml")
    for c in paper_map["claims"]:
        assert list(select(renamed, c["applies_to"]).values()) == list(select(paper, c["applies_to"]).values())
