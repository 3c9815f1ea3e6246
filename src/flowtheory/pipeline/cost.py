"""What a train job may take, and what it will take: the train rule's declared runtime and an
estimate of an experiment's training time from its config alone. ``workflow/rules/common.smk``
checks the one against the other when Snakemake loads the config, so that an experiment that cannot
finish within its job's runtime is refused, in one line naming it, before any job runs.

The model (pure arithmetic on the config: no torch, no data, nothing measured at load time). A
training step costs a fixed overhead, an overhead per layer (a small flow's step is bound by the
dispatch of its many small tensor operations: ``flowtheory.science.fused``), and arithmetic: one
multiply-add per parameter and sample of the batch, plus, for the linear and MLP flows, the LU
factorization and inverse of each d × d matrix. Per run::

    seconds = epochs · [(T_STEP + T_LAYER · layers) · (steps · o + e)
                        + T_MAC · ((steps · w + e) · batch · params + (steps + e) · 2 · affine · d³)]

with ``steps = ceil(n_train / batch)`` training steps per epoch and ``e = ceil(n_valid / batch) / 2
+ 1`` step equivalents per epoch for the validation NLL (a forward pass: about half a step per
batch) and the Jacobian diagnostics on the probe points (about one step). The stabilizer multiplies
the training steps' overhead by ``o`` and their arithmetic by ``w`` (:func:`penalty_factors`): 1 and 1
for none and noise; 1.5 and 1 for the weight penalty (a sum over the weight matrices); 2.5 and 1 + d
for the exact Jacobian penalty (its pass carries d tangent vectors beside each point); 1 + 2 · probes
for both with Hutchinson's estimator (a Jacobian-vector pass per probe). ``layers`` counts a
family's small operations per step (:func:`layers`), ``params`` its parameters (:func:`parameters`,
which a test checks against the built flows), ``affine`` its d × d matrices.

An experiment's estimate is the sum over its runs as if each trained alone: runs that train together
as one batched ensemble (``flowtheory.stages.train``) take about 0.5 to 0.8 times that
(``results/benchmarks.md``), so the estimate errs long there.

Calibration (``python -m bench.cost``): ``T_STEP``, ``T_LAYER`` and ``T_MAC`` are fitted by least
squares on log(estimated / measured) to whole ``training.train`` calls (every flow family, 2-D to
196-D, with and without penalties) on the project's CPU machine kind (Linux x86_64, a shared 2-core
virtual machine, one torch thread, torch 2.13 CPU). Each measurement is scaled by the host's
reference step timed right around it (the zuko MAF step of ``python -m bench.steps --quick``) to a
reference step of :data:`REFERENCE_STEP_MS`, the faster hosts of this kind when quiet
(``results/benchmarks.md``): a shared host's speed drifts with its load, and hosts of this kind
differ up to about 4 times (``docs/measurements.md#host-speed``). The constants are the mean of
three such sessions (2026-12-03). So the estimate is for a fast host; the train rule's runtime
(:func:`runtime_min`) is generous against it. The fit, and the estimate against real train jobs,
are in ``docs/measurements.md#train-cost``.
"""

from __future__ import annotations

import math

from flowtheory.datasets.truth import truth
from flowtheory.science.kinds import FLOW_REGISTRY

__all__ = [
    "MINUTES_PER_RUN",
    "MINUTES_PER_RUN_HIGHDIM",
    "POST_MINUTES_PER_RUN",
    "check",
    "estimate_seconds",
    "layers",
    "parameters",
    "penalty_factors",
    "run_seconds",
    "runtime_min",
    "terms",
]

#: the train rule's runtime per run of an experiment (minutes); MNIST runs get the longer one. At
#: least ten times the estimate of every run of the shipped configs, for hosts up to 4x slower and the
#: estimate's error (up to 2.3x): docs/measurements.md#train-cost
MINUTES_PER_RUN = 30
MINUTES_PER_RUN_HIGHDIM = 60
#: the analysis and components rules' runtime per run (minutes): on the paper config their jobs took
#: at most 7.4 s per run, imports and MNIST included (docs/measurements.md#train-cost); 10 min is 20x
#: that on a host 4x slower, room for larger flows and probe sets than the paper's
POST_MINUTES_PER_RUN = 10

#: seconds per step, per layer operation and per multiply-add at the reference step below (module
#: docstring; ``docs/measurements.md#train-cost``)
T_STEP = 3.2e-4
T_LAYER = 3.5e-5
T_MAC = 1.4e-10
#: the zuko MAF reference step (ms, ``python -m bench.steps --quick``) the constants are scaled to
REFERENCE_STEP_MS = 2.8

#: ``flowtheory.science.stabilizers.EXACT_MAX_D`` (that module imports torch; a test checks they agree)
EXACT_MAX_D = 16


def parameters(flow: dict, d: int) -> int:
    """The flow's trainable parameter count at data dimension ``d`` (as ``build_flow`` builds it;
    the flow kind's own count, ``flowtheory.science.kinds``)."""
    return FLOW_REGISTRY[flow["kind"]].parameters(flow, d)


def layers(flow: dict) -> int:
    """Small tensor operations per step, in units of one fused MLP layer (the flow kind's own
    count, ``flowtheory.science.kinds``)."""
    return FLOW_REGISTRY[flow["kind"]].layers(flow)


def penalty_factors(stab: dict, d: int) -> tuple[float, float]:
    """How much a stabilizer multiplies a step's overhead and its arithmetic (module docstring)."""
    if stab["kind"] == "weight":
        return 1.5, 1.0
    if stab["kind"] != "jacobian":
        return 1.0, 1.0
    estimator = stab.get("estimator", "auto")
    if estimator == "exact" or (estimator == "auto" and d <= EXACT_MAX_D):
        return 2.5, 1.0 + d
    extra = 1.0 + 2 * stab.get("probes", 1)
    return extra, extra


def _affine_layers(flow: dict) -> int:
    return FLOW_REGISTRY[flow["kind"]].affine(flow)


def _is_highdim(config: dict, experiment: str) -> bool:
    """MNIST runs get the longer runtime (and more memory: ``workflow/rules/common.smk``)."""
    return config["data"]["datasets"][config["experiments"][experiment]["dataset"]]["kind"] == "mnist"


def _runs(config: dict, experiment: str) -> list[tuple[str, int]]:
    exp = config["experiments"][experiment]
    return [(stab, seed) for stab in exp["stabilizers"] for seed in exp.get("seeds", config["seeds"])]


def runtime_min(config: dict, experiment: str, stage: str = "train") -> int:
    """A rule's declared runtime for one experiment's job (minutes), per run of it: for ``train``
    :data:`MINUTES_PER_RUN` (:data:`MINUTES_PER_RUN_HIGHDIM` on MNIST), for ``analysis`` and
    ``components`` :data:`POST_MINUTES_PER_RUN`."""
    if stage == "train":
        per_run = MINUTES_PER_RUN_HIGHDIM if _is_highdim(config, experiment) else MINUTES_PER_RUN
    elif stage in ("analysis", "components"):
        per_run = POST_MINUTES_PER_RUN
    else:
        raise ValueError(f"no declared runtime for stage {stage!r}")
    return per_run * len(_runs(config, experiment))


def terms(config: dict, experiment: str, stabilizer: str) -> tuple[float, float, float]:
    """One run's (steps, layer-steps, multiply-adds): its estimated seconds are
    ``steps · T_STEP + layer_steps · T_LAYER + multiply_adds · T_MAC`` (module docstring)."""
    exp = config["experiments"][experiment]
    ds = config["data"]["datasets"][exp["dataset"]]
    flow = config["flows"][exp["flow"]]
    d = truth(ds).d
    batch = exp.get("batch_size", config["train"]["batch_size"])
    overhead, work = penalty_factors(config["stabilizers"][stabilizer], d)
    train_steps = math.ceil(ds["n_train"] / batch)
    evaluation = math.ceil(ds["n_valid"] / batch) / 2 + 1  # validation NLL and diagnostics, in steps
    steps = exp["epochs"] * (train_steps * overhead + evaluation)
    macs = exp["epochs"] * (
        (train_steps * work + evaluation) * batch * parameters(flow, d)
        + (train_steps + evaluation) * 2 * _affine_layers(flow) * d**3
    )
    return steps, steps * layers(flow), macs


def run_seconds(config: dict, experiment: str, stabilizer: str) -> float:
    """Estimated seconds to train one run of ``experiment`` with ``stabilizer`` alone, on the
    calibration host (see the module docstring)."""
    steps, layer_steps, macs = terms(config, experiment, stabilizer)
    return steps * T_STEP + layer_steps * T_LAYER + macs * T_MAC


def estimate_seconds(config: dict, experiment: str) -> float:
    """Estimated seconds of the experiment's train job: its runs' :func:`run_seconds`, summed."""
    return sum(run_seconds(config, experiment, stab) for stab, _ in _runs(config, experiment))


def check(config: dict, runtime: float | None = None) -> None:
    """Raises ``ConfigError`` (one line naming the experiment) for the first experiment whose
    estimated training time exceeds its train job's runtime: ``runtime`` minutes where given (a
    runtime set for the train rule with ``--set-resources``), else :func:`runtime_min`. Expects a
    config that passed ``flowtheory.pipeline.config.check``."""
    from flowtheory.pipeline.config import ConfigError

    for name in config["experiments"]:
        limit = runtime if runtime is not None else runtime_min(config, name)
        seconds = estimate_seconds(config, name)
        if seconds > 60 * limit:
            n_runs = len(_runs(config, name))
            raise ConfigError(
                f"invalid config: experiments.{name}: estimated training time {seconds / 60:.0f} min "
                f"({n_runs} run{'s' if n_runs > 1 else ''}, flowtheory.pipeline.cost) exceeds the train job's "
                f"runtime of {limit:g} min; expected fewer epochs, runs or training points, or a smaller flow "
                "(or a longer runtime: --set-resources train:runtime=<minutes>)"
            )
