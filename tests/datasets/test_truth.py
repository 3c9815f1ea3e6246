"""Ground truth per data-set kind (src/flowtheory/datasets/truth.py): every kind has an entry, the
declared facts hold on the data the generators make (dimension, rank of the covariance, the
dimension of the local tangent space), and adding a kind is one entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from flowtheory.datasets import truth as truth_module
from flowtheory.datasets.build import make_dataset
from flowtheory.datasets.spec import KINDS as BUILT_KINDS
from flowtheory.datasets.toys import gaussian
from flowtheory.datasets.truth import KINDS, MNIST_PIXELS, SpecError, Truth, manifold, truth

ROOT = Path(__file__).resolve().parents[2]
#: an eigenvalue below this fraction of the largest counts as zero (float64 sums of 2,000 points)
RTOL_RANK = 1e-9
#: kNN neighbourhood for the local tangent-space check, and the share of the local variance the
#: k tangent directions must hold on a noiseless manifold (curvature leaves a little outside)
K_LOCAL = 15
TANGENT_SHARE = 0.99

SPECS = {
    "gaussian": {
        "kind": "gaussian",
        "n_train": 2000,
        "n_valid": 10,
        "mean": [1.0, -1.0],
        "cov": [[2.0, 1.2], [1.2, 1.0]],
    },
    "gaussian_singular_3d": {
        "kind": "gaussian",
        "n_train": 2000,
        "n_valid": 10,
        "mean": [0.0, 0.0, 0.0],
        "cov": [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]],
    },
    "line": {"kind": "line", "n_train": 2000, "n_valid": 10},
    "line_noisy": {"kind": "line", "n_train": 2000, "n_valid": 10, "noise": 0.1},
    "circle": {"kind": "circle", "n_train": 2000, "n_valid": 10},
    "scurve": {"kind": "scurve", "n_train": 2000, "n_valid": 10},
    "scurve_noisy": {"kind": "scurve", "n_train": 2000, "n_valid": 10, "noise": 0.05},
    "swissroll": {"kind": "swissroll", "n_train": 2000, "n_valid": 10},
}

#: spec -> (d, intrinsic_dim, degenerate, singular_cov, noise, known_cov, manifold)
EXPECTED = {
    "gaussian": (2, 2, False, False, 0.0, True, False),
    "gaussian_singular_3d": (3, 2, True, True, 0.0, True, True),
    "line": (2, 1, True, True, 0.0, False, True),
    "line_noisy": (2, 1, False, False, 0.1, False, True),
    "circle": (2, 1, True, False, 0.0, False, True),
    "scurve": (3, 2, True, False, 0.0, False, True),
    "scurve_noisy": (3, 2, False, False, 0.05, False, True),
    "swissroll": (3, 2, True, False, 0.0, False, True),
}


def test_every_kind_has_an_entry_and_a_generator():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["$defs"]["dataset"]["properties"]["kind"]["enum"]
    assert set(KINDS) == set(BUILT_KINDS) == set(enum)


@pytest.mark.parametrize("name", list(SPECS))
def test_declared_fields(name):
    t = truth(SPECS[name])
    got = (t.d, t.intrinsic_dim, t.degenerate, t.singular_cov, t.noise, t.known_cov, t.manifold)
    assert got == EXPECTED[name]
    assert t.as_dict()["manifold"] == t.manifold and t.as_dict()["known_cov"] == t.known_cov


def _rank(cov: np.ndarray) -> int:
    eig = np.linalg.eigvalsh(cov)
    return int(np.sum(eig > RTOL_RANK * eig.max()))


@pytest.mark.parametrize("name", list(SPECS))
def test_truth_holds_on_the_generated_data(name):
    """d is the data's dimension; singular_cov is the sample covariance's rank deficiency; on a
    noiseless manifold the k tangent directions hold nearly all of the local (kNN) variance."""
    spec, t = SPECS[name], truth(SPECS[name])
    x = make_dataset(spec, seed=0)["x_train"]
    assert x.shape[1] == t.d
    assert (_rank(np.cov(x.T)) < t.d) == t.singular_cov
    if t.known_cov:
        np.testing.assert_array_equal(np.array(t.cov), np.array(spec["cov"], float))
    if t.manifold and t.noise == 0:
        centre = x[:200]
        dist = np.linalg.norm(x[None, :, :] - centre[:, None, :], axis=2)
        nbrs = x[np.argsort(dist, axis=1)[:, :K_LOCAL]]
        local = nbrs - nbrs.mean(1, keepdims=True)
        eig = np.linalg.eigvalsh(np.einsum("nki,nkj->nij", local, local))[:, ::-1]
        share = eig[:, : t.intrinsic_dim].sum(1) / eig.sum(1)
        assert np.median(share) > TANGENT_SHARE, f"{name}: tangent share {np.median(share):.4f}"


def test_mnist_embedded_has_constant_pixels_and_idx_is_unknown():
    embedded = truth({"kind": "mnist", "source": "embedded", "n_train": 4000, "n_valid": 1000})
    assert (embedded.d, embedded.intrinsic_dim, embedded.degenerate, embedded.singular_cov) == (
        MNIST_PIXELS,
        None,
        True,
        True,
    )
    data = make_dataset({"kind": "mnist", "n_train": 300, "n_valid": 10}, seed=0)
    assert data["x_train"].shape[1] == MNIST_PIXELS
    assert (data["x_train"].std(0) == 0).any(), "the embedded digits have constant pixels"
    idx = truth({"kind": "mnist", "source": "idx", "images": "i", "labels": "l", "n_train": 1, "n_valid": 1})
    assert idx.degenerate and idx.singular_cov is None and not idx.manifold
    assert truth({"kind": "mnist", "n_train": 1, "n_valid": 1, "downsample": 2}).d == 196


@pytest.mark.parametrize(
    "spec,words",
    [
        ({"kind": "gaussian", "mean": [0.0], "cov": [[1.0]], "noise": 0.1}, ["'gaussian' takes no 'noise'"]),
        ({"kind": "mnist", "noise": 0.1}, ["'mnist' takes no 'noise'"]),
        ({"kind": "mnist", "downsample": 3}, ["downsample 3 does not divide the image side 28"]),
        ({"kind": "gaussian", "mean": [0.0, 1.0], "cov": [[1.0]]}, ["d-vector mean", "d × d cov"]),
        (
            {"kind": "gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.5], [0.0, 1.0]]},
            ["not symmetric", "cov[0][1] = 0.5"],
        ),
        ({"kind": "gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 2.0], [2.0, 1.0]]}, ["smallest eigenvalue -1 "]),
        ({"kind": "gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, np.inf]]}, ["finite"]),
        ({"kind": "mnist", "n_train": 4000, "n_valid": 1001}, ["5001 exceeds the 5000 embedded digits"]),
        ({"kind": "moons"}, ["unknown data set kind 'moons'"]),
    ],
)
def test_specs_a_kind_cannot_describe_are_refused(spec, words):
    with pytest.raises(ValueError) as err:
        truth(spec)
    for w in words:
        assert w in str(err.value)


COVS = {  # at the tolerances: round-off passes, a real defect does not
    "identity": [[1.0, 0.0], [0.0, 1.0]],
    "singular": [[1.0, 1.0], [1.0, 1.0]],
    "round-off asymmetry": [[1.0, 0.3], [0.3 + 1e-15, 1.0]],
    "round-off negative eigenvalue": [[1.0, 1.0], [1.0, 1.0 - 1e-12]],
    "asymmetric": [[1.0, 0.3], [0.3 + 1e-9, 1.0]],
    "negative eigenvalue": [[1.0, 1.0], [1.0, 1.0 - 1e-8]],
    "indefinite, large": [[1e6, 2e6], [2e6, 1e6]],
}


@pytest.mark.parametrize("name", list(COVS))
def test_the_config_check_and_the_data_job_agree_on_covariances(name):
    """The config check (truth) and the data job's generator (toys.gaussian) refuse the same
    covariances: the config must not pass a data set that the data job then refuses."""
    spec = {"kind": "gaussian", "mean": [0.0, 0.0], "cov": COVS[name]}
    try:
        truth(spec)
        refused_by_config = False
    except SpecError as e:
        assert e.key == "cov"
        refused_by_config = True
    try:
        gaussian(5, np.random.default_rng(0), spec["mean"], spec["cov"])
        refused_by_data_job = False
    except ValueError:
        refused_by_data_job = True
    assert refused_by_config == refused_by_data_job
    assert refused_by_config == (name in ("asymmetric", "negative eigenvalue", "indefinite, large"))


def test_adding_a_kind_is_one_entry(monkeypatch):
    monkeypatch.setitem(truth_module.KINDS, "sphere", manifold(d=3, k=2))
    t = truth({"kind": "sphere", "noise": 0.0})
    assert t == Truth(kind="sphere", d=3, intrinsic_dim=2, degenerate=True, singular_cov=False)
    assert truth({"kind": "sphere", "noise": 0.1}).degenerate is False
