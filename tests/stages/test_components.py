"""The components stage's locality metric and traversals (docs/measurements.md#mnist-flow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowtheory.science.components import extract
from flowtheory.science.flows import build_flow
from flowtheory.stages.components import LOCAL_K, TRAVERSAL_STEPS, locality, traversals


def _basis(rng: np.random.Generator, d: int, m: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, m)))[0]


def test_locality_of_a_linear_flow_is_one_everywhere():
    """The same local subspace at every point (a flow linear on the data): overlap 1 within and
    across classes, and 1 against the global PCA axes when those span it."""
    rng = np.random.default_rng(0)
    d, n = 20, 12
    U = _basis(rng, d, d)
    dirs = np.repeat(U[None, :, :6], n, axis=0)
    m = locality(dirs, np.arange(n) % 3, U.T)
    assert m["local_overlap_k"] == LOCAL_K
    for key in ("local_overlap_within", "local_overlap_across", "local_overlap_pca", "local_v1_abs_cos"):
        assert m[key] == pytest.approx(1.0, rel=1e-12)


def test_locality_follows_the_class():
    """One subspace per class: within 1, across the overlap of the class subspaces (here orthogonal: 0)."""
    rng = np.random.default_rng(1)
    d, n = 24, 10
    U = _basis(rng, d, d)
    labels = np.arange(n) % 2
    dirs = np.stack([U[:, 8 * c : 8 * c + 6] for c in labels])
    m = locality(dirs, labels, U.T)
    assert m["local_overlap_within"] == pytest.approx(1.0, rel=1e-12)
    assert m["local_overlap_across"] == pytest.approx(0.0, abs=1e-12)
    assert m["local_overlap_pca"] == pytest.approx(0.5, rel=1e-12)  # class 0 is the PCA top 4


def test_traversal_of_a_linear_flow_is_a_straight_line_along_v1():
    """For y = W(x - b): x(t) = g(f(x) + t σ u1) = x + t σ v1 / s1 with u1 = W v1 / |W v1|,
    s1 = |W v1| and σ the std of the points' latents along u1."""
    d, n = 20, 6
    torch.manual_seed(0)
    flow = build_flow({"kind": "linear"}, d, torch.float64)
    with torch.no_grad():
        flow.layers[0].W.copy_(torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, dtype=torch.float64))
    x = np.random.default_rng(2).standard_normal((n, d))
    xt = torch.as_tensor(x)
    y = flow(xt)[0].detach()
    J = flow.jacobian(xt).detach()
    comp = extract(J, y)
    dirs = comp.directions.numpy()
    labels = np.array([0, 1, 0, 2, 1, 2])
    points, images = traversals(flow, x, y.numpy(), J.numpy(), dirs, labels)
    np.testing.assert_array_equal(points, [0, 1, 3])
    assert images.shape == (3, len(TRAVERSAL_STEPS), d)
    for i, p in enumerate(points):
        v1, s1 = dirs[p, :, 0], 1 / comp.scale[p, 0].item()
        u1 = J[p].numpy() @ v1 / s1
        sigma = (y.numpy() @ u1).std()
        expected = x[p] + np.asarray(TRAVERSAL_STEPS)[:, None] * sigma * v1[None, :] / s1
        np.testing.assert_allclose(images[i], expected, atol=1e-10)
