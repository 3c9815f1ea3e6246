"""Calibrates and checks the train-time estimate of ``flowtheory.pipeline.cost`` (``python -m bench.cost``).

One process, one torch thread. Two parts; results are printed and written as JSON to
``benchmarks/cost.json`` (or ``--out``):

(a) ``--part fit``: whole ``training.train`` calls (a few epochs; shuffling, validation NLL and
    diagnostics included) of every flow family at d = 2 to 196, with and without penalties, on
    Gaussian points; fits the constants ``T_STEP``, ``T_LAYER`` and ``T_MAC`` of the model
    (``cost.terms``) by least squares on log(estimated / measured), and prints each case's measured / estimated ratio under the
    fitted and under the committed constants.
(b) ``--part runs``: real train jobs of ``config/ci.yaml`` (``stages.train.run_many`` on the data
    stage's data: every run of the experiment, batched ensembles included), timed against
    ``cost.estimate_seconds`` under the committed constants.

The host's reference step (the zuko MAF step of ``python -m bench.steps --quick``) is timed right
before and after each measurement, which is then scaled to ``cost.REFERENCE_STEP_MS``: a shared
host's speed drifts with its load (twice as slow within minutes), its ratio to the reference step
much less. The fitted constants go into ``src/flowtheory/pipeline/cost.py`` by hand.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares

from flowtheory.datasets.toys import s_curve
from flowtheory.pipeline import cost
from flowtheory.science.flows import build_flow, count_parameters
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
NONE, WEIGHT = {"kind": "none"}, {"kind": "weight", "lam": 0.01}
JAC, HUTCH = {"kind": "jacobian", "lam": 0.01}, {"kind": "jacobian", "lam": 0.01, "estimator": "hutchinson"}
MLP3, NVP = {"kind": "mlp", "hidden_layers": 3}, {"kind": "realnvp", "couplings": 4, "hidden": [64, 64]}
#: (flow, d, stabilizer, epochs): every family, deep and wide flows, penalties, 2-D to 196-D
CASES = [
    ({"kind": "linear"}, 2, NONE, 120),
    ({"kind": "linear"}, 2, JAC, 120),
    (MLP3, 3, NONE, 60),
    (MLP3, 3, WEIGHT, 60),
    (MLP3, 3, JAC, 60),
    (MLP3, 8, JAC, 30),
    ({"kind": "mlp", "hidden_layers": 30}, 3, NONE, 12),
    ({"kind": "mlp", "hidden_layers": 30}, 3, JAC, 12),
    ({"kind": "mlp", "hidden_layers": 100}, 3, NONE, 6),
    ({"kind": "mlp", "hidden_layers": 3, "batchnorm_every": 1}, 3, NONE, 30),
    (MLP3, 196, NONE, 6),
    (MLP3, 196, HUTCH, 6),
    (NVP, 3, NONE, 24),
    (NVP, 3, JAC, 12),
    (NVP, 8, JAC, 12),
    ({"kind": "realnvp", "couplings": 16, "hidden": [64, 64]}, 3, NONE, 6),
    ({"kind": "realnvp", "couplings": 4, "hidden": [512, 512]}, 3, NONE, 6),
    ({"kind": "zuko_maf", "transforms": 3, "hidden": [64, 64]}, 3, NONE, 12),
    ({"kind": "zuko_nsf", "transforms": 3, "hidden": [64, 64]}, 3, NONE, 6),
    ({"kind": "zuko_nsf", "transforms": 3, "hidden": [64, 64]}, 3, HUTCH, 6),
]
N_TRAIN, N_VALID, BATCH = 1000, 200, 200
#: the real train jobs of part (b): experiments of config/ci.yaml
RUNS = ["gaussian_linear", "scurve_mlp", "scurve_realnvp", "mnist_mlp"]


def _config(flow: dict, d: int, stab: dict, epochs: int) -> dict:
    """A one-experiment config of one run (what ``cost.run_seconds`` reads)."""
    return {
        "seeds": [0],
        "data": {
            "datasets": {
                "g": {"kind": "gaussian", "n_train": N_TRAIN, "n_valid": N_VALID, "mean": [0.0] * d, "cov": np.eye(d)}
            }
        },
        "flows": {"f": flow},
        "stabilizers": {"s": stab},
        "train": {"batch_size": BATCH},
        "experiments": {"e": {"dataset": "g", "flow": "f", "epochs": epochs, "stabilizers": ["s"]}},
    }


class Reference:
    """The host's reference step (``python -m bench.steps --quick``: zuko's MAF of 19,224 parameters
    with torch's Adam, 3-D S-curve, batch 200, float32), timed around each measurement: a shared
    host's speed drifts with its load by 2 times within minutes, and a measurement divided by the
    reference step next to it does not."""

    def __init__(self) -> None:
        import zuko

        from bench.steps import PAIRS, _zuko_step

        x, _ = s_curve(2_000, np.random.default_rng(0))
        _, transforms, hidden = PAIRS["realnvp"]
        torch.manual_seed(0)
        maf = zuko.flows.MAF(3, transforms=transforms, hidden_features=hidden)
        self.step = _zuko_step(maf, torch.as_tensor(x, dtype=torch.float32), flat=False)
        for _ in range(20):
            self.step()

    def ms(self, steps: int = 60) -> float:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    def timed(self, fn) -> tuple[float, float, float]:
        """(seconds, the reference step around them in ms, seconds at cost.REFERENCE_STEP_MS)."""
        before = self.ms()
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        ref = (before + self.ms()) / 2
        return seconds, ref, seconds * cost.REFERENCE_STEP_MS / ref


def _name(flow: dict, d: int, stab: dict) -> str:
    return f"{json.dumps(flow)} d={d} {stab['kind']}{' ' + stab['estimator'] if 'estimator' in stab else ''}"


def fit(ref: Reference) -> dict:
    rows = []
    for flow, d, stab, epochs in CASES:
        rng = np.random.default_rng(0)
        x = torch.as_tensor(rng.standard_normal((N_TRAIN + N_VALID, d)) * 0.5)
        f = build_flow(flow, d, torch.float64, seed=0)
        assert count_parameters(f) == cost.parameters(flow, d), (flow, d)
        tc = TrainConfig(epochs, 1e-3, BATCH, 64 if d <= 16 else 8, 1 if d <= 16 else 4)
        st = Stabilizer.from_config("s", stab)
        x_train, x_valid = x[:N_TRAIN], x[N_TRAIN:]
        train(f, x_train, x_valid, st, TrainConfig(1, 1e-3, BATCH, 8, 1), seed=0, log=print_nothing)  # warm-up
        seconds, ref_ms, scaled = ref.timed(functools.partial(train, f, x_train, x_valid, st, tc, 0, print_nothing))
        cfg = _config(flow, d, stab, epochs)
        rows.append(
            {"case": _name(flow, d, stab), "epochs": epochs, "seconds": seconds, "reference_ms": ref_ms}
            | {"scaled": scaled, "x": cost.terms(cfg, "e", "s")}
        )
        print(f"measured {seconds:7.3f} s (reference step {ref_ms:5.2f} ms)  {_name(flow, d, stab)}", flush=True)
    # least squares on log(estimated / measured), measured scaled to the reference step; the
    # constants positive (fitted as logs)
    X = np.array([r["x"] for r in rows])
    y = np.array([r["scaled"] for r in rows])
    sol = least_squares(lambda c: np.log(X @ np.exp(c) / y), np.log([cost.T_STEP, cost.T_LAYER, cost.T_MAC]))
    fitted = dict(zip(("T_STEP", "T_LAYER", "T_MAC"), np.exp(sol.x).tolist(), strict=True))
    committed = {"T_STEP": cost.T_STEP, "T_LAYER": cost.T_LAYER, "T_MAC": cost.T_MAC}
    print(f"at a reference step of {cost.REFERENCE_STEP_MS} ms: fitted", {k: f"{v:.3g}" for k, v in fitted.items()})
    print("committed:", committed)
    for r in rows:
        for name, c in (("fitted", fitted), ("committed", committed)):
            r[f"estimate_{name}"] = float(np.dot(r["x"], [c["T_STEP"], c["T_LAYER"], c["T_MAC"]]))
        print(
            f"measured/estimated {r['scaled'] / r['estimate_fitted']:5.2f} (fitted) "
            f"{r['scaled'] / r['estimate_committed']:5.2f} (committed)  {r['case']}"
        )
    return {"fitted": fitted, "committed": committed, "cases": rows}


def print_nothing(_: str) -> None:
    pass


def runs(config_path: Path, ref: Reference) -> list[dict]:
    from flowtheory.pipeline.config import load, run_spec
    from flowtheory.stages import data as data_stage
    from flowtheory.stages import train as train_stage

    config = load(config_path)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            exp = config["experiments"][name]
            data = f"{tmp}/{exp['dataset']}.npz"
            if not Path(data).exists():
                data_stage.run(config["data"]["datasets"][exp["dataset"]], config["data"]["seed"], data)
            work = [
                {
                    "spec": run_spec(config, name, stab, seed).__dict__,
                    "model": f"{tmp}/{name}/{stab}/{seed}/model.pt",
                    "history": f"{tmp}/{name}/{stab}/{seed}/history.csv",
                    "metrics": f"{tmp}/{name}/{stab}/{seed}/metrics.json",
                }
                for stab in exp["stabilizers"]
                for seed in exp.get("seeds", config["seeds"])
            ]
            seconds, ref_ms, scaled = ref.timed(functools.partial(train_stage.run_many, work, data, print_nothing))
            estimate = cost.estimate_seconds(config, name)
            out.append(
                {"experiment": name, "runs": len(work), "seconds": seconds, "reference_ms": ref_ms}
                | {"scaled": scaled, "estimate": estimate}
            )
            print(
                f"{name}: {len(work)} runs, measured {seconds:.1f} s (reference step {ref_ms:.2f} ms; "
                f"{scaled:.1f} s at {cost.REFERENCE_STEP_MS} ms), estimated {estimate:.1f} s: measured/estimated "
                f"{seconds / estimate:.2f}, scaled {scaled / estimate:.2f}; runtime {cost.runtime_min(config, name)} min",
                flush=True,
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["fit", "runs", "all"], default="all")
    ap.add_argument("--config", default=str(ROOT / "config" / "ci.yaml"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "cost.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ref = Reference()
    result = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__}
    result["reference_step_ms_at_start"] = ref.ms(200)
    print(f"reference step: {result['reference_step_ms_at_start']:.2f} ms", flush=True)
    if args.part in ("fit", "all"):
        result["fit"] = fit(ref)
    if args.part in ("runs", "all"):
        result["runs"] = runs(Path(args.config), ref)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=lambda o: o.tolist()))


if __name__ == "__main__":
    main()
