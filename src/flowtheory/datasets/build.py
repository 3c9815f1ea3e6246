"""Builds any configured data set, MNIST included.

A data set is a dict of arrays: ``x_train``, ``x_valid`` (n × d, float64), ``c_train``,
``c_valid`` (a colouring variable: the curve parameter for manifolds, the label for MNIST), and
``oracle_cov`` (the true covariance where one exists in closed form, else an empty array). Data
sets sampled from a manifold also carry its ground truth: ``tangent_train``, ``tangent_valid``
(n × d × k orthonormal tangent bases at the clean points, :mod:`flowtheory.datasets.manifolds`)
and ``noise`` (the std σ of the isotropic noise added to the points, a 0-d array).
"""

from __future__ import annotations

import numpy as np

from flowtheory.datasets import manifolds
from flowtheory.datasets.spec import KINDS, MANIFOLD_KINDS, split_size
from flowtheory.datasets.toys import gaussian

#: each manifold kind's generator and the spec keys it takes besides ``noise`` (with their defaults)
GENERATORS = {
    "line": (manifolds.line, {"slope": 0.5}),
    "circle": (manifolds.circle, {"radius": 1.0, "arc": 1.5 * np.pi}),
    "scurve": (manifolds.s_curve, {"scale_eta0": 0.15}),
    "swissroll": (manifolds.swiss_roll, {}),
    "sphere": (manifolds.sphere, {"radius": 1.0}),
    "sheet8": (manifolds.sheet8, {}),
}

__all__ = ["make_dataset"]


def make_dataset(spec: dict, seed: int) -> dict[str, np.ndarray]:
    """Builds the configured data set (``data.datasets.<name>`` in the config).

    Arguments:
        spec: the data set's config entry; ``kind`` is one of :data:`KINDS`.
        seed: seeds one ``numpy.random.Generator`` for sampling and the train/validation split.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a data set spec must be a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {KINDS}")
    rng = np.random.default_rng(seed)
    if kind == "mnist":
        from flowtheory.datasets.mnist import load_mnist

        return load_mnist(spec, rng)
    n_train, n_valid = split_size(spec, "n_train"), split_size(spec, "n_valid")
    n = n_train + n_valid
    if kind == "gaussian":
        X, c = gaussian(n, rng, spec["mean"], spec["cov"])
        return _split(X, c, n_train, oracle_cov=np.asarray(spec["cov"], float))
    assert kind in MANIFOLD_KINDS
    generate, keys = GENERATORS[kind]
    noise = float(spec.get("noise", 0.0))
    m = generate(n, rng, *(spec.get(k, default) for k, default in keys.items()), noise=noise)
    return {
        **_split(m.x, m.colour, n_train, oracle_cov=np.empty((0, 0))),
        "tangent_train": m.tangent[:n_train],
        "tangent_valid": m.tangent[n_train:],
        "noise": np.asarray(noise),
    }


def _split(X: np.ndarray, c: np.ndarray, n_train: int, oracle_cov: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "x_train": X[:n_train],
        "x_valid": X[n_train:],
        "c_train": c[:n_train],
        "c_valid": c[n_train:],
        "oracle_cov": oracle_cov,
    }
