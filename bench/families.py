"""Flow families against exact oracles on manifolds with ground truth (``python -m bench.families``).

One process, one torch thread. Two parts; results are printed and written as JSON to
``benchmarks/families.json`` (or ``--out``):

(a) ``--part timing``: one RealNVP training step with the exact Jacobian penalty (batch 200, d = 3,
    4 couplings, hidden [64, 64], float64), the couplings' analytic Jacobian against the autograd
    fall-back that it replaced (``Bijector.forward_and_jac``: ``vmap(jacrev)``), timed in interleaved
    rounds so that load from other processes affects both alike; the MLP flow's step for context.
(b) ``--part train``: RealNVP and the MLP flow trained (Jacobian penalty λ, ``training.train``) on
    noiseless manifolds; at checkpoint epochs the validation NLL, the median angle between the flow's
    top-k local-covariance eigenspace and the analytic tangent space, the kNN (k = 30) baseline's
    angle to the same oracle, and the median normal std against √λ (docs/theory.md §2.3–§2.5).

The results and their reading are in docs/findings-flow-families.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from flowtheory.datasets import manifolds
from flowtheory.science import oracles
from flowtheory.science.covariance import jacobians
from flowtheory.science.flows import Bijector, Coupling, build_flow
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, make_optimizer, train

BATCH = 200
LAM = 0.01
KNN_K = 30
N_TRAIN, N_VALID = 5000, 1000
FLOWS = {
    "realnvp": {"kind": "realnvp", "hidden": [64, 64], "couplings": 4},
    "mlp": {"kind": "mlp", "hidden_layers": 3, "activation": "sinh"},
}
DATA = {"scurve": manifolds.s_curve, "swissroll": manifolds.swiss_roll, "sphere": manifolds.sphere}


class _AutogradCoupling(Coupling):
    """The coupling as it was before its analytic Jacobian: the base class's autograd fall-backs."""

    jvp = Bijector.jvp
    jac = Bijector.jac
    forward_and_jac = Bijector.forward_and_jac


def _with_autograd_couplings(flow):
    flow = copy.deepcopy(flow)
    for layer in flow.layers:
        if isinstance(layer, Coupling):
            layer.__class__ = _AutogradCoupling
    assert not flow.analytic_jacobian
    return flow


def _step_fn(flow, data: torch.Tensor, stab: Stabilizer):
    opt = make_optimizer(flow, 1e-3)
    g = torch.Generator().manual_seed(0)
    batches = data.split(BATCH)
    state = {"i": 0}

    def step() -> None:
        xb = batches[state["i"] % len(batches)]
        state["i"] += 1
        nll, pen = stab.nll_and_penalty(flow, xb, g)
        opt.zero_grad()
        (nll + pen).backward()
        opt.step()
        nll.item(), pen.item()

    return step


def timing(steps: int, rounds: int) -> dict:
    m = manifolds.s_curve(2000, np.random.default_rng(0))
    data = torch.as_tensor(m.x)
    stab = Stabilizer("jac", "jacobian", LAM, estimator="exact")
    nvp = build_flow(FLOWS["realnvp"], 3, torch.float64, seed=0)
    with torch.no_grad():  # move the zero-initialised output layers off the identity, as after training
        g = torch.Generator().manual_seed(1)
        for p in nvp.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    variants = {
        "realnvp_analytic": nvp,
        "realnvp_autograd": _with_autograd_couplings(nvp),
        "mlp": build_flow(FLOWS["mlp"], 3, torch.float64, seed=0),
    }
    fns = {k: _step_fn(f, data, stab) for k, f in variants.items()}
    for fn in fns.values():
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(steps // rounds):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    ms["ratio_autograd_over_analytic"] = ms["realnvp_autograd"] / ms["realnvp_analytic"]
    return ms


def train_one(data_name: str, flow_name: str, epochs: list[int], seed: int = 0) -> dict:
    m = DATA[data_name](N_TRAIN + N_VALID, np.random.default_rng(seed))
    x = torch.as_tensor(m.x)
    x_train, x_valid = x[:N_TRAIN], x[N_TRAIN:]
    T_valid = m.tangent[N_TRAIN:]
    knn = oracles.knn_tangent_angle_deg(m.x[:N_TRAIN], m.x[N_TRAIN:], T_valid, KNN_K)
    flow = build_flow(FLOWS[flow_name], x.shape[1], torch.float64, seed=seed)
    stab = Stabilizer("jac", "jacobian", LAM, estimator="exact")
    rows: dict[int, dict] = {}
    hook_s = 0.0

    def log(line: str) -> None:
        nonlocal hook_s
        epoch = int(line.split()[1].split("/")[0]) if line.startswith("epoch ") and "/" in line.split()[1] else None
        if epoch not in epochs:
            return
        t0 = time.perf_counter()
        was_training = flow.training
        _, J = jacobians(flow, x_valid)
        flow.train(was_training)
        angle = oracles.tangent_angle_deg(J, T_valid)
        normal = oracles.normal_std(J, T_valid)[:, 0]
        rows[epoch] = {
            "angle_median": float(np.median(angle)),
            "angle_p90": float(np.percentile(angle, 90)),
            "normal_std_median": float(np.median(normal)),
            "tangent_std_median": float(np.median(oracles.local_stds(J)[:, :2])),
        }
        hook_s += time.perf_counter() - t0
        print(f"  {data_name} {flow_name} epoch {epoch}: {rows[epoch]}", flush=True)

    t0 = time.perf_counter()
    result = train(
        flow, x_train, x_valid, stab, TrainConfig(epochs=max(epochs), diagnostics_every=10**6), seed=seed + 1, log=log
    )
    wall = time.perf_counter() - t0 - hook_s
    for row in result.history:
        if row["epoch"] in rows:
            rows[row["epoch"]]["valid_nll"] = row["valid_nll"]
    return {
        "status": result.status,
        "steps": result.steps,
        "ms_per_step_incl_valid": 1e3 * wall / result.steps,
        "knn_angle_median": float(np.median(knn)),
        "knn_angle_p90": float(np.percentile(knn, 90)),
        "sqrt_lam": LAM**0.5,
        "by_epoch": {str(k): v for k, v in sorted(rows.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["timing", "train"], required=True)
    parser.add_argument("--data", nargs="*", default=list(DATA))
    parser.add_argument("--flows", nargs="*", default=list(FLOWS))
    parser.add_argument("--epochs", nargs="*", type=int, default=[50, 100, 200, 300])
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation seed (training: seed + 1)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": 1,
        "torch": torch.__version__,
    }
    if args.part == "timing":
        out = {"info": info, "timing_ms": timing(args.steps, rounds=10)}
    else:
        out = {"info": info, "lam": LAM, "seed": args.seed, "runs": {}}
        for data_name in args.data:
            for flow_name in args.flows:
                out["runs"][f"{data_name}/{flow_name}"] = train_one(data_name, flow_name, args.epochs, args.seed)
    print(json.dumps(out, indent=1))
    path = Path(args.out or f"benchmarks/families_{args.part}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
