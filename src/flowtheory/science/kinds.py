"""The registry of flow kinds: what the pipeline knows about each, written once and read by the
builder (:func:`flowtheory.science.flows.build_flow`), the config checks, the experiments'
properties (:mod:`flowtheory.pipeline.experiments`), the training schedule (which runs the L-BFGS
polish may touch) and the docs. Torch-free, so that validating a config stays fast.

Adding a flow kind: its builder in ``science/flows.py``, its entry here, its ``enum`` entry in
``workflow/schemas/config.schema.yaml`` (a test checks the two agree) and a test.
"""

from __future__ import annotations

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
    """

    family: str
    linear: bool
    weight_penalty: bool
    smooth: bool
    source: str


#: every flow kind a config may name
FLOW_REGISTRY: dict[str, FlowKind] = {
    "linear": FlowKind("linear", linear=True, weight_penalty=True, smooth=True, source="authors"),
    "mlp": FlowKind("mlp", linear=False, weight_penalty=True, smooth=True, source="authors"),
    "realnvp": FlowKind("realnvp", linear=False, weight_penalty=False, smooth=False, source="authors"),
    "zuko_maf": FlowKind("zuko_maf", linear=False, weight_penalty=False, smooth=False, source="zuko"),
    "zuko_nsf": FlowKind("zuko_nsf", linear=False, weight_penalty=False, smooth=False, source="zuko"),
}
FLOW_KINDS = tuple(FLOW_REGISTRY)
