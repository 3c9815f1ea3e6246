"""Maximum-likelihood training that records divergence as a result instead of crashing.

Defaults follow the authors' ``Flow.train`` (docs/theory.md §5.4): Adam with lr 1e-3 (TF1 betas and eps),
batch 200, data reshuffled every epoch. Every epoch logs the mean training NLL (without penalty),
the validation NLL, and stability diagnostics of J_f on a fixed probe batch. A non-finite loss
stops training with ``status="diverged"`` and the global step where it happened; the checkpoint
then holds the parameters of the last finite epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from flowtheory.science.flows import Flow, affine_gaussian_nll, gaussian_nll, moments
from flowtheory.science.stabilizers import Stabilizer

__all__ = [
    "FlatAdam",
    "TrainConfig",
    "TrainResult",
    "batching",
    "diagnostics",
    "evaluate_nll",
    "linear_moments",
    "make_optimizer",
    "polish_lbfgs",
    "step",
    "train",
    "ensemble_family",
    "train_ensemble",
]

#: the authors' (TF1) Adam defaults
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


#: seed offsets of the member's fixed evaluation noise and of the polish's noise replicas (derived
#: from the run's seed, so that they differ from its training draws)
EVAL_NOISE_SEED = 1_000_003
POLISH_NOISE_SEED = 2_000_003
SCHEDULES = ("constant", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; defaults are the authors' code defaults except ``epochs`` (100 there).

    The authors' optimizer is Adam at a constant learning rate for a fixed number of epochs
    (``schedule="constant"``, ``polish_iters=0``). ``schedule="plateau"`` anneals each run's rate by
    ``decay`` when its monitored objective improved by less than ``tol`` nats over ``window`` epochs,
    and stops the run as converged after ``max_decays`` such decays (:class:`_Monitor`); ``epochs``
    is then a cap. ``polish_iters`` > 0 adds full-batch L-BFGS after Adam (:func:`polish_lbfgs`).
    The reasons for the values are in docs/measurements.md#convergence.
    """

    epochs: int
    lr: float = 1e-3
    batch_size: int = 200
    probe_points: int = 64
    diagnostics_every: int = 1
    schedule: str = "constant"
    window: int = 10
    tol: float = 1e-3
    decay: float = 0.3
    max_decays: int = 3
    polish_iters: int = 0
    polish_chunk: int = 50
    polish_tol: float = 1e-5
    noise_replicas: int = 4

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.window < 1 or self.tol < 0 or not 0 < self.decay < 1 or self.max_decays < 0:
            raise ValueError("window must be >= 1, tol >= 0, 0 < decay < 1 and max_decays >= 0")
        if self.polish_iters < 0 or self.polish_chunk < 1 or self.noise_replicas < 1:
            raise ValueError("polish_iters must be >= 0, polish_chunk >= 1 and noise_replicas >= 1")


@dataclass
class TrainResult:
    """One run's result. ``status``: ``converged`` (the criterion of :class:`_Monitor` or the polish
    held), ``not_converged`` (the cap came first) or ``diverged`` (non-finite loss or parameters)."""

    history: list[dict] = field(default_factory=list)
    status: str = "running"
    diverged_step: int | None = None
    steps: int = 0
    checkpoint_epoch: int = 0
    convergence: dict = field(default_factory=dict)


class FlatAdam:
    r"""Adam over one flat buffer per dtype: bitwise the same updates as
    ``torch.optim.Adam(foreach=True)`` (``tests/science/test_training.py``), in 8 tensor operations per
    step instead of about 40 per-parameter ones (on CPU torch's ``foreach`` kernels loop over the
    parameters). A small flow's step is overhead-bound, so this saves about a third of it.

    Each parameter's ``.data`` and ``.grad`` become views of the flat buffers, so ``backward``
    accumulates straight into the flat gradient; :meth:`zero_grad` therefore zeroes it in place
    rather than setting gradients to ``None``.
    """

    def __init__(
        self,
        params,
        lr: float,
        betas: tuple[float, float] = ADAM_BETAS,
        eps: float = ADAM_EPS,
        members: int | None = None,
    ) -> None:
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("FlatAdam got no trainable parameters")
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.steps = 0
        # stacked parameters (leading axis ``members``) may take one learning rate per member
        self.members = members
        self.lrs = [lr] * (members or 1)
        if members is not None:
            for p in params:
                if p.shape[0] != members:
                    raise ValueError(f"a stacked parameter's leading axis is {p.shape[0]}, not {members} members")
        self.groups: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # (param, grad, exp_avg, exp_avg_sq)
        # stacked parameters: each flat element's member (its leading index), to expand per-member step sizes
        self.member_index: list[Tensor] | None = None if members is None else []
        for dtype in dict.fromkeys(p.dtype for p in params):
            group = [p for p in params if p.dtype == dtype]
            with torch.no_grad():
                flat = torch.cat([p.detach().reshape(-1) for p in group])
            grad = torch.zeros_like(flat)
            offset = 0
            for p in group:
                n = p.numel()
                p.data = flat[offset : offset + n].view_as(p)
                p.grad = grad[offset : offset + n].view_as(p)
                offset += n
            self.groups.append((flat, grad, torch.zeros_like(flat), torch.zeros_like(flat)))
            if self.member_index is not None:
                member = torch.arange(members, device=flat.device)
                self.member_index.append(
                    torch.cat([member.reshape(-1, *[1] * (p.ndim - 1)).expand_as(p).reshape(-1) for p in group])
                )

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeroes the flat gradients in place (``set_to_none`` is accepted and ignored)."""
        for _, grad, _, _ in self.groups:
            grad.zero_()

    def member_lr(self, e: int) -> float:
        return self.lrs[e]

    def set_member_lr(self, e: int, lr: float) -> None:
        """Member ``e``'s learning rate (all of them when the parameters are not stacked)."""
        self.lrs[e] = lr
        self.lr = self.lrs[0]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        # the same scalar arithmetic as torch.optim.adam._multi_tensor_adam
        bias_correction1 = 1 - self.beta1**self.steps
        step_size = (self.lr / bias_correction1) * -1
        bias_correction2_sqrt = (1 - self.beta2**self.steps) ** 0.5
        for i, (param, grad, exp_avg, exp_avg_sq) in enumerate(self.groups):
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
            if self.member_index is None:
                param.addcdiv_(exp_avg, denom, value=step_size)
            else:
                # stacked members, each at its own rate: the same scalar per member as above, computed
                # in Python doubles and rounded to the dtype as the scalar path rounds it, so
                # (step_e · m) / v is bitwise the scalar path's for every member whatever the others'
                # rates (a member's bytes never depend on its group-mates' annealing)
                steps = torch.tensor([(lr / bias_correction1) * -1 for lr in self.lrs], dtype=param.dtype)
                param.addcdiv_(exp_avg * steps.to(param.device)[self.member_index[i]], denom)


def make_optimizer(flow: torch.nn.Module, lr: float) -> FlatAdam:
    """The authors' Adam (TF1 betas and eps) as :class:`FlatAdam`."""
    return FlatAdam(flow.parameters(), lr)


@torch.no_grad()
def evaluate_nll(flow: Flow, x: Tensor, batch_size: int = 1000) -> float:
    """Mean NLL in evaluation mode (batch norm uses running statistics)."""
    was_training = flow.training
    flow.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += -flow.log_prob(x[i : i + batch_size]).sum().item()
    flow.train(was_training)
    return total / len(x)


@torch.no_grad()
def diagnostics(flow: Flow, x: Tensor) -> dict[str, float]:
    """Stability diagnostics of J_f on a probe batch (evaluation mode).

    Returns the median over points of the largest and smallest singular value of J_f, the median
    and maximum condition number, and max |log det J_f|.
    """
    was_training = flow.training
    flow.eval()
    try:
        _, ladj, J = flow.forward_and_jacobian(x)  # torch.func's jacrev fall-back ignores no_grad
        s = torch.linalg.svdvals(J)
    finally:
        flow.train(was_training)
    cond = s[:, 0] / s[:, -1]
    return {
        "smax": s[:, 0].median().item(),
        "smin": s[:, -1].median().item(),
        "cond": cond.median().item(),
        "cond_max": cond.max().item(),
        "max_abs_logdet": ladj.abs().max().item(),
    }


def _check_data(x_train: Tensor, x_valid: Tensor, d: int) -> None:
    """Bad input, not a divergence of training: wrong shape or non-finite values."""
    for name, x in (("x_train", x_train), ("x_valid", x_valid)):
        if x.ndim != 2 or len(x) == 0 or x.shape[1] != d:
            raise ValueError(f"{name} must have shape (n > 0, {d}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf values; refusing to train on them")


def _epoch_line(row: dict, epochs: int, label: str = "") -> str:
    """One epoch's log line (starts with ``epoch k/n``, which the fault tests look for)."""
    return (
        f"epoch {row['epoch']}/{epochs} {label}step {row['step']} train_nll {row['train_nll']:.4f} "
        f"valid_nll {row['valid_nll']:.4f} penalty {row['penalty']:.4g}"
        + (f" smax {row['smax']:.3g} cond {row['cond']:.3g}" if "smax" in row else "")
    )


def step(flow: Flow, opt: FlatAdam, stab: Stabilizer, xb: Tensor, g: torch.Generator) -> tuple[float, float] | None:
    """One optimizer step of :func:`train` on the minibatch ``xb``: returns (NLL, penalty), or None
    (and no step) when the loss is not finite. The none and noise stabilizers add no penalty term,
    so their loss is the NLL itself (no extra operation)."""
    nll, pen = stab.nll_and_penalty(flow, xb, g)
    penalized = stab.penalized
    loss = nll + pen if penalized else nll
    value = loss.item()
    if not math.isfinite(value):
        return None
    opt.zero_grad()
    loss.backward()
    opt.step()
    return (nll.item(), pen.item()) if penalized else (value, 0.0)


def _finite_params(flow: Flow) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in flow.parameters())


class _Members:
    """The members of one training loop, batched: E runs behind one interface. A run alone is an
    ensemble of one. :class:`_StackedMembers` batches stackable flows (every product over the
    members at once, :class:`~flowtheory.science.ensemble.Stacked`), :class:`_MappedMembers` zuko's
    (:class:`~flowtheory.science.ensemble.Mapped`); :class:`_SingleMember` holds
    one flow of any family (zuko's, batch norm, a Hutchinson penalty) and calls its own layers.
    Both give the loop the same four things: parameters, the minibatch loss per member, the
    evaluation (validation NLL and the monitored objective per member) and the diagnostics."""

    E: int
    flows: list[Flow]
    #: parameters stacked along a leading member axis (a stopped member's slice is restored)
    stacked: bool = False

    def parameters(self):  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, xb: Tensor, gens: list[torch.Generator]) -> tuple[Tensor, Tensor | None]:  # pragma: no cover
        raise NotImplementedError

    def evaluate(self, x: Tensor, x_eval: Tensor) -> tuple[list[float], list[float]]:  # pragma: no cover
        raise NotImplementedError

    def diagnostics(self, probe: Tensor) -> list[dict[str, float]]:  # pragma: no cover
        raise NotImplementedError


class _StackedMembers(_Members):
    stacked = True

    def __init__(self, flows: list[Flow], stabs: list[Stabilizer]) -> None:
        from flowtheory.science.ensemble import Stacked

        self.flows, self.stabs, self.E = flows, stabs, len(flows)
        self.stacked = Stacked(flows)
        self.jacobian = bool(ensemble_family(stabs[0], flows[0].d))
        like = next(iter(flows[0].parameters()))
        self.alpha = torch.tensor([s.alpha for s in stabs], dtype=like.dtype, device=like.device)
        self.weight = any(s.kind == "weight" for s in stabs)

    def parameters(self):
        return self.stacked.parameters()

    def bind(self) -> None:
        self.stacked.bind()

    def _nll_pen(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        from flowtheory.science.ensemble import nll

        if self.jacobian:
            y, ladj, J = self.stacked.forward_and_jacobian(x)
            return nll(y, ladj), self.alpha * J.pow(2).sum((-2, -1)).mean(-1)
        return self.stacked.nll(x), (self.alpha * self.stacked.weight_sq() if self.weight else None)

    def loss(self, xb, gens):
        return self._nll_pen(xb)

    @torch.no_grad()
    def evaluate(self, x, x_eval):
        valid = _stacked_nll(self.stacked, x)
        nll_e, pen = self._nll_pen(x_eval)
        obj = nll_e if pen is None else nll_e + pen
        return valid, obj.tolist()

    @torch.no_grad()
    def diagnostics(self, probe):
        return _stacked_diagnostics(self.stacked, probe)


class _MappedMembers(_Members):
    """zuko flows without a penalty term (none, noise), batched by
    :class:`~flowtheory.science.ensemble.Mapped`; diagnostics per member (once an epoch)."""

    stacked = True

    def __init__(self, flows: list[Flow], stabs: list[Stabilizer]) -> None:
        from flowtheory.science.ensemble import Mapped

        self.flows, self.stabs, self.E = flows, stabs, len(flows)
        self.mapped = Mapped(flows)

    def parameters(self):
        return self.mapped.parameters()

    def bind(self) -> None:
        self.mapped.bind()

    def loss(self, xb, gens):
        return self.mapped.nll(xb), None

    @torch.no_grad()
    def evaluate(self, x, x_eval):
        return _stacked_nll(self.mapped, x), self.mapped.nll(x_eval).tolist()

    @torch.no_grad()
    def diagnostics(self, probe):
        return [diagnostics(f, probe) for f in self.flows]


class _SingleMember(_Members):
    def __init__(self, flow: Flow, stab: Stabilizer) -> None:
        self.flows, self.stab, self.E = [flow], stab, 1

    def parameters(self):
        return self.flows[0].parameters()

    def bind(self) -> None:
        pass

    def loss(self, xb, gens):
        nll, pen = self.stab.nll_and_penalty(self.flows[0], xb[0], gens[0])
        return nll[None], (pen[None] if self.stab.penalized else None)

    def evaluate(self, x, x_eval):
        flow = self.flows[0]
        valid = evaluate_nll(flow, x)
        was = flow.training
        flow.eval()
        try:
            nll, pen = self.stab.nll_and_penalty(flow, x_eval[0], torch.Generator(device=x.device).manual_seed(0))
            obj = (nll + pen).item() if self.stab.penalized else nll.item()
        finally:
            flow.train(was)
        return [valid], [obj]

    def diagnostics(self, probe):
        return [diagnostics(self.flows[0], probe)]


def batching(flows: list[Flow], stabs: list[Stabilizer]) -> str | None:
    """How :func:`train_ensemble` batches these runs: ``"stacked"`` (our flows that stack, their
    stabilizers of one ensemble family), ``"mapped"`` (two or more zuko flows of one architecture
    without a penalty term: none or noise), ``"single"`` (one run that does neither), or None (they
    cannot train together: train them one at a time)."""
    from flowtheory.science.ensemble import mappable, stackable

    family = ensemble_family(stabs[0], flows[0].d)
    if family is not None and all(ensemble_family(s, flows[0].d) == family for s in stabs):
        if stackable(flows):
            return "stacked"
        if len(flows) > 1 and all(s.kind in ("none", "noise") for s in stabs) and mappable(flows):
            return "mapped"
    return "single" if len(flows) == 1 else None


def _members(flows: list[Flow], stabs: list[Stabilizer]) -> _Members:
    """The batched form (:func:`batching`), else one member (a run that cannot be batched trains
    alone, through the same loop)."""
    how = batching(flows, stabs)
    if how == "stacked":
        return _StackedMembers(flows, stabs)
    if how == "mapped":
        return _MappedMembers(flows, stabs)
    if how == "single":
        return _SingleMember(flows[0], stabs[0])
    raise ValueError(
        "train_ensemble: these runs cannot be batched (different or unsupported architectures, or "
        "stabilizers of different ensemble families: Hutchinson penalties train one run at a time)"
    )


def _eval_inputs(x_valid: Tensor, stabs: list[Stabilizer], seeds: list[int]) -> Tensor:
    """Each member's evaluation set for the monitored objective, (E, n, d): the validation points,
    with one fixed draw of the member's injected noise (seeded, so the objective is a deterministic
    function of the parameters and its change is optimization progress, not sampling noise)."""
    out = x_valid.expand(len(stabs), -1, -1).clone()
    for e, (s, seed) in enumerate(zip(stabs, seeds, strict=True)):
        if s.kind == "noise":
            out[e] = s.corrupt(x_valid, torch.Generator(device=x_valid.device).manual_seed(EVAL_NOISE_SEED + seed))
    return out


def train(
    flow: Flow,
    x_train: Tensor,
    x_valid: Tensor,
    stab: Stabilizer,
    cfg: TrainConfig,
    seed: int,
    log: Callable[[str], None] = print,
    polish: bool = True,
) -> TrainResult:
    """Trains ``flow`` in place by minibatch maximum likelihood plus the stabilizer: a run alone is
    an ensemble of one (:func:`train_ensemble`, the one training loop).

    Arguments:
        flow: the flow (its parameters' dtype sets the arithmetic).
        x_train, x_valid: data, shapes (n, d).
        stab: the stabilizer variant.
        cfg: training settings.
        seed: seeds one ``torch.Generator`` for shuffling, noise and Hutchinson probes.
        log: called with one line per epoch.
        polish: whether the run may be polished (``cfg.polish_iters``; the caller says no where the
            objective has no finite optimum, e.g. unregularized runs on degenerate data).

    Raises:
        ValueError: if the data contain NaN or inf (bad input, not a divergence of training) or the
            data's dimension is not the flow's.
    """
    return train_ensemble([flow], x_train, x_valid, [stab], cfg, [seed], log, polish=[polish])[0]


def train_ensemble(
    flows: list[Flow],
    x_train: Tensor,
    x_valid: Tensor,
    stabs: list[Stabilizer],
    cfg: TrainConfig,
    seeds: list[int],
    log: Callable[[str], None] = print,
    polish: list[bool] | None = None,
) -> list[TrainResult]:
    """The one training loop: E runs at once (one when alone), batched where they stack.

    Every member has its own stabilizer, seed and learning rate and consumes its own generator
    exactly as it would alone (shuffling, noise), so each member's result equals training it alone
    up to float round-off. Per member and per epoch the loop records the training NLL, the
    validation NLL, the monitored objective (:func:`_eval_inputs`) and diagnostics. The schedule
    (``cfg.schedule``, :class:`TrainConfig`) anneals a member's learning rate when its objective
    stops improving and stops the member once it is converged; a member that diverges stops with its
    last finite epoch as checkpoint. The others go on. Afterwards members with ``polish`` get the
    full-batch L-BFGS polish (:func:`polish_lbfgs`) when ``cfg.polish_iters`` > 0.
    """
    if len(flows) != len(stabs) or len(flows) != len(seeds):
        raise ValueError("train_ensemble needs one flow, stabilizer and seed per member")
    _check_data(x_train, x_valid, flows[0].d)
    members = _members(flows, stabs)
    E = members.E
    opt = FlatAdam(members.parameters(), cfg.lr, members=E if E > 1 else None)
    members.bind()
    device = x_train.device
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    probe = x_train[: cfg.probe_points]
    x_eval = _eval_inputs(x_valid, stabs, seeds)
    results = [TrainResult() for _ in range(E)]
    monitors = [_Monitor(cfg) for _ in range(E)]
    good = [p.detach().clone() for p in members.parameters()]  # every member's last finite epoch
    frozen: dict[int, list[Tensor]] = {}  # stopped members (diverged or converged): slices restored each step
    n = len(x_train)
    for f in flows:
        f.train()
    for epoch in range(1, cfg.epochs + 1):
        live = [e for e in range(E) if e not in frozen]
        if not live:
            break
        # each live member draws its own permutation, as alone; a stopped one's rows are never used
        order = torch.stack(
            [
                torch.randperm(n, generator=g, device=device) if e in live else torch.arange(n, device=device)
                for e, g in enumerate(gens)
            ]
        )
        noisy = [e for e in live if stabs[e].kind == "noise"]
        nll_sum, pen_sum = [0.0] * E, [0.0] * E
        batches = 0
        for i in range(0, n, cfg.batch_size):
            xb = x_train[order[:, i : i + cfg.batch_size]]  # (E, batch, d): one gather for all members
            for e in noisy:
                xb[e] = stabs[e].corrupt(xb[e], gens[e])
            nlls, pen = members.loss(xb, gens)
            loss = nlls if pen is None else nlls + pen  # none and noise: no penalty term
            values = loss.tolist()
            for e in live:
                results[e].steps += 1
            for e in [e for e in live if not math.isfinite(values[e])]:
                _stop(members, frozen, e, good)
                _mark_diverged(results[e], epoch, log)
            live = [e for e in live if e not in frozen]
            if not live:
                break
            opt.zero_grad()
            loss[live].sum().backward() if len(live) < E else loss.sum().backward()
            opt.step()
            _restore(members, frozen)
            nl, pl = (values, [0.0] * E) if pen is None else (nlls.tolist(), pen.tolist())
            for e in live:
                nll_sum[e] += nl[e]
                pen_sum[e] += pl[e]
            batches += 1
        for e in list(live):
            if not _finite_params(flows[e]):
                _stop(members, frozen, e, good)
                _mark_diverged(results[e], epoch, log)
        live = [e for e in live if e not in frozen]
        if not live:
            break
        good = [p.detach().clone() for p in members.parameters()]  # this epoch is finite: the checkpoint
        valid, objective = members.evaluate(x_valid, x_eval)  # all members in one batched pass
        diag = members.diagnostics(probe) if epoch % cfg.diagnostics_every == 0 or epoch == cfg.epochs else None
        for e in live:
            row = {
                "epoch": epoch,
                "step": results[e].steps,
                "phase": "adam",
                "lr": opt.member_lr(e),
                "train_nll": nll_sum[e] / batches,
                "penalty": pen_sum[e] / batches,
                "valid_nll": valid[e],
                "objective": objective[e],
            }
            if diag is not None:
                row.update(diag[e])
            results[e].history.append(row)
            results[e].checkpoint_epoch = epoch
            log(_epoch_line(row, cfg.epochs, f"[{stabs[e].name} seed {seeds[e]}] " if E > 1 else ""))
            action = monitors[e].update(objective[e])
            if action == "decay":
                opt.set_member_lr(e, opt.member_lr(e) * cfg.decay)
                log(
                    f"  [{stabs[e].name} seed {seeds[e]}] objective flat over {cfg.window} epochs: lr -> {opt.member_lr(e):.3g}"
                )
            elif action == "converged":
                results[e].status = "converged"
                _stop(members, frozen, e, list(members.parameters()))
                log(f"  [{stabs[e].name} seed {seeds[e]}] converged at epoch {epoch}")
    for e, r in enumerate(results):
        r.convergence = monitors[e].summary()
        if r.status == "running":
            r.status = "converged" if monitors[e].converged_at_end() else "not_converged"
    if cfg.polish_iters > 0:
        for e, r in enumerate(results):
            if r.status != "diverged" and (polish is None or polish[e]):
                polish_lbfgs(flows[e], x_train, x_valid, x_eval[e], stabs[e], cfg, seeds[e], r, log)
    return results


class _Monitor:
    """The convergence criterion of one member, fixed in advance (docs/measurements.md#convergence):
    every epoch the monitored objective's improvement over the last ``window`` epochs is
    ``best before the window − best within it``. Under the plateau schedule, an improvement below
    ``tol`` anneals the learning rate by ``decay`` (at most ``max_decays`` times, ``window`` epochs
    apart); below ``tol`` again at the last rate, the member is converged and stops. Under the
    constant schedule (the authors') the rate never changes and the run stops at the epoch cap; it
    counts as converged if its last window improved by less than ``tol``."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.values: list[float] = []
        self.since = 0  # epochs since the start or the last decay
        self.decays = 0

    def improvement(self) -> float:
        w = self.cfg.window
        if len(self.values) <= w:
            return math.inf
        return min(self.values[:-w]) - min(self.values[-w:])

    def update(self, value: float) -> str | None:
        self.values.append(value if math.isfinite(value) else math.inf)
        self.since += 1
        if self.cfg.schedule != "plateau" or self.since < self.cfg.window or self.improvement() >= self.cfg.tol:
            return None
        if self.decays < self.cfg.max_decays:
            self.decays += 1
            self.since = 0
            return "decay"
        return "converged"

    def converged_at_end(self) -> bool:
        if self.cfg.schedule == "plateau":
            return False  # it would have stopped itself
        return self.improvement() < self.cfg.tol

    def summary(self) -> dict[str, float]:
        imp = self.improvement()
        return {
            "conv_window_change": imp if math.isfinite(imp) else math.nan,
            "conv_tol": self.cfg.tol,
            "conv_window": self.cfg.window,
            "conv_decays": self.decays,
            "objective_final": self.values[-1] if self.values else math.nan,
        }


@contextlib.contextmanager
def _optimizer_without_dynamo() -> Iterator[None]:
    """Within the block, ``torch.optim.Optimizer``'s methods that torch wraps in ``torch._disable_dynamo``
    (its constructor's ``add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict``) call the
    method itself: the wrapper imports ``torch._dynamo`` on its first call (1.1-1.2 s in a train job
    that polishes, on the host of the committed results; docs/measurements.md#figure-jobs) only to
    hide the method from ``torch.compile``, which this package never uses. The arithmetic is the
    method's own either way (``tests/science/test_training.py`` compares a polish with and without,
    to the bit). The wrapper reads a cache attribute on the wrapped function before importing; the
    block sets it to the function itself and removes what it set on leaving (with a torch that has no
    such wrapper it does nothing)."""
    try:
        from torch._compile import _disable_dynamo
    except ImportError:  # another torch: its wrappers, whatever they are, stay as they are
        yield
        return

    lazy = _disable_dynamo(_optimizer_without_dynamo).__code__  # the code of every such wrapper
    marked = []
    for attr in vars(torch.optim.Optimizer).values():
        fn = getattr(attr, "__wrapped__", None)
        if fn is None or getattr(attr, "__code__", None) is not lazy or hasattr(fn, "__dynamo_disable"):
            continue  # not torch's lazy wrapper (another torch), or dynamo's own disable is cached
        setattr(fn, "__dynamo_disable", fn)
        marked.append(fn)
    try:
        yield
    finally:
        for fn in marked:
            delattr(fn, "__dynamo_disable")


@_optimizer_without_dynamo()
def polish_lbfgs(
    flow: Flow,
    x_train: Tensor,
    x_valid: Tensor,
    x_eval: Tensor,
    stab: Stabilizer,
    cfg: TrainConfig,
    seed: int,
    result: TrainResult,
    log: Callable[[str], None] = print,
) -> None:
    """Full-batch L-BFGS (strong Wolfe line search) on the run's penalized training objective, in
    chunks of ``cfg.polish_chunk`` iterations up to ``cfg.polish_iters``: second-order polishing for
    small smooth flows, where minibatch Adam approaches the optimum slowly (docs/measurements.md#convergence).
    Noise injection's objective is an expectation over the noise: it is replaced by its average over
    ``cfg.noise_replicas`` fixed draws of the noisy training set (seeded). The polish is converged
    when a chunk improves the training objective by less than ``cfg.polish_tol`` nats, or L-BFGS stops
    on its own tolerance; the run's status is then ``converged``. A polish that makes the objective
    non-finite is undone (the run keeps its Adam state and status). Each chunk appends one history row
    (``phase`` = ``lbfgs``)."""
    params = [p for p in flow.parameters() if p.requires_grad]
    g = torch.Generator(device=x_train.device).manual_seed(POLISH_NOISE_SEED + seed)
    if stab.kind == "noise":
        x_fit = torch.cat([stab.corrupt(x_train, g) for _ in range(cfg.noise_replicas)])
    else:
        x_fit = x_train
    flow.train()
    fit_moments = linear_moments(flow, stab, x_fit, POLISH_NOISE_SEED)  # computed once per polish
    layer = flow.single_affine()

    def objective() -> Tensor:
        if fit_moments is not None:  # the linear flow: the same objective from the data's moments
            return affine_gaussian_nll(layer.W, layer.b, *fit_moments, layer.logdet)
        nll, pen = stab.nll_and_penalty(
            flow, x_fit, torch.Generator(device=x_train.device).manual_seed(POLISH_NOISE_SEED)
        )
        return nll + pen if stab.penalized else nll

    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=cfg.polish_chunk,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = objective()
        if torch.isfinite(loss):
            loss.backward()
        return loss

    with torch.no_grad():
        before = objective().item()
    backup = _snapshot(flow)
    last_epoch = result.history[-1]["epoch"] if result.history else 0
    done = 0
    converged = False
    while done < cfg.polish_iters:
        opt.step(closure)
        iters = opt.state[opt._params[0]]["n_iter"] - done
        done += iters
        with torch.no_grad():
            after = objective().item()
        if not math.isfinite(after) or not _finite_params(flow):
            flow.load_state_dict(backup)
            log(f"  polish: non-finite objective after {done} L-BFGS iterations; undone")
            converged = False
            break
        backup = _snapshot(flow)
        improvement = before - after
        before = after
        valid, obj = _SingleMember(flow, stab).evaluate(x_valid, x_eval[None])
        row = {
            "epoch": last_epoch,
            "step": result.steps,
            "phase": "lbfgs",
            "lr": math.nan,
            "train_nll": math.nan,
            "penalty": math.nan,
            "valid_nll": valid[0],
            "objective": obj[0],
            "polish_iter": done,
            "polish_objective": after,
            **diagnostics(flow, x_train[: cfg.probe_points]),
        }
        result.history.append(row)
        log(f"  polish: {done} L-BFGS iterations, training objective {after:.6f} (improved {improvement:.3g})")
        if improvement < cfg.polish_tol or iters < cfg.polish_chunk:
            converged = True
            break
    result.convergence.update(
        polish_iters=done,
        polish_converged=converged,
        objective_final=result.history[-1]["objective"] if result.history else math.nan,
    )
    if converged:
        result.status = "converged"


@torch.no_grad()
def linear_moments(flow: Flow, stab: Stabilizer, x: Tensor, seed: int) -> tuple[Tensor, Tensor] | None:
    """For a linear flow (one affine layer), the mean and the covariance (1/n) that give its
    penalized objective on the points ``x`` through :func:`~flowtheory.science.flows.affine_gaussian_nll`,
    the penalty folded into the covariance (docs/theory.md §2.2, §2.5) by
    :meth:`~flowtheory.science.stabilizers.Stabilizer.linear_penalty`, the Hutchinson probes drawn
    from a generator seeded with ``seed``; noise injection acts on ``x`` itself. None for any other
    flow. The polish evaluates its objective this way, O(d³) per evaluation instead of O(n d²)
    (docs/measurements.md#convergence)."""
    layer = flow.single_affine()
    if layer is None or layer.W.ndim != 2:  # not a linear flow, or an ensemble's stack
        return None
    mean, cov = moments(x)
    penalty = stab.linear_penalty(x, torch.Generator(device=x.device).manual_seed(seed))
    return mean, cov if penalty is None else cov + penalty


@torch.no_grad()
def _stacked_nll(stacked, x: Tensor, batch_size: int = 1000) -> list[float]:
    """:func:`evaluate_nll` of every member at once."""
    total = [0.0] * stacked.E
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].expand(stacked.E, -1, -1)
        y, ladj = stacked(xb)
        for e, v in enumerate((gaussian_nll(y, ladj) * len(xb[0])).tolist()):
            total[e] += v
    return [t / len(x) for t in total]


@torch.no_grad()
def _stacked_diagnostics(stacked, x: Tensor) -> list[dict[str, float]]:
    """:func:`diagnostics` of every member at once."""
    _, ladj, J = stacked.forward_and_jacobian(x.expand(stacked.E, -1, -1))
    return _diag_dicts(torch.linalg.svdvals(J), ladj)


def _diag_dicts(s: Tensor, ladj: Tensor) -> list[dict[str, float]]:
    """Diagnostics from singular values s (E, n, d) and log-dets (E, n), one dict per member."""
    cond = s[..., 0] / s[..., -1]
    return [
        {
            "smax": s[e, :, 0].median().item(),
            "smin": s[e, :, -1].median().item(),
            "cond": cond[e].median().item(),
            "cond_max": cond[e].max().item(),
            "max_abs_logdet": ladj[e].abs().max().item(),
        }
        for e in range(s.shape[0])
    ]


def ensemble_family(stab: Stabilizer, d: int) -> bool | None:
    """Which runs can train in one ensemble: True for an exact Jacobian penalty, False for none,
    weight and noise (one forward pass; the others' penalty weight is 0), None for a Hutchinson
    penalty (random probes through the flow: one run at a time)."""
    if stab.kind == "jacobian":
        return True if stab.exact_jacobian(d) else None
    return False


def _member_values(members: _Members, tensors, e: int) -> list[Tensor]:
    """Member ``e``'s values of the (stacked or single) parameters ``tensors``, copied."""
    return [t.detach()[e].clone() if members.stacked else t.detach().clone() for t in tensors]


def _stop(members: _Members, frozen: dict[int, list[Tensor]], e: int, source) -> None:
    """Stops member ``e`` at the values of ``source`` (its last finite epoch when it diverged, its
    current state when it converged) and keeps it there while the others train."""
    frozen[e] = _member_values(members, source, e)
    _restore(members, {e: frozen[e]})


@torch.no_grad()
def _restore(members: _Members, frozen: dict[int, list[Tensor]]) -> None:
    """Writes the stopped members' values into their slices. Through ``.data``, as loading a member's
    state dict does: a member that diverges between a forward pass and its backward keeps the graph
    valid (its own gradient is not used)."""
    stacked = members.stacked
    for e, values in frozen.items():
        for p, v in zip(members.parameters(), values, strict=True):
            if stacked:
                p.data[e] = v
            else:
                p.data.copy_(v)


def _snapshot(flow: Flow) -> dict[str, Tensor]:
    """A copy of the flow's state (restored when a polish step makes it non-finite)."""
    return {k: v.detach().clone() for k, v in flow.state_dict().items()}


def _mark_diverged(result: TrainResult, epoch: int, log: Callable) -> TrainResult:
    result.status = "diverged"
    result.diverged_step = result.steps
    log(f"epoch {epoch}: diverged at step {result.steps} (non-finite loss or parameters); stopping")
    return result


def trend(values: np.ndarray, fraction: float = 0.25) -> float:
    """Least-squares slope per epoch over the last ``fraction`` of a curve (NaN if too short)."""
    values = np.asarray(values, dtype=float)
    k = max(int(math.ceil(len(values) * fraction)), 2)
    if len(values) < 2:
        return float("nan")
    tail = values[-k:]
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])
