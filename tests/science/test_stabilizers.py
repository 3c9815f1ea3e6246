"""Stabilizers: one strength λ = 2α = σ², the penalties' values, and the Hutchinson estimator."""

from __future__ import annotations

import math

import pytest
import torch

from flowtheory.science.flows import build_flow
from flowtheory.science.stabilizers import EXACT_MAX_D, KINDS, Stabilizer, hutchinson_sq_frobenius

#: float64 agreement of two computations of the same quantity
ATOL_EXACT = 1e-10
#: a Monte-Carlo mean must lie within this many standard errors of its expectation
N_STANDARD_ERRORS = 3.0
#: Hutchinson probes per point in the unbiasedness test
N_PROBES = 4000
#: relative tolerance of the empirical noise covariance (sampling error ≈ √(2/n) ≈ 0.3% at n = 200,000)
RTOL_NOISE_COV = 0.02
LAM = 0.3


def _perturbed(spec: dict, d: int, seed: int = 0, scale: float = 0.2):
    flow = build_flow(spec, d, torch.float64, seed=seed)
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return flow


@pytest.mark.parametrize("kind", ["weight", "jacobian", "noise"])
def test_one_strength_lambda_equals_two_alpha_equals_sigma_squared(kind):
    s = Stabilizer("s", kind, LAM)
    if kind == "noise":
        assert s.alpha == 0.0
        assert s.sigma == math.sqrt(LAM)
        assert s.authors_knobs() == {"alpha_W": 0.0, "alpha_J": 0.0, "noise_std": math.sqrt(LAM)}
    else:
        assert s.alpha == LAM / 2
        assert s.sigma == 0.0
        knobs = s.authors_knobs()
        assert knobs["alpha_W" if kind == "weight" else "alpha_J"] == LAM / 2
        assert knobs["alpha_J" if kind == "weight" else "alpha_W"] == 0.0
        assert knobs["noise_std"] == 0.0


def test_none_has_no_knobs():
    s = Stabilizer("none", "none")
    assert s.alpha == s.sigma == 0.0
    assert s.authors_knobs() == {"alpha_W": 0.0, "alpha_J": 0.0, "noise_std": 0.0}


def test_from_config():
    s = Stabilizer.from_config("jac", {"kind": "jacobian", "lam": 0.1, "estimator": "hutchinson", "probes": 2})
    assert (s.name, s.kind, s.lam, s.estimator, s.probes) == ("jac", "jacobian", 0.1, "hutchinson", 2)


def test_jacobian_penalty_equals_weight_penalty_for_one_linear_layer():
    flow = _perturbed({"kind": "linear"}, 3, scale=0.5)
    x = torch.randn(50, 3)
    g = torch.Generator().manual_seed(0)
    nll_j, pen_j = Stabilizer("j", "jacobian", LAM, estimator="exact").nll_and_penalty(flow, x, g)
    nll_w, pen_w = Stabilizer("w", "weight", LAM).nll_and_penalty(flow, x, g)
    W = flow.layers[0].W
    assert math.isclose(pen_w.item(), LAM / 2 * (W**2).sum().item(), rel_tol=1e-12)
    assert pen_w.item() > 0.1
    torch.testing.assert_close(pen_j, pen_w, atol=ATOL_EXACT, rtol=0)
    torch.testing.assert_close(nll_j, nll_w, atol=ATOL_EXACT, rtol=0)
    # and so are their gradients
    (gj,) = torch.autograd.grad(pen_j, W)
    (gw,) = torch.autograd.grad(pen_w, W)
    torch.testing.assert_close(gj, gw, atol=ATOL_EXACT, rtol=0)
    torch.testing.assert_close(gw, LAM * W.detach(), atol=ATOL_EXACT, rtol=0)


def test_weight_penalty_sums_every_affine_matrix():
    flow = _perturbed({"kind": "mlp", "hidden_layers": 2}, 3)
    _, pen = Stabilizer("w", "weight", LAM).nll_and_penalty(flow, torch.randn(10, 3), torch.Generator())
    Ws = flow.weight_matrices()
    assert len(Ws) == 3
    assert math.isclose(pen.item(), LAM / 2 * sum((W**2).sum().item() for W in Ws), rel_tol=1e-12)


def test_exact_jacobian_penalty_is_mean_squared_frobenius_norm():
    flow = _perturbed({"kind": "mlp", "hidden_layers": 2, "activation": "prelu"}, 3)
    x = torch.randn(20, 3)
    nll, pen = Stabilizer("j", "jacobian", LAM, estimator="exact").nll_and_penalty(flow, x, torch.Generator())
    J = flow.jacobian(x)
    assert math.isclose(pen.item(), LAM / 2 * J.pow(2).sum((1, 2)).mean().item(), rel_tol=1e-12)
    assert math.isclose(nll.item(), -flow.log_prob(x).mean().item(), rel_tol=1e-12)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "mlp", "hidden_layers": 2, "activation": "sinh"},
        {"kind": "realnvp", "hidden": [16], "couplings": 2},  # the couplings' analytic JVP
    ],
    ids=["mlp", "realnvp"],
)
def test_hutchinson_estimate_is_unbiased(spec):
    d = 20
    flow = _perturbed(spec, d, scale=0.1)
    x = torch.randn(3, d)
    exact = flow.jacobian(x).detach().pow(2).sum((1, 2))
    g = torch.Generator().manual_seed(0)
    # one probe per row; each point repeated N_PROBES times gives N_PROBES independent estimates
    y, ladj, est = hutchinson_sq_frobenius(flow, x.repeat_interleave(N_PROBES, 0), g, probes=1)
    est = est.detach().view(3, N_PROBES)
    mean, se = est.mean(1), est.std(1) / math.sqrt(N_PROBES)
    assert (se > 0).all()  # the estimate is random (Rademacher probes), not exact by accident
    assert ((mean - exact).abs() <= N_STANDARD_ERRORS * se).all(), (mean, exact, se)
    # ... and the same y and log-det as the plain forward pass
    y_ref, ladj_ref = flow(x)
    torch.testing.assert_close(y.detach()[::N_PROBES], y_ref.detach(), atol=ATOL_EXACT, rtol=0)
    torch.testing.assert_close(ladj.detach()[::N_PROBES], ladj_ref.detach(), atol=ATOL_EXACT, rtol=0)


def test_hutchinson_probes_average():
    """More probes per sample reduce the variance (the average of `probes` independent estimates)."""
    flow = _perturbed({"kind": "mlp", "hidden_layers": 1}, 10, scale=0.3)
    x = torch.randn(1, 10).repeat(2000, 1)
    g = torch.Generator().manual_seed(1)
    var1 = hutchinson_sq_frobenius(flow, x, g, probes=1)[2].detach().var()
    var4 = hutchinson_sq_frobenius(flow, x, g, probes=4)[2].detach().var()
    assert 0.15 < (var4 / var1).item() < 0.4  # 1/4 in expectation


def test_jacobian_estimator_auto_switches_to_hutchinson_above_exact_max_d():
    spec = {"kind": "mlp", "hidden_layers": 1}
    for d, random in ((EXACT_MAX_D, False), (EXACT_MAX_D + 1, True)):
        flow = _perturbed(spec, d)
        x = torch.randn(5, d)
        s = Stabilizer("j", "jacobian", LAM)
        pens = [s.nll_and_penalty(flow, x, torch.Generator().manual_seed(k))[1].item() for k in range(2)]
        assert (pens[0] != pens[1]) == random, d


def test_hutchinson_penalty_gradient_flows_to_parameters():
    flow = _perturbed({"kind": "mlp", "hidden_layers": 1}, 20)
    _, pen = Stabilizer("j", "jacobian", LAM, estimator="hutchinson").nll_and_penalty(
        flow, torch.randn(8, 20), torch.Generator().manual_seed(0)
    )
    pen.backward()
    for name, p in flow.named_parameters():
        if name.endswith(".W"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_noise_injection_adds_lambda_identity_to_the_covariance():
    n, d = 200_000, 2
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    x = torch.randn(n, d, generator=g) @ L.T
    xc = Stabilizer("n", "noise", LAM).corrupt(x, g)
    increase = torch.cov(xc.T, correction=0) - torch.cov(x.T, correction=0)
    torch.testing.assert_close(increase, LAM * torch.eye(d), atol=RTOL_NOISE_COV * LAM, rtol=0)
    # a fresh draw per call (per minibatch)
    noise = Stabilizer("n", "noise", LAM)
    assert not torch.equal(noise.corrupt(x[:5], g), noise.corrupt(x[:5], g))


@pytest.mark.parametrize("kind", ["none", "weight", "jacobian"])
def test_other_kinds_do_not_corrupt(kind):
    x = torch.randn(10, 2)
    s = Stabilizer("s", kind, 0.0 if kind == "none" else LAM)
    assert s.corrupt(x, torch.Generator()) is x


def test_none_has_zero_penalty():
    flow = _perturbed({"kind": "linear"}, 2)
    nll, pen = Stabilizer("none", "none").nll_and_penalty(flow, torch.randn(10, 2), torch.Generator())
    assert pen.item() == 0.0 and torch.isfinite(nll)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "dropout", "lam": 0.1}, "unknown kind 'dropout'"),
        ({"kind": "weight", "lam": -0.1}, "lam must be a finite number >= 0"),
        ({"kind": "noise", "lam": float("nan")}, "lam must be a finite number >= 0"),
        ({"kind": "jacobian", "lam": float("inf")}, "lam must be a finite number >= 0"),
        ({"kind": "weight", "lam": 0.0}, "kind 'weight' needs lam > 0"),
        ({"kind": "noise"}, "kind 'noise' needs lam > 0"),
        ({"kind": "jacobian", "lam": 0.1, "estimator": "exactish"}, "unknown estimator"),
    ],
)
def test_bad_stabilizer_raises_with_its_name(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        Stabilizer("my_stab", **kwargs)
    assert "'my_stab'" in str(err.value)


def test_kinds():
    assert KINDS == ("none", "weight", "jacobian", "noise")


def test_weight_penalty_on_zuko_flow_raises():
    flow = build_flow({"kind": "zuko_maf", "hidden": [8], "transforms": 1}, 2)
    with pytest.raises(ValueError, match="weight Tikhonov penalty is not defined"):
        Stabilizer("w", "weight", LAM).nll_and_penalty(flow, torch.randn(4, 2), torch.Generator())
