"""The registry of flow kinds: what the pipeline knows about each, written once and read by the
builder (:func:`flowtheory.science.flows.build_flow`), the config checks, the experiments'
properties (:mod:`flowtheory.pipeline.experiments`), the training schedule (which runs the L-BFGS
polish may touch) and the docs. Torch-free, so that validating a config stays fast.

Adding a flow kind: its builder in ``science/flows.py``, its entry here (with its cost model's
counts, read by :mod:`flowtheory.pipeline.cost`), its ``enum`` entry in
``workflow/schemas/config.schema.yaml`` (a test checks the two agree) and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FLOW_KINDS", "FLOW_REGISTRY", "FlowKind"]


@dataclass(frozen=True)
class FlowKind:
    """What the pipeline knows about a flow kind, in one place (the builder, the config checks, the
    experiments' properties, the training schedule and the docs read it).

    Attributes:
        family: the family name of selectors (``paper_map.yaml``) and figures.
        linear: one affine map, so the linear theory is exact (docs/theory.md §2.2).
        weight_penalty: square weight matrices, so the weight Tikhonov penalty applies.
        smooth: twice differentiable in its parameters (no ReLU), so full-batch L-BFGS can polish
            it to the optimum (docs/measurements.md#convergence).
        source: whose implementation.
        parameters: ``(flow settings, d) -> `` its trainable parameter count, as the builder makes
            it (a test checks it against the built flows); the cost estimate's ``params``.
        layers: ``flow settings -> `` its small tensor operations per training step, in units of
            one fused MLP layer (measured per family: docs/measurements.md#train-cost).
        affine: ``flow settings -> `` its d × d matrices (each an LU factorization and inverse per
            step).
    """

    family: str
    linear: bool
    weight_penalty: bool
    smooth: bool
    source: str
    parameters: Callable[[dict, int], int]
    layers: Callable[[dict], int]
    affine: Callable[[dict], int] = lambda flow: 0


#: zuko's neural spline flow: bins per dimension (zuko's default), 3 · bins - 1 outputs per dimension
NSF_BINS = 8


def _mlp_parameters(flow: dict, d: int) -> int:
    n_hidden = flow.get("hidden_layers", 3)
    n = (n_hidden + 1) * (d * d + d)
    if flow.get("activation", "sinh") == "prelu":
        n += n_hidden
    bn = flow.get("batchnorm_every", 0)
    if bn:
        n += 2 * d * (n_hidden // bn)
    return n


def _mlp_layers(flow: dict) -> int:
    """Its affine and element-wise layers; three times as many when the fused pass
    (``flowtheory.science.fused``) cannot take it: batch norm, PReLU or a logit layer."""
    fused = (
        flow.get("activation", "sinh") != "prelu"
        and not flow.get("batchnorm_every", 0)
        and not flow.get("sigmoid_output", False)
    )
    return (2 * flow.get("hidden_layers", 3) + 1) * (1 if fused else 3)


def _dense(widths: list[int]) -> int:
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=False))


def _realnvp_parameters(flow: dict, d: int) -> int:
    n_masked = flow.get("n_masked", d // 2) or 1
    return flow.get("couplings", 4) * _dense([n_masked, *flow.get("hidden", [64, 64]), 2 * (d - n_masked)])


def _made_parameters(per_dim: int) -> Callable[[dict, int], int]:
    """zuko's MADE conditioner: d inputs, d · (outputs per dimension) outputs, per transform."""
    return lambda flow, d: flow.get("transforms", 3) * _dense([d, *flow.get("hidden", [64, 64]), per_dim * d])


def _net_layers(per_block: int, block: str, default: int) -> Callable[[dict], int]:
    """Per block (coupling or transform) its net's linear and activation layers and ``per_block``
    more: about 7 per RealNVP coupling (split, exp, shift, permutation), 8 per zuko MAF transform,
    60 per NSF one (the rational-quadratic spline)."""
    return lambda flow: flow.get(block, default) * (2 * len(flow.get("hidden", [64, 64])) + per_block)


#: every flow kind a config may name
FLOW_REGISTRY: dict[str, FlowKind] = {
    "linear": FlowKind(
        "linear",
        linear=True,
        weight_penalty=True,
        smooth=True,
        source="authors",
        parameters=lambda flow, d: d * d + d,
        layers=lambda flow: 1,
        affine=lambda flow: 1,
    ),
    "mlp": FlowKind(
        "mlp",
        linear=False,
        weight_penalty=True,
        smooth=True,
        source="authors",
        parameters=_mlp_parameters,
        layers=_mlp_layers,
        affine=lambda flow: flow.get("hidden_layers", 3) + 1,
    ),
    "radial": FlowKind(
        "radial",
        linear=False,
        weight_penalty=False,
        smooth=True,
        source="ours",
        parameters=lambda flow, d: d * d + d + 2,
        layers=lambda flow: 2,
        affine=lambda flow: 1,
    ),
    "realnvp": FlowKind(
        "realnvp",
        linear=False,
        weight_penalty=False,
        smooth=False,
        source="authors",
        parameters=_realnvp_parameters,
        layers=_net_layers(7, "couplings", 4),
    ),
    "zuko_maf": FlowKind(
        "zuko_maf",
        linear=False,
        weight_penalty=False,
        smooth=False,
        source="zuko",
        parameters=_made_parameters(2),
        layers=_net_layers(8, "transforms", 3),
    ),
    "zuko_nsf": FlowKind(
        "zuko_nsf",
        linear=False,
        weight_penalty=False,
        smooth=False,
        source="zuko",
        parameters=_made_parameters(3 * NSF_BINS - 1),
        layers=_net_layers(60, "transforms", 3),
    ),
}
FLOW_KINDS = tuple(FLOW_REGISTRY)
