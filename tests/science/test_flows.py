"""Every flow kind built by ``build_flow``: invertibility, exact log-det, Jacobians, gradients, I/O.

All checks run in float64 against independent references: the inverse pass, and the full
per-sample autograd Jacobian (``torch.autograd.functional.jacobian``) of the normalizing map.
Parameters are perturbed first, so that no layer sits at its identity initialisation (zero-initialised
coupling outputs, PReLU slope 1, near-identity matrices) and every check is non-trivial.
"""

from __future__ import annotations

import math

import pytest
import torch

from flowtheory.pipeline import storage
from flowtheory.science.flows import (
    BATCH_LOGDET_MAX_D,
    CHOL_REG,
    FLOW_KINDS,
    BatchNorm,
    Bijector,
    Coupling,
    build_flow,
    count_parameters,
)

#: inverse round trip ‖g(f(x)) − x‖∞ (float64; spline and coupling inverses are closed form)
ATOL_ROUNDTRIP = 1e-9
#: log-det, Jacobian and JVP against the autograd references (float64)
ATOL_JAC = 1e-8
#: standard deviation of the random parameter perturbation applied before every check
PERTURB = 0.2
D = 3
N_POINTS = 6

SPECS = {
    "linear": {"kind": "linear"},
    "linear_chol": {"kind": "linear", "logdet": "chol"},
    **{
        f"mlp_{act}{'_bn' if bn else ''}": {"kind": "mlp", "hidden_layers": 2, "activation": act, "batchnorm_every": bn}
        for act in ("sinh", "asinh", "prelu")
        for bn in (0, 1)
    },
    "mlp_sigmoid": {"kind": "mlp", "hidden_layers": 2, "activation": "sinh", "sigmoid_output": True},
    "mlp_glorot": {"kind": "mlp", "hidden_layers": 1, "activation": "prelu", "init": "glorot"},
    "radial": {"kind": "radial"},
    "realnvp": {"kind": "realnvp", "hidden": [16, 16], "couplings": 3},
    "zuko_maf": {"kind": "zuko_maf", "hidden": [16, 16], "transforms": 2},
    "zuko_nsf": {"kind": "zuko_nsf", "hidden": [16, 16], "transforms": 2},
}


def _data(name: str, n: int = N_POINTS, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if SPECS[name].get("sigmoid_output"):
        return 0.05 + 0.9 * torch.rand(n, D, generator=g)  # the logit layer needs data in (0, 1)
    if SPECS[name].get("activation") == "asinh":
        # normalizing sinh∘sinh explodes on unit-scale data (docs/measurements.md): keep it in range
        return 0.3 * torch.randn(n, D, generator=g)
    return torch.randn(n, D, generator=g)


def _has_bn(flow) -> bool:
    return any(isinstance(m, BatchNorm) for m in flow.modules())


def make(name: str, seed: int = 0):
    """A perturbed flow in evaluation mode; batch norm's running statistics are populated first by
    a few training-mode passes on data."""
    flow = build_flow(SPECS[name], D, torch.float64, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(PERTURB * torch.randn(p.shape, generator=g))
        if _has_bn(flow):
            flow.train()
            for _ in range(5):
                flow(_data(name, 64, seed=7))
            for m in flow.modules():
                if isinstance(m, BatchNorm):  # the statistics moved away from their (0, 1) start
                    assert m.running_var.sub(1).abs().max() > 1e-3
    return flow.eval()


def autograd_jacobians(flow, x: torch.Tensor) -> torch.Tensor:
    def single(xi):
        return flow(xi[None])[0][0]

    return torch.stack([torch.autograd.functional.jacobian(single, xi) for xi in x])


def test_specs_cover_every_kind():
    assert {spec["kind"] for spec in SPECS.values()} == set(FLOW_KINDS)


@pytest.mark.parametrize("name", SPECS)
def test_inverse_round_trip(name):
    flow = make(name)
    x = _data(name)
    with torch.no_grad():
        y, _ = flow(x)
        assert not torch.allclose(y, x, atol=1e-3)  # the map is not the identity
        torch.testing.assert_close(flow.generate(y), x, atol=ATOL_ROUNDTRIP, rtol=0)


@pytest.mark.parametrize("name", SPECS)
def test_logdet_and_jacobian_match_autograd(name):
    flow = make(name)
    x = _data(name)
    J_ref = autograd_jacobians(flow, x)
    _, ladj = flow(x)
    sign, logabs = torch.linalg.slogdet(J_ref)
    assert (sign != 0).all()
    if SPECS[name].get("logdet") == "chol":
        # the authors' regularised log-det: ½ Σ log(s² + CHOL_REG) over every affine layer's W
        s = torch.linalg.svdvals(flow.layers[0].W.detach())
        expected = 0.5 * torch.log(s**2 + CHOL_REG).sum()
        torch.testing.assert_close(ladj.detach(), expected.expand(len(x)), atol=ATOL_JAC, rtol=0)
        # and within the documented regularisation of the exact value
        bound = 0.5 * torch.log1p(CHOL_REG / s**2).sum()
        assert 0 < bound < D * CHOL_REG  # s ≈ 1 here, so the bound is ~ d·1e-5/2
        assert ((ladj.detach() - logabs).abs() <= bound + ATOL_JAC).all()
        assert ((ladj.detach() - logabs).abs() > 0.5 * bound).all()  # the regularisation is really there
    else:
        torch.testing.assert_close(ladj.detach(), logabs, atol=ATOL_JAC, rtol=0)
    J = flow.jacobian(x).detach()
    assert J.shape == (len(x), D, D)
    torch.testing.assert_close(J, J_ref, atol=ATOL_JAC, rtol=0)
    # the one-pass variant used by the exact penalty and the diagnostics gives the same three tensors
    y1, ladj1, J1 = flow.forward_and_jacobian(x)
    torch.testing.assert_close(y1.detach(), flow(x)[0].detach(), atol=ATOL_JAC, rtol=0)
    torch.testing.assert_close(ladj1.detach(), ladj.detach(), atol=ATOL_JAC, rtol=0)
    torch.testing.assert_close(J1.detach(), J_ref, atol=ATOL_JAC, rtol=0)


@pytest.mark.parametrize("name", SPECS)
def test_jvp_matches_jacobian_vector_product(name):
    flow = make(name)
    x = _data(name)
    v = torch.randn(len(x), D)
    y, ladj, jv = flow.jvp(x, v)
    y_ref, ladj_ref = flow(x)
    J_ref = autograd_jacobians(flow, x)
    torch.testing.assert_close(y.detach(), y_ref.detach(), atol=ATOL_JAC, rtol=0)
    torch.testing.assert_close(ladj.detach(), ladj_ref.detach(), atol=ATOL_JAC, rtol=0)
    torch.testing.assert_close(jv.detach(), torch.einsum("nij,nj->ni", J_ref, v), atol=ATOL_JAC, rtol=0)


@pytest.mark.parametrize("name", SPECS)
def test_every_parameter_gets_a_gradient_from_the_nll(name):
    """Perturbed first (zero-initialised coupling outputs would block the hidden layers' gradients).
    Batch-norm flows are checked in evaluation mode: in training mode the batch mean cancels the bias of
    the affine layer just before it, so that bias has an exactly zero gradient by construction."""
    flow = make(name)
    x = _data(name, 64)
    loss = -flow.log_prob(x).mean()
    assert torch.isfinite(loss)
    loss.backward()
    params = dict(flow.named_parameters())
    assert params
    for pname, p in params.items():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: parameter {pname} gets a zero gradient"


@pytest.mark.parametrize("name", ["linear", "mlp_sinh", "mlp_prelu_bn", "realnvp"])
def test_nll_gradient_matches_finite_differences(name):
    """The analytic log-det's gradient is the true one (a wrong log-det derivative would pass the
    value checks above only by accident)."""
    flow = make(name)
    x = _data(name, 16)
    p = next(q for q in flow.parameters() if q.dim() == 2)
    loss = -flow.log_prob(x).mean()
    (grad,) = torch.autograd.grad(loss, p)
    eps = 1e-6
    idx = (0, min(1, p.shape[1] - 1))
    with torch.no_grad():
        p[idx] += eps
        up = -flow.log_prob(x).mean()
        p[idx] -= 2 * eps
        down = -flow.log_prob(x).mean()
        p[idx] += eps
    assert math.isclose(grad[idx].item(), ((up - down) / (2 * eps)).item(), rel_tol=1e-5, abs_tol=1e-7)


@pytest.mark.parametrize("name", SPECS)
def test_checkpoint_round_trip(name, tmp_path):
    flow = make(name)
    x = _data(name)
    path = tmp_path / "model.pt"
    meta = {"flow": SPECS[name], "d": D, "dtype": "float64", "seed": 0}
    storage.save_checkpoint(path, flow.state_dict(), meta)
    state, meta_back = storage.load_checkpoint(path)  # weights_only=True
    assert meta_back == meta
    fresh = build_flow(SPECS[name], D, torch.float64, seed=5).eval()
    with torch.no_grad():
        before = fresh.log_prob(x)
        fresh.load_state_dict(state)
        after = fresh.log_prob(x)
        expected = flow.log_prob(x)
    assert not torch.allclose(before, expected)  # a different init really differs
    torch.testing.assert_close(after, expected, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["mlp_sinh", "realnvp", "zuko_maf"])
def test_seed_fixes_the_initialisation(name):
    def state(seed, global_seed):
        torch.manual_seed(global_seed)  # the global RNG state must not matter
        return build_flow(SPECS[name], D, torch.float64, seed=seed).state_dict()

    a, b, c = state(0, 1), state(0, 2), state(1, 1)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_batchnorm_uses_batch_statistics_in_training_and_running_in_eval():
    flow = build_flow(SPECS["mlp_sinh_bn"], D, torch.float64, seed=0)
    bn = next(m for m in flow.modules() if isinstance(m, BatchNorm))
    x = 3 + 2 * torch.randn(500, D)
    flow.train()
    h = x
    for layer in flow.layers:
        if layer is bn:
            break
        h = layer(h)[0]
    out, _ = bn(h)
    torch.testing.assert_close(out.mean(0), torch.zeros(D), atol=1e-10, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(D), atol=1e-4, rtol=0)
    # running average update weight 0.2: new = 0.8 old + 0.2 batch
    torch.testing.assert_close(bn.running_mean, 0.2 * h.mean(0), atol=1e-12, rtol=0)
    # the Jacobian pass of the exact penalty must not update the running statistics a second time
    running = bn.running_mean.clone()
    flow.jacobian(x)
    torch.testing.assert_close(bn.running_mean, running, atol=0, rtol=0)
    # the one-pass forward + Jacobian is a forward pass: it updates them exactly once
    flow.forward_and_jacobian(x)
    torch.testing.assert_close(bn.running_mean, 0.8 * running + 0.2 * h.mean(0), atol=1e-12, rtol=0)
    flow.eval()
    before = bn.running_mean.clone()
    flow(x)
    torch.testing.assert_close(bn.running_mean, before, atol=0, rtol=0)


def test_analytic_jacobian_flag():
    assert build_flow(SPECS["mlp_prelu_bn"], D).analytic_jacobian
    assert build_flow(SPECS["mlp_sigmoid"], D).analytic_jacobian
    for d in (2, 3, 8):  # the couplings' Jacobian is analytic too (through the ReLU MLP)
        assert build_flow({"kind": "realnvp", "hidden": [8]}, d).analytic_jacobian
    assert not build_flow(SPECS["zuko_maf"], D).analytic_jacobian


def test_parameter_counts():
    assert count_parameters(build_flow(SPECS["linear"], D)) == D * D + D
    # 3 affine layers, 2 PReLU slopes, 2 batch norms with γ and β
    assert count_parameters(build_flow(SPECS["mlp_prelu_bn"], D)) == 3 * (D * D + D) + 2 + 2 * 2 * D


def test_radial_flow_on_a_sphere_gains_one_nat_per_unit_of_log_normal_scale():
    """Closed form (docs/theory.md §2.4.1): on points of the unit sphere in R^d, with the affine layer
    the identity and log ρ(r) = a log r + c at its best c (e^{2c} = d), the NLL is
    d/2 − (d/2) log d + (d/2) log 2π − α exactly, the radial singular value a√d and the d − 1 others
    √d: the likelihood is unbounded, one nat per unit of log s_max along α."""
    d = 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    flow = build_flow(SPECS["radial"], d, torch.float64)
    radial = flow.layers[1]
    for alpha in (0.0, 1.5, 7.0):
        with torch.no_grad():
            radial.alpha.fill_(alpha)
            radial.c.fill_(0.5 * math.log(d))
            nll = flow.nll(x)
            s = torch.linalg.svdvals(flow.jacobian(x))
        expected = d / 2 - d / 2 * math.log(d) + d / 2 * math.log(2 * math.pi) - alpha
        assert nll.item() == pytest.approx(expected, abs=1e-10)
        torch.testing.assert_close(s[:, 0], torch.full((50,), math.exp(alpha) * math.sqrt(d), dtype=torch.float64))
        torch.testing.assert_close(s[:, 1:], torch.full((50, d - 1), math.sqrt(d), dtype=torch.float64))


def test_float32_flow_keeps_its_dtype():
    flow = build_flow(SPECS["mlp_sinh_bn"], D, torch.float32)
    y, ladj = flow(torch.randn(8, D, dtype=torch.float32))
    assert y.dtype == ladj.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in flow.parameters())


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "glow"}, "unknown flow kind 'glow'"),
        ({}, "unknown flow kind None"),
        ({"kind": "mlp", "activation": "softplus"}, "activation must be one of"),
        ({"kind": "mlp", "init": "orthogonal"}, "init must be"),
        ({"kind": "linear", "logdet": "svd"}, "logdet must be"),
    ],
)
def test_bad_flow_spec_raises(spec, match):
    with pytest.raises(ValueError, match=match):
        build_flow(spec, D)


def test_zuko_flow_has_no_weight_matrices():
    with pytest.raises(ValueError, match="not defined for zuko"):
        build_flow(SPECS["zuko_nsf"], D).weight_matrices()


@pytest.mark.parametrize(
    ("spec", "d"),
    [
        (SPECS["linear_chol"], D),
        (SPECS["mlp_prelu_bn"], D),
        (SPECS["mlp_sigmoid"], D),
        (SPECS["realnvp"], D),
        ({"kind": "mlp", "hidden_layers": 3, "activation": "sinh", "logdet": "chol"}, D),
        ({"kind": "mlp", "hidden_layers": 2, "activation": "sinh"}, BATCH_LOGDET_MAX_D + 1),  # one call per layer
    ],
)
def test_flow_log_det_is_the_sum_of_its_layers_log_dets(spec, d):
    """``Flow`` adds the affine layers' log-dets in one batched call: the same as layer by layer."""
    flow = build_flow(spec, d, torch.float64, seed=0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(PERTURB / d**0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2), dtype=p.dtype))
    flow.eval()
    x = 0.05 + 0.9 * torch.rand(N_POINTS, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h, expected = x, torch.zeros(N_POINTS, dtype=torch.float64)
    for layer in flow.layers:
        h, la = layer(h)
        expected = expected + la
    y, ladj = flow(x)
    torch.testing.assert_close(y, h, atol=0, rtol=0)
    torch.testing.assert_close(ladj, expected, atol=1e-12, rtol=0)
    v = torch.randn(N_POINTS, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(flow.jvp(x, v)[1], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(flow.forward_and_jacobian(x)[1], expected, atol=1e-12, rtol=0)


# --------------------------------------------------- the coupling's analytic Jacobian (RealNVP)

#: (d, n_masked, hidden widths): the default split, uneven splits, one or three hidden layers
COUPLING_CASES = [(2, 1, [16, 16]), (3, 1, [16, 16]), (3, 2, [7]), (8, 4, [16, 16]), (8, 3, [9, 5, 6]), (8, 7, [16])]


def _coupling(d: int, n_masked: int, hidden: list[int], seed: int = 0) -> Coupling:
    """A coupling whose every weight and bias, the zero-initialised output layer included, is random."""
    layer = Coupling(d, n_masked, hidden, torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return layer


def _coupling_jac_ref(layer: Coupling, h: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(torch.func.jacrev(lambda hi: layer(hi[None])[0][0]))(h)


@pytest.mark.parametrize(("d", "n_masked", "hidden"), COUPLING_CASES)
def test_coupling_jacobian_matches_autograd(d, n_masked, hidden):
    layer = _coupling(d, n_masked, hidden)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(N_POINTS, d, generator=g)
    J_ref = _coupling_jac_ref(layer, h)
    assert not torch.allclose(J_ref[:, n_masked:, :n_masked], torch.zeros(()))  # the MLP block is non-trivial
    with torch.no_grad():
        y_ref, ladj_ref = layer(h)
        eye = torch.eye(d).expand(N_POINTS, d, d)
        y, J = layer.jac(h, eye)
        torch.testing.assert_close(J, J_ref, atol=ATOL_JAC, rtol=0)
        # pushed through an accumulated Jacobian: J_layer @ J_acc
        J_acc = torch.randn(N_POINTS, d, d, generator=g)
        y, JJ = layer.jac(h, J_acc)
        torch.testing.assert_close(JJ, J_ref @ J_acc, atol=ATOL_JAC, rtol=0)
        # the one-pass variant: the forward pass's values bit for bit, and the same Jacobian
        y2, ladj2, JJ2 = layer.forward_and_jac(h, J_acc)
        assert torch.equal(y, y_ref) and torch.equal(y2, y_ref) and torch.equal(ladj2, ladj_ref)
        torch.testing.assert_close(JJ2, J_ref @ J_acc, atol=ATOL_JAC, rtol=0)
        # log|det J| = -Σ s equals slogdet of the full Jacobian
        sign, logabs = torch.linalg.slogdet(J_ref)
        assert (sign != 0).all()
        torch.testing.assert_close(ladj_ref, logabs, atol=ATOL_JAC, rtol=0)
        # JVP
        v = torch.randn(N_POINTS, d, generator=g)
        y3, ladj3, jv = layer.jvp(h, v)
        assert torch.equal(y3, y_ref) and torch.equal(ladj3, ladj_ref)
        torch.testing.assert_close(jv, torch.einsum("nij,nj->ni", J_ref, v), atol=ATOL_JAC, rtol=0)
        # and the autograd fall-back it replaces agrees
        torch.testing.assert_close(Bijector._autograd_jac(layer, h), J_ref, atol=ATOL_JAC, rtol=0)


@pytest.mark.parametrize(("d", "n_masked", "hidden"), [(3, 1, [16, 16]), (8, 3, [9, 5])])
def test_coupling_jacobian_penalty_gradient_matches_autograd(d, n_masked, hidden):
    """The exact Jacobian penalty trains through the analytic Jacobian: its parameter gradient is the
    autograd one (double backward through the fall-back)."""
    layer = _coupling(d, n_masked, hidden, seed=2)
    h = torch.randn(N_POINTS, d, generator=torch.Generator().manual_seed(3))
    eye = torch.eye(d).expand(N_POINTS, d, d)
    params = list(layer.parameters())
    analytic = torch.autograd.grad(layer.forward_and_jac(h, eye)[2].pow(2).sum(), params)
    reference = torch.autograd.grad(Bijector.forward_and_jac(layer, h, eye)[2].pow(2).sum(), params)
    for a, r in zip(analytic, reference, strict=True):
        assert r.abs().sum() > 0
        torch.testing.assert_close(a, r, atol=ATOL_JAC, rtol=0)


@pytest.mark.parametrize("d", [2, 3, 8])
def test_realnvp_flow_jacobian_is_analytic_and_matches_autograd(d):
    """The whole RealNVP (couplings and permutations) against autograd, with no autograd in the
    analytic pass: the Jacobian is built under ``no_grad`` from inputs that do not require grad."""
    flow = build_flow({"kind": "realnvp", "hidden": [16, 16], "couplings": 3}, d, torch.float64, seed=1)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(PERTURB * torch.randn(p.shape, generator=g))
    flow.eval()
    assert flow.analytic_jacobian
    x = torch.randn(N_POINTS, d, generator=g)
    J_ref = autograd_jacobians(flow, x)
    with torch.no_grad():
        y, ladj, J = flow.forward_and_jacobian(x)
        torch.testing.assert_close(J, J_ref, atol=ATOL_JAC, rtol=0)
        torch.testing.assert_close(flow.jacobian(x), J_ref, atol=ATOL_JAC, rtol=0)
        torch.testing.assert_close(ladj, torch.linalg.slogdet(J_ref)[1], atol=ATOL_JAC, rtol=0)
        y0, ladj0 = flow(x)
        assert torch.equal(y, y0) and torch.equal(ladj, ladj0)
