"""How each flow family reaches its optimum: the authors' constant-rate Adam against the plateau
schedule and the L-BFGS polish, on the cases docs/measurements.md#convergence reports.

    python -m bench.convergence [--quick]

Per case and recipe: the monitored objective (validation NLL + penalty), the claim's quantity, the
run's status and its CPU seconds (one torch thread). Writes ``benchmarks/convergence.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from flowtheory.datasets import manifolds
from flowtheory.science import oracles
from flowtheory.science.flows import build_flow
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, train

torch.set_num_threads(1)
F64 = torch.float64


def _gaussian(n: int, rng: np.random.Generator):
    cov = np.diag([3.0, 0.7, 0.05])
    x = rng.multivariate_normal(np.zeros(3), cov, size=n)
    return torch.as_tensor(x, dtype=F64)


def _case_linear(recipe: dict, epochs: int) -> dict:
    rng = np.random.default_rng(0)
    x = _gaussian(2000, rng)
    xt, xv = x[:1500], x[1500:]
    flow = build_flow({"kind": "linear"}, 3, F64, seed=0)
    t0 = time.process_time()
    r = train(flow, xt, xv, Stabilizer("none", "none"), TrainConfig(epochs, **recipe), seed=0, log=lambda s: None)
    cpu = time.process_time() - t0
    W = flow.layers[0].W.detach().numpy()
    cov = np.cov(xt.numpy().T, bias=True)
    err = np.linalg.norm(W.T @ W - np.linalg.inv(cov)) / np.linalg.norm(np.linalg.inv(cov))
    return {"status": r.status, "wtw_relerr": float(err), "cpu_s": cpu, **r.convergence, "steps": r.steps}


def _case_manifold(flow_spec: dict, recipe: dict, epochs: int, n: int = 5000) -> dict:
    m = manifolds.s_curve(n + 1000, np.random.default_rng(0))
    x = torch.as_tensor(m.x, dtype=F64)
    xt, xv = x[:n], x[n:]
    tangent = m.tangent[n:]
    stab = Stabilizer("jacobian_1e-2", "jacobian", 0.01, estimator="exact")
    flow = build_flow(flow_spec, 3, F64, seed=0)
    t0 = time.process_time()
    r = train(flow, xt, xv, stab, TrainConfig(epochs, **recipe), seed=0, log=lambda s: None)
    cpu = time.process_time() - t0
    flow.eval()
    J = flow.jacobian(xv[:500]).detach().numpy()
    angle = np.median(oracles.tangent_angle_deg(J, tangent[:500]))
    normal = np.median(oracles.normal_std(J, tangent[:500])[:, 0])
    return {
        "status": r.status,
        "tangent_angle_deg": float(angle),
        "normal_std": float(normal),
        "normal_std_ratio": float(normal / math.sqrt(0.01)),
        "cpu_s": cpu,
        "steps": r.steps,
        **r.convergence,
    }


RECIPES = {
    "authors (constant Adam)": {"schedule": "constant"},
    "plateau": {"schedule": "plateau"},
    "plateau + L-BFGS": {"schedule": "plateau", "polish_iters": 1000},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/convergence.json")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0
    out = {}
    cases = {
        "linear, 3-D Gaussian (eigenvalues 3, 0.7, 0.05)": lambda rc: _case_linear(rc, int(600 * scale)),
        "MLP flow, S-curve, Jacobian penalty 1e-2": lambda rc: _case_manifold(
            {"kind": "mlp", "hidden_layers": 3, "activation": "sinh"}, rc, int(300 * scale)
        ),
        "RealNVP, S-curve, Jacobian penalty 1e-2": lambda rc: _case_manifold(
            {"kind": "realnvp", "couplings": 4, "hidden": [64, 64]}, rc, int(150 * scale)
        ),
    }
    for case, fn in cases.items():
        for name, recipe in RECIPES.items():
            if "RealNVP" in case and "L-BFGS" in name:
                continue  # ReLU couplings: L-BFGS stalls at once (docs/measurements.md#convergence)
            res = fn(recipe)
            out.setdefault(case, {})[name] = res
            print(
                case,
                "|",
                name,
                "|",
                json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in res.items()}),
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
