"""The chaos measurement as the claims and verify read it: which experiments it still speaks for
(flowtheory.pipeline.chaos). Verify's use of it is tested in test_verify.py."""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flowtheory.pipeline.chaos import (
    CHAOS_FORMAT,
    experiment_digests,
    fragile_verdicts,
    merge_measurement,
    restrict_to_unchanged,
    same_settings,
    summary_digests,
)
from flowtheory.pipeline.config import load

ROOT = Path(__file__).resolve().parents[2]


def test_an_experiments_digest_moves_with_its_own_settings_and_the_global_ones_only():
    config = load("config/config.yaml")
    before = experiment_digests(config)
    assert len(set(before.values())) == len(before)
    edited = copy.deepcopy(config)
    first, second = list(edited["experiments"])[:2]
    edited["experiments"][first]["epochs"] += 1
    edited["experiments"]["added"] = copy.deepcopy(edited["experiments"][second])
    after = experiment_digests(edited)
    assert after[first] != before[first]
    assert all(after[e] == before[e] for e in before if e != first)
    edited["seeds"] = [*edited["seeds"], 99]  # a global setting moves every digest
    assert all(d != before[e] for e, d in experiment_digests(edited).items() if e in before)


def test_same_settings_by_the_whole_config_or_each_experiments_own_digest():
    doc = {"config_digest": "sha256:c", "experiment_digests": {"a": "sha256:a", "b": "sha256:b"}}
    assert same_settings(doc, "sha256:c", {"a": "x", "b": "y", "new": "z"}) == {"a", "b", "new"}
    assert same_settings(doc, "sha256:other", {"a": "sha256:a", "b": "sha256:b2", "new": "z"}) == {"a"}
    # no digest of its own (a caller without them, or an old measurement without them): nothing
    assert same_settings(doc, "sha256:other", {"a": None, "b": None}) == set()
    assert same_settings({"config_digest": "sha256:c"}, "sha256:other", {"a": "sha256:a"}) == set()


def test_summary_digests_follow_each_experiments_entry_only():
    train = {"a": {"none": {"seed0": {"final_train_nll": 1.0}}}, "b": {"none": {"seed0": {"final_train_nll": 2.0}}}}
    before = summary_digests(train)
    train["b"]["none"]["seed0"]["final_train_nll"] = 2.5
    json_bytes = json.dumps(train).encode()
    after = summary_digests(json_bytes)
    assert after["a"] == before["a"] and after["b"] != before["b"]
    assert summary_digests(json_bytes) == summary_digests(train) and summary_digests(None) == {}


PERTURBATIONS = ["P=up", "P=2"]


def _flip(claim, experiment, where, by):
    return {"claim": claim, "experiment": experiment, "file": "results/claims.json", "where": where,
            "original": "PASS", "replica": "FAIL", "flipped_by": by}  # fmt: skip


def _doc(experiments, results, settings, config, fragile, other):
    return {
        "format": CHAOS_FORMAT,
        "perturbations": PERTURBATIONS,
        "measured_on": {"metrics/train.json": f"sha256:{''.join(results.values())}"},
        "measured_on_experiments": results,
        "config_digest": config,
        "experiment_digests": settings,
        "compared": ["metrics/train.json"],
        "summary": {},
        "experiments": experiments,
        "other": other,
        "fragile": fragile,
    }


def test_a_partial_measurement_replaces_only_its_experiments_and_adds_its_flips():
    chaotic = {"class": "chaotic", "numbers": 5, "beyond_round_off": 2, "spread": {"k": 0.1}, "changed": []}
    old = _doc(
        {"a": {"class": "stable", "numbers": 3}, "b": chaotic},
        {"a": "ra", "b": "rb"},
        {"a": "sa", "b": "sb"},
        "sha256:old-config",
        [_flip("c1", "b", "b.verdict", ["P=up"]), _flip("c1", None, "c1.verdict", ["P=up"])],
        {"class": "chaotic", "numbers": 4, "beyond_round_off": 1, "spread": {"x": 0.2, "y": None}, "changed": ["x"]},
    )
    # the partial replicas: "a" and "b" were copies (their records say nothing), "new" was retrained
    new = _doc(
        {"a": {"class": "stable", "numbers": 3}, "b": {"class": "stable", "numbers": 5}, "new": chaotic},
        {"a": "ra", "b": "rb", "new": "rn"},
        {"a": "sa", "b": "sb", "new": "sn"},
        "sha256:new-config",
        [
            _flip("c2", "new", "new.verdict", ["P=2"]),
            _flip("c1", None, "c1.verdict", ["P=2"]),
            _flip("c3", "b", "b.verdict", ["P=2"]),  # cannot come from "b": ignored
        ],
        {
            "class": "chaotic",
            "numbers": 6,
            "beyond_round_off": 0,
            "spread": {"x": 0.5, "y": 1.0, "z": 0.3},
            "changed": ["z"],
        },
    )
    merged = merge_measurement(old, new, ["new"])
    assert merged["experiments"]["b"] == chaotic and merged["experiments"]["new"] == chaotic
    assert merged["summary"] == {"stable": ["a"], "chaotic": ["b", "new"], "fragile": 3}
    assert fragile_verdicts(merged) == {("c1", "b"), ("c1", None), ("c2", "new")}
    claim_level = next(f for f in merged["fragile"] if f["experiment"] is None)
    assert claim_level["flipped_by"] == ["P=2", "P=up"]
    # each replica's own value survives the merge where the records carry them
    old["fragile"][1]["replicas"], new["fragile"][1]["replicas"] = {"P=up": "FAIL"}, {"P=2": "NOT_AT_OPTIMUM"}
    claim_level = next(f for f in merge_measurement(old, new, ["new"])["fragile"] if f["experiment"] is None)
    assert claim_level["replicas"] == {"P=up": "FAIL", "P=2": "NOT_AT_OPTIMUM"}
    assert merged["other"]["spread"] == {"x": 0.5, "y": None, "z": 0.3} and merged["other"]["changed"] == ["x", "z"]
    # every experiment of the new config is measured on its settings and results: it speaks for the whole
    assert merged["config_digest"] == "sha256:new-config" and merged["measured_on"] == new["measured_on"]
    assert same_settings(merged, "sha256:new-config", {"a": None, "b": None, "new": None}) == {"a", "b", "new"}
    assert [p["experiments"] for p in merged["parts"]] == [["a", "b"], ["new"]]
    assert restrict_to_unchanged(merged, {})[1] == []  # and still each experiment on its own results digest


def test_a_partial_merge_speaks_for_the_whole_config_only_when_every_experiment_is_current():
    rec = {"class": "stable", "numbers": 1}
    other = {"class": "stable", "numbers": 1, "beyond_round_off": 0, "largest_round_off": 1e-12}
    old = _doc({"a": rec, "b": rec}, {"a": "ra", "b": "rb"}, {"a": "sa", "b": "sb"}, "sha256:c", [], other)
    # "b" was retrained since the old measurement and is not remeasured now: its record is stale
    new = _doc({"a": rec, "b": rec, "n": rec}, {"a": "ra", "b": "rb2", "n": "rn"}, {"a": "sa", "b": "sb", "n": "sn"},
               "sha256:c2", [], other)  # fmt: skip
    merged = merge_measurement(old, new, ["n"])
    assert merged["config_digest"] is None and merged["measured_on"] == old["measured_on"]
    assert same_settings(merged, "sha256:c2", {"a": "sa", "b": "sb", "n": "sn"}) == {"a", "b", "n"}
    assert restrict_to_unchanged(merged, {"a": {"x": 1}})[1] == []  # results digests: summary_digests of train.json
    with pytest.raises(ValueError, match="other perturbations"):
        merge_measurement(old, {**new, "perturbations": ["P=up"]}, ["n"])
    with pytest.raises(ValueError, match="not measured: gone"):
        merge_measurement(old, new, ["gone"])


def test_a_partial_replica_starts_from_the_other_experiments_results(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ sits beside the package, not in it
    from bench.chaos import copy_results

    root, dst = tmp_path / "root", tmp_path / "replica"
    files = [
        "results/data/circle.npz",
        "results/runs/keep/none/seed0/metrics.json",
        "results/runs/redo/none/seed0/metrics.json",
        "results/runs/redo_too/none/seed0/metrics.json",  # a name that starts like a retrained one
        "results/analysis/redo/none/seed0/metrics.json",
        "results/components/keep/none/seed0/components.csv",
        "metrics/train.json",
        "plots/train_history.csv",
        "results/claims.json",
        "results/figures/fig.png",  # no measurement: not copied
    ]
    for i, f in enumerate(files):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(f)
        os.utime(root / f, (1_000_000 + i, 1_000_000 + i))
    copy_results(root, dst, ["redo"])
    copied = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert copied == sorted(
        f for f in files if "/redo/" not in f and not f.startswith("results/figures")
    )  # fmt: skip
    # with their times, so that Snakemake's mtime triggers rebuild only what the retrained ones touch
    assert all((dst / f).stat().st_mtime == (root / f).stat().st_mtime for f in copied)


def test_adding_replicas_refuses_what_it_cannot_add(tmp_path, monkeypatch, capsys):
    """``bench.chaos --add``: one clear error, before any replica runs, for a perturbation already
    measured (``up`` and ``1`` are one), a missing measurement, or a mix with a partial measurement."""
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.chaos

    ran = []
    monkeypatch.setattr(bench.chaos, "replicate", lambda *a, **k: ran.append(a))
    root = tmp_path / "root"
    (root / "config").mkdir(parents=True)
    (root / "config/config.yaml").write_text("experiments: {a: {}}\n")
    args = ["--root", str(root), "--out", "chaos.json"]
    for extra, message in [
        (["--add", "down"], "needs an existing measurement"),
        (["--add", "down", "--experiments", "a"], "not with --experiments"),
    ]:
        with pytest.raises(SystemExit):
            bench.chaos.main([*args, *extra])
        assert message in capsys.readouterr().err
    (root / "chaos.json").write_text(
        json.dumps({"format": CHAOS_FORMAT, "perturbations": ["FLOWTHEORY_PERTURB_INIT=up"]})
    )
    with pytest.raises(SystemExit):
        bench.chaos.main([*args, "--add", "1"])
    assert "--add 1: already measured in chaos.json" in capsys.readouterr().err
    assert ran == []


def test_make_chaos_gives_each_replica_every_core(monkeypatch):
    """`make chaos` exports OMP_NUM_THREADS=1 (one torch thread per job), which GNU nproc obeys: the
    replicas must get Snakemake's own count of the cores (`--cores all`), not nproc's 1."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.chaos import _cores

    assert _cores("all") == "all" and _cores("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _cores(bad)
    recipe = subprocess.run(["make", "-n", "chaos"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "python -m bench.chaos --cores all " in recipe and "nproc" not in recipe, recipe


def test_a_kept_replica_resumes_where_it_stopped(tmp_path, monkeypatch):
    """``bench.chaos --keep DIR`` run again: the replica's folder is reused, its tracked files copied
    over with their times (so Snakemake sees nothing new) and its Snakemake run told to redo the
    jobs an interruption left incomplete, not to stop on them."""
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.chaos

    root, dst = tmp_path / "root", tmp_path / "keep" / "replica_up"
    (root / "config").mkdir(parents=True)
    (root / "config/config.yaml").write_text("experiments: {}\n")
    monkeypatch.setattr(bench.chaos, "copy_project", lambda r, d: shutil.copytree(r, d, dirs_exist_ok=True))
    calls = []
    monkeypatch.setattr(
        bench.chaos.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0)
    )
    for _ in range(2):  # the first sitting, then the same command again
        bench.chaos.replicate(root, "config/config.yaml", dst, "up", 2, ["metrics/train.json"])
    assert len(calls) == 2 and calls[0] == calls[1]
    assert "--rerun-incomplete" in calls[1] and calls[1].index("metrics/train.json") < calls[1].index("--configfile")


#: a two-job workflow whose second job, the first time, kills the Snakemake that runs it (as a
#: session's end or the OOM killer would), leaving a half-written output and Snakemake's lock behind
KILLED_ONCE = """
rule all:
    input: "results/b.txt"
rule a:
    output: "results/a.txt"
    shell: "echo a > {output}"
rule b:
    input: "results/a.txt"
    output: "results/b.txt"
    shell: "if [ -e killed.once ]; then echo b > {output}; else touch killed.once; echo half > {output}; kill -9 $PPID; sleep 2; fi"
"""


def test_a_killed_replica_resumes_where_it_stopped(tmp_path, monkeypatch):
    """``bench.chaos --keep DIR`` after a sitting that was killed: the same command again unlocks
    the folder, keeps the finished job's output (not run again) and redoes the killed one; while a
    sitting holds the folder, a second one is refused with one clear error."""
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.chaos

    root, dst = tmp_path / "root", tmp_path / "keep" / "replica_up"
    (root / "config").mkdir(parents=True)
    (root / "config/config.yaml").write_text("x: 1\n")
    (root / "Snakefile").write_text(KILLED_ONCE)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)

    def sitting():
        return bench.chaos.replicate(root, "config/config.yaml", dst, "up", 1)

    with pytest.raises(RuntimeError, match="the perturbed run .* failed"):
        sitting()
    assert (dst / "results/b.txt").read_text() == "half\n" and any((dst / ".snakemake/locks").iterdir())
    first = (dst / "results/a.txt").stat().st_mtime_ns
    dead = subprocess.Popen(["true"])
    dead.wait()
    (dst / bench.chaos.SITTING).write_text(f"{dead.pid}\n")  # the killed sitting's claim
    sitting()
    assert (dst / "results/b.txt").read_text() == "b\n"
    assert (dst / "results/a.txt").stat().st_mtime_ns == first
    assert not (dst / bench.chaos.SITTING).exists()
    live = subprocess.Popen(["sleep", "60"])
    try:
        (dst / bench.chaos.SITTING).write_text(f"{live.pid}\n")
        with pytest.raises(RuntimeError, match=f"in use by another sitting \\(process {live.pid}\\)"):
            sitting()
    finally:
        live.kill()
        live.wait()
