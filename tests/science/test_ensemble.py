"""Batched ensembles (flowtheory.science.ensemble, training.train_ensemble): each member's result
equals training it alone, to float64 round-off; divergence of one member leaves the others alone."""

from __future__ import annotations

import math

import pytest
import torch

from flowtheory.science.ensemble import Mapped, Stacked, mappable, stackable
from flowtheory.science.flows import build_flow
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, batching, train, train_ensemble

F64 = torch.float64
#: float64 round-off after a few hundred Adam steps: batched products sum in another order
RTOL = 1e-9

SPECS = {
    "linear": {"kind": "linear"},
    "mlp": {"kind": "mlp", "hidden_layers": 2},
    "realnvp": {"kind": "realnvp", "couplings": 3, "hidden": [16, 16]},
    "nsf": {"kind": "zuko_nsf", "transforms": 2, "hidden": [16, 16]},  # mapped (ensemble.Mapped), not stacked
}
STABS = {
    "none": [Stabilizer("none", "none")] * 3,
    "weight": [Stabilizer("w1", "weight", 0.1), Stabilizer("w2", "weight", 0.01), Stabilizer("w1", "weight", 0.1)],
    "jacobian": [
        Stabilizer("j1", "jacobian", 0.1),
        Stabilizer("j2", "jacobian", 0.01),
        Stabilizer("j3", "jacobian", 1e-3),
    ],
    "noise": [Stabilizer("n1", "noise", 0.1), Stabilizer("n2", "noise", 0.01), Stabilizer("n1", "noise", 0.1)],
    # one ensemble family: none, weight and noise share one forward pass
    "mixed": [Stabilizer("none", "none"), Stabilizer("w", "weight", 0.1), Stabilizer("n", "noise", 0.01)],
    "mixed_no_weight": [Stabilizer("none", "none"), Stabilizer("n", "noise", 0.1), Stabilizer("none", "none")],
}


def _data(d: int = 3, n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n + 100, generator=g, dtype=F64) * 3
    x = torch.stack([torch.sin(t), t - 1.5, torch.cos(t)], 1)[:, :d] + 0.05 * torch.randn(
        n + 100, d, generator=g, dtype=F64
    )
    return x[:n], x[n:]


@pytest.mark.parametrize("flow", list(SPECS))
@pytest.mark.parametrize("kind", list(STABS))
def test_each_member_equals_training_it_alone(flow, kind):
    if kind in ("weight", "mixed") and flow in ("realnvp", "nsf"):
        pytest.skip("the config refuses the weight penalty for couplings (no square weight matrices)")
    if kind == "jacobian" and flow == "nsf":
        pytest.skip("zuko's runs with a Jacobian penalty are not batched (training.batching): they train alone")
    x, xv = _data()
    stabs = STABS[kind]
    seeds = [0, 1, 0] if kind != "none" else [0, 1, 2]
    cfg = TrainConfig(epochs=4, batch_size=64, probe_points=16)
    alone = []
    for stab, seed in zip(stabs, seeds, strict=True):
        f = build_flow(SPECS[flow], 3, F64, seed=seed)
        alone.append((f, train(f, x, xv, stab, cfg, seed=seed, log=lambda s: None)))
    flows = [build_flow(SPECS[flow], 3, F64, seed=s) for s in seeds]
    results = train_ensemble(flows, x, xv, stabs, cfg, seeds, log=lambda s: None)
    for (f_alone, r_alone), f, r in zip(alone, flows, results, strict=True):
        assert r.status == r_alone.status and r.steps == r_alone.steps
        assert [h["epoch"] for h in r.history] == [h["epoch"] for h in r_alone.history]
        for h, h0 in zip(r.history, r_alone.history, strict=True):
            for key, value in h0.items():
                if isinstance(value, str):
                    assert h[key] == value
                    continue
                assert math.isclose(h[key], value, rel_tol=RTOL, abs_tol=1e-12), (key, h[key], value)
        for (name, p), (_, p0) in zip(f.state_dict().items(), f_alone.state_dict().items(), strict=True):
            torch.testing.assert_close(p, p0, rtol=RTOL, atol=1e-12, msg=name)


def test_stacked_pass_matches_each_flow_with_its_jacobian():
    """The batched pass against each member's own: outputs, log-dets and Jacobians."""
    for spec in (s for s in SPECS.values() if not s["kind"].startswith("zuko")):  # zuko's: Mapped, below
        flows = [build_flow(spec, 3, F64, seed=s) for s in range(3)]
        with torch.no_grad():  # move off the identity start
            for f in flows:
                for p in f.parameters():
                    p.add_(0.1 * torch.randn(p.shape, dtype=F64, generator=torch.Generator().manual_seed(p.numel())))
        x = torch.randn(3, 20, 3, dtype=F64)
        y, ladj, J = Stacked(flows).forward_and_jacobian(x)
        for e, f in enumerate(flows):
            y0, l0, J0 = f.forward_and_jacobian(x[e])
            torch.testing.assert_close(y[e], y0, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(ladj[e], l0, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(J[e], J0, rtol=1e-12, atol=1e-12)
            # and the Jacobian against autograd
            Ja = torch.autograd.functional.jacobian(lambda v, f=f: f(v[None])[0][0], x[e, 0])
            torch.testing.assert_close(J[e, 0], Ja, rtol=1e-10, atol=1e-12)


def test_one_diverging_member_stops_alone_and_the_others_train_on():
    """Normalizing sinh layers overflow on inputs of a few hundred: noise of σ = 100 makes one member
    diverge at once, σ = 0.01 leaves the other well-behaved. Each matches its run alone: the diverged
    one stops at the same step with its last finite epoch, the other trains to the end."""
    x, xv = _data()
    spec = {"kind": "mlp", "hidden_layers": 2, "activation": "asinh"}
    stabs = [Stabilizer("loud", "noise", 1e4), Stabilizer("quiet", "noise", 1e-4)]
    cfg = TrainConfig(epochs=3, batch_size=64, probe_points=16)
    alone = []
    for stab in stabs:
        f = build_flow(spec, 3, F64, seed=0)
        alone.append((f, train(f, x, xv, stab, cfg, seed=0, log=lambda s: None)))
    assert [r.status for _, r in alone] == ["diverged", "not_converged"]
    flows = [build_flow(spec, 3, F64, seed=0) for _ in stabs]
    results = train_ensemble(flows, x, xv, stabs, cfg, [0, 0], log=lambda s: None)
    for (f0, r0), f, r in zip(alone, flows, results, strict=True):
        assert (r.status, r.diverged_step, r.steps, r.checkpoint_epoch) == (
            r0.status,
            r0.diverged_step,
            r0.steps,
            r0.checkpoint_epoch,
        )
        assert len(r.history) == len(r0.history)
        for (name, p), (_, p0) in zip(f.state_dict().items(), f0.state_dict().items(), strict=True):
            assert torch.isfinite(p).all(), name
            torch.testing.assert_close(p, p0, rtol=RTOL, atol=1e-12, msg=name)


def test_zuko_runs_are_mapped_only_where_the_loss_is_the_nll():
    """training.batching: zuko flows of one architecture with none or noise batch as Mapped; a
    run alone, a Jacobian or weight penalty, or another architecture train one at a time."""
    nsf = [build_flow(SPECS["nsf"], 3, F64, seed=s) for s in (0, 1)]
    other = build_flow({"kind": "zuko_nsf", "transforms": 3, "hidden": [16, 16]}, 3, F64, seed=0)
    none, noise = Stabilizer("none", "none"), Stabilizer("n", "noise", 0.01)
    assert batching(nsf, [none, noise]) == "mapped" and mappable(nsf)
    assert batching(nsf[:1], [noise]) == "single"
    assert batching(nsf, [Stabilizer("j", "jacobian", 0.01)] * 2) is None
    assert batching(nsf, [none, Stabilizer("w", "weight", 0.1)]) is None
    assert batching([nsf[0], other], [none, none]) is None and not mappable([nsf[0], other])
    assert not mappable([build_flow(SPECS["mlp"], 3, F64, seed=0)] * 2)
    with pytest.raises(ValueError, match="cannot be mapped"):
        Mapped([nsf[0], other])


def test_mapped_pass_matches_each_flow():
    """One mapped pass of E zuko flows gives each member's own forward pass."""
    flows = [build_flow(SPECS["nsf"], 3, F64, seed=s) for s in range(3)]
    x = torch.randn(3, 50, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    y, ladj = Mapped(flows)(x)
    for e, f in enumerate(flows):
        y0, ladj0 = f(x[e])
        torch.testing.assert_close(y[e], y0, rtol=RTOL, atol=1e-12)
        torch.testing.assert_close(ladj[e], ladj0, rtol=RTOL, atol=1e-12)


def test_stackable_refuses_mixed_architectures():
    a = build_flow(SPECS["mlp"], 3, F64, seed=0)
    b = build_flow({"kind": "mlp", "hidden_layers": 3}, 3, F64, seed=0)
    c = build_flow({"kind": "mlp", "hidden_layers": 2, "batchnorm_every": 1}, 3, F64, seed=0)
    assert stackable([a, a]) and not stackable([a, b]) and not stackable([c, c])
