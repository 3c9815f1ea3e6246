"""Trained runs read back from disk: a flow rebuilt from its checkpoint, and a run with its data
(what the analysis and components stages read). The science modules never touch files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowtheory.pipeline import storage
from flowtheory.science.covariance import jacobians
from flowtheory.science.flows import Flow, build_flow

__all__ = ["Trained", "load_flow"]


def load_flow(model_path: str, device: str = "cpu") -> tuple[Flow, dict]:
    """Rebuilds a trained flow from its checkpoint (loaded with ``weights_only=True``)."""
    state, meta = storage.load_checkpoint(model_path)
    keys = ("flow", "d", "dtype", "seed", "stabilizer")  # what the train stage writes
    missing = [k for k in keys if k not in meta]
    if missing:
        raise storage.DataError(f"{model_path}: checkpoint meta lacks {missing}; expected {list(keys)}")
    try:
        dtype = getattr(torch, str(meta["dtype"]))
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"{meta['dtype']!r} is not a torch dtype")
        flow = build_flow(meta["flow"], int(meta["d"]), dtype, seed=int(meta["seed"]))
    except (AttributeError, TypeError, ValueError) as e:
        raise storage.DataError(f"{model_path}: checkpoint meta does not describe a flow ({e})") from None
    try:
        flow.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise storage.DataError(f"{model_path}: checkpoint does not match its flow config ({detail})") from None
    return flow.to(device).eval(), meta


@dataclass
class Trained:
    """A trained run with its data, as the analysis and components stages read it."""

    data: dict[str, np.ndarray]
    run: dict  # the run's training metrics
    flow: Flow
    dtype: torch.dtype
    lam: float  # the stabilizer's strength λ (0 for none)
    d: int
    kind: str  # the flow's kind (config ``flows.<name>.kind``)

    @classmethod
    def load(cls, data_path: str, model_path: str, run_metrics_path: str) -> Trained:
        data = storage.load_dataset(data_path)
        run = storage.load_json(run_metrics_path)
        flow, meta = load_flow(model_path)
        d = data["x_train"].shape[1]
        if meta["d"] != d:
            raise storage.DataError(
                f"{model_path}: checkpoint is for {meta['d']}-dimensional data but {data_path} is "
                f"{d}-dimensional; expected the model trained on this data set"
            )
        lam = float(meta["stabilizer"].get("lam", 0.0))
        return cls(data, run, flow, getattr(torch, meta["dtype"]), lam, d, meta["flow"]["kind"])

    def jacobians(self, x: np.ndarray) -> tuple[Tensor, Tensor]:
        """Latents and Jacobians at ``x`` in the flow's dtype (see :func:`jacobians`)."""
        return jacobians(self.flow, torch.as_tensor(x, dtype=self.dtype))
