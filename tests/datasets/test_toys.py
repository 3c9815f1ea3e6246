"""Toy data sets (src/flowtheory/datasets.py): determinism, shapes, the geometry each generator
promises (exactly on its manifold without noise), and the ``make_dataset`` dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from flowtheory.datasets.build import make_dataset
from flowtheory.datasets.spec import KINDS
from flowtheory.datasets.toys import circle, gaussian, line, s_curve, swiss_roll

#: points that should lie exactly on a surface: float64 sin/cos of the same t, a few ulps at most
ATOL_SURFACE = 1e-12
#: relative tolerance on a sample std from n = 20,000 draws (standard error ≈ 1/√(2n) = 0.5 %)
RTOL_STD = 0.03
#: the authors' S-curve: t = 3π η0 with η0 ~ N(0, 0.15²)
S_CURVE_T_STD = 3 * np.pi * 0.15

MEAN = [1.0, -1.0]
COV = [[2.0, 1.2], [1.2, 1.0]]

#: name -> (call with n and rng, data dimension)
GENERATORS = {
    "s_curve": (lambda n, rng: s_curve(n, rng), 3),
    "s_curve_noisy": (lambda n, rng: s_curve(n, rng, noise=0.05), 3),
    "gaussian": (lambda n, rng: gaussian(n, rng, MEAN, COV), 2),
    "gaussian_3d": (lambda n, rng: gaussian(n, rng, [0, 0, 0], np.diag([1.0, 2.0, 3.0])), 3),
    "line": (lambda n, rng: line(n, rng), 2),
    "line_noisy": (lambda n, rng: line(n, rng, noise=0.1), 2),
    "circle": (lambda n, rng: circle(n, rng), 2),
    "swiss_roll": (lambda n, rng: swiss_roll(n, rng), 3),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_shapes_and_determinism(name):
    gen, d = GENERATORS[name]
    X, c = gen(500, np.random.default_rng(7))
    assert X.shape == (500, d) and c.shape == (500,)
    assert X.dtype == np.float64 and c.dtype == np.float64
    assert np.isfinite(X).all() and np.isfinite(c).all()
    X2, c2 = gen(500, np.random.default_rng(7))
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(c, c2)
    X3, _ = gen(500, np.random.default_rng(8))
    assert not np.allclose(X, X3)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_uses_only_the_given_generator(name):
    """No hidden global state: reseeding numpy's legacy global RNG changes nothing."""
    gen, _ = GENERATORS[name]
    np.random.seed(0)
    X1, _ = gen(50, np.random.default_rng(1))
    np.random.seed(123)
    X2, _ = gen(50, np.random.default_rng(1))
    np.testing.assert_array_equal(X1, X2)


def test_s_curve_lies_exactly_on_the_surface_without_noise():
    X, t = s_curve(20_000, np.random.default_rng(0), noise=0.0)
    np.testing.assert_allclose(X[:, 0], np.sin(t), rtol=0, atol=ATOL_SURFACE)
    np.testing.assert_allclose(X[:, 2], np.sign(t) * (np.cos(t) - 1), rtol=0, atol=ATOL_SURFACE)
    assert X[:, 1].min() >= 0.0 and X[:, 1].max() <= 2.0
    assert X[:, 1].min() < 0.01 and X[:, 1].max() > 1.99  # 2 η1 with η1 ~ U(0, 1) fills [0, 2]
    np.testing.assert_allclose(t.std(), S_CURVE_T_STD, rtol=RTOL_STD)
    assert abs(t.mean()) < 5 * S_CURVE_T_STD / np.sqrt(len(t))
    # the two halves bend opposite ways: x3 ≤ 0 for t > 0 and ≥ 0 for t < 0
    assert (X[t > 0, 2] <= 0).all() and (X[t < 0, 2] >= 0).all()


def test_s_curve_scale_eta0_sets_the_spread_of_t():
    _, t = s_curve(20_000, np.random.default_rng(0), scale_eta0=0.05)
    np.testing.assert_allclose(t.std(), 3 * np.pi * 0.05, rtol=RTOL_STD)


def test_s_curve_noise_moves_points_off_the_surface():
    noise = 0.05
    X, t = s_curve(20_000, np.random.default_rng(0), noise=noise)
    np.testing.assert_allclose((X[:, 0] - np.sin(t)).std(), noise, rtol=RTOL_STD)
    np.testing.assert_allclose((X[:, 2] - np.sign(t) * (np.cos(t) - 1)).std(), noise, rtol=RTOL_STD)


def test_line_has_a_rank_one_covariance():
    X, t = line(1000, np.random.default_rng(0), slope=0.5)
    np.testing.assert_array_equal(X[:, 0], t)
    np.testing.assert_allclose(X[:, 1], 0.5 * X[:, 0], rtol=0, atol=ATOL_SURFACE)
    cov = np.cov(X, rowvar=False)
    assert np.linalg.matrix_rank(cov) == 1
    eig = np.linalg.eigvalsh(cov)
    assert eig[0] <= 1e-14 * eig[1]
    # with noise the covariance is full rank again
    Xn, _ = line(1000, np.random.default_rng(0), noise=0.1)
    assert np.linalg.matrix_rank(np.cov(Xn, rowvar=False)) == 2


def test_circle_is_an_arc_of_the_given_radius():
    X, t = circle(2000, np.random.default_rng(0), radius=2.5, arc=np.pi)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 2.5, rtol=1e-14)
    assert t.min() >= 0.0 and t.max() < np.pi
    np.testing.assert_allclose(np.arctan2(X[:, 1], X[:, 0]) % (2 * np.pi), t, atol=1e-12)


def test_swiss_roll_has_scikit_learn_proportions():
    X, t = swiss_roll(5000, np.random.default_rng(0))
    assert t.min() >= 1.5 * np.pi and t.max() < 4.5 * np.pi
    np.testing.assert_allclose(7 * np.hypot(X[:, 0], X[:, 2]), t, rtol=1e-13)
    assert X[:, 1].min() >= 0.0 and X[:, 1].max() <= 3.0  # height U(0, 21) / 7


def test_gaussian_sample_covariance_approaches_cov():
    cov = np.asarray(COV)
    errors = []
    for n in (1_000, 100_000):
        X, _ = gaussian(n, np.random.default_rng(0), MEAN, COV)
        errors.append(np.linalg.norm(np.cov(X, rowvar=False) - cov) / np.linalg.norm(cov))
    # standard error ∝ 1/√n: ≈ 3.5 % at n = 1,000 and ≈ 0.35 % at 100,000
    assert errors[1] < 0.02
    assert errors[1] < errors[0]
    X, c = gaussian(100_000, np.random.default_rng(1), MEAN, COV)
    np.testing.assert_allclose(X.mean(axis=0), MEAN, atol=0.02)
    # the colouring variable is the projection on the leading axis: its variance is λ_max
    np.testing.assert_allclose(c.var(), np.linalg.eigvalsh(cov)[-1], rtol=0.02)


@pytest.mark.parametrize(
    "mean, cov, match",
    [
        ([0.0, 0.0], [[1.0, 0.0, 0.0]], r"expected a d-vector mean and a d × d cov"),
        ([[0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], r"expected a d-vector mean"),
        ([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], r"cov must be symmetric"),
        ([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], r"cov must be positive semi-definite"),
        ([0.0, np.nan], [[1.0, 0.0], [0.0, 1.0]], r"mean and cov must be finite"),
    ],
    ids=["cov-shape", "mean-2d", "asymmetric", "indefinite", "nan"],
)
def test_gaussian_rejects_bad_parameters(mean, cov, match):
    with pytest.raises(ValueError, match=match):
        gaussian(10, np.random.default_rng(0), mean, cov)


def test_gaussian_accepts_a_singular_cov():
    """On the line x1 = x2 up to numpy's factorization: its SVD leaves a singular value of order
    1e-16, whose square root puts points ~1e-8 off the line."""
    X, _ = gaussian(200, np.random.default_rng(0), [0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(X[:, 0], X[:, 1], rtol=0, atol=1e-6)
    assert X[:, 0].std() > 0.5


# ----------------------------------------------------------------------------- make_dataset

TOY_SPECS = {
    "gaussian": {"kind": "gaussian", "mean": MEAN, "cov": COV},
    "line": {"kind": "line", "slope": 0.5},
    "scurve": {"kind": "scurve", "scale_eta0": 0.15, "noise": 0.0},
    "circle": {"kind": "circle"},
    "swissroll": {"kind": "swissroll"},
    "sphere": {"kind": "sphere", "noise": 0.05},
    "sheet8": {"kind": "sheet8"},
}
DIMS = {"gaussian": 2, "line": 2, "scurve": 3, "circle": 2, "swissroll": 3, "sphere": 3, "sheet8": 8}
#: intrinsic dimension of each manifold kind (the tangent bases' width)
INTRINSIC = {"line": 1, "circle": 1, "scurve": 2, "swissroll": 2, "sphere": 2, "sheet8": 2}


def test_toy_specs_cover_every_kind_but_mnist():
    assert set(TOY_SPECS) == set(KINDS) - {"mnist"}


@pytest.mark.parametrize("kind", list(TOY_SPECS))
@pytest.mark.parametrize("n_train, n_valid", [(300, 100), (1, 1), (50, 7)])
def test_make_dataset_split_sizes(kind, n_train, n_valid):
    data = make_dataset({**TOY_SPECS[kind], "n_train": n_train, "n_valid": n_valid}, seed=0)
    base = {"x_train", "x_valid", "c_train", "c_valid", "oracle_cov"}
    d = DIMS[kind]
    if kind == "gaussian":
        assert set(data) == base
    else:  # a manifold carries its ground truth: tangent bases at the points and the noise std
        assert set(data) == base | {"tangent_train", "tangent_valid", "noise"}
        k = INTRINSIC[kind]
        assert data["tangent_train"].shape == (n_train, d, k) and data["tangent_valid"].shape == (n_valid, d, k)
        assert float(data["noise"]) == TOY_SPECS[kind].get("noise", 0.0)
    assert data["x_train"].shape == (n_train, d) and data["x_valid"].shape == (n_valid, d)
    assert data["c_train"].shape == (n_train,) and data["c_valid"].shape == (n_valid,)
    assert data["x_train"].dtype == np.float64


@pytest.mark.parametrize("kind", list(TOY_SPECS))
def test_make_dataset_is_seeded_and_splits_one_sample(kind):
    spec = {**TOY_SPECS[kind], "n_train": 200, "n_valid": 50}
    a, b, c = make_dataset(spec, 4), make_dataset(spec, 4), make_dataset(spec, 5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["x_train"], c["x_train"])
    # train and validation are disjoint parts of the same draw (same as generating 250 at once)
    assert not np.isin(a["x_valid"][:, 0], a["x_train"][:, 0]).any()


def test_make_dataset_scurve_matches_the_generator():
    spec = {**TOY_SPECS["scurve"], "n_train": 80, "n_valid": 20}
    data = make_dataset(spec, seed=3)
    X, t = s_curve(100, np.random.default_rng(3), 0.15, 0.0)
    np.testing.assert_array_equal(np.concatenate([data["x_train"], data["x_valid"]]), X)
    np.testing.assert_array_equal(np.concatenate([data["c_train"], data["c_valid"]]), t)


def test_make_dataset_oracle_cov_only_for_the_gaussian():
    for kind, spec in TOY_SPECS.items():
        data = make_dataset({**spec, "n_train": 10, "n_valid": 5}, seed=0)
        if kind == "gaussian":
            np.testing.assert_array_equal(data["oracle_cov"], np.asarray(COV))
        else:
            assert data["oracle_cov"].shape == (0, 0)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "torus", "n_train": 5, "n_valid": 5}, r"unknown dataset kind 'torus'; expected one of \("),
        ({"n_train": 5, "n_valid": 5}, r"unknown dataset kind None"),
        ({"kind": "line", "n_train": 0, "n_valid": 5}, r"'line': n_train must be at least 1, got 0"),
        ({"kind": "line", "n_train": 5, "n_valid": -1}, r"n_valid must be at least 1, got -1"),
        ({"kind": "line", "n_train": 5.0, "n_valid": 5}, r"n_train must be an integer, got 5.0"),
        ({"kind": "line", "n_train": 5}, r"n_valid must be an integer, got None"),
        ({"kind": "gaussian", "n_train": 5, "n_valid": 5, "mean": [0.0], "cov": COV}, r"d-vector mean"),
    ],
    ids=["unknown", "no-kind", "zero-train", "negative-valid", "float", "missing", "gaussian-shape"],
)
def test_make_dataset_rejects_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(spec, seed=0)


def test_make_dataset_unknown_kind_lists_every_kind():
    with pytest.raises(ValueError) as err:
        make_dataset({"kind": "Gaussian", "n_train": 5, "n_valid": 5}, seed=0)
    for kind in KINDS:
        assert repr(kind) in str(err.value)


def test_make_dataset_rejects_a_non_mapping():
    with pytest.raises(ValueError, match="must be a mapping, got list"):
        make_dataset(["gaussian"], seed=0)
