"""Manifolds with ground truth (src/flowtheory/manifolds.py): the same points as ``datasets.py`` where
both exist, and closed-form tangent bases checked against finite differences of the embedding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from flowtheory.datasets import manifolds
from flowtheory.datasets import toys as datasets
from flowtheory.datasets.manifolds import MANIFOLDS, Manifold

#: central differences with step h: truncation O(h²) plus round-off O(ε/h), ~1e-10 at h = 1e-6
FD_STEP = 1e-6
#: largest principal angle (radians) between the closed-form tangent space and the finite-difference one
ATOL_TANGENT_RAD = 1e-6
#: orthonormality of the closed-form bases (a few float64 products)
ATOL_ORTHO = 1e-12
#: relative tolerance on a sample std or variance from 20,000 draws
RTOL_STAT = 0.03
N = 200

#: name -> (generator call with n, rng and noise; the noiseless embedding of the intrinsic coordinates; d)
CASES = {
    "line": (
        lambda n, rng, noise=0.0: manifolds.line(n, rng, slope=-1.7, noise=noise),
        lambda u: manifolds.line_map(u, slope=-1.7),
        2,
    ),
    "circle": (
        lambda n, rng, noise=0.0: manifolds.circle(n, rng, radius=2.0, arc=2 * np.pi, noise=noise),
        lambda u: manifolds.circle_map(u, radius=2.0),
        2,
    ),
    "scurve": (lambda n, rng, noise=0.0: manifolds.s_curve(n, rng, noise=noise), manifolds.s_curve_map, 3),
    "swissroll": (lambda n, rng, noise=0.0: manifolds.swiss_roll(n, rng, noise=noise), manifolds.swiss_roll_map, 3),
    "sphere": (
        lambda n, rng, noise=0.0: manifolds.sphere(n, rng, radius=1.5, noise=noise),
        lambda u: manifolds.sphere_map(u, radius=1.5),
        3,
    ),
    "sheet8": (lambda n, rng, noise=0.0: manifolds.sheet8(n, rng, noise=noise), manifolds.sheet8_map, 8),
}
INTRINSIC = {"line": 1, "circle": 1, "scurve": 2, "swissroll": 2, "sphere": 2, "sheet8": 2}


def test_cases_cover_every_manifold():
    assert set(CASES) == set(MANIFOLDS)


def _fd_tangent(embed, coords: np.ndarray) -> np.ndarray:
    """(n, d, k) central differences of the embedding in each intrinsic coordinate."""
    cols = []
    for i in range(coords.shape[1]):
        step = np.zeros_like(coords)
        step[:, i] = FD_STEP
        cols.append((embed(coords + step) - embed(coords - step)) / (2 * FD_STEP))
    return np.stack(cols, axis=2)


@pytest.mark.parametrize("name", list(CASES))
def test_shapes_and_determinism(name):
    gen, _, d = CASES[name]
    k = INTRINSIC[name]
    m = gen(N, np.random.default_rng(3))
    assert isinstance(m, Manifold) and m.intrinsic_dim == k
    assert m.x.shape == (N, d) and m.coords.shape == (N, k) and m.colour.shape == (N,) and m.tangent.shape == (N, d, k)
    for arr in (m.x, m.coords, m.colour, m.tangent):
        assert arr.dtype == np.float64 and np.isfinite(arr).all()
    again = gen(N, np.random.default_rng(3))
    for field in ("x", "coords", "colour", "tangent"):
        np.testing.assert_array_equal(getattr(m, field), getattr(again, field))
    assert not np.allclose(m.x, gen(N, np.random.default_rng(4)).x)


@pytest.mark.parametrize("name", list(CASES))
def test_tangent_basis_is_orthonormal_and_spans_the_finite_difference_tangent(name):
    gen, embed, _ = CASES[name]
    m = gen(N, np.random.default_rng(0))
    k = m.intrinsic_dim
    gram = np.swapaxes(m.tangent, 1, 2) @ m.tangent
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(k), gram.shape), rtol=0, atol=ATOL_ORTHO)
    fd = _fd_tangent(embed, m.coords)
    worst = max(subspace_angles(fd[i], m.tangent[i]).max() for i in range(N))
    assert worst < ATOL_TANGENT_RAD, worst


@pytest.mark.parametrize("name", list(CASES))
def test_clean_points_are_the_embedding_of_their_coordinates(name):
    gen, embed, _ = CASES[name]
    m = gen(N, np.random.default_rng(1))
    np.testing.assert_array_equal(m.x, embed(m.coords))


@pytest.mark.parametrize("name", list(CASES))
def test_noise_is_isotropic_and_added_after(name):
    gen, embed, d = CASES[name]
    noise = 0.05
    clean, noisy = gen(20_000, np.random.default_rng(2)), gen(20_000, np.random.default_rng(2), noise)
    np.testing.assert_array_equal(clean.coords, noisy.coords)  # the same draws first
    np.testing.assert_array_equal(clean.tangent, noisy.tangent)  # the tangent of the clean point
    residual = noisy.x - embed(noisy.coords)
    np.testing.assert_allclose(residual.std(axis=0), np.full(d, noise), rtol=RTOL_STAT)


# ------------------------------------------------------------------- the same draws as datasets.py

#: name -> (manifolds call, datasets call), with the same non-default parameters
SAME_AS_DATASETS = {
    "line": (
        lambda n, rng, noise: manifolds.line(n, rng, 0.3, noise),
        lambda n, rng, noise: datasets.line(n, rng, 0.3, noise),
    ),
    "circle": (
        lambda n, rng, noise: manifolds.circle(n, rng, 1.3, np.pi, noise),
        lambda n, rng, noise: datasets.circle(n, rng, 1.3, np.pi, noise),
    ),
    "scurve": (
        lambda n, rng, noise: manifolds.s_curve(n, rng, 0.2, noise),
        lambda n, rng, noise: datasets.s_curve(n, rng, 0.2, noise),
    ),
    "scurve_default": (
        lambda n, rng, noise: manifolds.s_curve(n, rng, noise=noise),
        lambda n, rng, noise: datasets.s_curve(n, rng, noise=noise),
    ),
    "swissroll": (
        lambda n, rng, noise: manifolds.swiss_roll(n, rng, noise),
        lambda n, rng, noise: datasets.swiss_roll(n, rng, noise),
    ),
}


@pytest.mark.parametrize("noise", [0.0, 0.1])
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("name", list(SAME_AS_DATASETS))
def test_bit_identical_to_datasets(name, seed, noise):
    ours, theirs = SAME_AS_DATASETS[name]
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    m = ours(1000, rng_a, noise)
    X, c = theirs(1000, rng_b, noise)
    np.testing.assert_array_equal(m.x, X)
    np.testing.assert_array_equal(m.colour, c)
    # and the generators are left in the same state
    np.testing.assert_array_equal(rng_a.uniform(size=3), rng_b.uniform(size=3))


# --------------------------------------------------------------------------- geometry per manifold


def test_sphere_is_uniform_on_a_sphere_of_the_radius_with_radial_normal():
    m = manifolds.sphere(20_000, np.random.default_rng(0), radius=2.0)
    np.testing.assert_allclose(np.linalg.norm(m.x, axis=1), 2.0, rtol=1e-14)
    # uniform on S²: mean 0 and covariance r²/3 I
    assert np.abs(m.x.mean(0)).max() < 5 * 2.0 / np.sqrt(3 * len(m.x))
    np.testing.assert_allclose(np.cov(m.x.T), 4.0 / 3 * np.eye(3), rtol=0, atol=RTOL_STAT * 4.0 / 3)
    np.testing.assert_allclose(np.einsum("ni,nik->nk", m.x, m.tangent), 0.0, atol=1e-14)
    np.testing.assert_allclose(m.colour, np.arccos(m.x[:, 2] / 2.0), atol=1e-7)


def test_sheet8_is_in_no_proper_affine_subspace_and_of_unit_scale():
    m = manifolds.sheet8(5000, np.random.default_rng(0))
    sv = np.linalg.svd(m.x - m.x.mean(0), compute_uv=False) / np.sqrt(len(m.x))
    assert sv[-1] > 0.05, sv  # every direction of R⁸ carries variance (the smallest std is ~0.08)
    assert np.abs(m.x).max() <= 1.0 + 1e-12


def test_sheet8_curvature_is_bounded():
    """Second differences along the two unit-speed curves: |φ''| / |φ'|² ≤ ~1.5 everywhere."""
    u = np.linspace(-1, 1, 201)
    for other in (-1.0, 0.0, 1.0):
        for coords in (np.stack([u, np.full_like(u, other)], 1), np.stack([np.full_like(u, other), u], 1)):
            x = manifolds.sheet8_map(coords)
            h = u[1] - u[0]
            d1 = (x[2:] - x[:-2]) / (2 * h)
            d2 = (x[2:] - 2 * x[1:-1] + x[:-2]) / h**2
            # curvature of a curve: |φ' × φ''| / |φ'|³ = √(|φ'|²|φ''|² − (φ'·φ'')²) / |φ'|³
            num = np.sqrt(np.maximum((d1**2).sum(1) * (d2**2).sum(1) - ((d1 * d2).sum(1)) ** 2, 0))
            assert (num / np.linalg.norm(d1, axis=1) ** 3).max() < 1.5


def test_s_curve_and_swiss_roll_tangents_closed_forms():
    m = manifolds.s_curve(500, np.random.default_rng(0))
    t = m.coords[:, 0]
    np.testing.assert_allclose(m.tangent[:, :, 1], np.broadcast_to([0.0, 1.0, 0.0], (500, 3)), atol=0)
    np.testing.assert_allclose(m.tangent[:, 1, 0], 0.0, atol=0)
    np.testing.assert_allclose(m.colour, t, atol=0)
    r = manifolds.swiss_roll(500, np.random.default_rng(0))
    # 7 · radius = t on the Swiss roll
    np.testing.assert_allclose(7 * np.hypot(r.x[:, 0], r.x[:, 2]), r.coords[:, 0], rtol=1e-13)
