"""`make verify` (python -m flowtheory.pipeline.verify) on private copies of the tiny run, its
results committed first: regenerated summaries reproduce; a metric moved beyond round-off, or a
flipped claim verdict, does not; a change within round-off does. Then the stand-in for another
machine: a config with a stable and a chaotic experiment (tests/configs/chaos_realnvp.yaml), its
chaos measured by bench.chaos; a rerun with other round-off reproduces, a rerun with λ changed
does not."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from flowtheory.pipeline.paths import (
    CLAIMS_JSON,
    COMPONENTS_SPECTRA,
    COMPONENTS_SUMMARY,
    TRAIN_HISTORY,
    TRAIN_SUMMARY,
)
from flowtheory.pipeline.verify import CHAOS_JSON, COMPARED
from flowtheory.stages.train import PERTURB_INIT
from pipeline_project import commit_all, make_project, sh, snakemake

RUN = ("gaussian_linear", "none", "seed0")  # a float64 run of the tiny config
RUN32 = ("mnist_mlp", "none", "seed0")  # a float32 run


def _verify(project: Path, *args: str):
    proc = sh([sys.executable, "-m", "flowtheory.pipeline.verify", *args], project, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _edit_train_metrics(project: Path, edit) -> None:
    path = project / TRAIN_SUMMARY
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _metric(doc: dict, run: tuple[str, str, str]) -> dict:
    return doc[run[0]][run[1]][run[2]]


def test_regenerated_summaries_reproduce_the_committed_ones(clone_run):
    project = clone_run
    commit_all(project, "tiny run")
    regenerated = [TRAIN_SUMMARY, TRAIN_HISTORY, COMPONENTS_SUMMARY, COMPONENTS_SPECTRA]
    for p in regenerated:
        (project / p).unlink()
    snakemake(project, *regenerated)
    rc, out = _verify(project)
    assert rc == 0, out
    claims = json.loads((project / CLAIMS_JSON).read_text())["claims"]
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"REPRODUCED: {len(claims)} claims, all "), last
    assert " 0 beyond;" in last and "0 regenerated" in last
    # everything byte-identical, so every number identical
    n = int(last.split("; ")[1].split(" numbers")[0].replace(",", ""))
    assert n > 1000 and f"({n:,} identical)" in last
    assert "$(BIN)/python -m flowtheory.pipeline.verify --rev $(REV)" in (project / "Makefile").read_text()


def test_a_metric_moved_beyond_round_off_fails_naming_file_key_old_and_new(clone_run):
    project = clone_run
    commit_all(project, "tiny run")
    old = _metric(json.loads((project / TRAIN_SUMMARY).read_text()), RUN)["final_train_nll"]
    new = old * (1 + 1e-6)  # a millionth: far below a real change, far above float64 round-off
    _edit_train_metrics(project, lambda d: _metric(d, RUN).update(final_train_nll=new))
    rc, out = _verify(project)
    assert rc == 1, out
    assert f"{TRAIN_SUMMARY}: {'.'.join(RUN)}.final_train_nll: beyond round-off" in out
    assert f"{old!r} -> {new!r}" in out
    assert out.strip().splitlines()[-1].startswith("NOT REPRODUCED: 0 of ")
    assert "; 1 beyond;" in out


def test_changes_within_round_off_reproduce_and_are_counted(clone_run):
    project = clone_run
    commit_all(project, "tiny run")

    def nudge(doc):
        _metric(doc, RUN)["final_train_nll"] *= 1 + 1e-13  # float64 round-off
        _metric(doc, RUN32)["final_train_nll"] *= 1 + 1e-6  # float32 round-off

    _edit_train_metrics(project, nudge)
    rc, out = _verify(project)
    assert rc == 0, out
    assert f"{TRAIN_SUMMARY}: " in out and " 2 within, 0 beyond)" in out
    assert out.strip().splitlines()[-1].startswith("REPRODUCED: ")


def test_a_flipped_claim_verdict_fails(clone_run):
    project = clone_run
    commit_all(project, "tiny run")
    path = project / CLAIMS_JSON
    doc = json.loads(path.read_text())
    claims = doc["claims"]
    claims[0]["passed"] = not claims[0]["passed"]
    path.write_text(json.dumps(doc, indent=2))
    rc, out = _verify(project)
    assert rc == 1, out
    assert f"{CLAIMS_JSON}: claims.{claims[0]['id']}.passed: verdict flipped" in out
    assert out.strip().splitlines()[-1].startswith("NOT REPRODUCED: 1 of ") and f"({claims[0]['id']})" in out


# ------------------------------------------------- another machine's round-off, or a real change?

CHAOS_CONFIG = "tests/configs/chaos_realnvp.yaml"  # g2_linear: stable; roll_nvp: chaotic (RealNVP)


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory):
    """The chaos config run and committed, then its chaos measurement (``python -m bench.chaos``,
    two replicas: every initial parameter one ulp up, then one down) and the claims that mark its
    fragile verdicts committed beside the results."""
    project = make_project(tmp_path_factory.mktemp("chaos_project"), CHAOS_CONFIG)
    t0 = time.perf_counter()
    snakemake(project)
    commit_all(project, "results")
    t1 = time.perf_counter()
    sh([sys.executable, "-m", "bench.chaos", "--perturb", "up", "down", "--cores", "2"], project)
    snakemake(project)  # as `make chaos`: the claims rule marks the fragile verdicts it found
    commit_all(project, "chaos measurement")
    print(f"\nchaos config: run {t1 - t0:.0f} s, chaos measurement {time.perf_counter() - t1:.0f} s")
    return project


@pytest.fixture
def chaos_clone(chaos_run, tmp_path):
    dst = tmp_path / "project"
    shutil.copytree(chaos_run, dst, symlinks=True)
    return dst


def test_the_chaos_measurement_tells_the_stable_experiment_from_the_chaotic_one(chaos_run):
    doc = json.loads((chaos_run / CHAOS_JSON).read_text())
    assert doc["perturbations"] == ["FLOWTHEORY_PERTURB_INIT=up", "FLOWTHEORY_PERTURB_INIT=down"]
    assert doc["config"] == "config/config.yaml"
    assert doc["summary"]["stable"] == ["g2_linear"] and doc["summary"]["chaotic"] == ["roll_nvp"]
    stable, chaotic = doc["experiments"]["g2_linear"], doc["experiments"]["roll_nvp"]
    assert stable["beyond_round_off"] == 0 and stable["largest_round_off"] < 1e-9
    assert {r["class"] for r in stable["runs"].values()} == {"stable"}
    # the unregularized runs decorrelate: their final NLL moves by a percent or more
    assert chaotic["runs"]["roll_nvp/plain/seed0"]["class"] == "chaotic"
    assert chaotic["spread"]["metrics/train.json:final_train_nll"] > 1e-3
    assert "metrics/train.json:lam" not in chaotic["spread"]  # a setting does not move


def _value_files(project: Path) -> list[str]:
    """The files verify compares by value: the reruns rebuild these (the figures stay as they are)."""
    found = {p for pattern, kind in COMPARED.items() if kind != "bytes" for p in project.glob(pattern)}
    return sorted(str(p.relative_to(project)) for p in found)


def _rerun_train(project: Path, monkeypatch, perturb: str | None = None) -> None:
    if perturb:
        monkeypatch.setenv(PERTURB_INIT, perturb)
    snakemake(project, *_value_files(project), "--forcerun", "train")


def test_a_rerun_with_other_round_off_reproduces_given_the_chaos_measurement(chaos_clone, monkeypatch):
    """Stands in for another machine: every run retrained from parameters two ulps *down* (the
    measurement moved them one up and one down). The chaotic experiment lands elsewhere, within its
    measured spread; verdicts decided from its chaotic numbers may flip and are counted apart; the
    stable experiment reproduces to round-off. Without the measurement the same rerun is NOT
    REPRODUCED."""
    project = chaos_clone
    _rerun_train(project, monkeypatch, "-2")
    rc, out = _verify(project)
    assert rc == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("REPRODUCED: ") and "values of chaotic runs within 30x their measured spread" in last
    assert "chaotic runs: results/chaos.json at HEAD: 1 chaotic experiment(s) (roll_nvp)" in out
    assert int(last.split(" values of chaotic runs")[0].rsplit(" ", 1)[1].replace(",", "")) > 100
    rc, out = _verify(project, "--no-chaos")
    assert rc == 1 and "roll_nvp" in out and "g2_linear" not in out.split("beyond tolerance or changed")[1], out


def test_a_rerun_with_a_setting_changed_does_not_reproduce(chaos_clone):
    """A rerun with the noise stabilizer's λ doubled (0.01 -> 0.02; Snakemake reruns what it
    touches: the chaotic experiment only): NOT REPRODUCED, naming what moved."""
    project = chaos_clone
    cfg = project / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("noisy: {kind: noise, lam: 0.01}", "noisy: {kind: noise, lam: 0.02}"))
    snakemake(project, *_value_files(project))
    rc, out = _verify(project)
    assert rc == 1, out
    for seed in (0, 1):
        assert f"{TRAIN_SUMMARY}: roll_nvp.noisy.seed{seed}.lam: beyond round-off" in out
        assert "0.01 -> 0.02" in out
    assert out.strip().splitlines()[-1].startswith("NOT REPRODUCED: ")
