"""Config validation: both shipped configs pass; every kind of bad config is refused with one
message that names the key, both by the package and by Snakemake itself."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from flowtheory.pipeline.config import NAME_PATTERN, ConfigError, check, check_input_files, input_files, load


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
