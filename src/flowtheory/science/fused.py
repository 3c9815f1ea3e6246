r"""The MLP flow's normalizing pass as one autograd node, with its backward written out.

A small flow's training step is bound by per-operation overhead, not arithmetic (``python -m
bench.steps``): in 3-D every tensor holds a few hundred numbers, so each of the ~25 operations of
the MLP flow's forward pass costs its dispatch and its autograd bookkeeping, and autograd's
backward replays ~40 more. :class:`MLPPass` runs the forward pass without autograd and computes
the gradients in one hand-written backward (fewer operations, no graph): the same mathematics,
summed in another order, so results agree with autograd to float round-off
(``tests/science/test_fused.py`` checks the gradients in float64 against autograd).

The pass covers the stack of an MLP flow without batch norm, logit or PReLU and with exact
log-dets (normalizing order ``Affine, act, Affine, ..., act, Affine``), for one flow (x of shape
(n, d)) or a batched ensemble (x of shape (E, n, d) with parameters stacked along E).
:class:`MLPPass` returns ``(y, log|det J_f|)``; :class:`MLPNLL` the mean negative log-likelihood
straight away (the training loss of the none, weight and noise stabilizers), so that its few
operations need no autograd nodes either.

For an affine layer :math:`z = (h - b) W^\top` and an element-wise one :math:`h' = s(z)` with
per-sample log-derivative :math:`\ell = \sum_i \log s'(z_i)`, the backward pass is

.. math::

    \bar z = \bar h' \odot s'(z) + \bar\ell\, (\log s')'(z), \qquad
    \bar W = \bar z^\top (h - b), \qquad \bar b = -\textstyle\sum_n \bar h, \qquad \bar h = \bar z W,

with :math:`s = \operatorname{asinh}` (generative sinh): :math:`s' = (1 + z^2)^{-1/2}`,
:math:`(\log s')' = -z / (1 + z^2)`; and :math:`s = \sinh` (generative asinh): :math:`s' = \cosh z`,
:math:`(\log s')' = \sinh z / (\cosh z + \epsilon)` (``flows.LOG_EPS``, as the layer's log). Every
sample's log|det J_f| holds :math:`\sum_l \log|\det W_l|`, whose gradient is :math:`W_l^{-\top}`
times the summed incoming gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KINDS", "MLPNLL", "MLPPass", "mlp_nll", "mlp_pass"]

#: the element-wise kinds the fused pass supports (``flows.Elementwise.kind``); a single affine
#: layer (the linear flow, kind ``"linear"``) has none
KINDS = ("sinh", "asinh")


#: the affine log-dets come from one batched LAPACK call up to this size (flows uses the same rule)
BATCH_LOGDET_MAX_D = 64
LOG_2PI = math.log(2 * math.pi)


def _lu(Ws: tuple[Tensor, ...]) -> list[Tensor]:
    """LU factors and pivots of the affine matrices, ``[LU, pivots, ...]``: of their stack (axis -3)
    in one call up to :data:`BATCH_LOGDET_MAX_D`, else one pair per matrix."""
    if Ws[0].shape[-1] <= BATCH_LOGDET_MAX_D:
        return list(torch.linalg.lu_factor_ex(torch.stack(Ws, dim=-3))[:2])
    return [t for W in Ws for t in torch.linalg.lu_factor_ex(W)[:2]]


def _log_abs_dets(lus: list[Tensor]) -> Tensor:
    """Σ_l log|det W_l| = Σ log|diag U_l| (shape: the parameters' leading batch shape)."""
    terms = [LU.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1) for LU in lus[0::2]]
    if _stacked(lus):  # one factorization of the stack: sum over the layer axis too
        return terms[0].sum(-1)
    return sum(terms[1:], terms[0])


def _inverses_t(lus) -> list[Tensor]:
    """W_l^-T from the LU factors: the gradient of log|det W_l|."""
    eye = torch.eye(lus[0].shape[-1], dtype=lus[0].dtype, device=lus[0].device)
    out = [
        torch.linalg.lu_solve(LU, piv, eye.expand_as(LU), adjoint=True)
        for LU, piv in zip(lus[0::2], lus[1::2], strict=True)
    ]
    return list(out[0].unbind(-3)) if _stacked(lus) else out


def _stacked(lus: list[Tensor]) -> bool:
    """Whether :func:`_lu` factorized the stack of all matrices at once."""
    return lus[0].shape[-1] <= BATCH_LOGDET_MAX_D


def _forward(x: Tensor, kind: str, eps: float, params: tuple[Tensor, ...]):
    """``(y, log|det J_f|, saved)``: the pass without autograd, and what the backward needs."""
    Ws, bs = params[0::2], params[1::2]
    centred, zs = [], []
    h = x
    logd = None
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        c = h - b.unsqueeze(-2)
        centred.append(c)
        z = torch.matmul(c, W.mT)
        if i == len(Ws) - 1:
            h = z
            break
        zs.append(z)
        if kind == "sinh":  # normalizing asinh: log-derivative -1/2 log(1 + z²), summed at the end
            h = torch.asinh(z)
            term = torch.log1p(z * z)
        else:  # normalizing sinh: log-derivative log(cosh z + eps)
            h = torch.sinh(z)
            term = torch.log(torch.cosh(z) + eps)
        logd = term if logd is None else logd.add_(term)
    lus = _lu(Ws)
    const = _log_abs_dets(lus).unsqueeze(-1)
    if logd is None:
        ladj = const.expand(x.shape[:-1])
    else:
        ladj = torch.add(const, logd.sum(-1), alpha=-0.5 if kind == "sinh" else 1.0)
    return h, ladj, [*Ws, *centred, *zs, *lus]


def _backward(kind: str, eps: float, n_layers: int, saved, g_y: Tensor, g_l: Tensor) -> list[Tensor]:
    """Gradients of ``<g_y, y> + <g_l, ladj>`` with respect to x and the parameters."""
    L = n_layers
    Ws, centred, zs, lus = saved[:L], saved[L : 2 * L], saved[2 * L : 3 * L - 1], saved[3 * L - 1 :]
    grads: list[Tensor] = [None] * (2 * L)  # type: ignore[list-item]
    # every sample's ladj holds Σ log|det W|, whose gradient is W^-T: it starts each W's gradient
    g_const = g_l.sum(-1)[..., None, None]
    g_W0 = [g_const * w for w in _inverses_t(lus)]
    minus_ones = torch.full(g_y.shape[-2:-1], -1.0, dtype=g_y.dtype, device=g_y.device)  # b̄ = -Σ_n h̄
    g_h = g_y
    g_l = g_l.unsqueeze(-1)
    for i in range(L - 1, -1, -1):
        if i < L - 1:  # through the element-wise layer that follows affine layer i
            z = zs[i]
            if kind == "sinh":
                r = torch.reciprocal(torch.addcmul(torch.ones_like(z), z, z))  # 1 / (1 + z²)
                g_z = torch.addcmul(g_h * r.sqrt(), g_l * z, r, value=-1.0)
            else:
                cosh = torch.cosh(z)
                g_z = torch.addcmul(g_h * cosh, g_l * torch.sinh(z), torch.reciprocal(cosh + eps))
        else:
            g_z = g_h
        grads[2 * i] = torch.add(g_W0[i], torch.matmul(g_z.mT, centred[i]))  # out of place: vmap-safe
        g_h = torch.matmul(g_z, Ws[i])
        grads[2 * i + 1] = torch.matmul(minus_ones, g_h)
    return [g_h, *grads]


class MLPPass(torch.autograd.Function):
    """``(y, log|det J_f|)`` of ``x`` through affine layers ``(W_l, b_l)`` with the element-wise
    ``kind`` between consecutive ones; arguments after ``kind`` and ``eps``: W_0, b_0, W_1, b_1, ..."""

    @staticmethod
    def forward(ctx, x: Tensor, kind: str, eps: float, *params: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj, saved = _forward(x, kind, eps, params)
        ctx.kind, ctx.eps, ctx.n_layers = kind, eps, len(params) // 2
        ctx.save_for_backward(*saved)
        return y, ladj

    @staticmethod
    def backward(ctx, g_y: Tensor, g_l: Tensor):
        g_x, *grads = _backward(ctx.kind, ctx.eps, ctx.n_layers, ctx.saved_tensors, g_y, g_l)
        return (g_x, None, None, *grads)


class MLPNLL(torch.autograd.Function):
    """The mean negative log-likelihood under N(0, I) over the sample axis (-2) of ``x``: a scalar
    for one flow, shape (E,) for an ensemble; arguments as :class:`MLPPass`."""

    @staticmethod
    def forward(ctx, x: Tensor, kind: str, eps: float, *params: Tensor) -> Tensor:
        y, ladj, saved = _forward(x, kind, eps, params)
        d = y.shape[-1]
        nll = (0.5 * (y * y).sum(-1) - ladj).mean(-1) + 0.5 * d * LOG_2PI
        ctx.kind, ctx.eps, ctx.n_layers = kind, eps, len(params) // 2
        ctx.save_for_backward(y, *saved)
        return nll

    @staticmethod
    def backward(ctx, g: Tensor):
        y, *saved = ctx.saved_tensors
        scale = (g / y.shape[-2]).unsqueeze(-1)  # d mean / d sample = 1/n
        g_y = y * scale.unsqueeze(-1)
        g_l = (-scale).expand(y.shape[:-1])
        g_x, *grads = _backward(ctx.kind, ctx.eps, ctx.n_layers, saved, g_y, g_l)
        return (g_x, None, None, *grads)


def _flat(Ws: list[Tensor], bs: list[Tensor]) -> list[Tensor]:
    return [p for pair in zip(Ws, bs, strict=True) for p in pair]


def mlp_pass(x: Tensor, kind: str, eps: float, Ws: list[Tensor], bs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """:class:`MLPPass` with the parameters as two lists (x: (..., n, d), W: (..., d, d), b: (..., d))."""
    return MLPPass.apply(x, kind, eps, *_flat(Ws, bs))


def mlp_nll(x: Tensor, kind: str, eps: float, Ws: list[Tensor], bs: list[Tensor]) -> Tensor:
    """:class:`MLPNLL` with the parameters as two lists."""
    return MLPNLL.apply(x, kind, eps, *_flat(Ws, bs))
