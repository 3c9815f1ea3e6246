r"""The exact distance of a trained flow to the optimum of what it is trained on, in nats, where that
optimum is known (docs/theory.md §2.6, Eqs. (23)–(25)).

* **Linear flow** y = W(x − b): the penalized training objective of every stabilizer (the weight
  penalty α‖W‖²_F with α = λ/2, the Jacobian penalty, which equals it for one linear layer, and noise
  injection of variance λ in expectation over the noise; λ = 0 without a stabilizer) is, with the
  training data's mean μ̂ and covariance Σ̂ (normalized by 1/n),

  .. math:: F(W, b) = \tfrac12 \operatorname{tr}(W (\hat\Sigma + \lambda I) W^\top)
            + \tfrac12 \|W(\hat\mu - b)\|^2 - \log|\det W| + \tfrac d2 \log 2\pi,

  minimized by :math:`W^\top W = (\hat\Sigma + \lambda I)^{-1}`, b = μ̂. The gap F − F* is the
  Gaussian KL divergence :math:`KL(N(\hat\mu, C) \| N(b, (W^\top W)^{-1}))`, C = Σ̂ + λI, exactly:
  :func:`linear_gap`. Singular Σ̂ with λ = 0 (the line): F is unbounded below and the gap is +∞.
* **Any flow on data of known density**: the target p is the data's intrinsic density pushed onto
  its manifold and convolved with N(0, s² I), s² = σ² + λ (data noise σ plus injected noise, or the
  Jacobian penalty's noise equivalent, which holds to first order only). The gap is
  :math:`KL(p \| q) = E_p[\log p - \log q]`, estimated by Monte Carlo over samples of p
  (:func:`sample_target`) with log p exact by quadrature (:func:`log_density`): closed forms where a
  coordinate enters linearly (the S-curve's height, the Swiss roll's height, the whole sphere), and
  composite Gauss–Legendre rules over the remaining intrinsic coordinates with panels set relative
  to the integrand's width s / ‖∂φ/∂u‖ (:data:`NODES_PER_WIDTH`), in log space.

No files, no pipeline: the analysis stage (``flowtheory.stages.analysis``) calls these on each run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from flowtheory.datasets import manifolds
from flowtheory.datasets.build import GENERATORS
from flowtheory.datasets.toys import gaussian as gaussian_sample

__all__ = [
    "KL_GAUSSIAN",
    "KL_JACOBIAN",
    "KL_MANIFOLD",
    "LINEAR",
    "NODES_PER_WIDTH",
    "NONE_SINGULAR",
    "NONE_UNBOUNDED",
    "NONE_UNKNOWN",
    "NONE_WEIGHT",
    "Gap",
    "flow_gap",
    "gap_rng",
    "kl_gap",
    "kl_target",
    "linear_gap",
    "linear_optimum",
    "log_density",
    "sample_target",
]

#: ``gap_kind`` labels of the measured gaps (docs/theory.md §2.6)
LINEAR = "penalized objective (closed form)"
KL_MANIFOLD = "KL(p || q), p = manifold * N(0, s2 I)"
KL_GAUSSIAN = "KL(p || q), p = N(mean, cov + s2 I)"
KL_JACOBIAN = "KL to the noise-equivalent target (first-order for the Jacobian penalty)"
#: ``gap_kind`` labels where no finite gap exists or no exact target is known
NONE_UNBOUNDED = "none: unbounded objective (singular data covariance, no stabilizer): gap +inf"
NONE_SINGULAR = "none: singular target (noiseless data, no stabilizer)"
NONE_WEIGHT = "none: no exact target (weight penalty on a nonlinear flow)"
NONE_UNKNOWN = "none: unknown data density"

#: Gauss–Legendre nodes per panel, and nodes per integrand width s / (the embedding's largest speed)
GL_NODES = 8
NODES_PER_WIDTH = 3.0
#: distances off the manifold, in units of s, for which the panels resolve the curvature (:func:`_width`)
CURVATURE_REACH = 6.0
#: halvings of the first and last panel of every interval (:func:`_panels`)
END_GRADING = 4
#: the S-curve's Gaussian weight on t is cut at this many standard deviations (mass e^-40 beyond)
TAU_CUT = 9.0
#: sheet8: integration window margin in nats (the neglected mass is below e^-MARGIN of the bound)
MARGIN = 40.0
#: elements of one (chunk × nodes) block: bounds the memory of the quadrature (about 32 MB)
BLOCK = 1 << 22
#: spawn key of the evaluation samples' stream, apart from the data's own stream of the same seed
GAP_STREAM = 0x6761


@dataclass(frozen=True)
class Gap:
    """One run's gap to its optimum.

    Attributes:
        nats: the gap (≥ 0 for the exact closed form; a Monte Carlo estimate of KL(p‖q) otherwise);
            +inf where the objective is unbounded below, NaN where no exact target exists.
        se: its Monte Carlo standard error (0 for the closed form).
        median: the median of log p − log q over the samples (the closed form's value for the
            linear flow).
        kind: what was measured (:data:`LINEAR`, :data:`KL_MANIFOLD`, ...), or ``none: <why>``.
        target_std: s, the std of the target's isotropic Gaussian part (√λ for the linear flow's
            shrinkage Σ̂ + λI); NaN where there is no target.
    """

    nats: float
    se: float
    median: float
    kind: str
    target_std: float

    @classmethod
    def none(cls, why: str) -> Gap:
        return cls(math.nan, math.nan, math.nan, why, math.nan)


# ---------------------------------------------------------------------------------- linear flow


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / len(x)  # 1/n: the maximum-likelihood normalisation of the objective


def linear_optimum(x_train: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric optimum W* = (Σ̂ + λI)^(−1/2), b* = μ̂ (any R W*, R orthogonal, is optimal too).

    Raises:
        ValueError: when Σ̂ + λI is singular (no optimum).
    """
    mu, cov = _mean_cov(x_train)
    C = cov + lam * np.eye(len(mu))
    if _singular(C):
        raise ValueError("Σ̂ + λI is singular: the linear flow's objective has no optimum")
    e, V = np.linalg.eigh(C)
    return (V / np.sqrt(e)) @ V.T, mu


def _singular(C: np.ndarray) -> bool:
    # the analysis stage's criterion for the shrunk oracle: condition number beyond 1/eps
    return bool(np.linalg.cond(C) > 1 / np.finfo(float).eps)


def linear_gap(W: np.ndarray, b: np.ndarray, x_train: np.ndarray, kind: str, lam: float) -> Gap:
    r"""F(W, b) − min F for the linear flow y = W(x − b) trained with stabilizer ``kind`` of strength
    ``lam`` (``none``, ``weight``, ``jacobian``: α‖W‖²_F with α = λ/2, ``noise``: variance λ in
    expectation; all give the same F), exactly and ≥ 0:

    .. math:: \tfrac12 \sum_i (\kappa_i - 1 - \log\kappa_i) + \tfrac12 \|W(\hat\mu - b)\|^2,
              \quad \kappa = \operatorname{eig}(W (\hat\Sigma + \lambda I) W^\top).

    Without a stabilizer on data of singular covariance the gap is +∞ (``Gap.kind`` says why).
    """
    lam = 0.0 if kind == "none" else float(lam)
    W = np.asarray(W, dtype=np.float64)
    mu, cov = _mean_cov(x_train)
    C = cov + lam * np.eye(len(mu))
    if _singular(C):
        return Gap(math.inf, 0.0, math.inf, NONE_UNBOUNDED, math.sqrt(lam))
    kappa = np.linalg.eigvalsh(W @ C @ W.T)
    if kappa.min() <= 0:  # W singular: log|det W| = −∞, the objective +∞
        return Gap(math.inf, 0.0, math.inf, LINEAR, math.sqrt(lam))
    km1 = kappa - 1
    r = W @ (mu - np.asarray(b, dtype=np.float64))
    gap = 0.5 * float(np.sum(km1 - np.log1p(km1))) + 0.5 * float(r @ r)
    return Gap(gap, 0.0, gap, LINEAR, math.sqrt(lam))


# ---------------------------------------------------------------------------- which target


def kl_target(data_kind: str, noise: float, stab_kind: str, lam: float, degenerate: bool) -> tuple[float, str]:
    """The target of a nonlinear flow's gap: ``(s, label)``, s² = σ² + λ, or ``(nan, "none: why")``.

    Arguments:
        data_kind: the data set's kind (``datasets.spec.KINDS``).
        noise: the data noise σ.
        stab_kind: the stabilizer's kind (``none``, ``weight``, ``jacobian``, ``noise``).
        lam: its strength λ.
        degenerate: the data have no density in R^d without noise (``datasets.truth.Truth``).
    """
    if data_kind not in GENERATORS and data_kind != "gaussian":
        return math.nan, f"{NONE_UNKNOWN} ({data_kind})"
    if stab_kind == "weight":
        return math.nan, NONE_WEIGHT
    extra = float(lam) if stab_kind in ("noise", "jacobian") else 0.0
    s = math.sqrt(float(noise) ** 2 + extra)
    if s == 0 and degenerate:
        return math.nan, NONE_SINGULAR
    if stab_kind == "jacobian":
        return s, KL_JACOBIAN
    return s, KL_GAUSSIAN if data_kind == "gaussian" else KL_MANIFOLD


# ----------------------------------------------------------------------------- the target p


def _params(kind: str, params: dict) -> dict:
    """The generator's keyword values: the spec's, else the generator's defaults."""
    if kind == "gaussian":
        return {"mean": np.asarray(params["mean"], float), "cov": np.asarray(params["cov"], float)}
    if kind not in GENERATORS:
        raise ValueError(f"no known density for data kind {kind!r}; expected one of {['gaussian', *GENERATORS]}")
    return {k: params.get(k, default) for k, default in GENERATORS[kind][1].items()}


def sample_target(kind: str, params: dict, n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """n points of the target p: a clean sample of the data set's generator (``params``: its spec,
    e.g. ``data.datasets.<name>``) plus N(0, s² I), drawn from ``rng`` (the generators' own draws
    first, then the noise)."""
    p = _params(kind, params)
    if kind == "gaussian":
        x, _ = gaussian_sample(n, rng, p["mean"], p["cov"])
        return x + s * rng.normal(size=x.shape) if s else x
    return GENERATORS[kind][0](n, rng, *p.values(), noise=float(s)).x


def log_density(kind: str, params: dict, x: np.ndarray, s: float) -> np.ndarray:
    """log p(x) of the target: the data set's clean distribution convolved with N(0, s² I), exactly
    (closed forms and quadrature; module docstring), float64, shape (n,).

    Raises:
        ValueError: for an unknown kind, or s = 0 on a manifold (no density).
    """
    p = _params(kind, params)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    s = float(s)
    if kind in ("gaussian", "line"):
        if kind == "line":
            v = np.array([1.0, p["slope"]])
            mean, cov = np.zeros(2), np.outer(v, v)
        else:
            mean, cov = p["mean"], p["cov"]
        return _gaussian_log_density(x, mean, cov + s**2 * np.eye(len(mean)))
    if not s > 0:
        raise ValueError(f"{kind}: the noiseless manifold has no density (s = {s}); expected s > 0")
    if kind == "sphere":
        return _sphere(x, float(p["radius"]), s)
    if kind == "circle":
        return _circle(x, float(p["radius"]), float(p["arc"]), s)
    if kind == "scurve":
        return _scurve(x, float(p["scale_eta0"]), s)
    if kind == "swissroll":
        return _swissroll(x, s)
    assert kind == "sheet8"
    return _sheet8(x, s)


def _gaussian_log_density(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("singular target covariance: no density (noiseless degenerate data)") from None
    z = np.linalg.solve(L, (x - mean).T)
    d = len(mean)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(L)).sum() - 0.5 * d * math.log(2 * math.pi)


def _sphere(x: np.ndarray, R: float, s: float) -> np.ndarray:
    r"""Uniform on the sphere of radius R convolved with N(0, s²I), in closed form:
    :math:`(2\pi s^2)^{-3/2} e^{-(r-R)^2/2s^2} (1 - e^{-2\kappa}) / (2\kappa)`, κ = rR/s²."""
    r = np.linalg.norm(x, axis=1)
    kappa = r * R / s**2
    small = kappa < 1e-8
    k = np.where(small, 1.0, kappa)
    log_shell = np.where(small, -kappa, np.log(-np.expm1(-2 * k)) - np.log(2 * k))  # log((1 − e^−2κ)/2κ)
    return -1.5 * math.log(2 * math.pi * s**2) - (r - R) ** 2 / (2 * s**2) + log_shell


def _log_ndtr(z: np.ndarray) -> np.ndarray:
    return torch.special.log_ndtr(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))).numpy()


def _log_diff_ndtr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) − Φ(a)) for a < b, accurate in both tails (Φ(b) − Φ(a) = Φ(−a) − Φ(−b))."""
    flip = a > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    l_hi = _log_ndtr(hi)
    return l_hi + np.log(-np.expm1(_log_ndtr(lo) - l_hi))


def _log_uniform_conv(x: np.ndarray, width: float, s: float) -> np.ndarray:
    """log of U(0, width) convolved with N(0, s²) at x."""
    return _log_diff_ndtr(-x / s, (width - x) / s) - math.log(width)


def _panels(lo, hi, width: float, min_panels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and log-weights on [lo, hi] with panels of at most ``width``,
    the two end panels graded geometrically (:data:`END_GRADING` halvings, GL_NODES nodes in each
    part) for integrands cut off steeply at an end: a point a distance δ beyond the end of a curve
    sees a decay length s²/δ there. ``lo``, ``hi``: scalars, or arrays of shape (n,) (one interval
    per sample, a common panel count): returns arrays of shape (N,) or (n, N)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    span = hi - lo
    P = max(min_panels, math.ceil(float(np.max(span)) / width))
    graded = np.concatenate([[0.0], 2.0 ** -np.arange(END_GRADING, 0, -1), [1.0]]) / P  # the first panel's
    parts = [
        _gl(graded[:-1], np.diff(graded), GL_NODES),
        _gl(np.arange(1, P - 1) / P, np.full(P - 2, 1 / P), GL_NODES),
        _gl(1 - graded[:0:-1], np.diff(graded)[::-1], GL_NODES),
    ]
    unit = np.concatenate([u for u, _ in parts])  # nodes in [0, 1]
    unit_logw = np.concatenate([w for _, w in parts])
    nodes = lo[..., None] + span[..., None] * unit
    return nodes, np.log(span)[..., None] + unit_logw


def _gl(left: np.ndarray, size: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m-point Gauss–Legendre nodes and log-weights on the panels [left, left + size]."""
    xi, om = np.polynomial.legendre.leggauss(m)
    nodes = left[:, None] + size[:, None] * (xi[None, :] + 1) / 2
    return nodes.ravel(), (np.log(size / 2)[:, None] + np.log(om)[None, :]).ravel()


def _logsumexp(a: np.ndarray, axis) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis=axis)


def _curve(x2: np.ndarray, c: np.ndarray, logw: np.ndarray, s: float) -> np.ndarray:
    """log Σ_j w_j N(x; c_j, s² I₂) for points x2 (n, 2), curve nodes c (N, 2), log-weights (N,)."""
    out = np.empty(len(x2))
    step = max(1, BLOCK // max(1, len(c)))
    for i in range(0, len(x2), step):
        diff = x2[i : i + step, None, :] - c[None, :, :]
        out[i : i + step] = _logsumexp(logw[None, :] - (diff**2).sum(-1) / (2 * s**2), axis=1)
    return out - math.log(2 * math.pi * s**2)


def _width(s: float, speed: float, curvature: float) -> float:
    """The panel width: GL_NODES nodes per panel, NODES_PER_WIDTH nodes per integrand width.

    The integrand exp(−‖x − φ(t)‖²/2s²) has width s/‖φ'‖ along t, narrower by √(1 + δκ) at a point
    a distance δ off the curve on its convex side (curvature κ); δ ≲ CURVATURE_REACH · s for the
    points that matter."""
    return GL_NODES / NODES_PER_WIDTH * s / (speed * math.sqrt(1 + CURVATURE_REACH * s * curvature))


def _circle(x: np.ndarray, R: float, arc: float, s: float) -> np.ndarray:
    t, logw = _panels(0.0, arc, _width(s, R, 1 / R))
    c = manifolds.circle_map(t[:, None], R)
    return _curve(x, c, logw, s) - math.log(arc)


def _scurve(x: np.ndarray, scale_eta0: float, s: float) -> np.ndarray:
    """t = 3π η0 ~ N(0, τ²) on the two unit circles (x₁, x₃), times x₂ = 2η1 ~ U(0, 2) ∗ N(0, s²)."""
    tau = 3 * np.pi * scale_eta0
    width = min(_width(s, 1.0, 1.0), _width(tau, 1.0, 0.0))  # unit circles at unit speed; the weight's width τ
    neg, lw_neg = _panels(-TAU_CUT * tau, 0.0, width)  # a panel edge at the kink of sign(t)
    pos, lw_pos = _panels(0.0, TAU_CUT * tau, width)
    t, logw = np.concatenate([neg, pos]), np.concatenate([lw_neg, lw_pos])
    logw = logw - 0.5 * (t / tau) ** 2 - math.log(tau * math.sqrt(2 * math.pi))
    c = manifolds.s_curve_map(np.stack([t, np.zeros_like(t)], axis=1))[:, [0, 2]]
    return _curve(x[:, [0, 2]], c, logw, s) + _log_uniform_conv(x[:, 1], 2.0, s)


#: the Swiss roll's largest curvature (at t = 1.5π): 7 (t² + 2) / (t² + 1)^(3/2)
SWISSROLL_CURVATURE = 7 * ((1.5 * np.pi) ** 2 + 2) / ((1.5 * np.pi) ** 2 + 1) ** 1.5


def _swissroll(x: np.ndarray, s: float) -> np.ndarray:
    """t ~ U(1.5π, 4.5π) on the spiral (x₁, x₃), times x₂ = h/7 ~ U(0, 3) ∗ N(0, s²)."""
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    t, logw = _panels(lo, hi, _width(s, math.hypot(1.0, hi) / 7, SWISSROLL_CURVATURE))
    c = manifolds.swiss_roll_map(np.stack([t, np.zeros_like(t)], axis=1))[:, [0, 2]]
    return _curve(x[:, [0, 2]], c, logw - math.log(hi - lo), s) + _log_uniform_conv(x[:, 1], 3.0, s)


#: sheet8: the largest speed ‖∂φ/∂u‖ = √(1 + (ω/2)² + u² + v²) on the square (the same for v)
SHEET8_SPEED = math.sqrt(3 + (manifolds.SHEET8_FREQ / 2) ** 2)
#: sheet8: a bound on its normal curvature, ‖∂²φ‖ / (smallest speed)² = √((ω²/2)² + 2) / (1 + (ω/2)²)
SHEET8_CURVATURE = math.sqrt((manifolds.SHEET8_FREQ**2 / 2) ** 2 + 2) / (1 + (manifolds.SHEET8_FREQ / 2) ** 2)


def _sheet8(x: np.ndarray, s: float) -> np.ndarray:
    r"""(u, v) ~ U(−1, 1)² by a 2-D tensor Gauss–Legendre rule on a window per point.

    φ's first two coordinates are u and v, so ‖x − φ(u, v)‖² ≥ (x₁ − u)² + (x₂ − v)²: outside the
    window |u − x₁|, |v − x₂| ≤ D the integrand is below e^(−D²/2s²), and with
    D² = ‖x − φ(clip(x₁), clip(x₂))‖² + 2·MARGIN·s² (an upper bound on the squared distance to the
    sheet, plus a margin) what is left out is below e^−MARGIN of what is kept, up to a factor s⁻².
    """
    w = manifolds.SHEET8_FREQ
    out = np.empty(len(x))
    width = _width(s, SHEET8_SPEED, SHEET8_CURVATURE)
    for i in range(0, len(x), 64):
        xc = x[i : i + 64]
        near = np.clip(xc[:, :2], -1.0, 1.0)
        D = np.sqrt(((xc - manifolds.sheet8_map(near)) ** 2).sum(1) + 2 * MARGIN * s**2)
        u, lwu = _panels(np.maximum(-1.0, xc[:, 0] - D), np.minimum(1.0, xc[:, 0] + D), width)
        v, lwv = _panels(np.maximum(-1.0, xc[:, 1] - D), np.minimum(1.0, xc[:, 1] + D), width)
        # ‖x − φ‖² = a(u) + b(v) + c(u, v): the helix terms separate, the saddle terms couple
        a = (xc[:, 0:1] - u) ** 2 + (xc[:, 2:3] - 0.5 * np.cos(w * u)) ** 2 + (xc[:, 3:4] - 0.5 * np.sin(w * u)) ** 2
        b = (xc[:, 1:2] - v) ** 2 + (xc[:, 4:5] - 0.5 * np.cos(w * v)) ** 2 + (xc[:, 5:6] - 0.5 * np.sin(w * v)) ** 2
        fu, fv = lwu - a / (2 * s**2), lwv - b / (2 * s**2)
        step = max(1, BLOCK // (u.shape[1] * v.shape[1]))
        for j in range(0, len(xc), step):
            sl = slice(j, j + step)
            uu, vv = u[sl, :, None], v[sl, None, :]
            c = (xc[sl, 6, None, None] - uu * vv) ** 2 + (xc[sl, 7, None, None] - 0.5 * (uu**2 - vv**2)) ** 2
            e = fu[sl, :, None] + fv[sl, None, :] - c / (2 * s**2)
            out[i + j : i + j + len(e)] = _logsumexp(e.reshape(len(e), -1), axis=1)
    return out - math.log(4.0) - 4 * math.log(2 * math.pi * s**2)


# ---------------------------------------------------------------------------------- the gap


def kl_gap(log_p: np.ndarray, log_q: np.ndarray) -> tuple[float, float, float]:
    """KL(p‖q) from samples of p: the mean of log p − log q, its standard error, and its median."""
    r = np.asarray(log_p, dtype=np.float64) - np.asarray(log_q, dtype=np.float64)
    se = float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else math.nan
    return float(r.mean()), se, float(np.median(r))


def gap_rng(seed: int) -> np.random.Generator:
    """The evaluation samples' generator for data seed ``seed``: a stream of its own (not the one the
    data set was drawn from), the same for every run of an experiment (paired comparisons)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(GAP_STREAM,)))


def flow_gap(
    log_q: Callable[[np.ndarray], np.ndarray],
    kind: str,
    params: dict,
    s: float,
    label: str,
    n: int,
    rng: np.random.Generator,
) -> Gap:
    """KL(p‖q) of a model with log-density ``log_q`` to the target p (:func:`kl_target` gives s and
    ``label``), estimated from n samples of p drawn from ``rng``."""
    x = sample_target(kind, params, n, s, rng)
    return Gap(*kl_gap(log_density(kind, params, x, s), log_q(x)), label, s)
