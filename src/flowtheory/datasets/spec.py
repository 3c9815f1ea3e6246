"""What a data set spec must hold, checked before any data is made (shared by every reader)."""

from __future__ import annotations

import operator

__all__ = ["KINDS", "MANIFOLD_KINDS", "split_size"]

#: kinds sampled from a manifold whose tangent spaces are known in closed form (datasets.manifolds)
MANIFOLD_KINDS = ("line", "circle", "scurve", "swissroll", "sphere", "sheet8")
KINDS = ("gaussian", *MANIFOLD_KINDS, "mnist")


def split_size(spec: dict, key: str) -> int:
    """``spec[key]`` as an integer ≥ 1 (both splits must be non-empty for the readers' checks)."""
    value = spec.get(key)
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"data set {spec.get('kind')!r}: {key} must be an integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"data set {spec.get('kind')!r}: {key} must be at least 1, got {n}")
    return n
