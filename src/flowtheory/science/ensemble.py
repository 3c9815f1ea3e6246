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
without batch norm, logit or PReLU) and RealNVP (affine couplings and permutations).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowtheory.science import fused
from flowtheory.science.flows import (
    LOG_EPS,
    Affine,
    Coupling,
    Elementwise,
    Flow,
    Permutation,
    gaussian_nll,
    log_abs_det,
)

__all__ = ["Stacked", "stackable"]


def _layer_ok(layer: nn.Module) -> bool:
    if isinstance(layer, Elementwise):
        return layer.kind in ("sinh", "asinh")
    return isinstance(layer, (Affine, Coupling, Permutation))


def stackable(flows: list[Flow]) -> bool:
    """True when ``flows`` share one architecture that :class:`Stacked` can batch."""
    first = flows[0]
    if type(first) is not Flow or not all(_layer_ok(layer) for layer in first.layers):
        return False
    shapes = [[(k, tuple(v.shape), v.dtype) for k, v in f.state_dict().items()] for f in flows]
    kinds = [
        [(type(layer), getattr(layer, "kind", None), getattr(layer, "logdet", None)) for layer in f.layers]
        for f in flows
    ]
    return all(s == shapes[0] for s in shapes) and all(k == kinds[0] for k in kinds)


class Stacked(nn.Module):
    """E flows of one architecture with their parameters stacked (leading axis E).

    Arguments:
        flows: the member flows (:func:`stackable`); their parameters are copied into the stack.

    Call :meth:`bind` after the optimizer has placed the stacked parameters (``FlatAdam`` moves
    them into its flat buffer): it makes each member's parameters views of its slice.
    """

    def __init__(self, flows: list[Flow]) -> None:
        super().__init__()
        if not stackable(flows):
            raise ValueError("these flows cannot be stacked (different or unsupported architectures)")
        self.members = flows
        self.d = flows[0].d
        self.E = len(flows)
        names = [n for n, _ in flows[0].named_parameters()]
        self.names = names
        self.stack = nn.ParameterList(
            nn.Parameter(torch.stack([dict(f.named_parameters())[n].detach() for f in flows])) for n in names
        )
        self._index = {n: i for i, n in enumerate(names)}
        self._affine_index = [i for i, layer in enumerate(flows[0].layers) if isinstance(layer, Affine)]
        # per-member permutations (seeded per member) as gather indices, shape (E, d)
        self.perms = {
            i: torch.stack([f.layers[i].perm for f in flows])
            for i, layer in enumerate(flows[0].layers)
            if isinstance(layer, Permutation)
        }

    def bind(self) -> None:
        """Makes every member parameter a view of its slice of the stacked parameter."""
        for e, f in enumerate(self.members):
            params = dict(f.named_parameters())
            for n, p in zip(self.names, self.stack, strict=True):
                params[n].data = p.data[e]

    def _p(self, name: str) -> Tensor:
        return self.stack[self._index[name]]

    # -- layers, batched over the members: h (E, n, d), J (E, n, d, d) --------------------------------

    def _affine(self, i: int, h: Tensor) -> Tensor:
        W, b = self._p(f"layers.{i}.W"), self._p(f"layers.{i}.b")
        return torch.matmul(h - b[:, None, :], W.mT)

    def _linear(self, prefix: str, a: Tensor) -> Tensor:
        W, b = self._p(prefix + ".weight"), self._p(prefix + ".bias")
        return torch.baddbmm(b[:, None, :], a, W.mT)

    def _coupling_net(self, i: int, layer: Coupling, h1: Tensor, T: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The coupling MLP's output and, with row tangents T (E, n, r, m), their images."""
        a = h1
        for j, sub in enumerate(layer.net):
            if isinstance(sub, nn.Linear):
                prefix = f"layers.{i}.net.{j}"
                a = self._linear(prefix, a)
                if T is not None:  # one GEMM per member over all points and tangents, as nn.Linear does
                    E, n, r, _ = T.shape
                    T = torch.bmm(T.reshape(E, n * r, -1), self._p(prefix + ".weight").mT).reshape(E, n, r, -1)
            else:
                if T is not None:
                    T = (a > 0).to(T.dtype)[:, :, None, :] * T
                a = nn.functional.relu(a)
        return a, T

    def _coupling(self, i: int, layer: Coupling, h: Tensor, J: Tensor | None):
        m = layer.n_masked
        h1, h2 = h[..., :m], h[..., m:]
        T = None
        if J is not None:
            T = torch.eye(m, dtype=h.dtype, device=h.device).expand(*h.shape[:2], m, m)
        out_net, dnet = self._coupling_net(i, layer, h1, T)
        t, s = out_net.chunk(2, dim=-1)
        centred, scale = h2 - t, torch.exp(-s)
        out = torch.cat([h1, centred * scale], -1)
        if J is None:
            return out, -s.sum(-1), None
        dt, ds = dnet.chunk(2, dim=-1)
        B = -scale[..., :, None] * (dt.mT + centred[..., :, None] * ds.mT)
        J1, J2 = J[..., :m, :], J[..., m:, :]
        return out, -s.sum(-1), torch.cat([J1, torch.matmul(B, J1) + scale[..., :, None] * J2], -2)

    def _permute(self, i: int, h: Tensor, J: Tensor | None):
        idx = self.perms[i][:, None, :].expand(-1, h.shape[1], -1)
        out = torch.gather(h, -1, idx)
        if J is None:
            return out, None
        return out, torch.gather(J, -2, idx[..., None].expand(-1, -1, -1, J.shape[-1]))

    def _const_ladj(self) -> Tensor | None:
        """Σ log|det W| over the affine layers, per member (E,)."""
        Ws = [self._p(f"layers.{i}.W") for i, layer in enumerate(self.members[0].layers) if isinstance(layer, Affine)]
        if not Ws:
            return None
        mode = next(layer.logdet for layer in self.members[0].layers if isinstance(layer, Affine))
        if mode == "slogdet":
            return torch.linalg.slogdet(torch.stack(Ws))[1].sum(0)
        return torch.stack([torch.stack([log_abs_det(W[e], mode) for e in range(self.E)]) for W in Ws]).sum(0)

    def _pass(self, x: Tensor, with_jacobian: bool):
        per_sample = []
        J = None
        if with_jacobian:
            J = torch.eye(self.d, dtype=x.dtype, device=x.device).expand(*x.shape[:2], self.d, self.d)
        for i, layer in enumerate(self.members[0].layers):
            if isinstance(layer, Affine):
                x = self._affine(i, x)
                if J is not None:
                    J = torch.matmul(self._p(f"layers.{i}.W")[:, None], J)
            elif isinstance(layer, Elementwise):
                out, logd = layer._value_and_logderiv(x)
                if J is not None:
                    J = torch.exp(logd)[..., :, None] * J
                x = out
                per_sample.append(logd.sum(-1))
            elif isinstance(layer, Coupling):
                x, la, J = self._coupling(i, layer, x, J)
                per_sample.append(la)
            else:
                x, J = self._permute(i, x, J)
                per_sample.append(x.new_zeros(x.shape[:2]))
        const = self._const_ladj()
        if per_sample:
            total = sum(per_sample[1:], per_sample[0])
            ladj = total if const is None else total + const[:, None]
        else:
            ladj = const[:, None].expand(x.shape[:2])
        return x, ladj, J

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The normalizing maps of all members: x (E, n, d) -> (y (E, n, d), log|det J_f| (E, n))."""
        kind = self.members[0]._fused
        if kind is not None and not x.requires_grad:  # linear/MLP: one autograd node (science.fused)
            return fused.mlp_pass(x, kind, LOG_EPS, *self._affine_params())
        y, ladj, _ = self._pass(x, False)
        return y, ladj

    def nll(self, x: Tensor) -> Tensor:
        """The mean NLL of every member's batch: x (E, n, d) -> (E,) (:func:`nll` of :meth:`forward`)."""
        kind = self.members[0]._fused
        if kind is not None and not x.requires_grad:
            return fused.mlp_nll(x, kind, LOG_EPS, *self._affine_params())
        return nll(*self(x))

    def _affine_params(self) -> tuple[list[Tensor], list[Tensor]]:
        return (
            [self._p(f"layers.{i}.W") for i in self._affine_index],
            [self._p(f"layers.{i}.b") for i in self._affine_index],
        )

    def forward_and_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`forward`, with the per-sample Jacobians (E, n, d, d)."""
        return self._pass(x, True)

    def weight_sq(self) -> Tensor:
        """Σ_l ‖W_l‖_F² per member (E,): the weight Tikhonov penalty's sum."""
        terms = [
            (self._p(n) ** 2).sum((-2, -1))
            for n in self.names
            if n.endswith(".W") and isinstance(self.members[0].get_submodule(n.rsplit(".", 1)[0]), Affine)
        ]
        if not terms:  # as Flow.weight_matrices: couplings have none, so the penalty is 0
            return self.stack[0].new_zeros(self.E)
        return sum(terms[1:], terms[0])


#: mean NLL per member: y (E, n, d), ladj (E, n) -> (E,)
nll = gaussian_nll
