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


# ------------------------------------------------------------------------ chaotic runs, measured

CHAOS_CONFIG = {
    "seeds": [0, 1],
    "experiments": {
        "gaussian_linear": {"dataset": "gaussian", "flow": "linear", "stabilizers": ["none"]},
        "roll_nvp": {"dataset": "roll", "flow": "realnvp", "stabilizers": ["plain"]},
    },
}


def _nvp(nll: float, smax: float) -> dict:
    return {"final_train_nll": nll, "smax_last": smax, "lam": 0.01, "intrinsic_dim": 2, "steps": 800,
            "message": "converged (last window improved 0.0012 nats)", "status": "converged"}  # fmt: skip


CHAOS_TRAIN = {
    "gaussian_linear": {"none": {"seed0": {"final_train_nll": 2.5436210092301628, "lam": 0.0, "status": "converged"}}},
    "roll_nvp": {"plain": {"seed0": _nvp(3.7, 2.05), "seed1": _nvp(3.6, 3.0)}},
}
CHAOS_CLAIMS = [
    {
        "id": "unregularized_diverges",
        "experiments": {
            "roll_nvp": {"measured": 0.3, "threshold": 0.25, "verdict": "PASS", "passed": True, "worst_smax": 2.05}
        },
        "measured": 0.3,
        "verdict": "PASS",
        "passed": True,
    },
    {
        "id": "linear_whitening",
        "experiments": {"gaussian_linear": {"measured": 0.0015, "threshold": 0.02, "verdict": "PASS"}},
        "verdict": "PASS",
    },
]
CHAOS_HISTORY = [
    "experiment,stabilizer,seed,epoch,train_nll",
    "gaussian_linear,none,0,1,4.285401446",
    "roll_nvp,plain,0,1,5.254299064",
    "roll_nvp,plain,0,2,5.101234567",
    "roll_nvp,plain,1,1,5.261111111",
    "roll_nvp,plain,1,2,5.122222222",
]


def _results(root: Path, train: dict, claims: list, history: list[str]) -> None:
    _write(root, "config/config.yaml", yaml.safe_dump(CHAOS_CONFIG))
    _write(root, "metrics/train.json", train)
    _write(root, "results/claims.json", claims)
    _write(root, "plots/train_history.csv", "\n".join(history) + "\n")


def _replica(train: dict, claims: list, history: list[str]) -> tuple[dict, list, list[str]]:
    """What a one-ulp replica of the hand-made results gives: the linear run within round-off, the
    RealNVP run elsewhere (its NLL by 2.7%, its message, its second epoch), and its claim verdict,
    near its threshold, flipped."""
    train, claims, history = json.loads(json.dumps(train)), json.loads(json.dumps(claims)), list(history)
    train["gaussian_linear"]["none"]["seed0"]["final_train_nll"] *= 1 + 1e-13
    run = train["roll_nvp"]["plain"]["seed0"]
    run.update(final_train_nll=3.6, message="converged (last window improved 0.00097 nats)")
    claims[0]["experiments"]["roll_nvp"].update(measured=0.24, verdict="FAIL", passed=False)
    claims[0].update(measured=0.24, verdict="FAIL", passed=False)
    history[3] = "roll_nvp,plain,0,2,5.2"
    return train, claims, history


@pytest.fixture
def chaos_repo(tmp_path) -> tuple[Path, dict]:
    """Hand-made results with a stable and a chaotic experiment, committed with their chaos
    measurement (from a hand-made replica); returns (repo, chaos document)."""
    from flowtheory.pipeline.verify import measure_chaos

    repo, replica = tmp_path / "repo", tmp_path / "replica"
    _git(repo if repo.mkdir() is None else repo, "init", "-q")
    _results(repo, CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    _results(replica, *_replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY))
    doc = measure_chaos(repo, {"FLOWTHEORY_PERTURB_INIT=up": replica}, [CHAOS_CONFIG], head={"config": "x"})
    _write(repo, "results/chaos.json", doc)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "results and their chaos measurement")
    return repo, doc


def test_the_chaos_measurement_classifies_experiments_and_runs_and_names_fragile_verdicts(chaos_repo):
    from flowtheory.pipeline.verify import fragile_verdicts

    _, doc = chaos_repo
    assert doc["format"] == "flowtheory-chaos/1" and doc["perturbations"] == ["FLOWTHEORY_PERTURB_INIT=up"]
    assert doc["summary"] == {"stable": ["gaussian_linear"], "chaotic": ["roll_nvp"], "fragile": 4}
    stable, chaotic = doc["experiments"]["gaussian_linear"], doc["experiments"]["roll_nvp"]
    assert stable["class"] == "stable" and 0 < stable["largest_round_off"] < 1e-12 and "spread" not in stable
    assert chaotic["runs"] == {
        "roll_nvp/plain/seed0": {"class": "chaotic", "largest": [0.028, "metrics/train.json:final_train_nll"]},
        "roll_nvp/plain/seed1": {"class": "stable"},
    }
    # per key, less the experiment and run names; rounded up to two digits (0.1 / 3.7 = 0.027)
    assert chaotic["spread"] == {
        "metrics/train.json:final_train_nll": 0.028,
        "plots/train_history.csv:train_nll": 0.019,
        "results/claims.json:unregularized_diverges.experiments.measured": 0.2,
    }
    assert chaotic["changed"] == ["metrics/train.json:message"]
    assert doc["other"]["spread"] == {"results/claims.json:unregularized_diverges.measured": 0.2}
    assert fragile_verdicts(doc) == {("unregularized_diverges", "roll_nvp"), ("unregularized_diverges", None)}
    assert fragile_verdicts(None) == set()


def _two_replicas(tmp_path: Path, edit=None) -> tuple[Path, dict[str, Path]]:
    """The committed results and two replicas of them: ``up`` flips ``roll_nvp``'s verdict to FAIL,
    ``2`` to NOT_AT_OPTIMUM (``edit`` on its metrics/train.json first)."""
    repo, up, two = tmp_path / "repo", tmp_path / "up", tmp_path / "two"
    _results(repo, CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    _results(up, *_replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY))
    train, claims, history = _replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    claims[0]["experiments"]["roll_nvp"].update(verdict="NOT_AT_OPTIMUM", passed=None)
    if edit:
        edit(train)
    _results(two, train, claims, history)
    return repo, {"FLOWTHEORY_PERTURB_INIT=up": up, "FLOWTHEORY_PERTURB_INIT=2": two}


def test_each_replica_that_flips_a_verdict_keeps_its_own_value(tmp_path):
    """Two replicas flip the same verdict, one to FAIL and one to NOT_AT_OPTIMUM: the record names
    both values, not only the first replica's (a claim-level FAIL must be traceable to the
    experiment that failed in that replica)."""
    from flowtheory.pipeline.verify import measure_chaos

    repo, replicas = _two_replicas(tmp_path)
    doc = measure_chaos(repo, replicas, [CHAOS_CONFIG], head={"config": "x"})
    flip = next(f for f in doc["fragile"] if f["where"] == "unregularized_diverges.experiments.roll_nvp.verdict")
    assert flip["original"] == "PASS" and flip["replica"] == "FAIL"
    assert flip["flipped_by"] == ["FLOWTHEORY_PERTURB_INIT=up", "FLOWTHEORY_PERTURB_INIT=2"]
    assert flip["replicas"] == {"FLOWTHEORY_PERTURB_INIT=up": "FAIL", "FLOWTHEORY_PERTURB_INIT=2": "NOT_AT_OPTIMUM"}


def test_replicas_added_later_give_the_document_of_one_measurement_of_all(tmp_path):
    """``bench.chaos --add``: a replica measured on its own and added to an earlier measurement
    (flowtheory.pipeline.chaos.merge_replicas) gives what one measurement of every replica gives:
    the oracle is measure_chaos itself, run on all of them at once."""
    from flowtheory.pipeline.chaos import merge_replicas
    from flowtheory.pipeline.verify import measure_chaos

    def larger_spread(train):  # than the first replica's
        train["roll_nvp"]["plain"]["seed0"]["final_train_nll"] = 5.0

    repo, labels = _two_replicas(tmp_path, larger_spread)
    whole = measure_chaos(repo, labels, [CHAOS_CONFIG], head={"config": "x"})
    first, added = ({k: v} for k, v in labels.items())
    parts = [measure_chaos(repo, r, [CHAOS_CONFIG], head={"config": "x"}) for r in (first, added)]
    merged = merge_replicas(*parts)
    assert merged.pop("parts") == [
        {"experiments": sorted(whole["experiments"]), "replicas": replicas, "perturbations": [label]}
        for replicas, label in zip(("whole config", "whole config, added"), labels, strict=True)
    ]
    assert merged == whole
    with pytest.raises(ValueError, match="already measured: FLOWTHEORY_PERTURB_INIT=up"):
        merge_replicas(parts[0], parts[0])
    with pytest.raises(ValueError, match="measured on other results"):
        merge_replicas(parts[0], {**parts[1], "measured_on_experiments": {}})


def test_measurements_taken_separately_merge_into_the_document_of_one_measurement_of_all(tmp_path, capsys, monkeypatch):
    """``bench.chaos --merge``: single-replica measurements run side by side (or on other machines)
    merge into what one measurement of every replica gives (measure_chaos itself the oracle), with
    one clear error, and nothing written, for what it cannot merge."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    import bench.chaos
    from flowtheory.pipeline.verify import measure_chaos

    repo, labels = _two_replicas(tmp_path)
    whole = measure_chaos(repo, labels, [CHAOS_CONFIG], head={"config": "x"})
    for name, (label, replica) in zip(("a.json", "b.json"), labels.items(), strict=True):
        doc = measure_chaos(repo, {label: replica}, [CHAOS_CONFIG], head={"config": "x"})
        (repo / name).write_text(json.dumps(doc))
    args = ["--root", str(repo), "--out", "merged.json"]
    merged = bench.chaos.main([*args, "--merge", "a.json", "b.json"])
    assert json.loads((repo / "merged.json").read_text()) == merged
    assert merged.pop("parts") == [
        {
            "experiments": sorted(whole["experiments"]),
            "replicas": "whole config, run separately, merged",
            "perturbations": [label],
        }
        for label in labels
    ]
    assert merged == whole
    (repo / "merged.json").unlink()
    for extra, message in [
        (["--merge", "a.json"], "at least two"),
        (["--merge", "a.json", "gone.json"], "gone.json is absent"),
        (["--merge", "a.json", "a.json"], "already measured"),
        (["--merge", "a.json", "b.json", "--add", "3"], "not with --add"),
    ]:
        with pytest.raises(SystemExit):
            bench.chaos.main([*args, *extra])
        assert message in capsys.readouterr().err
        assert not (repo / "merged.json").exists()


def _rerun(repo: Path, edit=None, history=None, edit_claims=None) -> None:
    """The working tree of ``repo`` becomes a rerun: the replica's kind of changes (another
    trajectory of the RealNVP run), then ``edit`` on metrics/train.json, ``edit_claims`` on the claims."""
    train, claims, hist = _replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    train["roll_nvp"]["plain"]["seed0"].update(final_train_nll=3.8, message="not the replica's")
    if edit:
        edit(train)
    if edit_claims:
        edit_claims(claims)
    _results(repo, train, claims, history or hist)


def test_a_rerun_of_a_chaotic_run_reproduces_within_its_measured_spread(chaos_repo, capsys):
    repo, _ = chaos_repo
    _rerun(repo)
    assert main(["--root", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "chaotic runs: results/chaos.json at HEAD: 1 chaotic experiment(s) (roll_nvp), 4 fragile" in out
    assert (
        "  results/claims.json: unregularized_diverges.experiments.roll_nvp.verdict: "
        "fragile verdict flipped (measured): 'PASS' -> 'FAIL'"
    ) in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "REPRODUCED: 2 claims, all 2 robust verdicts identical, 4 fragile flipped (unregularized_diverges); "
    ), last
    # 3.7 -> 3.8 (rel 0.026, spread 0.028), the message, 5.101 -> 5.2 and the claim's two measured
    assert "5 values of chaotic runs within 30x their measured spread; 0 beyond;" in last
    # without the measurement, the same rerun is what the issue saw
    assert main(["--root", str(repo), "--no-chaos"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("NOT REPRODUCED: 4 of 6 claim verdicts flipped")


@pytest.mark.parametrize(
    ("edit", "where", "kind"),
    [
        (  # a chaotic number beyond 30x its spread
            lambda t: t["roll_nvp"]["plain"]["seed0"].update(final_train_nll=-1.0),
            "roll_nvp.plain.seed0.final_train_nll",
            "beyond the chaotic spread (rel 1.3; 30 x spread 0.028)",
        ),
        (  # a setting a chaotic run echoes: neither the replica nor the seeds moved it
            lambda t: t["roll_nvp"]["plain"]["seed0"].update(lam=0.02),
            "roll_nvp.plain.seed0.lam",
            "beyond round-off (rel 0.5; float64: rel 1e-09 + abs 1e-12) "
            "(a chaotic run's key that neither the perturbation nor the seeds moved)",
        ),
        (  # an integer of a chaotic run that no replica and no seed moved, by more than one
            lambda t: t["roll_nvp"]["plain"]["seed0"].update(steps=1600),
            "roll_nvp.plain.seed0.steps",
            "beyond round-off (a chaotic run's key that neither the perturbation nor the seeds moved)",
        ),
        (  # a stable run keeps the round-off tier
            lambda t: t["gaussian_linear"]["none"]["seed0"].update(final_train_nll=2.5436210092301628 * (1 + 1e-6)),
            "gaussian_linear.none.seed0.final_train_nll",
            "beyond round-off (rel 1e-06; float64: rel 1e-09 + abs 1e-12)",
        ),
    ],
    ids=["beyond-spread", "setting", "integer", "stable-run"],
)
def test_a_real_change_does_not_reproduce(chaos_repo, edit, where, kind):
    repo, _ = chaos_repo
    _rerun(repo, edit)
    report = verify(repo)
    assert [(d.where, d.kind) for d in report.differences] == [(where, kind)]
    assert report.verdict().startswith("NOT REPRODUCED: 0 of 6 claim verdicts flipped, 4 fragile flipped")


def test_strings_decided_from_chaotic_numbers_may_change_others_not(chaos_repo):
    """A string of a chaotic run (one its replica left alone) may change; the same in the stable
    run may not."""
    repo, _ = chaos_repo

    def edit(t):
        t["roll_nvp"]["plain"]["seed0"]["status"] = "not_converged"  # a verdict of a chaotic record
        t["roll_nvp"]["plain"]["seed0"]["message"] = "not converged: cap reached"
        t["gaussian_linear"]["none"]["seed0"]["status"] = "not_converged"

    _rerun(repo, edit)
    report = verify(repo)
    assert [(d.where, d.kind) for d in report.differences] == [("gaussian_linear.none.seed0.status", "verdict flipped")]
    assert ("roll_nvp.plain.seed0.status", "fragile verdict flipped (chaotic record)") in [
        (d.where, d.kind) for d in report.fragile
    ]


def test_an_integer_of_a_chaotic_run_may_flip_to_its_neighbour(chaos_repo):
    """intrinsic_dim 2 -> 1 in the chaotic run (a threshold count), not in a stable run."""
    repo, _ = chaos_repo
    _rerun(repo, lambda t: t["roll_nvp"]["plain"]["seed0"].update(intrinsic_dim=1))
    assert verify(repo).reproduced
    _rerun(repo, lambda t: t["roll_nvp"]["plain"]["seed1"].update(intrinsic_dim=1))  # measured stable
    assert [d.where for d in verify(repo).differences] == ["roll_nvp.plain.seed1.intrinsic_dim"]


def test_the_seeds_spread_widens_a_chaotic_runs_tolerance(chaos_repo):
    """smax_last: the replica left it alone, but the run's two seeds differ by a third (2.0, 3.0):
    10x that is allowed; lam, equal over the seeds, is not."""
    repo, _ = chaos_repo
    _rerun(repo, lambda t: t["roll_nvp"]["plain"]["seed0"].update(smax_last=2.9))
    assert verify(repo).reproduced


def test_a_copy_of_a_chaotic_runs_number_has_that_numbers_tolerance(chaos_repo):
    """worst_smax, an aggregate the replica left alone, is a copy of seed 0's smax_last: it may
    move as far as that number may (its seeds' spread); the threshold beside it, which copies no
    run's number, may not."""
    repo, _ = chaos_repo

    def worst(claims, value=2.6):
        claims[0]["experiments"]["roll_nvp"]["worst_smax"] = value

    _rerun(repo, lambda t: t["roll_nvp"]["plain"]["seed0"].update(smax_last=2.6), edit_claims=worst)
    assert verify(repo).reproduced
    _rerun(repo, edit_claims=lambda c: c[0]["experiments"]["roll_nvp"].update(threshold=0.26))  # copies no run
    assert [d.where for d in verify(repo).differences] == ["unregularized_diverges.experiments.roll_nvp.threshold"]


def _metrics_claims(verdict: str, counts: dict) -> dict:
    """``metrics/claims.json`` as the claims rule writes it: the same verdicts as results/claims.json,
    keyed by claim, with their counts and without the numbers beside them."""
    return {
        "claims": {
            "unregularized_diverges": {"counts": counts, "experiments": {"roll_nvp": {"verdict": verdict}}},
            "linear_whitening": {"counts": {"PASS": 1}, "experiments": {"gaussian_linear": {"verdict": "PASS"}}},
        }
    }


@pytest.mark.parametrize(
    ("counts", "robust"),
    [({"PASS": 0, "FAIL": 1}, []), ({"PASS": 0, "FAIL": 2}, ["claims.unregularized_diverges.counts.FAIL"])],
    ids=["the-flips-count", "a-count-beyond-them"],
)
def test_a_fragile_verdict_is_fragile_in_every_file_and_so_are_the_counts_it_moves(chaos_repo, counts, robust):
    """The replica's flip, named only as a chaotic record in results/claims.json (no measured
    fragile list), flips the same verdict in metrics/claims.json, where no number stands beside
    it, and moves the claim's counts: one verdict, one class; a count that moved by more than the
    fragile flips is a change."""
    repo, doc = chaos_repo
    doc["fragile"] = []
    _write(repo, "results/chaos.json", doc)
    _write(repo, "metrics/claims.json", _metrics_claims("PASS", {"PASS": 1, "FAIL": 0}))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "metrics/claims.json; no measured fragile list")
    _rerun(repo)
    _write(repo, "metrics/claims.json", _metrics_claims("FAIL", counts))
    report = verify(repo)
    kinds = {(d.file, d.where): d.kind for d in report.fragile}
    assert kinds[("metrics/claims.json", "claims.unregularized_diverges.experiments.roll_nvp.verdict")] == (
        "fragile verdict flipped (the same verdict in another file is)"
    )
    assert kinds[("metrics/claims.json", "claims.unregularized_diverges.counts.PASS")] == (
        "fragile verdict flipped (a count of its experiments' fragile verdicts)"
    )
    assert [d.where for d in report.differences] == robust
    assert report.reproduced == (not robust)


@pytest.mark.parametrize(
    ("counts", "robust"),
    [({"PASS": 0, "FAIL": 1}, []), ({"PASS": 0, "FAIL": 2}, ["conclusions.paper_claim_3.counts.FAIL"])],
    ids=["the-flips-count", "a-count-beyond-them"],
)
def test_a_conclusions_counts_move_with_its_claims_flips_in_chaotic_records(tmp_path, counts, robust):
    """A rerun flips a verdict the measurement never saw flip, in a chaotic record: the paper
    claim's conclusion, which counts only the verdicts not measured fragile, counts it elsewhere. A
    count moved by exactly that flip is fragile too; a count moved by more is a change."""
    from flowtheory.pipeline.verify import measure_chaos

    def sectioned(claims: list, conclusion_counts: dict) -> dict:
        conclusion = {"id": "paper_claim_3", "claims": ["unregularized_diverges"], "counts": conclusion_counts}
        return {"conclusions": [conclusion], "claims": claims}

    repo, replica = tmp_path / "repo", tmp_path / "replica"
    _git(repo if repo.mkdir() is None else repo, "init", "-q")
    _results(repo, CHAOS_TRAIN, sectioned(CHAOS_CLAIMS, {"PASS": 1, "FAIL": 0}), CHAOS_HISTORY)
    train, claims, history = _replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    claims[0]["experiments"]["roll_nvp"].update(verdict="PASS", passed=True)  # its numbers move, its verdict not
    claims[0].update(verdict="PASS", passed=True)
    _results(replica, train, sectioned(claims, {"PASS": 1, "FAIL": 0}), history)
    doc = measure_chaos(repo, {"FLOWTHEORY_PERTURB_INIT=up": replica}, [CHAOS_CONFIG], head={"config": "x"})
    assert doc["fragile"] == []  # the measurement saw no flip
    _write(repo, "results/chaos.json", doc)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "results and their chaos measurement")
    train, claims, history = _replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)  # this rerun flips it
    _results(repo, train, sectioned(claims, counts), history)
    report = verify(repo)
    kinds = {(d.file, d.where): d.kind for d in report.fragile}
    assert kinds[("results/claims.json", "claims.unregularized_diverges.experiments.roll_nvp.verdict")] == (
        "fragile verdict flipped (chaotic record)"
    )
    assert kinds[("results/claims.json", "conclusions.paper_claim_3.counts.PASS")] == (
        "fragile verdict flipped (a count of its claims' verdicts flipped in chaotic records)"
    )
    assert [d.where for d in report.differences] == robust
    assert report.reproduced == (not robust)


def test_a_chaos_file_measured_on_other_results_is_ignored(chaos_repo):
    repo, doc = chaos_repo
    doc["measured_on"]["metrics/train.json"] = "sha256:0"
    doc["measured_on_experiments"] = {e: "sha256:0" for e in doc["measured_on_experiments"]}
    _write(repo, "results/chaos.json", doc)
    _git(repo, "commit", "-qam", "stale chaos file")
    _rerun(repo)
    report = verify(repo)
    assert "was measured on another metrics/train.json than the one at HEAD: ignored" in report.chaos
    assert not report.reproduced and not report.fragile


def _retrain(repo: Path, experiment: str, nll: float) -> None:
    """Commits ``experiment``'s training results as retrained after the chaos measurement."""
    train = json.loads((repo / "metrics" / "train.json").read_text())
    for run in train[experiment]["plain" if experiment == "roll_nvp" else "none"].values():
        run["final_train_nll"] = nll
    _write(repo, "metrics/train.json", train)
    _git(repo, "commit", "-qam", f"{experiment} retrained")


def test_a_chaos_file_still_applies_to_the_experiments_unchanged_since_it_was_measured(chaos_repo):
    """Another experiment retrained (or added) since the measurement: the chaotic one keeps its
    measured spread, the retrained one the round-off tier."""
    repo, _ = chaos_repo
    _retrain(repo, "gaussian_linear", 2.6)
    _rerun(repo, lambda t: t["gaussian_linear"]["none"]["seed0"].update(final_train_nll=2.6))
    report = verify(repo)
    assert "applied to the 1 experiment(s) whose training results at HEAD are the measured ones" in report.chaos
    assert report.reproduced, [d for d in report.differences]
    _rerun(repo, lambda t: t["gaussian_linear"]["none"]["seed0"].update(final_train_nll=2.6 * (1 + 1e-6)))
    assert not verify(repo).reproduced  # the retrained experiment: the round-off tier


def test_a_chaos_file_whose_chaotic_experiment_changed_no_longer_widens_it(chaos_repo):
    repo, _ = chaos_repo
    _retrain(repo, "roll_nvp", 3.7)
    _rerun(repo)
    report = verify(repo)
    assert "applied to the 1 experiment(s)" in report.chaos and "not to the claims' overall numbers" in report.chaos
    assert not report.reproduced


def test_rows_are_matched_by_identity_and_a_chaotic_run_may_stop_elsewhere(chaos_repo):
    """An extra epoch of one run shifts the rows of the others; they are still matched by
    (experiment, stabilizer, seed, epoch). With the measurement the row of a chaotic run may come
    or go (its history numbers are chaotic); without, it is named."""
    repo, _ = chaos_repo
    _, _, hist = _replica(CHAOS_TRAIN, CHAOS_CLAIMS, CHAOS_HISTORY)
    _rerun(repo, history=[*hist[:4], "roll_nvp,plain,0,3,5.0", *hist[4:]])
    assert verify(repo).reproduced
    report = verify(repo, chaos=None, use_chaos=False)
    rows = [(d.where, d.kind) for d in report.differences if d.file == "plots/train_history.csv"]
    assert rows == [
        ("row (experiment=roll_nvp, stabilizer=plain, seed=0, epoch=3)", "changed"),
        ("row 3 (experiment=roll_nvp, stabilizer=plain, seed=0, epoch=2) train_nll", "beyond round-off (rel 0.019; "
         "float64: rel 1e-09 + abs 1e-12)"),
    ]  # fmt: skip


def test_rows_that_share_their_leading_cells_are_matched_in_order():
    """A run's L-BFGS rows share its last epoch, so no run of leading columns tells every row apart:
    they are matched by their place among the rows that share those cells. One more polish chunk
    of one run is one new row; the rows of the runs after it are still compared with their own (by
    position, every one of them would have been compared with its neighbour's)."""
    head = "experiment,stabilizer,seed,epoch,phase,valid_nll\n"
    a = ["a,none,0,1,adam,1.0", "a,none,0,2,adam,0.9", "a,none,0,2,lbfgs,0.8", "a,none,0,2,lbfgs,0.7"]
    b = ["b,none,0,1,adam,2.0", "b,none,0,1,lbfgs,1.9", "b,none,0,1,lbfgs,1.8"]
    old = head + "\n".join(a + b) + "\n"
    new = head + "\n".join([*a, "a,none,0,2,lbfgs,0.65", *b[:2], "b,none,0,1,lbfgs,1.75"]) + "\n"
    report = Report()
    compare_csv(old, new, "plots/train_history.csv", report, set())
    assert [(d.where, d.kind) for d in report.differences] == [
        ("row (experiment=a, stabilizer=none, seed=0, epoch=2, phase=lbfgs)", "changed"),
        ("row 7 (experiment=b, stabilizer=none, seed=0, epoch=1, phase=lbfgs) valid_nll",
         "beyond round-off (rel 0.028; float64: rel 1e-09 + abs 1e-12)"),
    ]  # fmt: skip
    c = report.count("plots/train_history.csv")
    assert (c.numbers, c.identical) == (21, 20)  # seed, epoch and value of the 7 rows compared


def test_the_committed_example_is_a_chaos_file():
    """tests/configs/chaos_realnvp.chaos.json: what python -m bench.chaos wrote for the chaos test
    config (two replicas, ulp up and down), the format's example."""
    from flowtheory.pipeline.verify import Chaos, Where, fragile_verdicts, load_chaos

    doc = load_chaos(Path(__file__).parents[1] / "configs" / "chaos_realnvp.chaos.json")
    assert doc["summary"]["stable"] == ["g2_linear"] and doc["summary"]["chaotic"] == ["roll_nvp"]
    assert fragile_verdicts(doc) == {("manifold_unregularized_illposed", "roll_nvp")}  # a per-run state
    chaos = Chaos(doc)
    nll = Where("roll_nvp", "roll_nvp/plain/seed0", "metrics/train.json:final_train_nll")
    assert 0 < chaos.spread(nll) < 1 and chaos.spread(Where("g2_linear", None, nll.key)) is None
    assert chaos.may_change(Where("roll_nvp", "roll_nvp/noisy/seed1", "metrics/train.json:message"))
    assert all(v > 0 for e in doc["experiments"].values() for v in e.get("spread", {}).values())
    with pytest.raises(ValueError, match="not a chaos file"):
        load_chaos(b'{"format": "something else"}')


def test_a_margin_moves_with_its_value_and_is_rounded_at_its_operands():
    """``margin = threshold - measured`` near zero: a round-off move of ``measured`` moves it by as
    much, which relative to the margin itself is far beyond round-off; a margin that moved without
    its value, or by more than it, beyond the round-off of its operands, is still a change."""
    old = {"measured": 0.99999, "threshold": 1.0, "margin": 1.0 - 0.99999}
    new = {"measured": 0.99999 + 5e-11, "threshold": 1.0, "margin": 1.0 - (0.99999 + 5e-11)}
    report = Report()
    compare_json(old, new, "f.json", report, set())
    assert report.reproduced and report.total("within") == 2
    alone = {"measured": old["measured"], "threshold": 1.0, "margin": old["margin"] - 5e-9}
    further = {"measured": old["measured"] + 5e-10, "threshold": 1.0, "margin": old["margin"] - 2e-9}
    for rerun in (alone, further):
        report = Report()
        compare_json(old, rerun, "f.json", report, set())
        assert [d.where for d in report.differences] == ["margin"]
    report = Report()
    compare_json({"gap": 0.3, "gap_margin": 0.2}, {"gap": 0.3, "gap_margin": 0.2 + 1e-9}, "f.json", report, set())
    assert [d.where for d in report.differences] == ["gap_margin"]


def test_a_difference_of_two_curve_values_is_rounded_at_their_size():
    """A run's window change (best objective before the window - best within it) is a small
    difference of large values: it moves by the round-off of its operands, not of itself (the
    committed case: 0.034 between objectives of about -191, rel 1.4e-9 on another round-off); a
    move of rel 1e-4 is still a change, and a record without the operand keeps the plain tier."""
    old = {"conv_window_change": 0.033996843829271484, "objective_final": -190.944455612708}
    for moved, held in ((0.03399684377998824, True), (0.033996843829271484 * (1 + 1e-4), False)):
        report = Report()
        compare_json(old, {**old, "conv_window_change": moved}, "metrics/train.json", report, set())
        assert report.reproduced is held
    report = Report()
    compare_json({"conv_window_change": 0.034}, {"conv_window_change": 0.034 * (1 + 1.4e-9)}, "f.json", report, set())
    assert [d.where for d in report.differences] == ["conv_window_change"]


def _status_counts(converged: int, not_converged: int) -> str:
    return (
        "experiment,stabilizer,seeds,status_converged,status_not_converged\n"
        f"roll_nvp,plain,2,{converged},{not_converged}\ngaussian_linear,none,1,1,0\n"
    )


def _stops(seed: int, flips: bool):
    def edit(t):
        run = t["roll_nvp"]["plain"][f"seed{seed}"]
        run["steps"] = 640
        if flips:
            run["status"] = "not_converged"

    return edit


@pytest.mark.parametrize(
    ("edit", "table", "changes"),
    [
        (_stops(0, True), _status_counts(1, 1), []),
        (_stops(0, True), _status_counts(0, 2), ["status_converged", "status_not_converged"]),
        (
            _stops(1, False),
            _status_counts(1, 1),
            ["roll_nvp.plain.seed1.steps", "status_converged", "status_not_converged"],
        ),
    ],  # fmt: skip
    ids=["counters-of-the-flipped-run", "counts-beyond-its-flip", "no-status-flipped"],
)
def test_the_stop_counters_of_a_run_whose_status_flipped_fragilely_follow_from_it(chaos_repo, edit, table, changes):
    """roll_nvp seed 0 stops for another reason (its status, a verdict of a chaotic record, flips):
    its step count and the table's status counts over the experiment's seeds move with it. A count
    moved by more than the runs that flipped, or counters moved where no status flipped, may not."""
    repo, _ = chaos_repo
    _write(repo, "results/tables/table_status.csv", _status_counts(2, 0))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a status table")
    _rerun(repo, edit)
    _write(repo, "results/tables/table_status.csv", table)
    report = verify(repo)
    assert [d.where.rsplit(" ", 1)[-1] for d in report.differences] == changes
    if not changes:
        assert report.reproduced and {d.where.rsplit(" ", 1)[-1] for d in report.follows} == {
            "roll_nvp.plain.seed0.steps", "status_converged", "status_not_converged"}  # fmt: skip
        assert "3 value(s) that follow from fragile flips" in report.verdict()


@pytest.mark.parametrize(
    ("dim", "error", "changes"),
    [
        (1, 1.0, []),
        (
            1,
            2.0,
            [
                "unregularized_diverges.experiments.roll_nvp.dimension.dim_error",
                "unregularized_diverges.experiments.roll_nvp.dimension.prediction_holds",
            ],
        ),
        (
            2,
            1.0,
            [
                "unregularized_diverges.experiments.roll_nvp.dimension.dim_error",
                "unregularized_diverges.experiments.roll_nvp.dimension.prediction_holds",
            ],
        ),
        (1, 0.0, ["unregularized_diverges.experiments.roll_nvp.dimension.prediction_holds"]),
    ],  # fmt: skip
    ids=["follows", "moved-by-two", "no-neighbour-move", "a-boolean-alone"],
)
def test_claim_numbers_computed_from_a_dimension_that_moved_to_its_neighbour_follow_from_it(
    chaos_repo, dim, error, changes
):
    """The chaotic run's intrinsic dimension 2 -> 1 (allowed: its neighbour); the claim's error
    |d̂ - d| 0 -> 1 and the prediction it decides follow. An error moved by two, or one moved while
    no dimension moved, or the boolean alone, are changes (no replica moved the numbers beside them,
    so nothing else makes them chaotic)."""
    repo, _ = chaos_repo

    def claims(c, err=0.0, holds=True):
        c[0]["experiments"]["roll_nvp"]["dimension"] = {"dim_error": err, "prediction_holds": holds}

    committed = json.loads(json.dumps(CHAOS_CLAIMS))
    claims(committed)
    _write(repo, "results/claims.json", committed)
    _git(repo, "commit", "-qam", "the claim's dimension error")
    _rerun(
        repo,
        lambda t: t["roll_nvp"]["plain"]["seed0"].update(intrinsic_dim=dim),
        edit_claims=lambda c: claims(c, error, False),
    )
    report = verify(repo)
    assert [d.where for d in report.differences] == changes
    assert report.reproduced == (not changes)
