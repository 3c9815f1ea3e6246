r"""Stabilizers: the paper's fixes for ill-posed maximum likelihood, as one axis of the DAG.

Every variant is parametrised by one strength :math:`\lambda`, the amount of covariance shrinkage
it implies (docs/theory.md §2.5). For a linear flow y = W(x - b) on data of covariance Σ:

* weight Tikhonov :math:`\alpha_W \sum_l \|W_l\|_F^2` gives :math:`W^\top W = (\Sigma + 2\alpha_W I)^{-1}`;
* Gaussian noise injection :math:`x + \sigma\varepsilon` gives :math:`\mathrm{Cov} = \Sigma + \sigma^2 I`;
* the Jacobian penalty :math:`\alpha_J\,\mathrm{mean}_i \|J_f(x_i)\|_F^2` equals the weight penalty for
  one linear layer (J_f = W) and is Bishop's (1995) first-order form of noise injection in general.

Hence :math:`\lambda = 2\alpha = \sigma^2`: ``alpha = lam / 2`` and ``sigma = sqrt(lam)`` below. The
authors' knobs ``alpha_J``, ``alpha_W`` and ``noise_std`` are these derived values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flowtheory.science.flows import Flow, gaussian_nll

__all__ = ["EXACT_MAX_D", "KINDS", "Stabilizer", "hutchinson_probes", "hutchinson_sq_frobenius"]

KINDS = ("none", "weight", "jacobian", "noise")
#: up to this dimension the Jacobian penalty uses the exact per-sample Jacobian; above, Hutchinson
EXACT_MAX_D = 16


@dataclass(frozen=True)
class Stabilizer:
    """A named stabilizer variant.

    Arguments:
        name: the variant's name in the config (a DAG wildcard).
        kind: one of :data:`KINDS`.
        lam: shrinkage strength λ ≥ 0 (λ = 2α = σ²).
        estimator: Jacobian penalty only: ``"exact"``, ``"hutchinson"`` or ``"auto"``.
        probes: number of Hutchinson probe vectors per sample.
    """

    name: str
    kind: str
    lam: float = 0.0
    estimator: str = "auto"
    probes: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stabilizer {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"stabilizer {self.name!r}: lam must be a finite number >= 0, got {self.lam}")
        if self.kind != "none" and self.lam == 0:
            raise ValueError(f"stabilizer {self.name!r}: kind {self.kind!r} needs lam > 0")
        if self.estimator not in ("auto", "exact", "hutchinson"):
            raise ValueError(f"stabilizer {self.name!r}: unknown estimator {self.estimator!r}")

    @classmethod
    def from_config(cls, name: str, spec: dict) -> Stabilizer:
        return cls(name=name, **spec)

    @property
    def alpha(self) -> float:
        """The penalty weight α = λ/2 (the authors' ``alpha_J`` or ``alpha_W``)."""
        return self.lam / 2 if self.kind in ("weight", "jacobian") else 0.0

    @property
    def sigma(self) -> float:
        """The noise standard deviation σ = √λ (the authors' ``noise_std``)."""
        return math.sqrt(self.lam) if self.kind == "noise" else 0.0

    def authors_knobs(self) -> dict[str, float]:
        """The equivalent arguments of the authors' ``Flow.train``."""
        return {
            "alpha_W": self.alpha if self.kind == "weight" else 0.0,
            "alpha_J": self.alpha if self.kind == "jacobian" else 0.0,
            "noise_std": self.sigma,
        }

    def corrupt(self, x: Tensor, g: torch.Generator) -> Tensor:
        """Noise injection: a fresh x + σ ε per minibatch (identity for other kinds)."""
        if self.kind != "noise":
            return x
        return x + self.sigma * torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)

    @property
    def penalized(self) -> bool:
        """Whether the loss has a penalty term (weight and Jacobian; noise acts on the data)."""
        return self.kind in ("weight", "jacobian")

    def linear_penalty(self, x: Tensor, g: torch.Generator) -> Tensor | None:
        r"""For a linear flow y = W(x − b), the matrix P with which :meth:`nll_and_penalty`'s penalty on
        the points ``x`` is :math:`\tfrac12 \operatorname{tr}(W P W^\top)`, to be added to their
        covariance (:func:`~flowtheory.science.flows.affine_gaussian_nll`): λI for the weight penalty
        and the exact Jacobian penalty (J_f = W); for the Hutchinson estimate, λ times the mean outer
        product of the probes that :meth:`nll_and_penalty` would draw from ``g``. None without a
        penalty (noise injection acts on the points themselves)."""
        d = x.shape[-1]
        if self.kind == "weight" or (self.kind == "jacobian" and self.exact_jacobian(d)):
            return self.lam * torch.eye(d, dtype=x.dtype, device=x.device)
        if self.kind == "jacobian":
            V = sum(v.T @ v for v in hutchinson_probes(x, g, self.probes)) / (len(x) * self.probes)
            return self.lam * V
        return None

    def exact_jacobian(self, d: int) -> bool:
        """Whether the Jacobian penalty uses the exact per-sample Jacobian at dimension ``d``."""
        return self.estimator == "exact" or (self.estimator == "auto" and d <= EXACT_MAX_D)

    def nll_and_penalty(self, flow: Flow, x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Mean NLL of the batch and the penalty term, sharing one pass where possible."""
        zero = x.new_zeros(())
        if self.kind == "jacobian":
            if self.exact_jacobian(flow.d):
                y, ladj, J = flow.forward_and_jacobian(x)  # one pass for the NLL and the penalty
                sq = J.pow(2).sum((-2, -1))
            else:
                y, ladj, sq = hutchinson_sq_frobenius(flow, x, g, self.probes)
            return gaussian_nll(y, ladj), self.alpha * sq.mean()
        nll = flow.nll(x)  # one autograd node for an MLP flow (flowtheory.science.fused)
        if self.kind == "weight":
            return nll, self.alpha * sum((W**2).sum() for W in flow.weight_matrices())
        return nll, zero


def hutchinson_sq_frobenius(
    flow: Flow, x: Tensor, g: torch.Generator, probes: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Unbiased estimate of :math:`\|J_f(x_i)\|_F^2` per sample: :math:`E_v \|J v\|^2` with
    Rademacher v (:math:`E[vv^\top] = I`), averaged over ``probes`` vectors.

    Returns ``(y, ladj, estimate)``; y and ladj come from the first probe's pass.
    """
    total = x.new_zeros(x.shape[0])
    y = ladj = None
    for v in hutchinson_probes(x, g, probes):
        yk, lk, jv = flow.jvp(x, v)
        if y is None:
            y, ladj = yk, lk
        total = total + jv.pow(2).sum(-1)
    return y, ladj, total / probes


def hutchinson_probes(x: Tensor, g: torch.Generator, probes: int = 1):
    """The Rademacher probe vectors of :func:`hutchinson_sq_frobenius`, one per sample and probe, in
    the order it draws them from ``g``: ``probes`` tensors of the shape of ``x``."""
    for _ in range(probes):
        yield torch.randint(0, 2, x.shape, generator=g, device=x.device).to(x.dtype) * 2 - 1
