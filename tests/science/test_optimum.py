"""The exact gap to the optimum (docs/theory.md §2.6): the linear flow's closed form against the
flow's own penalized NLL and autograd, and the targets' log-densities against closed forms, brute-force
Monte Carlo and their total mass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowtheory.datasets import manifolds
from flowtheory.datasets.build import GENERATORS, make_dataset
from flowtheory.science import optimum
from flowtheory.science.flows import affine_gaussian_nll, build_flow, moments
from flowtheory.science.stabilizers import Stabilizer

COV = np.array([[2.0, 1.2, 0.3], [1.2, 1.0, 0.1], [0.3, 0.1, 0.5]])


def _gaussian_train(n: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal([1.0, -1.0, 0.5], COV, n)


# --------------------------------------------------------------------------------- linear flow


@pytest.mark.parametrize("kind, lam", [("none", 0.0), ("weight", 0.1), ("jacobian", 0.1), ("noise", 0.3)])
def test_linear_gap_is_zero_at_every_optimum(kind, lam):
    """W* = (Σ̂ + λI)^(−1/2) and any R W* (R orthogonal), b* = μ̂: the gap is 0 to 1e-12."""
    x = _gaussian_train()
    W, b = optimum.linear_optimum(x, lam)
    R = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    for M in (W, R @ W):
        g = optimum.linear_gap(M, b, x, kind, lam)
        assert abs(g.nats) < 1e-12 and g.kind == optimum.LINEAR and g.se == 0.0
        assert g.target_std == pytest.approx(math.sqrt(lam))


def test_linear_gap_of_a_perturbed_flow_is_the_analytic_value():
    """W = (1 + δ) W*, b = μ̂ + Δ: gap = (d/2)((1 + δ)² − 1 − 2 log(1 + δ)) + ½‖W Δ‖²."""
    x, lam, delta = _gaussian_train(), 0.1, 0.07
    W, b = optimum.linear_optimum(x, lam)
    shift = np.array([0.2, -0.1, 0.05])
    W1 = (1 + delta) * W
    expected = 1.5 * ((1 + delta) ** 2 - 1 - 2 * math.log1p(delta)) + 0.5 * np.sum((W1 @ shift) ** 2)
    assert optimum.linear_gap(W1, b + shift, x, "weight", lam).nats == pytest.approx(expected, rel=1e-12)


def _objective(W, b, x, lam):
    """The linear flow's expected penalized objective F(W, b) from the points' moments (the
    polish's form, flowtheory.science.training.linear_moments)."""
    mean, cov = moments(x)
    return affine_gaussian_nll(W, b, mean, cov + lam * torch.eye(len(mean), dtype=x.dtype))


def test_linear_objective_has_zero_gradient_at_the_optimum():
    x, lam = _gaussian_train(), 0.1
    W, b = (torch.tensor(a, requires_grad=True) for a in optimum.linear_optimum(x, lam))
    gW, gb = torch.autograd.grad(_objective(W, b, torch.as_tensor(x), lam), (W, b))
    assert gW.abs().max() < 1e-12 and gb.abs().max() < 1e-12


@pytest.mark.parametrize("kind", ["none", "weight", "jacobian", "noise"])
def test_linear_gap_equals_the_penalized_nll_difference(kind):
    """Float64, the other way: the flow's own mean NLL plus the stabilizer's penalty on the training
    points (noise: the NLL averaged over the 2d sigma points ±√(dλ) e_j, which reproduce E[εεᵀ] = λI
    exactly for a quadratic) at a random W, b minus the same at the optimum."""
    x, lam = _gaussian_train(), 0.0 if kind == "none" else 0.2
    d = x.shape[1]
    stab = Stabilizer("s", kind, lam)
    g = torch.Generator().manual_seed(0)
    sigma_points = np.concatenate([np.eye(d), -np.eye(d)]) * math.sqrt(d * lam)
    x_noisy = torch.as_tensor((x[:, None, :] + sigma_points[None]).reshape(-1, d))

    def objective(W: np.ndarray, b: np.ndarray) -> float:
        flow = build_flow({"kind": "linear"}, d, torch.float64)
        with torch.no_grad():
            flow.layers[0].W.copy_(torch.as_tensor(W))
            flow.layers[0].b.copy_(torch.as_tensor(b))
            if kind == "noise":
                return float(flow.nll(x_noisy))
            nll, pen = stab.nll_and_penalty(flow, torch.as_tensor(x), g)
            return float(nll + pen)

    W_opt, b_opt = optimum.linear_optimum(x, lam)
    rng = np.random.default_rng(3)
    W, b = W_opt + 0.2 * rng.standard_normal((d, d)), b_opt + 0.3 * rng.standard_normal(d)
    other_way = objective(W, b) - objective(W_opt, b_opt)
    gap = optimum.linear_gap(W, b, x, kind, lam)
    assert gap.nats > 0.01
    assert gap.nats == pytest.approx(other_way, rel=1e-10, abs=1e-12)
    F = _objective(torch.as_tensor(W), torch.as_tensor(b), torch.as_tensor(x), lam)
    assert float(F) == pytest.approx(objective(W, b), rel=1e-12)


def test_linear_gap_is_infinite_without_stabilizer_on_the_line():
    x = make_dataset({"kind": "line", "n_train": 300, "n_valid": 1}, 0)["x_train"]
    g = optimum.linear_gap(np.eye(2), np.zeros(2), x, "none", 0.0)
    assert g.nats == math.inf and g.kind.startswith("none: unbounded")
    assert math.isfinite(optimum.linear_gap(np.eye(2), np.zeros(2), x, "noise", 0.1).nats)


# ------------------------------------------------------------------------------------- targets


def test_kl_target_names_each_case():
    t = optimum.kl_target
    assert t("scurve", 0.0, "noise", 0.01, True) == (pytest.approx(0.1), optimum.KL_MANIFOLD)
    assert t("scurve", 0.05, "none", 0.0, False) == (0.05, optimum.KL_MANIFOLD)
    assert t("sphere", 0.05, "jacobian", 0.01, False) == (pytest.approx(math.sqrt(0.0125)), optimum.KL_JACOBIAN)
    assert t("gaussian", 0.0, "none", 0.0, False) == (0.0, optimum.KL_GAUSSIAN)
    for args in [
        ("scurve", 0.0, "none", 0.0, True),
        ("circle", 0.05, "weight", 0.01, False),
        ("mnist", 0, "none", 0, True),
    ]:
        s, label = t(*args)
        assert math.isnan(s) and label.startswith("none: ")


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_sample_target_is_the_data_generator_plus_noise(kind):
    """The same draws as the data stage's make_dataset with noise s, for the same generator state."""
    spec = {"kind": kind, "n_train": 40, "n_valid": 10, "noise": 0.07}
    data = make_dataset(spec, 5)
    x = optimum.sample_target(kind, spec, 50, 0.07, np.random.default_rng(5))
    np.testing.assert_array_equal(x, np.concatenate([data["x_train"], data["x_valid"]]))


def _segment_log_density(x: np.ndarray, length: float, s: float) -> np.ndarray:
    """U(0, L) on the x₁ axis convolved with N(0, s² I₂), in closed form."""
    from scipy.stats import norm

    a, b = -x[:, 0] / s, (length - x[:, 0]) / s
    mass = np.where(a > -b, norm.sf(a) - norm.sf(b), norm.cdf(b) - norm.cdf(a))  # the accurate tail
    along = np.log(mass) - math.log(length)
    return along + norm.logpdf(x[:, 1], scale=s)


@pytest.mark.parametrize("s", [0.03, 0.2])
def test_curve_quadrature_on_a_flat_segment_and_on_the_line(s):
    """The 1-D quadrature (composite Gauss–Legendre in log space) on flat cases with closed forms: a
    uniform segment (the normal Gaussian times the convolved uniform), and the line kind's Gaussian
    t ~ N(0, 1) integrated along the line against its closed form N(0, vvᵀ + s²I)."""
    rng = np.random.default_rng(0)
    L = 2.0
    x = np.stack([rng.uniform(-0.3, L + 0.3, 300), s * rng.standard_normal(300)], axis=1)
    t, logw = optimum._panels(0.0, L, optimum._width(s, 1.0, 0.0))
    c = np.stack([t, np.zeros_like(t)], axis=1)
    got = optimum._curve(x, c, logw, s) - math.log(L)
    np.testing.assert_allclose(got, _segment_log_density(x, L, s), atol=1e-9)
    # the line: φ(t) = (t, t/2), t ~ N(0, 1), cut at ±9
    x = optimum.sample_target("line", {}, 300, s, rng)
    t, logw = optimum._panels(-9.0, 9.0, optimum._width(s, math.hypot(1, 0.5), 0.0))
    logw = logw - 0.5 * t**2 - 0.5 * math.log(2 * math.pi)
    got = optimum._curve(x, np.stack([t, 0.5 * t], axis=1), logw, s)
    np.testing.assert_allclose(got, optimum.log_density("line", {}, x, s), atol=1e-9)


def _monte_carlo(kind: str, x: np.ndarray, s: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: log of the mean of N(x; φ(u_i), s² I) over n clean points φ(u_i) of the data
    generator (u_i from the intrinsic density), with the standard error of that log."""
    generate = GENERATORS[kind][0]
    total, total_sq, m = 0.0, 0.0, None
    for _ in range(n // 500_000):
        c = generate(500_000, rng).x
        d2 = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        if m is None:
            m = d2.min(1, keepdims=True)
        w = np.exp(-(d2 - m) / (2 * s**2))
        total, total_sq = total + w.sum(1), total_sq + (w**2).sum(1)
    mean = total / n
    se = np.sqrt(total_sq / n - mean**2) / math.sqrt(n) / mean
    log_p = np.log(mean) - m[:, 0] / (2 * s**2) - x.shape[1] / 2 * math.log(2 * math.pi * s**2)
    return log_p, se


@pytest.mark.parametrize(
    "kind, s, n",
    [
        ("circle", 0.2, 2_000_000),
        ("scurve", 0.4, 4_000_000),
        ("swissroll", 0.4, 8_000_000),
        ("sphere", 0.3, 2_500_000),
        ("sheet8", 0.4, 4_000_000),
    ],
)
def test_log_density_agrees_with_brute_force_monte_carlo(kind, s, n):
    """At target samples, to 0.01 nats (the Monte Carlo's own standard error is held below 0.0025)."""
    rng = np.random.default_rng(11)
    x = optimum.sample_target(kind, {}, 4, s, rng)
    mc, se = _monte_carlo(kind, x, s, n, rng)
    diff = optimum.log_density(kind, {}, x, s) - mc
    print(f"{kind} s={s}: |quadrature − MC| max {np.abs(diff).max():.4f} nats, MC se max {se.max():.4f}")
    assert se.max() < 0.0025
    assert np.abs(diff).max() < 0.01


@pytest.mark.parametrize("kind, s", [("circle", 0.1), ("scurve", 0.3), ("swissroll", 0.3), ("sphere", 0.3)])
def test_density_integrates_to_one(kind, s):
    """A Riemann sum over a box 8 s beyond the manifold with step h = s/1.5: for a density smoothed
    at scale s its error is about exp(−2π² s²/h²) ≈ 1e-19."""
    clean = GENERATORS[kind][0](20_000, np.random.default_rng(0)).x
    lo, hi = clean.min(0) - 8 * s, clean.max(0) + 8 * s
    h = s / 1.5
    axes = [np.arange(a, b + h, h) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    mass = np.exp(optimum.log_density(kind, {}, grid, s)).sum() * h ** len(axes)
    assert mass == pytest.approx(1.0, abs=1e-9)


def test_sheet8_window_agrees_with_the_whole_square():
    """The per-point integration window of sheet8 against a fine tensor rule on all of [−1, 1]²."""
    s = 0.1
    x = optimum.sample_target("sheet8", {}, 6, s, np.random.default_rng(2))
    u, lw = optimum._panels(-1.0, 1.0, s / 4)  # 32 nodes per s, about 4 times the production rule's
    U, V = (a.ravel() for a in np.meshgrid(u, u, indexing="ij"))
    phi = manifolds.sheet8_map(np.stack([U, V], axis=1))
    logw = (lw[:, None] + lw[None, :]).ravel()
    ref = [optimum._logsumexp(logw - ((xi - phi) ** 2).sum(-1) / (2 * s**2), axis=0) for xi in x]
    ref = np.array(ref) - math.log(4) - 4 * math.log(2 * math.pi * s**2)
    np.testing.assert_allclose(optimum.log_density("sheet8", {}, x, s), ref, atol=1e-9)


def test_sphere_closed_form_at_the_centre_and_far_out():
    s, R = 0.2, 1.5
    x = np.array([[0.0, 0.0, 0.0], [1e-12, 0.0, 0.0], [0.0, 40.0, 0.0]])
    got = optimum.log_density("sphere", {"radius": R}, x, s)
    at_centre = -1.5 * math.log(2 * math.pi * s**2) - R**2 / (2 * s**2)
    assert got[0] == pytest.approx(at_centre, rel=1e-14) and got[1] == pytest.approx(at_centre, rel=1e-14)
    r, k = 40.0, 40.0 * R / s**2  # sinh κ/κ ≈ e^κ / 2κ
    far = -1.5 * math.log(2 * math.pi * s**2) - (r - R) ** 2 / (2 * s**2) - math.log(2 * k)
    assert got[2] == pytest.approx(far, rel=1e-14)


def test_log_diff_ndtr_in_both_tails():
    mpmath = pytest.importorskip("mpmath")
    a = np.array([-40.0, -3.0, 30.0, -0.5, 8.0])
    b = np.array([-39.0, 2.0, 31.0, 0.5, 50.0])
    got = optimum._log_diff_ndtr(a, b)
    with mpmath.workdps(40):  # Φ(b) − Φ(a) = Φ(−a) − Φ(−b): no cancellation in either tail
        lo, hi = np.where(a > 0, -b, a), np.where(a > 0, -a, b)
        want = [float(mpmath.log(mpmath.ncdf(h) - mpmath.ncdf(lo_))) for lo_, h in zip(lo, hi, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------------------- the KL


def test_kl_of_p_to_itself_is_zero():
    x = optimum.sample_target("sphere", {}, 100, 0.1, np.random.default_rng(0))
    lp = optimum.log_density("sphere", {}, x, 0.1)
    assert optimum.kl_gap(lp, lp) == (0.0, 0.0, 0.0)


def test_kl_to_a_shifted_gaussian_flow_is_the_analytic_value():
    """p = N(m, C + s²I); q = a linear flow that whitens C + s²I about m + Δ:
    KL(p‖q) = ½ Δᵀ(C + s²I)⁻¹Δ, estimated through flow_gap and the flow's log_prob."""
    spec = {"kind": "gaussian", "mean": [1.0, -1.0, 0.5], "cov": COV.tolist()}
    s, shift = 0.3, np.array([0.3, 0.1, -0.2])
    C = COV + s**2 * np.eye(3)
    e, V = np.linalg.eigh(C)
    flow = build_flow({"kind": "linear"}, 3, torch.float64)
    with torch.no_grad():
        flow.layers[0].W.copy_(torch.as_tensor((V / np.sqrt(e)) @ V.T))
        flow.layers[0].b.copy_(torch.as_tensor(np.array(spec["mean"]) + shift))

    def log_q(x):
        with torch.no_grad():
            return flow.log_prob(torch.as_tensor(x)).numpy()

    g = optimum.flow_gap(log_q, "gaussian", spec, s, optimum.KL_GAUSSIAN, 20_000, optimum.gap_rng(0))
    exact = 0.5 * shift @ np.linalg.solve(C, shift)
    assert abs(g.nats - exact) < 4 * g.se and g.se < 0.05 * exact
    assert g.kind == optimum.KL_GAUSSIAN and g.target_std == s
    again = optimum.flow_gap(log_q, "gaussian", spec, s, optimum.KL_GAUSSIAN, 20_000, optimum.gap_rng(0))
    assert again == g  # deterministic given the seed


def test_gap_rng_is_not_the_data_stream():
    assert not np.array_equal(optimum.gap_rng(0).random(5), np.random.default_rng(0).random(5))


@pytest.mark.parametrize("kind", ["circle", "scurve", "swissroll", "sheet8"])
@pytest.mark.parametrize("s", [0.0316, 0.316])
def test_quadrature_is_converged_at_the_configured_strengths(kind, s, monkeypatch):
    """s = √λ for λ = 1e-3 and 1e-1: four times the nodes (and a wider sheet8 window) move log p by
    less than 1e-8 nats."""
    x = optimum.sample_target(kind, {}, 40, s, np.random.default_rng(4))
    coarse = optimum.log_density(kind, {}, x, s)
    monkeypatch.setattr(optimum, "NODES_PER_WIDTH", 4 * optimum.NODES_PER_WIDTH)
    monkeypatch.setattr(optimum, "MARGIN", 1.5 * optimum.MARGIN)
    np.testing.assert_allclose(coarse, optimum.log_density(kind, {}, x, s), atol=1e-8)
