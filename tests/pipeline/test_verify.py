"""The reproduction verdict (src/flowtheory/pipeline/verify.py) on small hand-made results in a
throwaway git repository: identical results reproduce; changes beyond round-off, flipped verdicts,
changed strings or structure and missing files do not; changes within round-off are counted as such,
with the float32 tolerance only for float32 runs; figures are reported, not compared."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from flowtheory.pipeline.verify import FLOAT32, FLOAT64, Report, compare_csv, compare_json, main, verify

CONFIG = {
    "experiments": {
        "gaussian_linear": {"dataset": "gaussian", "flow": "linear"},
        "mnist_mlp": {"dataset": "mnist", "flow": "mlp", "dtype": "float32"},
    }
}
TRAIN = {
    "gaussian_linear": {
        "none": {"seed0": {"final_train_nll": 2.5436210092301628, "status": "converged", "steps": 800}}
    },
    "mnist_mlp": {"none": {"seed0": {"final_train_nll": -1306.1523864746093, "status": "converged", "steps": 600}}},
}
CLAIMS = [
    {"id": "linear_whitening", "measured": 0.0015493367248839477, "passed": True, "claim": "WᵀW = Σ̂⁻¹"},
    {
        "id": "mnist_unregularized_illposed",
        "measured": 0.22050410892505987,
        "passed": True,
        "detail": {"mnist_mlp/none/seed0": {"smax_last": 116.7296371459961, "status": "converged"}},
    },
]
HISTORY = (
    "experiment,stabilizer,seed,epoch,train_nll,valid_nll\n"
    "gaussian_linear,none,0,1,4.285401446,4.153288068\n"
    "mnist_mlp,none,0,1,712.3456789,0.000123456789\n"
)


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout


def _write(repo: Path, rel: str, content) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def repo(tmp_path) -> Path:
    """Hand-made results, committed: config, metrics, claims, a plot table, a figure."""
    _git(tmp_path, "init", "-q")
    _write(tmp_path, "config/config.yaml", yaml.safe_dump(CONFIG))
    _write(tmp_path, "metrics/train.json", TRAIN)
    _write(tmp_path, "results/claims.json", CLAIMS)
    _write(tmp_path, "plots/train_history.csv", HISTORY)
    _write(tmp_path, "results/figures/fig_a.png", b"\x89PNG\r\n\x1a\nfigure")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "results")
    return tmp_path


def _edit_json(repo: Path, rel: str, edit) -> None:
    doc = json.loads((repo / rel).read_text())
    edit(doc)
    _write(repo, rel, doc)


def test_identical_results_reproduce(repo, capsys):
    report = verify(repo)
    assert report.reproduced and report.differences == []
    assert report.claims == 2 and report.total("verdicts", ["results/claims.json"]) == 3
    assert report.total("numbers") == report.total("identical") == 15
    assert main(["--root", str(repo)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (
        "REPRODUCED: 2 claims, all 3 verdicts identical; 15 numbers within round-off (15 identical); 0 beyond; "
        "1 figures byte-identical, 0 regenerated"
    )


def test_a_number_moved_beyond_round_off_is_named_with_old_and_new(repo, capsys):
    _edit_json(repo, "metrics/train.json", lambda d: d["gaussian_linear"]["none"]["seed0"].update(final_train_nll=2.55))
    assert main(["--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert (
        "metrics/train.json: gaussian_linear.none.seed0.final_train_nll: beyond round-off "
        "(rel 0.0025; float64: rel 1e-09 + abs 1e-12): 2.5436210092301628 -> 2.55"
    ) in out
    assert out.strip().splitlines()[-1].startswith("NOT REPRODUCED: 0 of 3 claim verdicts flipped; ")
    assert "; 1 beyond;" in out


def test_changes_within_round_off_are_counted_and_reproduce(repo):
    def nudge(d):
        d["gaussian_linear"]["none"]["seed0"]["final_train_nll"] *= 1 + 1e-12  # float64 round-off
        d["mnist_mlp"]["none"]["seed0"]["final_train_nll"] *= 1 + 1e-6  # float32 round-off

    _edit_json(repo, "metrics/train.json", nudge)
    # one unit in the 10th significant digit of a CSV cell: two round-offs printed apart
    _write(repo, "plots/train_history.csv", HISTORY.replace("4.285401446", "4.285401447"))
    report = verify(repo)
    assert report.reproduced, report.text()
    assert report.total("within") == 3 and report.total("beyond") == 0
    assert report.verdict().startswith(
        "REPRODUCED: 2 claims, all 3 verdicts identical; 15 numbers within round-off (12 identical)"
    )


def test_float32_tolerance_applies_only_to_float32_runs(repo):
    """The same relative change of 1e-5 is round-off for the MNIST (float32) run, in its metrics,
    its plot rows and the claim that reads it, and a real change for a float64 run."""
    rel = 1e-5
    assert not FLOAT64.allows(1.0, 1 + rel) and FLOAT32.allows(1.0, 1 + rel)

    def nudge(d):
        d["mnist_mlp"]["none"]["seed0"]["final_train_nll"] *= 1 + rel
        d["gaussian_linear"]["none"]["seed0"]["final_train_nll"] *= 1 + rel

    _edit_json(repo, "metrics/train.json", nudge)
    _edit_json(repo, "results/claims.json", lambda d: d[1].update(measured=d[1]["measured"] * (1 + rel)))
    _write(repo, "plots/train_history.csv", HISTORY.replace("712.3456789", "712.3528024"))
    report = verify(repo)
    assert [(d.file, d.where) for d in report.differences] == [
        ("metrics/train.json", "gaussian_linear.none.seed0.final_train_nll")
    ]
    assert report.total("within") == 3


def test_a_flipped_claim_verdict_fails_and_names_the_claim(repo):
    _edit_json(repo, "results/claims.json", lambda d: d[0].update(passed=False))
    report = verify(repo)
    assert [(d.where, d.old, d.new, d.kind) for d in report.differences] == [
        ("linear_whitening.passed", True, False, "verdict flipped")
    ]
    assert report.verdict().startswith("NOT REPRODUCED: 1 of 3 claim verdicts flipped (linear_whitening); ")


def test_nested_verdicts_are_verdicts_and_claims_are_matched_by_id(repo):
    """A per-run (or per-experiment) status inside a claim is a verdict too; the order of the claims
    does not matter."""

    def edit(d):
        d[1]["detail"]["mnist_mlp/none/seed0"]["status"] = "diverged"
        d.reverse()

    _edit_json(repo, "results/claims.json", edit)
    report = verify(repo)
    assert [(d.where, d.kind) for d in report.differences] == [
        ("mnist_unregularized_illposed.detail.mnist_mlp/none/seed0.status", "verdict flipped")
    ]


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["gaussian_linear"]["none"]["seed0"].update(steps=801), "gaussian_linear.none.seed0.steps"),
        (lambda d: d["gaussian_linear"]["none"]["seed0"].update(extra=1.0), "gaussian_linear.none.seed0.extra"),
        (lambda d: d["mnist_mlp"]["none"].pop("seed0"), "mnist_mlp.none.seed0"),
    ],
    ids=["integer", "added-key", "removed-run"],
)
def test_integers_and_structure_must_be_equal(repo, edit, where):
    _edit_json(repo, "metrics/train.json", edit)
    report = verify(repo)
    assert [(d.file, d.where) for d in report.differences] == [("metrics/train.json", where)]


def test_a_changed_string_fails(repo):
    _write(repo, "plots/train_history.csv", HISTORY.replace("gaussian_linear,none", "gaussian_linear,weight"))
    report = verify(repo)
    assert [(d.where, d.old, d.new) for d in report.differences] == [
        ("row 1 (experiment=gaussian_linear, stabilizer=none, seed=0, epoch=1) stabilizer", "none", "weight")
    ]


def test_missing_and_new_files_fail(repo):
    (repo / "plots" / "train_history.csv").unlink()
    _write(repo, "results/tables/table_new.csv", "a\n1\n")
    report = verify(repo)
    assert [(d.file, d.kind) for d in report.differences] == [
        ("plots/train_history.csv", "missing"),
        ("results/tables/table_new.csv", "new"),
    ]
    assert not report.reproduced


def test_figures_are_reported_not_compared(repo):
    _write(repo, "results/figures/fig_a.png", b"\x89PNG\r\n\x1a\nregenerated elsewhere")
    report = verify(repo)
    assert report.reproduced
    assert report.files["results/figures/fig_a.png"].figure == "regenerated"
    assert report.verdict().endswith("0 figures byte-identical, 1 regenerated")


def test_compare_json_and_csv_without_git():
    report = Report()
    compare_json({"a": [1.0, 2.0], "passed": True}, {"a": [1.0, 2.0 + 1e-13], "passed": True}, "f.json", report, set())
    compare_csv("x,y\nmnist_mlp,1.5\n", "x,y\nmnist_mlp,1.50001\n", "f.csv", report, {"mnist_mlp"})
    assert report.reproduced
    assert (report.total("identical"), report.total("within"), report.total("verdicts")) == (1, 2, 1)


def test_a_revision_that_is_not_a_commit_is_a_usage_error(repo, capsys):
    assert main(["--root", str(repo), "--rev", "no-such-rev"]) == 2
    assert "is not a commit" in capsys.readouterr().err


def test_the_sectioned_claims_document_counts_claims_and_names_the_flipped_one(repo):
    """results/claims.json as the claims stage writes it: conclusions, claims and the error against
    the gap. Claims are counted and named by id; a claim that reads a float32 run keeps the float32
    tolerance, every other the float64 one."""
    sectioned = {
        "conclusions": [{"id": "paper_claim_3", "conclusion": "reproduces", "number": {"experiment": "mnist_mlp"}}],
        "claims": CLAIMS,
        "error_vs_gap": {"linear_whitening": {"n_runs": 3, "spearman_rho": 0.5}},
    }
    _write(repo, "results/claims.json", sectioned)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "sectioned claims")
    assert verify(repo).claims == 2

    def edit(d):
        d["claims"][0]["passed"] = False
        d["claims"][1]["measured"] *= 1 + 1e-5  # round-off for the float32 MNIST run's claim
        d["error_vs_gap"]["linear_whitening"]["spearman_rho"] *= 1 + 1e-5  # beyond for a float64 claim

    _edit_json(repo, "results/claims.json", edit)
    report = verify(repo)
    assert [(d.where, d.kind.split(" (")[0]) for d in report.differences] == [
        ("claims.linear_whitening.passed", "verdict flipped"),
        ("error_vs_gap.linear_whitening.spearman_rho", "beyond round-off"),
    ]
    assert report.verdict().startswith("NOT REPRODUCED: 1 of 3 claim verdicts flipped (linear_whitening); ")
