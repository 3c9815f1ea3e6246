r"""Normalizing flows with explicit per-sample Jacobians.

One convention everywhere (docs/theory.md §2.1, the authors' code):

* the **normalizing map** :math:`f: x \mapsto y` is ``Flow.forward`` (the authors' "inverse pass");
* the **generative map** :math:`g = f^{-1}` is ``Flow.generate``;
* :math:`\log p(x) = \log N(f(x); 0, I) + \log|\det J_f(x)|` with :math:`J_f = \partial y / \partial x`.

A flow is a stack of :class:`Bijector` layers in normalizing order. Every layer returns its output
together with its log|det| (so nobody computes ``y`` without it) and can push a tangent
(:meth:`Bijector.jvp`, used by the Hutchinson Jacobian penalty) or a full Jacobian
(:meth:`Bijector.jac`, used by the exact penalty, the covariance analysis and the components)
through itself. Affine, element-wise, batch-norm, radial, permutation and coupling layers do both
analytically (the couplings through their ReLU MLP's masks and weights, as the authors'
``realnvp.py`` does); zuko flows fall back to autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowtheory.science import fused
from flowtheory.science.kinds import FLOW_KINDS, FLOW_REGISTRY, FlowKind

__all__ = [
    "FLOW_KINDS",
    "FLOW_REGISTRY",
    "FlowKind",
    "Affine",
    "BatchNorm",
    "Bijector",
    "Coupling",
    "Elementwise",
    "Flow",
    "Logit",
    "Permutation",
    "Radial",
    "ZukoFlow",
    "affine_gaussian_nll",
    "build_flow",
    "count_parameters",
    "gaussian_log_prob",
    "gaussian_nll",
    "linear",
    "log_abs_det",
    "log_abs_det_each",
    "moments",
    "permute",
]

#: element-wise log-derivatives use log(|.| + LOG_EPS), as the authors' code does
LOG_EPS = 1e-12
#: the authors' ``chol_reg``: log|det W| = 1/2 log det(W^T W + CHOL_REG I)
CHOL_REG = 1e-5
#: batch-norm variance floor and running-average update weight (authors' ``batchnorm_decay``)
BN_EPS = 1e-5
BN_MOMENTUM = 0.2
#: affine layers up to this size get their log-dets from one batched call (overhead-bound); larger
#: ones one call each, since the stacking copy costs more than it saves (``results/benchmarks.md``);
#: defined with the fused pass, which follows the same rule
BATCH_LOGDET_MAX_D = fused.BATCH_LOGDET_MAX_D


class Bijector(nn.Module):
    """One invertible layer, in the normalizing direction."""

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(h', log|det dh'/dh|)`` with shapes ``(n, d)`` and ``(n,)``."""
        raise NotImplementedError

    def inverse(self, h: Tensor) -> Tensor:
        """The generative direction: the inverse of :meth:`forward`."""
        raise NotImplementedError

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns ``(h', ladj, J v)``; differentiable with respect to the parameters."""
        h = h if h.requires_grad else h.detach().requires_grad_(True)
        out, ladj = self(h)
        # double-vjp trick: J v = d/du [u^T J]^T v, with u a dummy cotangent
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, h, u, create_graph=True)
        (jv,) = torch.autograd.grad(g, u, v, create_graph=True)
        return out, ladj, jv

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(h', J_layer(h) @ J)`` for an accumulated Jacobian ``J`` of shape (n, d, d).

        Does not update batch-norm running statistics: it accompanies a forward pass that did."""
        return self(h)[0], self._autograd_jac(h) @ J

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One pass for ``(h', log|det|, J_layer(h) @ J)``: :meth:`forward` and :meth:`jac` together."""
        out, ladj = self(h)
        return out, ladj, self._autograd_jac(h) @ J

    def _autograd_jac(self, h: Tensor) -> Tensor:
        def single(hi: Tensor) -> Tensor:
            return self(hi[None])[0][0]

        return torch.func.vmap(torch.func.jacrev(single))(h)

    def weight_matrices(self) -> list[Tensor]:
        """The normalizing-direction matrices that the weight Tikhonov penalty acts on."""
        return []


def gaussian_log_prob(y: Tensor, ladj: Tensor) -> Tensor:
    """log p(x) = log N(f(x); 0, I) + log|det J_f(x)| per sample: y (..., n, d), ladj (..., n) -> (..., n)."""
    d = y.shape[-1]
    return -0.5 * (y**2).sum(-1) - 0.5 * d * math.log(2 * math.pi) + ladj


def gaussian_nll(y: Tensor, ladj: Tensor) -> Tensor:
    """Mean negative log-likelihood under the N(0, I) base over the sample axis: y (..., n, d),
    log|det J_f| (..., n) -> (...) (:func:`gaussian_log_prob`, negated exactly, averaged)."""
    return (-gaussian_log_prob(y, ladj)).mean(-1)


def affine_gaussian_nll(W: Tensor, b: Tensor, mean: Tensor, cov: Tensor, mode: str = "slogdet") -> Tensor:
    r"""The mean NLL under the N(0, I) base of the one-layer flow y = W(x − b) over points of mean
    ``mean`` and covariance ``cov`` (normalized by 1/n), from these moments alone (docs/theory.md
    §2.2): :math:`\tfrac12 \operatorname{tr}(W C W^\top) + \tfrac12 \|W(\mu - b)\|^2 - \log|\det W|
    + \tfrac d2 \log 2\pi`, equal to :func:`gaussian_nll` of the points through the layer, in
    O(d³) instead of O(n d²). A quadratic penalty ½ tr(W P Wᵀ) enters as ``cov`` + P (the weight
    penalty α‖W‖²_F: P = 2αI). Differentiable in W and b."""
    r = W @ (mean - b)
    d = W.shape[-1]
    return 0.5 * ((W @ cov) * W).sum() + 0.5 * r @ r - log_abs_det_each(W, mode) + 0.5 * d * math.log(2 * math.pi)


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and the covariance, normalized by 1/n (the maximum-likelihood normalization), of the
    points ``x`` (n, d): the data's part of :func:`affine_gaussian_nll`."""
    mean = x.mean(0)
    xc = x - mean
    return mean, xc.T @ xc / len(x)


def log_abs_det_each(W: Tensor, mode: str = "slogdet") -> Tensor:
    r"""log|det W| of every matrix of a stack ``W`` of shape (..., d, d) -> (...), in one batched
    LAPACK call. ``mode="chol"`` is the authors' :math:`\tfrac12 \log\det(W^\top W + 10^{-5} I)`."""
    if mode == "slogdet":
        return torch.linalg.slogdet(W)[1]
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    L = torch.linalg.cholesky(W.mT @ W + CHOL_REG * eye)
    return torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)


def log_abs_det(W: Tensor, mode: str = "slogdet") -> Tensor:
    r"""Σ log|det W_l| over a stack ``W`` of shape (..., d, d) (:func:`log_abs_det_each`, summed)."""
    return log_abs_det_each(W, mode).sum()


# -- an ensemble axis. A layer's parameters may carry a leading axis of E runs (a batched ensemble,
# science/ensemble.py); then its input is (E, n, d) and each run uses its own slice. The layers'
# maths is written once; only the matrix products below choose the batched kernel, so one flow and a
# stacked ensemble run the same code.


def linear(a: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """``a W^T + b`` for one weight (W (out, in)) or per run (W (E, out, in), a (E, ..., in))."""
    if W.ndim == 2:
        return nn.functional.linear(a, W, b)
    shape = a.shape
    flat = a.reshape(shape[0], -1, shape[-1])
    out = torch.bmm(flat, W.mT) if b is None else torch.baddbmm(b[:, None, :], flat, W.mT)
    return out.reshape(*shape[:-1], W.shape[-2])


def permute(t: Tensor, perm: Tensor, axis: int) -> Tensor:
    """``t`` with its coordinates along ``axis`` (-1: values, -2: Jacobian rows) permuted by ``perm``,
    one permutation (d,) or one per run (E, d)."""
    if perm.ndim == 1:
        return t[..., perm] if axis == -1 else t[..., perm, :]
    if axis == -1:
        return torch.gather(t, -1, perm.reshape(perm.shape[0], *[1] * (t.ndim - 2), -1).expand(t.shape))
    return torch.gather(t, -2, perm.reshape(perm.shape[0], *[1] * (t.ndim - 3), -1, 1).expand(t.shape))


class Affine(Bijector):
    r"""Full square affine layer :math:`h' = W (h - b)` (the authors' ``standard`` mode).

    Arguments:
        d: dimension.
        W: initial matrix (normalizing direction).
        logdet: ``"slogdet"`` (exact; our default) or ``"chol"`` (the authors' default,
            :math:`\tfrac12 \log\det(W^\top W + 10^{-5} I)`).
    """

    def __init__(self, W: Tensor, logdet: str = "slogdet") -> None:
        super().__init__()
        if logdet not in ("slogdet", "chol"):
            raise ValueError(f"logdet must be 'slogdet' or 'chol', got {logdet!r}")
        self.W = nn.Parameter(W.clone())
        self.b = nn.Parameter(torch.zeros(W.shape[0], dtype=W.dtype))
        self.logdet = logdet

    def log_abs_det(self) -> Tensor:
        return log_abs_det(self.W, self.logdet)

    def _map(self, h: Tensor) -> Tensor:
        if self.W.ndim == 2:
            return nn.functional.linear(h - self.b, self.W)  # (h - b) W^T in one autograd node
        return torch.matmul(h - self.b[:, None, :], self.W.mT)

    def _jac(self, J: Tensor) -> Tensor:
        return torch.matmul(self.W if self.W.ndim == 2 else self.W[:, None], J)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        ladj = log_abs_det_each(self.W, self.logdet)
        return self._map(h), (ladj if ladj.ndim == 0 else ladj[:, None]).expand(h.shape[:-1])

    def inverse(self, h: Tensor) -> Tensor:
        return torch.linalg.solve(self.W, h.T).T + self.b

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, ladj = self(h)
        return out, ladj, v @ self.W.T

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        return self._map(h), self._jac(J)  # no log-det needed here

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, ladj = self(h)
        return out, ladj, self._jac(J)

    def weight_matrices(self) -> list[Tensor]:
        return [self.W]


class Elementwise(Bijector):
    r"""Element-wise activation, named by its **generative** function as in the authors' code.

    * ``sinh``: generative sinh, normalizing :math:`\operatorname{asinh}` (bounded growth: our default);
    * ``asinh``: generative asinh, normalizing :math:`\sinh` (explodes on unscaled data, docs/measurements.md);
    * ``prelu``: generative :math:`x \mapsto x` (x ≥ 0) or :math:`\alpha x`, with
      :math:`\alpha = \operatorname{softplus}(a)` learned; normalizing divides by α.
    """

    KINDS = ("sinh", "asinh", "prelu")

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"activation must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "prelu":
            # softplus(a) = 1 at a = log(e - 1): the layer starts as the identity
            self.a = nn.Parameter(torch.tensor(math.log(math.e - 1.0)))

    def _value_and_logderiv(self, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "sinh":  # normalizing asinh, d/dh asinh(h) = (1 + h^2)^(-1/2)
            return torch.asinh(h), -0.5 * torch.log1p(h**2)
        if self.kind == "asinh":  # normalizing sinh, d/dh sinh(h) = cosh(h)
            return torch.sinh(h), torch.log(torch.cosh(h) + LOG_EPS)
        alpha = nn.functional.softplus(self.a).to(h.dtype)
        neg = h < 0
        out = torch.where(neg, h / alpha, h)
        logd = torch.where(neg, -torch.log(alpha + LOG_EPS), torch.zeros_like(h))
        return out, logd

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        out, logd = self._value_and_logderiv(h)
        return out, logd.sum(-1)

    def inverse(self, h: Tensor) -> Tensor:
        if self.kind == "sinh":
            return torch.sinh(h)
        if self.kind == "asinh":
            return torch.asinh(h)
        alpha = nn.functional.softplus(self.a).to(h.dtype)
        return torch.where(h < 0, h * alpha, h)

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, logd = self._value_and_logderiv(h)
        return out, logd.sum(-1), torch.exp(logd) * v

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        out, _, J = self.forward_and_jac(h, J)
        return out, J

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, logd = self._value_and_logderiv(h)
        return out, logd.sum(-1), torch.exp(logd)[..., None] * J


class Radial(Bijector):
    r"""A radial power map :math:`h' = \rho(r)\, h / r` with :math:`r = |h|` and
    :math:`\log \rho(r) = a \log r + c`, :math:`a = e^{\alpha} > 0` (docs/theory.md §2.4.1).

    Its Jacobian is :math:`(\rho/r)\,(I + (a - 1)\, u u^\top)`, :math:`u = h / r`: singular value
    :math:`a \rho / r` along the radius and :math:`\rho / r` in the d − 1 directions across it, so
    :math:`\log|\det| = \alpha + d\,((a - 1) \log r + c)`. Both start at 0 (the identity).
    """

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros((), dtype=dtype))
        self.c = nn.Parameter(torch.zeros((), dtype=dtype))

    def _log_scale(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(a, log(ρ / r), r)``, the last two of shape (n, 1)."""
        a = torch.exp(self.alpha)
        r = torch.linalg.vector_norm(h, dim=-1, keepdim=True)
        return a, (a - 1) * torch.log(r) + self.c, r

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        _, log_scale, _ = self._log_scale(h)
        return h * torch.exp(log_scale), self.alpha + h.shape[-1] * log_scale[..., 0]

    def inverse(self, h: Tensor) -> Tensor:
        a = torch.exp(self.alpha)
        log_rho = torch.log(torch.linalg.vector_norm(h, dim=-1, keepdim=True))
        log_r = (log_rho - self.c) / a
        return h * torch.exp(log_r - log_rho)

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, log_scale, r = self._log_scale(h)
        scale, u = torch.exp(log_scale), h / r
        # (ρ/r)(I + (a − 1) u uᵀ) J without forming the d × d matrix
        uJ = torch.einsum("...i,...ij->...j", u, J)
        out_J = scale[..., None] * (J + (a - 1) * u[..., :, None] * uJ[..., None, :])
        return h * scale, self.alpha + h.shape[-1] * log_scale[..., 0], out_J

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        out, _, J = self.forward_and_jac(h, J)
        return out, J

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, ladj, Jv = self.forward_and_jac(h, v[..., None])
        return out, ladj, Jv[..., 0]


class BatchNorm(Bijector):
    r"""The authors' batch-norm bijector, normalizing pass
    :math:`h' = (h - m) / \sqrt{v + \epsilon} \cdot e^{\gamma} + \beta`.

    Batch statistics in training mode, running statistics (update weight 0.2) in evaluation mode.
    The per-sample Jacobian treats the statistics as constants, as the authors' code does.
    """

    def __init__(self, d: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(d, dtype=dtype))
        self.beta = nn.Parameter(torch.zeros(d, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(d, dtype=dtype))
        self.register_buffer("running_var", torch.ones(d, dtype=dtype))

    def _stats(self, h: Tensor, update: bool = True) -> tuple[Tensor, Tensor]:
        if self.training and h.shape[0] > 1:
            m, v = h.mean(0), h.var(0, unbiased=False)
            if update:
                with torch.no_grad():
                    self.running_mean.lerp_(m.detach(), BN_MOMENTUM)
                    self.running_var.lerp_(v.detach(), BN_MOMENTUM)
            return m, v
        return self.running_mean, self.running_var

    def _scale(self, v: Tensor) -> Tensor:
        return torch.exp(self.gamma) / torch.sqrt(v + BN_EPS)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        m, v = self._stats(h)
        scale = self._scale(v)
        return (h - m) * scale + self.beta, torch.log(scale).sum().expand(h.shape[0])

    def inverse(self, h: Tensor) -> Tensor:
        return (h - self.beta) / self._scale(self.running_var) + self.running_mean

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, var = self._stats(h)
        scale = self._scale(var)
        out = (h - m) * scale + self.beta
        return out, torch.log(scale).sum().expand(h.shape[0]), v * scale

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        # the Jacobian always accompanies a forward pass of the same batch (the exact penalty,
        # diagnostics), which has already updated the running statistics: do not update them twice
        m, var = self._stats(h, update=False)
        scale = self._scale(var)
        return (h - m) * scale + self.beta, scale[:, None] * J

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, var = self._stats(h)  # the forward pass: updates the running statistics once
        scale = self._scale(var)
        return (h - m) * scale + self.beta, torch.log(scale).sum().expand(h.shape[0]), scale[:, None] * J


class Logit(Bijector):
    r"""Normalizing inverse of the authors' optional sigmoid output layer: :math:`h' = \log h - \log(1-h)`."""

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return torch.logit(h), -(torch.log(h) + torch.log1p(-h)).sum(-1)

    def inverse(self, h: Tensor) -> Tensor:
        return torch.sigmoid(h)

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, ladj = self(h)
        return out, ladj, v / (h * (1 - h))

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        return torch.logit(h), (1 / (h * (1 - h)))[:, :, None] * J

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, ladj = self(h)
        return out, ladj, (1 / (h * (1 - h)))[:, :, None] * J


class Permutation(Bijector):
    """A fixed permutation of the coordinates (RealNVP)."""

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return permute(h, self.perm, -1), h.new_zeros(h.shape[:-1])

    def inverse(self, h: Tensor) -> Tensor:
        return permute(h, self.inv_perm, -1)

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return permute(h, self.perm, -1), h.new_zeros(h.shape[:-1]), permute(v, self.perm, -1)

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        return permute(h, self.perm, -1), permute(J, self.perm, -2)

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return permute(h, self.perm, -1), h.new_zeros(h.shape[:-1]), permute(J, self.perm, -2)


class Coupling(Bijector):
    r"""RealNVP affine coupling (the authors' ``RealNVP``), normalizing direction:

    :math:`y_{1} = x_{1}`, :math:`y_{2} = (x_{2} - t(x_{1})) \odot e^{-s(x_{1})}`, with shift t and
    log-scale s from one ReLU MLP on the first ``n_masked`` coordinates. The last layer starts at
    zero, so every coupling starts as the identity.

    The per-sample Jacobian (:meth:`jvp`, :meth:`jac`, :meth:`forward_and_jac`) is analytic, batched
    over points: the MLP's Jacobian from its ReLU masks and weight matrices, no autograd. Its
    log|det| is :math:`-\sum s`, since the Jacobian is block lower-triangular with diagonal
    :math:`(1, \dots, 1, e^{-s})`.
    """

    def __init__(self, d: int, n_masked: int, hidden: Sequence[int], dtype: torch.dtype) -> None:
        super().__init__()
        self.n_masked = n_masked
        widths = [n_masked, *hidden, 2 * (d - n_masked)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b, dtype=dtype))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def _shift_logscale(self, h1: Tensor) -> tuple[Tensor, Tensor]:
        a = h1
        for layer in self.net:
            a = linear(a, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else nn.functional.relu(a)
        t, s = a.chunk(2, dim=-1)
        return t, s

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        h1, h2 = h[..., : self.n_masked], h[..., self.n_masked :]
        t, s = self._shift_logscale(h1)
        return torch.cat([h1, (h2 - t) * torch.exp(-s)], -1), -s.sum(-1)

    def inverse(self, h: Tensor) -> Tensor:
        h1, h2 = h[..., : self.n_masked], h[..., self.n_masked :]
        t, s = self._shift_logscale(h1)
        return torch.cat([h1, h2 * torch.exp(s) + t], -1)

    def _net_and_tangents(self, h1: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
        r"""The MLP's output and its derivative along ``r`` tangents: ``(net(h1), T D_net(h1)^T)``.

        Forward mode through the ReLU MLP,
        :math:`D_{net} = W_L\, \mathrm{diag}(m_{L-1})\, W_{L-1} \cdots \mathrm{diag}(m_0)\, W_0` with
        :math:`m_l` the ReLU masks. The tangents are rows, ``T`` of shape (n, r, n_masked), so each layer
        is one GEMM: r = n_masked for the MLP's own Jacobian, r = 1 for a JVP; cost
        :math:`O(n\, r \sum_l h_l h_{l+1})`. The values take the same operations as ``self.net``, so
        they are bitwise those of :meth:`forward`.
        """
        a = h1
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                a = linear(a, layer.weight, layer.bias)
                T = linear(T, layer.weight)  # (n, r, in) -> (n, r, out)
            else:  # ReLU: derivative 1 where the pre-activation is > 0, else 0 (0 at exactly 0, as autograd)
                T = (a > 0).to(T.dtype)[..., None, :] * T
                a = nn.functional.relu(a)
        return a, T

    def _parts(self, h: Tensor, T1: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(y, log|det|, e^{-s}, x_2 - t, T D_t^T, T D_s^T)`` for row tangents ``T1`` of x_1."""
        h1, h2 = h[..., : self.n_masked], h[..., self.n_masked :]
        out_net, dnet = self._net_and_tangents(h1, T1)
        t, s = out_net.chunk(2, dim=-1)  # as _shift_logscale
        dt, ds = dnet.chunk(2, dim=-1)
        centred, scale = h2 - t, torch.exp(-s)
        return torch.cat([h1, centred * scale], -1), -s.sum(-1), scale, centred, dt, ds

    # With y_2 = (x_2 - t(x_1)) e^{-s(x_1)} the layer's Jacobian is [[I, 0], [B, diag(e^{-s})]] with
    #   B = ∂y_2/∂x_1 = -e^{-s} ⊙ (D_t + (x_2 - t) ⊙ D_s)        (D_t, D_s: (d - m) × m blocks of D_net)

    def jvp(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m = self.n_masked
        v1, v2 = v[..., :m], v[..., m:]
        out, ladj, scale, centred, dt, ds = self._parts(h, v1[..., None, :])  # one tangent: D_t v_1, D_s v_1
        # (J v)_2 = e^{-s} ⊙ (v_2 - D_t v_1 - (x_2 - t) ⊙ D_s v_1)
        return out, ladj, torch.cat([v1, scale * (v2 - dt[..., 0, :] - centred * ds[..., 0, :])], -1)

    def jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
        out, _, J = self.forward_and_jac(h, J)
        return out, J

    def forward_and_jac(self, h: Tensor, J: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m = self.n_masked
        eye = torch.eye(m, dtype=h.dtype, device=h.device).expand(*h.shape[:-1], m, m)
        out, ladj, scale, centred, dt, ds = self._parts(h, eye)  # dt[..., i, j] = ∂t_j/∂x_{1,i}: D_t^T
        B = -scale[..., None] * (dt.mT + centred[..., None] * ds.mT)  # (..., n, d - m, m)
        J1, J2 = J[..., :m, :], J[..., m:, :]
        return out, ladj, torch.cat([J1, torch.matmul(B, J1) + scale[..., None] * J2], -2)


class Flow(nn.Module):
    r"""A normalizing flow: a stack of bijectors in the normalizing direction, base :math:`N(0, I)`.

    Example:
        >>> flow = build_flow({"kind": "linear"}, d=2, dtype=torch.float64)
        >>> y, ladj = flow(torch.zeros(5, 2, dtype=torch.float64))
        >>> y.shape, ladj.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    _fused: str | None = None  # see fused_kind (ZukoFlow, which has no layers, keeps None)

    def __init__(self, layers: Sequence[Bijector], d: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.d = d
        self._fused = self.fused_kind()
        self._affines = [layer for layer in self.layers if isinstance(layer, Affine)]  # a plain list: no copy per call

    def _affine_log_abs_det(self) -> Tensor | None:
        """Σ log|det W| of the affine layers, whose log-dets do not depend on x: one batched call per
        (shape, mode) instead of one LAPACK call and one backward node per layer (a third of a small
        flow's step, ``python -m bench.steps``)."""
        groups: dict[tuple, list[Tensor]] = {}
        for layer in self.layers:
            if isinstance(layer, Affine):
                groups.setdefault((layer.W.shape, layer.logdet), []).append(layer.W)
        terms = []
        for (shape, mode), Ws in groups.items():
            if shape[-1] <= BATCH_LOGDET_MAX_D:
                terms.append(log_abs_det_each(torch.stack(Ws), mode).sum(0))
            else:  # LAPACK-bound: stacking would only add a copy of every matrix
                terms.extend(log_abs_det_each(W, mode) for W in Ws)
        return sum(terms[1:], terms[0]) if terms else None

    def _total_ladj(self, x: Tensor, per_sample: list[Tensor]) -> Tensor:
        const = self._affine_log_abs_det()  # one value, or one per run of an ensemble (E,)
        if const is not None and const.ndim:
            const = const[:, None]
        if not per_sample:
            return (const if const is not None else x.new_zeros(())).expand(x.shape[:-1])
        total = sum(per_sample[1:], per_sample[0])
        return total if const is None else total + const

    def single_affine(self) -> Affine | None:
        """The layer of a linear flow (one affine layer; in an ensemble its W is stacked), else None."""
        layers = list(self.layers)
        if len(layers) == 1 and isinstance(layers[0], Affine):
            return layers[0]
        return None

    def fused_kind(self) -> str | None:
        """The element-wise kind when the layers are ``Affine, act, Affine, ..., act, Affine`` with one
        sinh/asinh kind and exact log-dets (an MLP flow without batch norm, logit or PReLU), or
        ``"linear"`` for one affine layer with an exact log-det (the linear flow): then
        :meth:`forward` and :meth:`nll` run as one autograd node (:mod:`flowtheory.science.fused`)
        for the parameters' gradients. Where ``x`` itself requires a gradient (autograd Jacobians,
        the reference implementations in the tests) the layers run one by one, so such references
        stay independent of the hand-written backward. None when the pattern differs."""
        layers = list(self.layers)
        single = self.single_affine()
        if single is not None and single.logdet == "slogdet":
            return "linear"  # one affine layer: the pass has no element-wise layer
        if len(layers) < 3 or len(layers) % 2 == 0:
            return None
        affine = all(isinstance(layer, Affine) for layer in layers[0::2])
        acts = layers[1::2]
        kinds = {getattr(layer, "kind", None) for layer in acts}
        if not affine or not all(type(layer) is Elementwise for layer in acts) or len(kinds) != 1:
            return None
        kind = kinds.pop()
        exact = all(layer.logdet == "slogdet" for layer in layers[0::2])
        return kind if kind in fused.KINDS and exact else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The normalizing map: returns ``(y, log|det J_f(x)|)``."""
        if self._fused is not None and not x.requires_grad:
            return fused.mlp_pass(x, self._fused, LOG_EPS, *self._affine_params())
        per_sample = []
        for layer in self.layers:
            if isinstance(layer, Affine):
                x = layer._map(x)  # its log-det is added once, batched, by _total_ladj
            else:
                x, la = layer(x)
                per_sample.append(la)
        return x, self._total_ladj(x, per_sample)

    def generate(self, y: Tensor) -> Tensor:
        """The generative map g = f⁻¹ (batch norm in evaluation mode uses running statistics)."""
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def nll(self, x: Tensor) -> Tensor:
        """The mean negative log-likelihood of the batch ``x`` (the training loss)."""
        if self._fused is not None and not x.requires_grad:
            return fused.mlp_nll(x, self._fused, LOG_EPS, *self._affine_params())
        return gaussian_nll(*self(x))

    def _affine_params(self) -> tuple[list[Tensor], list[Tensor]]:
        return [a.W for a in self._affines], [a.b for a in self._affines]

    def log_prob(self, x: Tensor) -> Tensor:
        return gaussian_log_prob(*self(x))

    def jvp(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns ``(y, ladj, J_f(x) v)`` in one pass (per-sample tangents ``v``, shape (n, d))."""
        per_sample = []
        for layer in self.layers:
            if isinstance(layer, Affine):
                x, v = layer._map(x), v @ layer.W.T
            else:
                x, la, v = layer.jvp(x, v)
                per_sample.append(la)
        return x, self._total_ladj(x, per_sample), v

    def jacobian(self, x: Tensor) -> Tensor:
        """The per-sample Jacobian :math:`J_f(x) = \\partial y/\\partial x`, shape (n, d, d)."""
        J = torch.eye(self.d, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], -1, -1)
        for layer in self.layers:
            x, J = layer.jac(x, J)
        return J

    def forward_and_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(y, log|det J_f(x)|, J_f(x))`` in one pass through the layers (the exact Jacobian penalty
        and the diagnostics need all three; two separate passes would redo every layer and log-det)."""
        per_sample = []
        J = torch.eye(self.d, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], -1, -1)
        for layer in self.layers:
            if isinstance(layer, Affine):
                x, J = layer.jac(x, J)
            else:
                x, la, J = layer.forward_and_jac(x, J)
                per_sample.append(la)
        return x, self._total_ladj(x, per_sample), J

    def weight_matrices(self) -> list[Tensor]:
        return [W for layer in self.layers for W in layer.weight_matrices()]

    @property
    def analytic_jacobian(self) -> bool:
        """True when every layer builds its Jacobian without autograd."""
        return all(type(layer).jac is not Bijector.jac for layer in self.layers)


class ZukoFlow(Flow):
    """Adapter around a zuko flow (an independent implementation to cross-check against).

    zuko's ``flow().transform`` maps data to latent, i.e. it is our normalizing map f.
    """

    def __init__(self, flow: nn.Module, d: int) -> None:
        nn.Module.__init__(self)
        self.flow = flow
        self.d = d

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow().transform.call_and_ladj(x)

    def generate(self, y: Tensor) -> Tensor:
        return self.flow().transform.inv(y)

    def jvp(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return Bijector.jvp(self, x, v)  # the double-vjp fallback: self(x) returns (y, ladj)

    def jacobian(self, x: Tensor) -> Tensor:
        transform = self.flow().transform

        def single(xi: Tensor) -> Tensor:
            return transform(xi[None])[0]

        return torch.func.vmap(torch.func.jacrev(single))(x)

    def forward_and_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, ladj = self(x)
        return y, ladj, self.jacobian(x)

    def weight_matrices(self) -> list[Tensor]:
        raise ValueError("the weight Tikhonov penalty is not defined for zuko flows")

    @property
    def analytic_jacobian(self) -> bool:
        return False


def _init_matrix(d: int, init: str, scale: float, g: torch.Generator, dtype: torch.dtype) -> Tensor:
    if init == "identity":
        # our choice: I + scale/sqrt(d) * N(0, 1), well conditioned at any d
        return torch.eye(d, dtype=dtype) + scale / math.sqrt(d) * torch.randn(d, d, generator=g, dtype=dtype)
    if init == "glorot":  # the authors' (TF1 glorot-uniform) initialisation
        bound = math.sqrt(6.0 / (2 * d))
        return (2 * torch.rand(d, d, generator=g, dtype=dtype) - 1) * bound
    raise ValueError(f"init must be 'identity' or 'glorot', got {init!r}")


def build_flow(spec: dict, d: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> Flow:
    """Builds a flow from its config entry (see ``flows`` in ``workflow/schemas/config.schema.yaml``).

    Arguments:
        spec: the flow's config entry; ``kind`` is one of :data:`FLOW_KINDS`.
        d: data dimension.
        dtype: parameter dtype.
        seed: seeds the initialisation (and RealNVP's permutations) through one ``torch.Generator``.
    """
    kind = spec.get("kind")
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow kind {kind!r}; expected one of {FLOW_KINDS}")
    g = torch.Generator().manual_seed(seed)
    if kind == "linear":
        return Flow([Affine(torch.eye(d, dtype=dtype), spec.get("logdet", "slogdet"))], d)
    if kind == "mlp":
        n_hidden = spec.get("hidden_layers", 3)
        init, scale = spec.get("init", "identity"), spec.get("init_scale", 0.1)
        bn_every = spec.get("batchnorm_every", 0)
        layers: list[Bijector] = [Logit()] if spec.get("sigmoid_output", False) else []
        # generative order (the authors'): Affine_1, act_1, [BN_1], ..., Affine_L, act_L, [BN_L], Affine_out;
        # normalizing order, the reverse: Affine_out, [BN_L], act_L, Affine_L, ..., [BN_1], act_1, Affine_1
        for i in range(n_hidden + 1):
            layers.append(Affine(_init_matrix(d, init, scale, g, dtype), spec.get("logdet", "slogdet")))
            level = n_hidden - i  # the generative layer index of the activation that follows
            if level >= 1:
                if bn_every and level % bn_every == 0:
                    layers.append(BatchNorm(d, dtype))
                layers.append(Elementwise(spec.get("activation", "sinh")))
        return Flow(layers, d)
    if kind == "radial":  # an affine layer (centre and axes), then the radial power map
        return Flow([Affine(torch.eye(d, dtype=dtype), spec.get("logdet", "slogdet")), Radial(dtype)], d)
    if kind == "realnvp":
        n_masked = spec.get("n_masked", d // 2) or 1
        hidden = spec.get("hidden", [64, 64])
        layers = []
        for i in range(spec.get("couplings", 4)):
            layers.append(Coupling(d, n_masked, hidden, dtype))
            if i < spec.get("couplings", 4) - 1:  # the authors drop the last permutation
                layers.append(Permutation(torch.randperm(d, generator=g)))
        flow = Flow(layers, d)
        with torch.no_grad():  # seed the hidden layers' default init (weights and biases) through our generator
            for lin in flow.modules():
                if isinstance(lin, nn.Linear) and lin.weight.abs().sum() > 0:  # not the zero output layer
                    bound = 1 / math.sqrt(lin.weight.shape[1])  # PyTorch's default uniform bound
                    for p in (lin.weight, lin.bias):
                        p.copy_((2 * torch.rand(p.shape, generator=g, dtype=dtype) - 1) * bound)
        return flow
    import zuko  # imported lazily: only the cross-check needs it

    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # zuko initialises from the global generator
    try:
        cls = zuko.flows.MAF if kind == "zuko_maf" else zuko.flows.NSF
        zf = cls(d, transforms=spec.get("transforms", 3), hidden_features=spec.get("hidden", [64, 64]))
    finally:
        torch.random.set_rng_state(torch_state)
    return ZukoFlow(zf.to(dtype), d)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
