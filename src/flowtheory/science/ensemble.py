r"""Several runs of one flow architecture trained as one batched ensemble.

A small flow's training step is bound by per-operation overhead, not arithmetic (``python -m
bench.steps``): 200 points in 3-D make every matrix product tiny. :class:`Stacked` holds the
parameters of E member flows stacked along a leading axis, so one step of E runs costs the
operations of one: every product is batched over the members. The members' own parameters become
views of the stacked ones, so the member flows always hold the current state (for evaluation,
checkpoints and the divergence bookkeeping of :func:`flowtheory.science.training.train_ensemble`).

Each member's loss depends only on its own parameters, so the gradient of the summed loss is each
member's own gradient and Adam, element-wise, updates each member as if it were trained alone. The
results equal those of training each member alone up to float round-off: the batched products sum
in another order than the single ones (``tests/science/test_ensemble.py``).

Stackable flows are those of affine and element-wise layers (the ``linear`` and ``mlp`` kinds
without batch norm, logit or PReLU) and RealNVP (affine couplings and permutations). zuko's flows,
whose layers are not ours, batch another way (:class:`Mapped`): ``torch.func.vmap`` maps zuko's own
forward pass over the members' stacked parameters, so its code runs unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from flowtheory.science.flows import (
    Affine,
    Coupling,
    Elementwise,
    Flow,
    Permutation,
    ZukoFlow,
    gaussian_nll,
)

__all__ = ["Mapped", "Stacked", "mappable", "stackable"]


def _layer_ok(layer: nn.Module) -> bool:
    if isinstance(layer, Elementwise):
        return layer.kind in ("sinh", "asinh")
    return isinstance(layer, (Affine, Coupling, Permutation))


def _same_shapes(flows: list[Flow]) -> bool:
    """True when every member has the first one's parameter and buffer names, shapes and dtypes."""
    shapes = [[(k, tuple(v.shape), v.dtype) for k, v in f.state_dict().items()] for f in flows]
    return all(s == shapes[0] for s in shapes)


def stackable(flows: list[Flow]) -> bool:
    """True when ``flows`` share one architecture that :class:`Stacked` can batch."""
    first = flows[0]
    if type(first) is not Flow or not all(_layer_ok(layer) for layer in first.layers):
        return False
    kinds = [
        [(type(layer), getattr(layer, "kind", None), getattr(layer, "logdet", None)) for layer in f.layers]
        for f in flows
    ]
    return _same_shapes(flows) and all(k == kinds[0] for k in kinds)


def mappable(flows: list[Flow]) -> bool:
    """True when ``flows`` are zuko flows of one architecture, which :class:`Mapped` batches."""
    first = flows[0]
    if not all(isinstance(f, ZukoFlow) and type(f.flow) is type(first.flow) for f in flows):
        return False
    return _same_shapes(flows)


class _Batched(nn.Module):
    """What :class:`Stacked` and :class:`Mapped` share: the members, their parameters stacked along
    a leading axis E (copies, in the first member's order) and :meth:`bind`."""

    def __init__(self, flows: list[Flow], ok: bool, why: str) -> None:
        super().__init__()
        if not ok:
            raise ValueError(why)
        self.members = flows
        self.d = flows[0].d
        self.E = len(flows)
        self.names = [n for n, _ in flows[0].named_parameters()]
        self.stack = nn.ParameterList(
            nn.Parameter(torch.stack([dict(f.named_parameters())[n].detach() for f in flows])) for n in self.names
        )

    def bind(self) -> None:
        """Makes every member parameter a view of its slice of the stacked parameter. Call it after
        the optimizer has placed the stacked parameters (``FlatAdam`` moves them into its flat
        buffer)."""
        for e, f in enumerate(self.members):
            params = dict(f.named_parameters())
            for n, p in zip(self.names, self.stack, strict=True):
                params[n].data = p.data[e]


class Stacked(_Batched):
    """E flows of one architecture with their parameters stacked (leading axis E).

    The batched pass is the flow's own: a copy of the first member (the template) whose parameters
    are replaced by the stacked ones, and whose permutations by the members' (E, d) stack, so each
    layer's maths (``science/flows.py``) runs once for all members, its matrix products batched over
    the leading axis. Nothing of a layer is written here.

    Arguments:
        flows: the member flows (:func:`stackable`); their parameters are copied into the stack.

    Call :meth:`bind` after the optimizer has placed the stacked parameters.
    """

    def __init__(self, flows: list[Flow]) -> None:
        super().__init__(
            flows, stackable(flows), "these flows cannot be stacked (different or unsupported architectures)"
        )
        template = copy.deepcopy(flows[0])
        for name, p in zip(self.names, self.stack, strict=True):
            owner, attr = name.rsplit(".", 1)
            setattr(template.get_submodule(owner), attr, p)
        for i, layer in enumerate(template.layers):
            if isinstance(layer, Permutation):  # each member's own permutation, as gather indices (E, d)
                layer.perm = torch.stack([f.layers[i].perm for f in flows])
                layer.inv_perm = torch.argsort(layer.perm, dim=-1)
        self._template = [template]  # a list: not a registered submodule (its parameters are ``stack``)

    @property
    def template(self) -> Flow:
        return self._template[0]

    def train(self, mode: bool = True) -> Stacked:
        super().train(mode)
        self.template.train(mode)
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The normalizing maps of all members: x (E, n, d) -> (y (E, n, d), log|det J_f| (E, n))."""
        return self.template(x)

    def nll(self, x: Tensor) -> Tensor:
        """The mean NLL of every member's batch: x (E, n, d) -> (E,) (:meth:`Flow.nll`)."""
        return self.template.nll(x)

    def forward_and_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`forward`, with the per-sample Jacobians (E, n, d, d)."""
        return self.template.forward_and_jacobian(x)

    def weight_sq(self) -> Tensor:
        """Σ_l ‖W_l‖_F² per member (E,): the weight Tikhonov penalty's sum."""
        terms = [(W**2).sum((-2, -1)) for W in self.template.weight_matrices()]
        if not terms:  # as Flow.weight_matrices: couplings have none, so the penalty is 0
            return self.stack[0].new_zeros(self.E)
        return sum(terms[1:], terms[0])


class Mapped(_Batched):
    """E zuko flows of one architecture (:func:`mappable`) with their parameters stacked (leading
    axis E), their pass zuko's own: ``torch.func.functional_call`` of a parameterless copy of the
    first member with one member's parameters and buffers, mapped over the members by
    ``torch.func.vmap``. The per-operation overhead that bounds a small flow's step (zuko's spline
    layers are many small operations) is paid once for all members (``python -m bench.steps``).
    Call :meth:`bind` after the optimizer has placed the stacked parameters, as for :class:`Stacked`.
    """

    def __init__(self, flows: list[Flow]) -> None:
        super().__init__(flows, mappable(flows), "these flows cannot be mapped (not zuko flows of one architecture)")
        self.buffer_stack = {
            n: torch.stack([dict(f.named_buffers())[n] for f in flows]) for n, _ in flows[0].named_buffers()
        }
        self._template = [copy.deepcopy(flows[0]).to("meta")]  # the pass only: parameters come per call

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The normalizing maps of all members: x (E, n, d) -> (y (E, n, d), log|det J_f| (E, n))."""
        template = self._template[0]

        def one(params: dict, buffers: dict, xe: Tensor) -> tuple[Tensor, Tensor]:
            return torch.func.functional_call(template, (params, buffers), (xe,))

        return torch.func.vmap(one)(dict(zip(self.names, self.stack, strict=True)), self.buffer_stack, x)

    def nll(self, x: Tensor) -> Tensor:
        """The mean NLL of every member's batch: x (E, n, d) -> (E,)."""
        return gaussian_nll(*self(x))


#: mean NLL per member: y (E, n, d), ladj (E, n) -> (E,)
nll = gaussian_nll
