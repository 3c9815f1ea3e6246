"""`make verify` (python -m flowtheory.pipeline.verify) on private copies of the tiny run, its
results committed first: regenerated summaries reproduce; a metric moved beyond round-off, or a
flipped claim verdict, does not; a change within round-off does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flowtheory.pipeline.paths import (
    CLAIMS_JSON,
    COMPONENTS_SPECTRA,
    COMPONENTS_SUMMARY,
    TRAIN_HISTORY,
    TRAIN_SUMMARY,
)
from pipeline_project import commit_all, sh, snakemake

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
