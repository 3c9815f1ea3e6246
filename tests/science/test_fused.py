"""The fused MLP pass (flowtheory.science.fused) against autograd through the per-layer pass, float64."""

from __future__ import annotations

import math

import pytest
import torch

from flowtheory.science import fused
from flowtheory.science.ensemble import Stacked
from flowtheory.science.flows import LOG_EPS, Affine, Flow, build_flow


def _per_layer(flow: Flow, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow.forward's layer-by-layer path (autograd records every operation)."""
    per_sample = []
    for layer in flow.layers:
        if isinstance(layer, Affine):
            x = layer._map(x)
        else:
            x, la = layer(x)
            per_sample.append(la)
    return x, flow._total_ladj(x, per_sample)


def _flow(kind: str, d: int, seed: int, hidden_layers: int = 3) -> Flow:
    spec = {"kind": "mlp", "hidden_layers": hidden_layers, "activation": kind, "init": "identity", "init_scale": 0.3}
    return build_flow(spec, d, torch.float64, seed=seed)


@pytest.mark.parametrize("kind", fused.KINDS)
def test_gradcheck(kind):
    """The hand-written backward is the derivative of the forward (finite differences, float64)."""
    g = torch.Generator().manual_seed(0)
    d, n, layers = 3, 7, 3
    x = 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    x.requires_grad_(True)
    params = []
    for _ in range(layers):
        params.append(
            0.5 * torch.eye(d, dtype=torch.float64) + 0.2 * torch.randn(d, d, generator=g, dtype=torch.float64)
        )
        params.append(0.3 * torch.randn(d, generator=g, dtype=torch.float64))
    params = [p.requires_grad_(True) for p in params]

    def fn(x, *ps):
        return fused.MLPPass.apply(x, kind, LOG_EPS, *ps)

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", fused.KINDS)
@pytest.mark.parametrize("hidden_layers", [1, 3])
def test_flow_forward_matches_per_layer(kind, hidden_layers):
    """Values and every parameter's gradient of a weighted NLL-like loss agree with autograd to round-off."""
    flow = _flow(kind, d=4, seed=3, hidden_layers=hidden_layers)
    assert flow._fused == kind
    x = 0.5 * torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = torch.linspace(0.5, 1.5, 50, dtype=torch.float64)
    results = []
    for fn in (flow.forward, lambda v: _per_layer(flow, v)):
        y, ladj = fn(x)
        loss = (0.5 * (y**2).sum(-1) * w - ladj * w.flip(0)).mean()
        grads = torch.autograd.grad(loss, list(flow.parameters()))
        results.append((y.detach(), ladj.detach(), grads))
    (y1, l1, g1), (y2, l2, g2) = results
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_input_gradient_is_the_jacobian():
    """The backward's input gradient: rows of autograd's Jacobian of MLPPass equal Flow.jacobian."""
    flow = _flow("sinh", d=3, seed=5)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    Ws, bs = [a.W for a in flow._affines], [a.b for a in flow._affines]

    def single(v):
        return fused.mlp_pass(v[None], "sinh", LOG_EPS, Ws, bs)[0][0]

    J_auto = torch.stack([torch.autograd.functional.jacobian(single, xi) for xi in x])
    torch.testing.assert_close(J_auto, flow.jacobian(x), rtol=1e-12, atol=1e-12)


def test_per_layer_path_when_x_requires_grad():
    """Autograd Jacobians of Flow.forward (the references) do not go through the hand-written backward."""
    flow = _flow("sinh", d=3, seed=5)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y, _ = flow(x)
    assert type(y.grad_fn).__name__ != "MLPPassBackward"
    assert type(flow(x.detach())[0].grad_fn).__name__ == "MLPPassBackward"


@pytest.mark.parametrize("kind", fused.KINDS)
def test_stacked_matches_members(kind):
    """The batched pass of an ensemble gives each member's own values and gradients."""
    flows = [_flow(kind, d=3, seed=s) for s in (0, 1, 2)]
    stacked = Stacked(flows)
    x = 0.5 * torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y, ladj = stacked(x)
    (0.5 * (y**2).sum() - ladj.sum()).backward()
    for e, f in enumerate(flows):
        ye, le = _per_layer(f, x[e])
        torch.testing.assert_close(y[e], ye, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ladj[e], le, rtol=1e-12, atol=1e-12)
        grads = torch.autograd.grad(0.5 * (ye**2).sum() - le.sum(), list(f.parameters()))
        for name, g in zip([n for n, _ in f.named_parameters()], grads, strict=True):
            torch.testing.assert_close(stacked.stack[stacked.names.index(name)].grad[e], g, rtol=1e-10, atol=1e-12)


def test_not_fused_when_the_pattern_differs():
    """Batch norm, PReLU, a logit layer or a linear flow keep the per-layer path."""
    assert build_flow({"kind": "linear", "logdet": "chol"}, 2)._fused is None
    assert build_flow({"kind": "mlp", "activation": "prelu"}, 2)._fused is None
    assert build_flow({"kind": "mlp", "batchnorm_every": 1}, 2)._fused is None
    assert build_flow({"kind": "mlp", "sigmoid_output": True}, 2)._fused is None
    assert build_flow({"kind": "realnvp"}, 2)._fused is None
    assert build_flow({"kind": "mlp", "logdet": "chol"}, 2)._fused is None


@pytest.mark.parametrize("kind", fused.KINDS)
@pytest.mark.parametrize("d", [3, fused.BATCH_LOGDET_MAX_D + 6], ids=["stacked_lu", "lu_per_matrix"])
def test_nll_matches_autograd(kind, d):
    """Flow.nll (MLPNLL) and Stacked.nll: the loss and its gradients equal autograd's per-layer ones."""
    flows = [_flow(kind, d=d, seed=s) for s in (0, 1)]
    x = 0.5 * torch.randn(2, 30, d, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    stacked = Stacked(flows)
    losses = stacked.nll(x)
    losses.sum().backward()
    for e, f in enumerate(flows):
        y, ladj = _per_layer(f, x[e])
        ref = (0.5 * (y**2).sum(-1) + 0.5 * d * math.log(2 * math.pi) - ladj).mean()
        ref_grads = torch.autograd.grad(ref, list(f.parameters()))
        own = f.nll(x[e])
        own_grads = torch.autograd.grad(own, list(f.parameters()))
        torch.testing.assert_close(own, ref, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(losses[e], ref, rtol=1e-13, atol=1e-13)
        names = [n for n, _ in f.named_parameters()]
        for name, g_ref, g_own in zip(names, ref_grads, own_grads, strict=True):
            torch.testing.assert_close(g_own, g_ref, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(stacked.stack[stacked.names.index(name)].grad[e], g_ref, rtol=1e-10, atol=1e-12)


def test_gradcheck_nll():
    """MLPNLL's backward against finite differences (float64), with the log|det W| terms."""
    g = torch.Generator().manual_seed(1)
    d = 3
    x = (0.5 * torch.randn(2, 5, d, generator=g, dtype=torch.float64)).requires_grad_(True)
    params = []
    for _ in range(2):
        params.append(torch.eye(d, dtype=torch.float64) + 0.2 * torch.randn(2, d, d, generator=g, dtype=torch.float64))
        params.append(0.3 * torch.randn(2, d, generator=g, dtype=torch.float64))
    params = [p.requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(
        lambda x, *ps: fused.MLPNLL.apply(x, "sinh", LOG_EPS, *ps), (x, *params), eps=1e-6, atol=1e-8
    )


def test_linear_flow():
    """One affine layer (the linear flow): values, NLL and gradients against autograd, one flow and stacked."""
    flows = [build_flow({"kind": "linear"}, 3, torch.float64, seed=s) for s in (0, 1)]
    with torch.no_grad():
        for k, f in enumerate(flows):
            f.layers[0].W.add_(0.3 * torch.randn(3, 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64))
            f.layers[0].b.fill_(0.2 * (k + 1))
    assert flows[0]._fused == "linear"
    x = torch.randn(2, 20, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    stacked = Stacked(flows)
    stacked.nll(x).sum().backward()
    for e, f in enumerate(flows):
        y, ladj = f(x[e])
        y_ref, ladj_ref = _per_layer(f, x[e])
        torch.testing.assert_close(y, y_ref, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(ladj, ladj_ref, rtol=1e-13, atol=1e-13)
        ref = (0.5 * (y_ref**2).sum(-1) + 0.5 * 3 * math.log(2 * math.pi) - ladj_ref).mean()
        ref_grads = torch.autograd.grad(ref, list(f.parameters()))
        own_grads = torch.autograd.grad(f.nll(x[e]), list(f.parameters()))
        for name, g_ref, g_own in zip([n for n, _ in f.named_parameters()], ref_grads, own_grads, strict=True):
            torch.testing.assert_close(g_own, g_ref, rtol=1e-11, atol=1e-12)
            torch.testing.assert_close(stacked.stack[stacked.names.index(name)].grad[e], g_ref, rtol=1e-11, atol=1e-12)
