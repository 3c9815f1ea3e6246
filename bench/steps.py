"""Side-by-side benchmark of training steps and component extraction (``python -m bench.steps``).

Everything runs in one process on one torch thread, and competing variants are timed in interleaved
rounds, so that load from other processes affects them alike. Results are printed as a table and
written to ``benchmarks/bench.json``.

(a) One training step (forward, backward, Adam step; batch 200, float32, 3-D S-curve data) of our
    RealNVP and our MLP flow against zuko's MAF at an equal parameter count; and the paper
    config's zuko NSF runs of one experiment, each alone against all of them mapped in one step
    (``ensemble.Mapped``), per run.
(b) One training step of the 784-D MLP flow (1 and 3 hidden layers), float32, batch 200.
(c) Component extraction: batched ``covariance.jacobians`` + ``components.extract`` against the
    authors' per-point loop (autograd Jacobian, numpy SVD, scikit-learn ``svd_flip``), on 2,000
    3-D points and 200 784-D points.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flowtheory.datasets.toys import s_curve
from flowtheory.science.components import extract, reference_components
from flowtheory.science.covariance import jacobians
from flowtheory.science.flows import build_flow, count_parameters
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import ADAM_BETAS, ADAM_EPS, make_optimizer, step

__all__ = ["main"]

BATCH = 200
LR = 1e-3
#: the equal-parameter pairs of (a): (our flow spec, zuko MAF transforms, zuko MAF hidden sizes)
PAIRS = {
    "realnvp": ({"kind": "realnvp", "hidden": [64, 64], "couplings": 4}, 4, [64, 64]),
    "mlp": ({"kind": "mlp", "hidden_layers": 3, "activation": "sinh"}, 1, [4]),
}
#: not parameter-matched, for context: zuko MAF with as many transforms as our MLP flow has affine layers
EQUAL_DEPTH_MAF = (4, [1])
#: parameter counts of a pair must agree within this fraction
PARAM_MATCH = 0.10
#: 784-D points per alternation of the two component methods
CHUNK_784 = 25
#: (a) the paper config's zuko NSF (config/config.yaml, flows.nsf) and the most runs one of its NSF
#: experiments trains at once (sphere_nsf_none: five seeds)
NSF_MAPPED = ({"kind": "zuko_nsf", "transforms": 3, "hidden": [64, 64]}, 5)
#: goal for the 3-D component extraction speed-up (batched vs the authors' loop)
GOAL_COMPONENTS_3D = 50.0


def _median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def _interleaved(fns: dict[str, Callable[[], None]], steps: int, warmup: int, rounds: int = 10) -> dict[str, float]:
    """Median milliseconds per call of each function, timed in ``rounds`` interleaved blocks."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    per_round = max(1, math.ceil(steps / rounds))
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: _median_ms(v) for k, v in times.items()}


def _our_step(flow, data: torch.Tensor, stab: Stabilizer) -> Callable[[], None]:
    """The inner step of ``training.train`` (``training.step``): minibatch, loss, zero_grad, backward, Adam."""
    opt = make_optimizer(flow, LR)
    g = torch.Generator().manual_seed(0)
    batches = data.split(BATCH)
    state = {"i": 0}

    def one() -> None:
        xb = stab.corrupt(batches[state["i"] % len(batches)], g)
        state["i"] += 1
        if step(flow, opt, stab, xb, g) is None:
            raise FloatingPointError("benchmark flow diverged")

    return one


def _ensemble_step(spec: dict, data: torch.Tensor, members: int, mapped: bool = False) -> Callable[[], None]:
    """One step of ``training.train_ensemble``: ``members`` runs (seeds 0, 1, ...) stacked
    (``ensemble.Stacked``), or for zuko flows mapped (``ensemble.Mapped``: zuko's pass under
    ``torch.func.vmap``), with the loop's per-member Adam."""
    from flowtheory.science.ensemble import Mapped, Stacked
    from flowtheory.science.training import FlatAdam

    flows = [build_flow(spec, data.shape[1], data.dtype, seed=s) for s in range(members)]
    batched = Mapped(flows) if mapped else Stacked(flows)
    opt = FlatAdam(batched.parameters(), LR, members=members)
    batched.bind()
    batches = data.split(BATCH)
    state = {"i": 0}

    def step() -> None:
        xb = batches[state["i"] % len(batches)].expand(members, -1, -1)
        state["i"] += 1
        loss = batched.nll(xb)
        if not bool(torch.isfinite(loss).all()):
            raise FloatingPointError("benchmark flow diverged")
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        loss.tolist()

    return step


def bench_nsf_mapped(steps: int, warmup: int) -> dict:
    """(a) The zuko NSF runs of one experiment: each alone (``training.step``, FlatAdam), one after
    the other, against all of them mapped in one step; per run and as a ratio."""
    x, _ = s_curve(2_000, np.random.default_rng(0))
    data = torch.as_tensor(x, dtype=torch.float32)
    spec, members = NSF_MAPPED
    none = Stabilizer("none", "none")
    alone = [_our_step(build_flow(spec, 3, torch.float32, seed=s), data, none) for s in range(members)]

    def each_alone() -> None:
        for one in alone:
            one()

    ms = _interleaved({"alone": each_alone, "mapped": _ensemble_step(spec, data, members, mapped=True)}, steps, warmup)
    return {
        "spec": spec,
        "members": members,
        "alone_per_run_ms": ms["alone"] / members,
        "mapped_per_run_ms": ms["mapped"] / members,
        "ratio_mapped_over_alone": ms["mapped"] / ms["alone"],
    }


def _zuko_step(maf, data: torch.Tensor, flat: bool) -> Callable[[], None]:
    """The same step for a native zuko flow (its own ``log_prob``), with torch's Adam (as zuko's
    documentation trains it) or with our FlatAdam (the same optimizer as ours: flow against flow)."""
    opt = (
        make_optimizer(maf, LR)
        if flat
        else torch.optim.Adam(maf.parameters(), lr=LR, betas=ADAM_BETAS, eps=ADAM_EPS, foreach=True)
    )
    batches = data.split(BATCH)
    state = {"i": 0}

    def step() -> None:
        xb = batches[state["i"] % len(batches)]
        state["i"] += 1
        loss = -maf().log_prob(xb).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError("benchmark flow diverged")
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    return step


def bench_steps_3d(steps: int, warmup: int) -> dict:
    import zuko

    x, _ = s_curve(2_000, np.random.default_rng(0))
    data = torch.as_tensor(x, dtype=torch.float32)
    none = Stabilizer("none", "none")
    fns, rows = {}, {}
    for name, (spec, transforms, hidden) in PAIRS.items():
        ours = build_flow(spec, 3, torch.float32, seed=0)
        mafs = []
        for _ in range(2):  # FlatAdam rewires its flow's parameters: one MAF per optimizer
            torch.manual_seed(0)
            mafs.append(zuko.flows.MAF(3, transforms=transforms, hidden_features=hidden))
        n_ours, n_zuko = count_parameters(ours), count_parameters(mafs[0])
        if abs(n_ours - n_zuko) > PARAM_MATCH * max(n_ours, n_zuko):
            raise AssertionError(
                f"{name}: parameter counts differ by more than {PARAM_MATCH:.0%}: {n_ours} vs {n_zuko}"
            )
        fns[f"ours_{name}"] = _our_step(ours, data, none)
        fns[f"zuko_vs_{name}"] = _zuko_step(mafs[0], data, flat=False)
        fns[f"zuko_flat_vs_{name}"] = _zuko_step(mafs[1], data, flat=True)
        rows[name] = {
            "ours_spec": spec,
            "zuko_spec": {"transforms": transforms, "hidden": hidden},
            "ours_params": n_ours,
            "zuko_params": n_zuko,
        }
    # the pipeline's step: runs of one experiment train as one batched ensemble (three seeds here);
    # per run it costs a third of the ensemble's step
    fns["ours_mlp_ensemble3"] = _ensemble_step(PAIRS["mlp"][0], data, 3)
    # for reference: the exact Jacobian penalty's step (one pass for NLL, log-det and Jacobian)
    fns["ours_mlp_jacobian_penalty"] = _our_step(
        build_flow(PAIRS["mlp"][0], 3, torch.float32, seed=0), data, Stabilizer("j", "jacobian", 0.01, "exact")
    )
    torch.manual_seed(0)
    depth_maf = zuko.flows.MAF(3, transforms=EQUAL_DEPTH_MAF[0], hidden_features=EQUAL_DEPTH_MAF[1])
    fns["zuko_equal_depth"] = _zuko_step(depth_maf, data, flat=False)
    ms = _interleaved(fns, steps, warmup)
    rows["mlp"]["zuko_equal_depth"] = {
        "transforms": EQUAL_DEPTH_MAF[0],
        "hidden": EQUAL_DEPTH_MAF[1],
        "params": count_parameters(depth_maf),
        "ms": ms["zuko_equal_depth"],
    }
    for name, row in rows.items():
        row["ours_ms"], row["zuko_ms"] = ms[f"ours_{name}"], ms[f"zuko_vs_{name}"]
        row["zuko_flat_adam_ms"] = ms[f"zuko_flat_vs_{name}"]
        row["ratio_ours_over_zuko"] = row["ours_ms"] / row["zuko_ms"]
        row["ratio_ours_over_zuko_flat_adam"] = row["ours_ms"] / row["zuko_flat_adam_ms"]
    rows["mlp"]["ours_jacobian_penalty_ms"] = ms["ours_mlp_jacobian_penalty"]
    rows["mlp"]["ours_ensemble3_per_run_ms"] = ms["ours_mlp_ensemble3"] / 3
    rows["mlp"]["ratio_ensemble_per_run_over_zuko_flat_adam"] = (
        rows["mlp"]["ours_ensemble3_per_run_ms"] / rows["mlp"]["zuko_flat_adam_ms"]
    )
    return rows


def bench_steps_784(steps: int, warmup: int) -> dict:
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4 * BATCH, 784, generator=g, dtype=torch.float32)
    fns, rows = {}, {}
    for layers in (1, 3):
        flow = build_flow({"kind": "mlp", "hidden_layers": layers, "activation": "sinh"}, 784, torch.float32, seed=0)
        fns[f"mlp{layers}"] = _our_step(flow, data, Stabilizer("none", "none"))
        rows[f"mlp_hidden{layers}"] = {"params": count_parameters(flow)}
    ms = _interleaved(fns, steps, warmup, rounds=min(steps, 5))
    for layers in (1, 3):
        rows[f"mlp_hidden{layers}"]["ms"] = ms[f"mlp{layers}"]
    return rows


def _perturbed_mlp(d: int, layers: int, scale: float, dtype: torch.dtype):
    """A random (untrained) MLP flow away from its near-identity initialisation."""
    flow = build_flow({"kind": "mlp", "hidden_layers": layers, "activation": "sinh"}, d, dtype, seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale / math.sqrt(d) * torch.randn(p.shape, generator=g, dtype=dtype))
    return flow.eval()


def _reference_loop(flow, x: torch.Tensor, vectorize: bool = False) -> np.ndarray:
    """The authors' algorithm per point: autograd Jacobian, then numpy SVD + svd_flip + rescaling."""
    with torch.no_grad():
        y = flow(x)[0]

    def single(xi: torch.Tensor) -> torch.Tensor:
        return flow(xi[None])[0][0]

    J = np.stack([torch.autograd.functional.jacobian(single, xi, vectorize=vectorize).numpy() for xi in x])
    return reference_components(J.astype(np.float64), y.double().numpy())


def _batched(flow, x: torch.Tensor) -> np.ndarray:
    y, J = jacobians(flow, x)
    return extract(J.double(), y.double()).yhat.numpy()


def _rel_diff_up_to_sign(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b| / max |b| after matching each entry's sign (SVD signs can flip at near-ties)."""
    return float(np.minimum(np.abs(a - b), np.abs(a + b)).max() / np.abs(b).max())


def bench_components(n3: int, n784: int, n784_unvectorized: int) -> dict:
    out = {}
    x3, _ = s_curve(n3, np.random.default_rng(0))
    x3 = torch.as_tensor(x3, dtype=torch.float64)
    flow3 = _perturbed_mlp(3, 3, 0.5, torch.float64)
    t0 = time.perf_counter()
    ours = _batched(flow3, x3)
    t1 = time.perf_counter()
    ref = _reference_loop(flow3, x3)
    t2 = time.perf_counter()
    out["d3"] = {
        "points": n3,
        "flow": "mlp, 3 hidden layers, float64",
        "batched_s": t1 - t0,
        "reference_loop_s": t2 - t1,
        "ratio": (t2 - t1) / (t1 - t0),
        "goal_ratio": GOAL_COMPONENTS_3D,
        "max_rel_diff": _rel_diff_up_to_sign(ours, ref),
    }

    g = torch.Generator().manual_seed(2)
    x784 = torch.rand(n784, 784, generator=g, dtype=torch.float32)
    flow784 = _perturbed_mlp(784, 1, 0.5, torch.float32)
    # minutes of SVDs: alternate the two methods over chunks so that outside load hits both alike
    t_ours = t_ref = 0.0
    ours, ref = [], []
    for xc in x784.split(CHUNK_784):
        t0 = time.perf_counter()
        ours.append(_batched(flow784, xc))
        t1 = time.perf_counter()
        # the loop's autograd Jacobian with vectorize=True (vmap over the 784 output rows): the
        # unvectorized one does 784 backward passes per point and is timed on a few points below
        ref.append(_reference_loop(flow784, xc, vectorize=True))
        t2 = time.perf_counter()
        t_ours, t_ref = t_ours + t1 - t0, t_ref + t2 - t1
    t2 = time.perf_counter()
    _reference_loop(flow784, x784[:n784_unvectorized], vectorize=False)
    unvec_extra = (time.perf_counter() - t2) / n784_unvectorized - t_ref / n784  # per point, beyond the vmap loop
    out["d784"] = {
        "points": n784,
        "flow": "mlp, 1 hidden layer, float32 (SVD in float64)",
        "batched_s": t_ours,
        "reference_loop_s": t_ref,
        "ratio": t_ref / t_ours,
        "max_rel_diff": _rel_diff_up_to_sign(np.concatenate(ours), np.concatenate(ref)),
        "reference_unvectorized_s_per_point": t_ref / n784 + unvec_extra,
        "ratio_vs_unvectorized_loop_estimate": (t_ref + n784 * unvec_extra) / t_ours,
    }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and points (about 30 s)")
    parser.add_argument("--out", default="benchmarks/bench.json")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits  # numpy's BLAS/LAPACK: one thread as well, for a fair loop

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _run(args.quick, Path(args.out))


def _run(q: bool, path: Path) -> dict:
    t_start = time.perf_counter()
    results = {
        "settings": {
            "quick": q,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "batch": BATCH,
        },
        "train_step_3d": bench_steps_3d(steps=60 if q else 200, warmup=10 if q else 20),
        "train_step_784": bench_steps_784(steps=3 if q else 10, warmup=1 if q else 2),
        "nsf_mapped": bench_nsf_mapped(steps=20 if q else 100, warmup=3 if q else 10),
        "components": bench_components(n3=500 if q else 2_000, n784=20 if q else 200, n784_unvectorized=1 if q else 2),
    }
    results["total_s"] = time.perf_counter() - t_start
    _print(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return results


def _print(r: dict) -> None:
    print(f"\n(a) training step, 3-D, float32, batch {BATCH}, one thread (median ms)")
    print("  zuko with torch.optim.Adam (as zuko's docs train it), and with our FlatAdam (the same optimizer as ours)")
    print(
        f"{'pair':<10}{'ours params':>12}{'zuko params':>12}{'ours ms':>10}{'zuko ms':>10}{'ours/zuko':>11}"
        f"{'zuko+Flat ms':>14}{'ours/zuko+Flat':>16}"
    )
    for name, row in r["train_step_3d"].items():
        print(
            f"{name:<10}{row['ours_params']:>12}{row['zuko_params']:>12}{row['ours_ms']:>10.3f}"
            f"{row['zuko_ms']:>10.3f}{row['ratio_ours_over_zuko']:>11.2f}"
            f"{row['zuko_flat_adam_ms']:>14.3f}{row['ratio_ours_over_zuko_flat_adam']:>16.2f}"
        )
    mlp = r["train_step_3d"]["mlp"]
    print(f"  our mlp with the exact Jacobian penalty: {mlp['ours_jacobian_penalty_ms']:.3f} ms")
    print(
        f"  our mlp in the pipeline's batched ensemble (3 runs per step): {mlp['ours_ensemble3_per_run_ms']:.3f} ms "
        f"per run, {mlp['ratio_ensemble_per_run_over_zuko_flat_adam']:.2f}x zuko+Flat"
    )
    eq = mlp["zuko_equal_depth"]
    print(
        f"  zuko MAF at our mlp's depth ({eq['transforms']} transforms, hidden {eq['hidden']}, "
        f"{eq['params']} params, not parameter-matched): {eq['ms']:.3f} ms"
    )
    nsf = r["nsf_mapped"]
    print(
        f"  zuko NSF ({nsf['spec']['transforms']} transforms, hidden {nsf['spec']['hidden']}), {nsf['members']} runs: "
        f"{nsf['alone_per_run_ms']:.3f} ms per run alone, {nsf['mapped_per_run_ms']:.3f} ms mapped "
        f"(ensemble.Mapped), mapped/alone {nsf['ratio_mapped_over_alone']:.2f}"
    )
    print(f"\n(b) training step, 784-D MLP flow, float32, batch {BATCH}")
    for name, row in r["train_step_784"].items():
        print(f"{name:<14}{row['params']:>10} params {row['ms']:>10.1f} ms")
    print("\n(c) component extraction (Jacobians + SVD + components)")
    print(f"{'data':<6}{'points':>8}{'batched s':>12}{'loop s':>10}{'ratio':>8}{'max rel diff':>14}")
    for name, row in r["components"].items():
        print(
            f"{name:<6}{row['points']:>8}{row['batched_s']:>12.3f}{row['reference_loop_s']:>10.2f}"
            f"{row['ratio']:>8.1f}{row['max_rel_diff']:>14.2e}"
        )
    d784 = r["components"]["d784"]
    print(
        f"  784-D loop with the unvectorized autograd Jacobian (the 3-D loop's): "
        f"{d784['reference_unvectorized_s_per_point']:.2f} s per point, ratio about "
        f"{d784['ratio_vs_unvectorized_loop_estimate']:.1f} (estimated from {d784['points']} vectorized points)"
    )
    d3 = r["components"]["d3"]
    print(f"  3-D goal: ratio >= {d3['goal_ratio']:.0f}: {'met' if d3['ratio'] >= d3['goal_ratio'] else 'NOT met'}")
    print(f"\ntotal {r['total_s']:.0f} s")


if __name__ == "__main__":
    main()
