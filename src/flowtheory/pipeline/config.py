"""Config validation with one clear message, and typed access to each run's settings.

The schema (``workflow/schemas/config.schema.yaml``) checks keys, types, ranges (with the reason of
each upper bound) and names (path components); :func:`check` adds what the schema cannot express
(a number that is NaN or infinite; an experiment naming an unknown data set, flow or stabilizer; a
penalty that the flow does not support; a stabilizer without strength; a data set its kind cannot
describe, such as a Gaussian whose ``cov`` is not symmetric positive semi-definite or more embedded
MNIST digits than there are; a RealNVP flow masking every coordinate; more neighbours than points).
What depends on the machine or the workflow is checked apart, when Snakemake loads the config
(``workflow/rules/common.smk``): the user-supplied input files (:func:`check_input_files`), a CUDA
device (:func:`check_device`) and each experiment's estimated training time against its train
job's runtime (``flowtheory.pipeline.cost``). Every error is one line that names the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from flowtheory.datasets.truth import SpecError, truth
from flowtheory.pipeline.runkey import RunKey
from flowtheory.science.kinds import FLOW_REGISTRY

__all__ = [
    "ConfigError",
    "RunSpec",
    "check",
    "check_device",
    "check_input_files",
    "digest",
    "input_files",
    "load",
    "n_points",
    "read",
    "run_spec",
    "runs",
]

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
#: train settings of the schedule and the polish (``TrainConfig``; an experiment may override the
#: first two)
SCHEDULE_KEYS = (
    "schedule",
    "polish_iters",
    "window",
    "tol",
    "decay",
    "max_decays",
    "polish_chunk",
    "polish_tol",
    "noise_replicas",
)
HIGHDIM = 16  # above this data dimension analysis and components use the *_highdim point counts
ALIGN_K = 10  # components.align_k when unset (flowtheory.stages.components)
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # the schema's $defs.name: names are path components


class ConfigError(ValueError):
    """An invalid config: the message names the key and says what is expected."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _message(err) -> str:
    where = _key(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"{where}: unknown key {', '.join(map(repr, extra))}{hint}"
    if err.validator == "required":
        return f"{where}: {err.message}"
    if err.validator == "type":
        return f"{where}: expected {err.validator_value}, got {err.instance!r}"
    if err.validator == "enum":
        return f"{where}: {err.instance!r} is not one of {err.validator_value}"
    if err.validator in ("maximum", "maxItems") and "description" in err.schema:  # the bound's reason
        return f"{where}: {err.message}; " + " ".join(err.schema["description"].split())
    if err.validator == "pattern" and err.validator_value == NAME_PATTERN:
        what = "name" if "propertyNames" in err.schema_path else "reference"
        return (
            f"{where}: {what} {err.instance!r} is not allowed: names are path components; expected letters, "
            "digits, '_', '.' or '-', starting with a letter or digit (no '/', no '..')"
        )
    return f"{where}: {err.message}"


def check(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validates ``config`` in place (schema defaults are not filled); raises :class:`ConfigError`."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key(e.absolute_path)))
    if errors:
        raise ConfigError("invalid config: " + _message(errors[0]))
    _check_finite(config, ())
    for name, exp in config["experiments"].items():
        for field, section in (("dataset", "data.datasets"), ("flow", "flows")):
            table = config["data"]["datasets"] if field == "dataset" else config["flows"]
            if exp[field] not in table:
                raise ConfigError(
                    f"invalid config: experiments.{name}.{field}: unknown {field} {exp[field]!r}; "
                    f"defined in {section}: {', '.join(sorted(table))}"
                )
        for stab in exp["stabilizers"]:
            if stab not in config["stabilizers"]:
                raise ConfigError(
                    f"invalid config: experiments.{name}.stabilizers: unknown stabilizer {stab!r}; "
                    f"defined in stabilizers: {', '.join(sorted(config['stabilizers']))}"
                )
            kind = config["stabilizers"][stab]["kind"]
            if kind == "weight" and not FLOW_REGISTRY[config["flows"][exp["flow"]]["kind"]].weight_penalty:
                raise ConfigError(
                    f"invalid config: experiments.{name}: the weight penalty ({stab!r}) needs a flow "
                    "with square weight matrices (linear or mlp)"
                )
    for name, stab in config["stabilizers"].items():
        lam = stab.get("lam", 0.0)
        if stab["kind"] != "none" and not (math.isfinite(lam) and lam > 0):
            raise ConfigError(f"invalid config: stabilizers.{name}.lam: kind {stab['kind']!r} needs lam > 0")
    for name, ds in config["data"]["datasets"].items():
        if ds["kind"] == "gaussian" and ("mean" not in ds or "cov" not in ds):
            raise ConfigError(f"invalid config: data.datasets.{name}: a gaussian needs 'mean' and 'cov'")
        if ds["kind"] == "mnist" and ds.get("source") == "idx" and not {"images", "labels"} <= set(ds):
            raise ConfigError(f"invalid config: data.datasets.{name}: source 'idx' needs 'images' and 'labels'")
        try:
            truth(ds)
        except ValueError as e:
            key = f"data.datasets.{name}" + (f".{e.key}" if isinstance(e, SpecError) and e.key else "")
            raise ConfigError(f"invalid config: {key}: {e}") from None
    _check_masks(config)
    _check_neighbours(config)
    return config


def _check_finite(node, path: tuple) -> None:
    """YAML's ``.nan`` and ``.inf`` pass the schema's number checks (NaN compares false)."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_finite(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_finite(v, (*path, i))
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"invalid config: {_key(path)}: expected a finite number, got {node}")


def _check_masks(config: dict) -> None:
    """A RealNVP coupling transforms the coordinates it does not mask: ``n_masked`` (default d // 2,
    at least 1: ``science.flows.build_flow``) < d, so RealNVP needs d ≥ 2."""
    for name, exp in config["experiments"].items():
        flow = config["flows"][exp["flow"]]
        if flow["kind"] != "realnvp":
            continue
        d = truth(config["data"]["datasets"][exp["dataset"]]).d
        n_masked = flow.get("n_masked", d // 2) or 1
        if n_masked >= d:
            key = f"flows.{exp['flow']}.n_masked" if "n_masked" in flow else f"experiments.{name}.flow"
            raise ConfigError(
                f"invalid config: {key}: RealNVP flow {exp['flow']!r} masks {n_masked} of the {d} coordinates "
                f"of data set {exp['dataset']!r} (experiments.{name}), so its couplings transform nothing; "
                + (f"expected n_masked < {d}" if d >= 2 else "expected a data set of 2 or more dimensions")
            )


def check_device(config: dict) -> None:
    """Raises :class:`ConfigError` when the config asks for a CUDA device and this machine has
    none (torch is imported only then). Called where the jobs run (``workflow/rules/common.smk``)."""
    if config.get("device", "cpu") != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "invalid config: device: 'cuda', but no CUDA device is available on this machine "
            "(torch.cuda.is_available() is False); set device: cpu"
        )


def _check_neighbours(config: dict) -> None:
    """kNN counts against the points they search, for every data set an experiment uses with
    d ≤ HIGHDIM (above it neither kNN runs): the analysis searches ``knn_k`` neighbours among the
    training points; the components' sign alignment searches ``align_k`` among the extracted points
    (``components.n_points`` of the training points), the point itself excluded."""
    used = dict.fromkeys(exp["dataset"] for exp in config["experiments"].values())
    for name in used:
        ds = config["data"]["datasets"][name]
        if truth(ds).d > HIGHDIM:
            continue
        knn_k = config["analysis"]["knn_k"]
        if knn_k > ds["n_train"]:
            raise ConfigError(
                f"invalid config: analysis.knn_k: {knn_k} neighbours, but data set {name!r} has only "
                f"{ds['n_train']} training points (data.datasets.{name}.n_train); expected knn_k ≤ {ds['n_train']}"
            )
        align_k = config["components"].get("align_k", ALIGN_K)
        n = min(config["components"]["n_points"], ds["n_train"])
        if align_k > n - 1:
            raise ConfigError(
                f"invalid config: components.align_k: {align_k} neighbours, but data set {name!r} gives only "
                f"{n} extracted points (min of components.n_points and data.datasets.{name}.n_train); "
                f"expected align_k ≤ {n - 1}"
            )


def input_files(config: dict) -> dict[str, list[str]]:
    """The user-supplied files each data set reads (MNIST IDX files), by data set name. The
    ``data`` rule declares them as inputs, so that replacing one reruns its data job."""
    return {
        name: [ds["images"], ds["labels"]]
        for name, ds in config["data"]["datasets"].items()
        if ds["kind"] == "mnist" and ds.get("source") == "idx"
    }


def check_input_files(config: dict) -> None:
    """Raises :class:`ConfigError` naming the first user-supplied input file that does not exist."""
    for name, files in input_files(config).items():
        for key, path in zip(("images", "labels"), files, strict=True):
            if not Path(path).is_file():
                raise ConfigError(
                    f"invalid config: data.datasets.{name}.{key}: no such file {path!r} "
                    "(the MNIST IDX files are not downloaded; see the README)"
                )


def read(path: str | Path) -> dict:
    """Reads a config file without checking it; raises :class:`ConfigError` (one line, naming the
    file) if it cannot be read, is not YAML, or is not a mapping."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{path}: not valid YAML ({problem}{where}); expected a mapping of config keys") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values, got {type(config).__name__}")
    return config


def load(path: str | Path, schema_path: str | Path = SCHEMA) -> dict:
    """Reads and checks a config file."""
    return check(read(path), schema_path)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs, resolved from the config."""

    experiment: str
    stabilizer: str
    seed: int
    dataset: str
    flow: dict
    stab: dict
    epochs: int
    lr: float
    batch_size: int
    probe_points: int
    diagnostics_every: int
    dtype: str
    device: str
    schedule: dict = dataclasses.field(default_factory=dict)  # TrainConfig's schedule and polish settings
    # whether the L-BFGS polish may touch this run: a smooth flow kind (science/kinds.py) and a
    # finite optimum (a stabilizer, or data with a density: unregularized runs on degenerate data
    # have none, their objective falls without bound, docs/theory.md §2.4)
    polish: bool = False

    @property
    def run_id(self) -> str:
        return str(RunKey(self.experiment, self.stabilizer, self.seed))


def digest(config: dict) -> str:
    """A digest of the loaded config (every setting, in canonical JSON): equal on every machine for
    the same config. The claims rule records it, and applies a chaos measurement's fragile verdicts
    only to results of the config it was measured on (``bench.chaos``)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def runs(config: dict) -> list[tuple[str, str, int]]:
    """All (experiment, stabilizer, seed) triples of the training grid, in config order."""
    out = []
    for name, exp in config["experiments"].items():
        for stab in exp["stabilizers"]:
            for seed in exp.get("seeds", config["seeds"]):
                out.append((name, stab, seed))
    return out


def run_spec(config: dict, experiment: str, stabilizer: str, seed: int) -> RunSpec:
    exp = config["experiments"][experiment]
    train = config["train"]
    schedule = {key: exp.get(key, train[key]) for key in SCHEDULE_KEYS if key in exp or key in train}
    # an unregularized run on degenerate data has no optimum: its objective falls without bound
    # (docs/theory.md §2.4), so a plateau of its validation objective is no convergence. It keeps
    # the authors' constant rate to the epoch cap and is never polished (docs/measurements.md#convergence)
    finite_optimum = (
        config["stabilizers"][stabilizer]["kind"] != "none"
        or not truth(config["data"]["datasets"][exp["dataset"]]).degenerate
    )
    if not finite_optimum:
        schedule["schedule"] = "constant"
    return RunSpec(
        experiment=experiment,
        stabilizer=stabilizer,
        seed=int(seed),
        dataset=exp["dataset"],
        flow=dict(config["flows"][exp["flow"]]),
        stab=dict(config["stabilizers"][stabilizer]),
        epochs=exp["epochs"],
        lr=exp.get("lr", train["lr"]),
        batch_size=exp.get("batch_size", train["batch_size"]),
        probe_points=exp.get("probe_points", train.get("probe_points", 64)),
        diagnostics_every=exp.get("diagnostics_every", train.get("diagnostics_every", 1)),
        dtype=exp.get("dtype", "float64"),
        device=config.get("device", "cpu"),
        schedule=schedule,
        polish=FLOW_REGISTRY[config["flows"][exp["flow"]]["kind"]].smooth and finite_optimum,
    )


def n_points(config_section: dict, d: int, n_avail: int) -> int:
    """Points the analysis or components stage uses: ``max_points_highdim`` when d > HIGHDIM."""
    n = (
        config_section.get("max_points_highdim", config_section["n_points"])
        if d > HIGHDIM
        else config_section["n_points"]
    )
    return min(n, n_avail)
