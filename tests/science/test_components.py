"""Un-whitened components (docs/theory.md §3): the batched algorithm against the authors' per-point loop,
the linear-flow identity ŷ = PCA scores, intrinsic dimension, and sign alignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.extmath import svd_flip as sk_svd_flip

from flowtheory.datasets import toys
from flowtheory.science.components import (
    Components,
    align_signs,
    class_overlaps,
    extract,
    intrinsic_dimension,
    reference_components,
    subspace_overlaps,
    svd_flip,
)
from flowtheory.science.covariance import flow_local_cov, jacobians, rel_frobenius, shrunk_oracle
from flowtheory.science.flows import build_flow
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, train

#: batched float64 algebra against numpy's per-point loop
ATOL_EXACT = 1e-6
#: closed-form identities that involve only a few d x d products and one eigendecomposition
RTOL_CLOSED_FORM = 1e-10
#: components of a linear flow at the optimum against PCA scores (docs/theory.md §3)
MIN_ABS_CORR = 0.999
RTOL_VAR = 0.02
#: covariance of a briefly trained linear flow against Σ̂ (docs/measurements.md: 0.0015 after 300 epochs)
RTOL_TRAINED_COV = 0.02
#: neighbour pairs allowed to keep opposite directions after alignment on a smooth field
MAX_NEGATIVE_PAIR_FRACTION = 0.005
#: the intrinsic-dimension criterion: floor_factor x sqrt(lambda)
FLOOR_FACTOR = 3.0

COV_2D = np.array([[2.0, 1.2], [1.2, 1.0]])  # eigenvalues 2.80 and 0.20: a well separated PCA
MEAN_2D = np.array([1.0, -0.5])


def _random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))


def _optimal_linear_flow(X: np.ndarray, lam: float, R: np.ndarray):
    """A linear flow y = W(x − b) at the closed-form optimum of the (shrunk) NLL:
    W = R Λ^{-1/2} Eᵀ with Σ̂ + λI = E Λ Eᵀ, b = the sample mean (docs/theory.md §2.2, §2.5)."""
    evals, E = np.linalg.eigh(shrunk_oracle(X, lam))
    W = R @ np.diag(evals**-0.5) @ E.T
    flow = build_flow({"kind": "linear"}, X.shape[1])
    with torch.no_grad():
        flow.layers[0].W.copy_(torch.as_tensor(W))
        flow.layers[0].b.copy_(torch.as_tensor(X.mean(0)))
    return flow


def _loop_scale_and_directions(J: np.ndarray):
    """Per-point numpy SVD: local stds 1/s and directions (columns of V), both reversed."""
    scales, dirs = [], []
    for Ji in J:
        U, s, Vt = np.linalg.svd(Ji)
        U, Vt = sk_svd_flip(U, Vt)
        scales.append((1 / s)[::-1])
        dirs.append(Vt.T[:, ::-1])
    return np.array(scales), np.array(dirs)


def _random_jacobians(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    # well conditioned enough that the SVD is unique up to signs (distinct singular values)
    return np.eye(d) + rng.normal(size=(n, d, d)) / np.sqrt(d)


def _components_ok(comp: Components, J: torch.Tensor, y: torch.Tensor) -> float:
    """max |ŷ_k − v_kᵀ J⁻¹ y| over points and components."""
    x_back = torch.linalg.solve(J, y[..., None])[..., 0]  # J⁻¹ y, (n, d)
    return (torch.einsum("nik,ni->nk", comp.directions, x_back) - comp.yhat).abs().max().item()


# ------------------------------------------------------------------------- 1. svd_flip, extract


@pytest.mark.parametrize("shape", [(7, 3, 3), (5, 10, 10), (4, 6, 4)])
def test_svd_flip_matches_sklearn(shape):
    rng = np.random.default_rng(1)
    A = rng.normal(size=shape)
    U, _, Vh = np.linalg.svd(A, full_matrices=False)
    Ut, Vht = svd_flip(torch.as_tensor(U), torch.as_tensor(Vh))
    for i in range(shape[0]):
        Us, Vhs = sk_svd_flip(U[i].copy(), Vh[i].copy())
        np.testing.assert_array_equal(Ut[i].numpy(), Us)
        np.testing.assert_array_equal(Vht[i].numpy(), Vhs)


def test_svd_flip_ties_pick_the_first_row_like_sklearn():
    # column 0 has |entries| tied, the first one positive; column 1 tied, the first one negative
    U = np.array([[1.0, -1.0], [-1.0, -1.0]]) / np.sqrt(2)
    Vh = np.array([[1.0, 2.0], [3.0, 4.0]])
    Ut, Vht = svd_flip(torch.as_tensor(U)[None], torch.as_tensor(Vh)[None])
    Us, Vhs = sk_svd_flip(U.copy(), Vh.copy())
    np.testing.assert_array_equal(Ut[0].numpy(), Us)
    np.testing.assert_array_equal(Vht[0].numpy(), Vhs)
    assert Us[0, 1] > 0 and Vhs[1, 0] == -3.0  # column 1 (and row 1 of Vh) were flipped


@pytest.mark.parametrize("d", [3, 10])
def test_extract_equals_authors_loop(d):
    rng = np.random.default_rng(d)
    J, y = _random_jacobians(50, d, rng), rng.normal(size=(50, d))
    comp = extract(torch.as_tensor(J), torch.as_tensor(y))
    np.testing.assert_allclose(comp.yhat.numpy(), reference_components(J, y), rtol=0, atol=ATOL_EXACT)
    scales, dirs = _loop_scale_and_directions(J)
    np.testing.assert_allclose(comp.scale.numpy(), scales, rtol=0, atol=ATOL_EXACT)
    np.testing.assert_allclose(comp.directions.numpy(), dirs, rtol=0, atol=ATOL_EXACT)
    # most significant first: local stds descending
    assert (np.diff(comp.scale.numpy(), axis=1) <= 0).all()
    # ŷ = Vᵀ J⁻¹ y
    assert _components_ok(comp, torch.as_tensor(J), torch.as_tensor(y)) < ATOL_EXACT


def test_reference_components_is_the_authors_formula():
    """Guards the reference itself: Y_hat[i] = Y[i] @ U @ diag(1/s), reversed (docs/theory.md §3)."""
    rng = np.random.default_rng(5)
    J, y = _random_jacobians(4, 3, rng), rng.normal(size=(4, 3))
    for i in range(4):
        U, s, Vt = np.linalg.svd(J[i])
        U, Vt = sk_svd_flip(U, Vt)
        np.testing.assert_allclose(
            reference_components(J, y)[i], (y[i] @ U @ np.diag(1 / s))[::-1], rtol=0, atol=ATOL_EXACT
        )


# ------------------------------------------------------------------ 2. linear flow at the optimum


def _components_against_pca(flow, X: np.ndarray):
    """The flow's components at X, checked against the PCA scores (|r| per component and the
    variances); returns ``(J, components, ŷ, scores)`` for further checks."""
    y, J = jacobians(flow, torch.as_tensor(X))
    comp = extract(J, y)
    scores = PCA().fit(X).transform(X)
    yhat = comp.yhat.numpy()
    for k in range(X.shape[1]):
        assert abs(np.corrcoef(yhat[:, k], scores[:, k])[0, 1]) >= MIN_ABS_CORR
    np.testing.assert_allclose(yhat.var(0), scores.var(0), rtol=RTOL_VAR)
    return J, comp, yhat, scores


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("rotation_seed", [0, 1, 2])
def test_linear_flow_components_are_pca_scores(lam, rotation_seed):
    rng = np.random.default_rng(10)
    X, _ = toys.gaussian(2000, rng, MEAN_2D, COV_2D)
    R = _random_orthogonal(2, np.random.default_rng(100 + rotation_seed))
    flow = _optimal_linear_flow(X, lam, R)
    J, comp, yhat, scores = _components_against_pca(flow, X)
    # ŷ = Eᵀ(x − μ) exactly, with or without shrinkage (shrinkage changes s, not V)
    np.testing.assert_allclose(np.abs(yhat), np.abs(scores), rtol=0, atol=1e-8)
    # local stds 1/s are the square roots of the shrunk eigenvalues
    np.testing.assert_allclose(
        comp.scale[0].numpy(), np.sqrt(np.linalg.eigvalsh(shrunk_oracle(X, lam))[::-1]), rtol=RTOL_CLOSED_FORM
    )
    # the flow's local covariance is Σ̂ + λI at every point
    assert rel_frobenius(flow_local_cov(J).numpy(), shrunk_oracle(X, lam)[None]).max() < RTOL_CLOSED_FORM
    if lam > 0:  # ... and it is not the unshrunk Σ̂ (the check can tell them apart)
        assert rel_frobenius(flow_local_cov(J).numpy(), shrunk_oracle(X, 0.0)[None]).min() > 0.1


def test_linear_flow_trained_briefly_matches_pca():
    rng = np.random.default_rng(11)
    X, _ = toys.gaussian(2000, rng, MEAN_2D, COV_2D)
    x = torch.as_tensor(X)
    flow = build_flow({"kind": "linear"}, 2)
    train(
        flow,
        x,
        x[:200],
        Stabilizer("none", "none"),
        TrainConfig(epochs=300, diagnostics_every=10**6),
        seed=0,
        log=lambda _: None,
    )
    J = _components_against_pca(flow, X)[0]
    assert rel_frobenius(flow_local_cov(J).numpy(), shrunk_oracle(X, 0.0)[None]).max() < RTOL_TRAINED_COV


# ----------------------------------------------------------------------- 3. intrinsic dimension


def test_intrinsic_dimension_full_rank_gaussian_is_2():
    lam = 0.01
    X, _ = toys.gaussian(2000, np.random.default_rng(12), MEAN_2D, COV_2D)
    flow = _optimal_linear_flow(X, lam, np.eye(2))
    y, J = jacobians(flow, torch.as_tensor(X))
    assert intrinsic_dimension(extract(J, y).scale, lam, FLOOR_FACTOR) == 2


def test_intrinsic_dimension_line_is_1():
    # the unshrunk optimum is singular on a line, so use the closed-form shrinkage optimum
    lam = 0.01
    X, _ = toys.line(2000, np.random.default_rng(13))
    flow = _optimal_linear_flow(X, lam, np.eye(2))
    y, J = jacobians(flow, torch.as_tensor(X))
    scale = extract(J, y).scale
    np.testing.assert_allclose(scale[:, 1].numpy(), np.sqrt(lam), rtol=1e-6)  # the floor is exactly √λ
    assert intrinsic_dimension(scale, lam, FLOOR_FACTOR) == 1
    assert intrinsic_dimension(scale, 0.0) == 1  # the gap criterion agrees


def test_intrinsic_dimension_thresholds_on_hand_made_scales():
    scale = torch.tensor([[2.0, 0.5, 0.1], [1.0, 0.29, 0.05], [3.0, 0.31, 0.2]])  # medians 2, 0.31, 0.1
    assert intrinsic_dimension(scale, 0.01, 3.0) == 2  # floor 0.3
    assert intrinsic_dimension(scale, 0.0121, 3.0) == 1  # floor 0.33
    assert intrinsic_dimension(scale, 0.0) == 1  # largest log gap: 2 -> 0.31 (x6.5; 0.31 -> 0.1 is x3.1)
    two = torch.tensor([[2.0, 1.5, 0.1]])
    assert intrinsic_dimension(two, 0.0) == 2  # largest log gap: 1.5 -> 0.1


@pytest.mark.slow
def test_intrinsic_dimension_regularized_s_curve_is_2(trained_scurve):
    """The noiseless S-curve is a 2-D sheet in R³. With weight Tikhonov λ = 0.01 the normal local std
    saturates near √λ = 0.1 (measured: medians 1.26, 0.59, 0.115 after 300 epochs; 0.218 after
    100, i.e. too close to the floor 0.3), while the two tangent stds are at manifold scale
    (the width direction: 2/√12 = 0.58)."""
    lam, flow = trained_scurve.lam, trained_scurve.flow
    x = torch.as_tensor(trained_scurve.X)
    assert trained_scurve.result.status != "diverged"
    y, J = jacobians(flow, x)
    comp = extract(J, y)
    med = comp.scale.median(0).values.numpy()
    floor = FLOOR_FACTOR * np.sqrt(lam)
    assert med[1] > floor > med[2], f"median local stds {med}, floor {floor}"
    assert intrinsic_dimension(comp.scale, lam, FLOOR_FACTOR) == 2
    assert intrinsic_dimension(comp.scale, 0.0) == 2


# --------------------------------------------------------------------------------- 4. align_signs


def _symmetric_knn_pairs(x: np.ndarray, k: int) -> np.ndarray:
    nbrs = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    pairs = np.stack([np.repeat(np.arange(len(x)), k), nbrs.ravel()], 1)
    return np.unique(np.sort(pairs, 1), axis=0)


def test_align_signs_constant_field_with_random_signs():
    """A constant direction field with random per-point signs must come out with one sign
    everywhere, including at points that are in nobody's kNN list (regression: a BFS over the
    directed kNN graph left those with their arbitrary sign)."""
    rng = np.random.default_rng(20)
    n, k = 400, 5
    x = rng.normal(size=(n, 8))  # in 8-D many points are in nobody's 5-NN list
    nbrs = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    assert n - len(np.unique(nbrs)) >= 10  # the case this test is about does occur (30 here)
    s = rng.choice([-1.0, 1.0], size=(n, 2))
    V = np.broadcast_to(np.eye(2), (n, 2, 2)) * s[:, None, :]
    comp = Components(yhat=torch.as_tensor(s * 3.0), scale=torch.ones(n, 2), directions=torch.as_tensor(V))
    out = align_signs(comp, x, k)
    assert len(np.unique(out.directions.numpy(), axis=0)) == 1  # one graph component -> one sign
    np.testing.assert_array_equal(out.yhat.numpy() / 3.0, out.directions.numpy()[:, [0, 1], [0, 1]])


@pytest.fixture
def smooth_components():
    """Components of a smooth nonlinear 3-D flow (untrained MLP, anisotropic first layer so that
    the local stds stay well separated and the direction fields are smooth)."""
    rng = np.random.default_rng(21)
    x = rng.uniform(-1.0, 1.0, size=(800, 3))
    flow = build_flow({"kind": "mlp", "hidden_layers": 2, "activation": "sinh", "init_scale": 0.3}, 3, seed=3)
    with torch.no_grad():
        flow.layers[-1].W.copy_(torch.diag(torch.tensor([4.0, 1.0, 0.25])) @ flow.layers[-1].W)
    xt = torch.as_tensor(x)
    y, J = jacobians(flow, xt)
    return x, y, J, extract(J, y)


def test_align_signs_keeps_representation_and_smooths(smooth_components):
    x, y, J, comp = smooth_components
    k = 10
    s = comp.scale.numpy()
    assert (s[:, :-1] / s[:, 1:]).min() > 1.5  # no crossings: the fields are well defined
    # svd_flip's convention happens to be smooth on this mild flow, so scramble the signs per point
    # and component (ŷ_k and v_k together: still an exact representation, as an SVD may return)
    flips = torch.as_tensor(np.random.default_rng(22).choice([-1.0, 1.0], size=comp.yhat.shape))
    comp = Components(yhat=comp.yhat * flips, scale=comp.scale, directions=comp.directions * flips[:, None, :])
    pairs = _symmetric_knn_pairs(x, k)
    V0 = comp.directions.numpy()
    assert ((V0[pairs[:, 0]] * V0[pairs[:, 1]]).sum(1) < 0).mean() > 0.4  # scrambled: about half
    assert _components_ok(comp, J, y) < ATOL_EXACT
    out = align_signs(comp, x, k)
    # the representation stays exact: ŷ_k = v_kᵀ J⁻¹ y, and |ŷ|, scales unchanged
    assert _components_ok(out, J, y) < ATOL_EXACT
    torch.testing.assert_close(out.yhat.abs(), comp.yhat.abs())
    torch.testing.assert_close(out.scale, comp.scale)
    # BFS tree: every point except the root(s) has a neighbour (its parent) agreeing in every component
    V = out.directions.numpy()
    all_nonneg = ((V[pairs[:, 0]] * V[pairs[:, 1]]).sum(1) >= 0).all(1)
    has_parent = np.zeros(len(x), dtype=bool)
    has_parent[pairs[all_nonneg, 0]] = True
    has_parent[pairs[all_nonneg, 1]] = True
    assert has_parent.all()
    # smooth flow: (almost) no neighbour pair keeps opposite directions
    neg = ((V[pairs[:, 0]] * V[pairs[:, 1]]).sum(1) < 0).mean()
    assert neg <= MAX_NEGATIVE_PAIR_FRACTION, f"negative pair fraction {neg}"


def _rotated_pair(d: int, k: int, angles: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal d × k bases with principal angles ``angles``, in a random orientation."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    A = Q[:, :k]
    B = np.cos(angles) * Q[:, :k] + np.sin(angles) * Q[:, k : 2 * k]
    return A, B


def test_subspace_overlap_closed_forms():
    """Identical subspaces -> 1, orthogonal -> 0, principal angles θ_i -> mean cos² θ_i (float64)."""
    d, k = 12, 3
    angles = np.array([0.2, 0.7, 1.1])
    A, B = _rotated_pair(d, k, angles)
    C = np.linalg.qr(np.random.default_rng(1).standard_normal((d, d)))[0][:, k : 2 * k]
    R = np.random.default_rng(2).standard_normal((k, k))
    A_rot = A @ np.linalg.qr(R)[0]  # another basis of the same subspace
    dirs = np.stack([A, B, A_rot])
    ov = subspace_overlaps(dirs, k)
    assert ov[0, 0] == pytest.approx(1.0, rel=RTOL_CLOSED_FORM)
    assert ov[0, 2] == pytest.approx(1.0, rel=RTOL_CLOSED_FORM)
    assert ov[0, 1] == pytest.approx(np.mean(np.cos(angles) ** 2), rel=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(ov, ov.T, rtol=RTOL_CLOSED_FORM)
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))[0]
    orth = subspace_overlaps(np.stack([Q[:, :k], Q[:, k : 2 * k]]), k)
    assert abs(orth[0, 1]) < 1e-12
    # only the first k columns count; a reference basis gives one overlap per point
    wide = np.concatenate([np.stack([A, B]), np.stack([C, C])], axis=2)
    assert subspace_overlaps(wide, k)[0, 1] == pytest.approx(ov[0, 1], rel=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(subspace_overlaps(dirs, k, A), [1.0, ov[0, 1], 1.0], rtol=RTOL_CLOSED_FORM)
    with pytest.raises(ValueError, match="k >= 1"):
        subspace_overlaps(dirs, k + 1)


def test_subspace_overlap_random_is_k_over_d():
    """Independent uniformly random k-subspaces of R^d overlap k/d on average."""
    d, k, n = 40, 4, 200
    rng = np.random.default_rng(3)
    dirs = np.stack([np.linalg.qr(rng.standard_normal((d, k)))[0] for _ in range(n)])
    ov = subspace_overlaps(dirs, k)
    assert ov[~np.eye(n, dtype=bool)].mean() == pytest.approx(k / d, rel=0.05)


def test_class_overlaps():
    ov = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.3], [0.1, 0.3, 1.0]])
    within, across = class_overlaps(ov, np.array([0, 0, 1]))
    assert within == pytest.approx(0.8)
    assert across == pytest.approx(0.2)
    within, across = class_overlaps(ov, np.array([0, 1, 2]))
    assert np.isnan(within) and across == pytest.approx(0.4)
