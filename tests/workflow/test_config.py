"""Config validation: both shipped configs pass; every kind of bad config is refused with one
message that names the key, both by the package and by Snakemake itself, before any job: the schema
and cross-field checks, the CUDA device, and each experiment's estimated training time against its
train job's runtime (flowtheory.pipeline.cost)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml

from flowtheory.pipeline import cost
from flowtheory.pipeline.config import (
    NAME_PATTERN,
    ConfigError,
    check,
    check_device,
    check_input_files,
    input_files,
    load,
)
from pipeline_project import fresh_python


@pytest.fixture(scope="module")
def ci(request):
    root = request.config.rootpath
    return yaml.safe_load((root / "config" / "ci.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "ci.yaml"])
def test_shipped_configs_validate(root, name):
    load(root / "config" / name)


def _set(cfg: dict, dotted: str, value):
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()

BAD = [
    # (dotted key, value, words the message must contain)
    ("trian", {"lr": 1.0}, ["trian", "unknown key"]),
    ("data.datasets.scurve.nosie", 0.1, ["data.datasets.scurve", "nosie"]),
    ("train.lr", "fast", ["train.lr", "number"]),
    ("train.batch_size", 0, ["train.batch_size", "minimum"]),
    ("stabilizers.noise_1e-2.lam", -0.1, ["stabilizers.noise_1e-2.lam", "minimum"]),
    ("stabilizers.weight_1e-2.lam", 0.0, ["stabilizers.weight_1e-2.lam", "lam > 0"]),
    ("stabilizers.weight_1e-2.kind", "ridge", ["stabilizers.weight_1e-2.kind", "ridge"]),
    ("experiments.scurve_mlp.epochs", 0, ["experiments.scurve_mlp.epochs", "minimum"]),
    ("experiments.scurve_mlp.epochs", 2.5, ["experiments.scurve_mlp.epochs", "integer"]),
    ("seeds", [], ["seeds"]),
    ("seeds", [0, 0], ["seeds", "non-unique"]),
    ("experiments.scurve_mlp.dataset", "moons", ["experiments.scurve_mlp.dataset", "moons"]),
    ("experiments.scurve_mlp.flow", "glow", ["experiments.scurve_mlp.flow", "glow"]),
    ("experiments.scurve_mlp.stabilizers", ["none", "dropout"], ["experiments.scurve_mlp.stabilizers", "dropout"]),
    ("flows.mlp.kind", "glow", ["flows.mlp.kind", "glow"]),
    ("flows.mlp.activation", "relu", ["flows.mlp.activation", "relu"]),
    ("data.datasets.gaussian.cov", _DELETE, ["data.datasets.gaussian", "cov"]),
    ("data.datasets.mnist.source", "idx", ["data.datasets.mnist", "images"]),
    ("data.datasets.mnist.n_train", -5, ["data.datasets.mnist.n_train", "minimum"]),
    ("device", "tpu", ["device", "tpu"]),
    ("analysis", _DELETE, ["analysis"]),
    # data sets their kind cannot describe (datasets/truth.py)
    ("data.datasets.gaussian.noise", 0.1, ["data.datasets.gaussian", "'gaussian' takes no 'noise'"]),
    ("data.datasets.gaussian.cov", [[1.0]], ["data.datasets.gaussian", "d × d cov"]),
    # more neighbours than points: knn among the training points, alignment among the extracted ones
    ("analysis.knn_k", 700, ["analysis.knn_k", "'circle' has only 600 training points", "knn_k ≤ 600"]),
    ("components.align_k", 300, ["components.align_k", "'gaussian' gives only 300 extracted points", "≤ 299"]),
    # a Gaussian whose cov is no covariance (the data job would refuse it after other data sets were written)
    (
        "data.datasets.gaussian.cov",
        [[1.0, 2.0], [2.0, 1.0]],
        ["data.datasets.gaussian.cov", "not positive semi-definite", "smallest eigenvalue -1 "],
    ),
    ("data.datasets.gaussian.cov", [[2.0, 1.2], [1.0, 1.0]], ["data.datasets.gaussian.cov", "not symmetric"]),
    # YAML's .nan and .inf pass the schema's ranges
    ("train.lr", float("nan"), ["train.lr", "expected a finite number, got nan"]),
    ("stabilizers.noise_1e-2.lam", float("inf"), ["stabilizers.noise_1e-2.lam", "finite number, got inf"]),
    ("data.datasets.gaussian.cov", [[1.0, 0.0], [0.0, float("nan")]], ["data.datasets.gaussian.cov.1.1", "finite"]),
    ("data.datasets.scurve.noise", float("nan"), ["data.datasets.scurve.noise", "finite"]),
    # more embedded MNIST digits than there are (the data job would refuse it)
    ("data.datasets.mnist.n_train", 4950, ["data.datasets.mnist.n_train", "exceeds the 5000 embedded digits"]),
    # a RealNVP coupling that masks every coordinate transforms nothing (n_masked > d crashed the train job)
    ("flows.realnvp.n_masked", 3, ["flows.realnvp.n_masked", "masks 3 of the 3 coordinates", "n_masked < 3"]),
    # sizes that cannot be meant: refused with the bound's reason from the schema
    ("flows.mlp.hidden_layers", 200, ["flows.mlp.hidden_layers", "maximum of 32", "doubly exponentially"]),
    ("flows.realnvp.couplings", 1000, ["flows.realnvp.couplings", "maximum of 64", "ours: 4"]),
    ("flows.realnvp.hidden", [64, 100_000], ["flows.realnvp.hidden.1", "maximum of 4096", "16.8 million"]),
    ("flows.realnvp.hidden", [64] * 9, ["flows.realnvp.hidden", "too long", "at most 8 layers"]),
    ("experiments.scurve_mlp.epochs", 10**6, ["experiments.scurve_mlp.epochs", "maximum of 100000"]),
    ("data.datasets.scurve.n_train", 10**7, ["data.datasets.scurve.n_train", "maximum of 1000000", "6.3 GB"]),
    ("stabilizers.jacobian_hutch_1e-2.probes", 1000, ["stabilizers.jacobian_hutch_1e-2.probes", "maximum of 64"]),
    # names are path components
    ("experiments.scurve_mlp.dataset", "../scurve", ["experiments.scurve_mlp.dataset", "'../scurve'", "path"]),
    ("experiments.scurve_mlp.stabilizers", ["none", "a/b"], ["experiments.scurve_mlp.stabilizers.1", "'a/b'"]),
]


@pytest.mark.parametrize("key,value,words", BAD, ids=[b[0] + ":" + repr(b[1])[:12] for b in BAD])
def test_bad_config_names_the_key(ci, key, value, words):
    cfg = _set(copy.deepcopy(ci), key, value)
    with pytest.raises(ConfigError) as err:
        check(cfg)
    msg = str(err.value)
    assert "\n" not in msg.strip(), "one message, one line"
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"


@pytest.mark.parametrize("section", ["experiments", "data.datasets", "flows", "stabilizers"])
@pytest.mark.parametrize("name", ["a/b", "..", ".hidden", "-x", "a b", "ü"])
def test_names_must_be_path_components(ci, section, name):
    cfg = copy.deepcopy(ci)
    node = cfg
    for k in section.split("."):
        node = node[k]
    node[name] = next(iter(node.values()))
    with pytest.raises(ConfigError) as err:
        check(cfg)
    msg = str(err.value)
    assert f"invalid config: {section}: name {name!r} is not allowed" in msg, msg
    assert "no '/'" in msg and "\n" not in msg


def test_name_pattern_is_the_schemas(root):
    schema = yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["name"]["pattern"] == NAME_PATTERN


def test_neighbour_counts_skip_high_dimensional_data(ci):
    """Above HIGHDIM dimensions neither kNN runs, so MNIST alone accepts any knn_k and align_k."""
    cfg = copy.deepcopy(ci)
    cfg["experiments"] = {"mnist_mlp": cfg["experiments"]["mnist_mlp"]}
    cfg["analysis"]["knn_k"] = cfg["components"]["align_k"] = 10_000
    check(cfg)


def test_align_k_counts_the_extracted_points(ci):
    cfg = copy.deepcopy(ci)
    cfg["components"]["n_points"] = 5000  # more than any data set: the training set caps it
    cfg["components"]["align_k"] = 599
    check(cfg)  # circle: 600 extracted points, 599 neighbours besides the point itself
    cfg["components"]["align_k"] = 600
    with pytest.raises(ConfigError, match=r"components\.align_k: 600 .*'circle' gives only 600 extracted points"):
        check(cfg)


def test_weight_penalty_needs_square_matrices(ci):
    cfg = copy.deepcopy(ci)
    cfg["flows"]["nvp"] = {"kind": "realnvp"}
    cfg["experiments"]["scurve_mlp"]["flow"] = "nvp"
    cfg["experiments"]["scurve_mlp"]["stabilizers"] = ["weight_1e-2"]
    with pytest.raises(ConfigError, match="experiments.scurve_mlp"):
        check(cfg)


def test_snakemake_refuses_bad_config_before_any_job(root, ci, tmp_path):
    cfg = _set(copy.deepcopy(ci), "train.lr", -1)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "train.lr" in proc.stderr + proc.stdout


def test_idx_files_are_inputs_and_must_exist(ci, tmp_path):
    cfg = copy.deepcopy(ci)
    assert input_files(cfg) == {}  # the embedded digits need no user files
    check_input_files(cfg)
    images, labels = tmp_path / "images.idx", tmp_path / "labels.idx"
    cfg["data"]["datasets"]["mnist"].update(source="idx", images=str(images), labels=str(labels))
    check(cfg)
    assert input_files(cfg) == {"mnist": [str(images), str(labels)]}
    images.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"data\.datasets\.mnist\.labels: no such file '.*labels\.idx'"):
        check_input_files(cfg)
    labels.write_bytes(b"")
    check_input_files(cfg)  # existing files pass: their contents are the data job's to check


def test_realnvp_needs_two_dimensions(ci):
    """With the default n_masked (d // 2, at least 1) a RealNVP flow on 1-D data transforms nothing."""
    cfg = copy.deepcopy(ci)
    cfg["data"]["datasets"]["gaussian"].update(mean=[0.0], cov=[[1.0]])
    cfg["experiments"]["gaussian_linear"].update(flow="realnvp", stabilizers=["none"])
    with pytest.raises(ConfigError, match=r"experiments\.gaussian_linear\.flow: .*2 or more dimensions"):
        check(cfg)


def test_covariances_within_round_off_pass(ci):
    cfg = copy.deepcopy(ci)
    cfg["data"]["datasets"]["gaussian"]["cov"] = [[1.0, 1.0], [1.0 + 1e-15, 1.0 - 1e-12]]  # singular, written out
    check(cfg)


# ----------------------------------------------------------------------------- device


def test_cuda_without_a_gpu_is_refused(ci, monkeypatch):
    import torch

    cfg = copy.deepcopy(ci)
    check_device(cfg)  # cpu: nothing to check
    cfg["device"] = "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        check_device(cfg)
    assert str(err.value) == (
        "invalid config: device: 'cuda', but no CUDA device is available on this machine "
        "(torch.cuda.is_available() is False); set device: cpu"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_device(cfg)


def test_validating_a_cpu_config_does_not_import_torch(root):
    """Snakemake validates at every start (and a dry run): torch's import alone takes over a second."""
    code = (
        "import sys; from flowtheory.pipeline import config, cost; c = config.load('config/config.yaml'); "
        "config.check_device(c); cost.check(c); assert 'torch' not in sys.modules, 'torch imported'"
    )
    fresh_python(code, cwd=root)


# ----------------------------------------------------------------------------- training time


@pytest.mark.parametrize("name", ["config.yaml", "ci.yaml"])
def test_shipped_configs_train_well_within_their_runtime(root, name):
    """The estimate of every experiment is far below its train job's runtime (a tenth at most: hosts
    up to 4x slower and the estimate's error up to 2.3x still fit; docs/measurements.md#train-cost),
    so the check refuses only what cannot finish, and a job at its epoch cap ends within its runtime."""
    cfg = load(root / "config" / name)
    cost.check(cfg)
    for e in cfg["experiments"]:
        assert cost.estimate_seconds(cfg, e) < 0.1 * 60 * cost.runtime_min(cfg, e), e


def test_runtime_is_per_run(ci):
    """The rules' runtimes (workflow/rules/common.smk): minutes per run, longer for an MNIST run's
    training; the analysis and components jobs (seconds per run, measured) declare less than training."""
    assert cost.runtime_min(ci, "gaussian_linear") == 4 * cost.MINUTES_PER_RUN
    assert cost.runtime_min(ci, "mnist_mlp") == 2 * cost.MINUTES_PER_RUN_HIGHDIM > 2 * cost.MINUTES_PER_RUN
    for stage in ("analysis", "components"):
        assert cost.runtime_min(ci, "mnist_mlp", stage) == 2 * cost.POST_MINUTES_PER_RUN < 2 * cost.MINUTES_PER_RUN
    with pytest.raises(ValueError, match="no declared runtime for stage 'figures'"):
        cost.runtime_min(ci, "mnist_mlp", "figures")


def test_an_experiment_beyond_its_runtime_is_refused(ci):
    cfg = copy.deepcopy(ci)
    cfg["experiments"]["scurve_realnvp"]["epochs"] = 100_000
    check(cfg)  # the config itself is valid
    with pytest.raises(ConfigError) as err:
        cost.check(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    assert re.fullmatch(
        r"invalid config: experiments\.scurve_realnvp: estimated training time \d+ min \(2 runs, "
        rf"flowtheory\.pipeline\.cost\) exceeds the train job's runtime of {2 * cost.MINUTES_PER_RUN} min; expected fewer epochs, runs or "
        r"training points, or a smaller flow \(or a longer runtime: --set-resources train:runtime=<minutes>\)",
        msg,
    ), msg
    minutes = cost.estimate_seconds(cfg, "scurve_realnvp") / 60
    cost.check(cfg, runtime=minutes + 1)  # a longer runtime set for the train rule lets it through
    with pytest.raises(ConfigError, match=r"runtime of 0\.1 min"):
        cost.check(ci, runtime=0.1)  # and a shorter one refuses sooner


def test_the_estimate_grows_with_the_work(ci):
    cfg = copy.deepcopy(ci)
    base = cost.run_seconds(cfg, "scurve_mlp", "none")
    assert cost.run_seconds(cfg, "scurve_mlp", "jacobian_1e-2") > 2 * base  # the exact penalty carries d tangents
    cfg["experiments"]["scurve_mlp"]["epochs"] *= 2
    assert cost.run_seconds(cfg, "scurve_mlp", "none") == pytest.approx(2 * base)
    cfg["flows"]["mlp"]["hidden_layers"] = 30
    assert cost.run_seconds(cfg, "scurve_mlp", "none") > 5 * base


@pytest.mark.parametrize(
    "flow,d",
    [
        ({"kind": "linear"}, 2),
        ({"kind": "mlp", "hidden_layers": 3}, 3),
        ({"kind": "mlp", "hidden_layers": 2, "activation": "prelu", "batchnorm_every": 1}, 5),
        ({"kind": "realnvp", "couplings": 4, "hidden": [64, 64]}, 3),
        ({"kind": "realnvp", "couplings": 2, "hidden": [16], "n_masked": 2}, 8),
        ({"kind": "zuko_maf", "transforms": 3, "hidden": [64, 64]}, 3),
        ({"kind": "zuko_nsf", "transforms": 2, "hidden": [32]}, 3),
    ],
)
def test_parameter_count_is_the_built_flows(flow, d):
    import torch

    from flowtheory.science.flows import build_flow, count_parameters

    assert cost.parameters(flow, d) == count_parameters(build_flow(flow, d, torch.float64))


def test_exact_jacobian_threshold_is_the_stabilizers():
    from flowtheory.science.stabilizers import EXACT_MAX_D

    assert cost.EXACT_MAX_D == EXACT_MAX_D


# ----------------------------------------------------------------------------- Snakemake


def _bad_cuda(cfg):
    cfg["device"] = "cuda"


def _bad_cov(cfg):
    cfg["data"]["datasets"]["gaussian"]["cov"] = [[1.0, 2.0], [2.0, 1.0]]


def _too_long(cfg):
    cfg["experiments"]["scurve_realnvp"]["epochs"] = 100_000


#: the bad inputs that used to be found only inside a job, and the words of their one-line message
LOAD_TIME = {
    "cov": (_bad_cov, ["invalid config: data.datasets.gaussian.cov: not positive semi-definite", "eigenvalue -1 "]),
    "cuda": (_bad_cuda, ["invalid config: device: 'cuda', but no CUDA device is available", "set device: cpu"]),
    "runtime": (
        _too_long,
        [
            "invalid config: experiments.scurve_realnvp: estimated training time",
            f"runtime of {2 * cost.MINUTES_PER_RUN} ",
        ],
    ),
}


@pytest.mark.parametrize("case", list(LOAD_TIME))
def test_snakemake_refuses_bad_input_at_load(root, ci, tmp_path, case):
    """`snakemake -n` stops while loading the config: non-zero exit, one line with the message."""
    if case == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is available here")
    edit, words = LOAD_TIME[case]
    cfg = copy.deepcopy(ci)
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert [line for line in text.splitlines() if all(w in line for w in words)], text[-3000:]
    assert "Traceback" not in text


def test_the_schema_names_exactly_the_registered_flow_kinds():
    """One registry of flow kinds (science/kinds.py): the schema's enum must list exactly those."""
    import yaml as _yaml

    from flowtheory.pipeline.config import SCHEMA
    from flowtheory.science.kinds import FLOW_KINDS

    schema = _yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["$defs"]["flow"]["properties"]["kind"]["enum"]) == FLOW_KINDS
