"""Builds any configured data set, MNIST included.

A data set is a dict of arrays: ``x_train``, ``x_valid`` (n × d, float64), ``c_train``,
``c_valid`` (a colouring variable: the curve parameter for manifolds, the label for MNIST), and
``oracle_cov`` (the true covariance where one exists in closed form, else an empty array).
"""

from __future__ import annotations

import numpy as np

from flowtheory.datasets.spec import KINDS, split_size
from flowtheory.datasets.toys import circle, gaussian, line, s_curve, swiss_roll

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
    oracle = np.empty((0, 0))
    if kind == "scurve":
        X, c = s_curve(n, rng, spec.get("scale_eta0", 0.15), spec.get("noise", 0.0))
    elif kind == "gaussian":
        X, c = gaussian(n, rng, spec["mean"], spec["cov"])
        oracle = np.asarray(spec["cov"], float)
    elif kind == "line":
        X, c = line(n, rng, spec.get("slope", 0.5), spec.get("noise", 0.0))
    elif kind == "circle":
        X, c = circle(n, rng, spec.get("radius", 1.0), spec.get("arc", 1.5 * np.pi), spec.get("noise", 0.0))
    else:
        X, c = swiss_roll(n, rng, spec.get("noise", 0.0))
    return {
        "x_train": X[:n_train],
        "x_valid": X[n_train:],
        "c_train": c[:n_train],
        "c_valid": c[n_train:],
        "oracle_cov": oracle,
    }
