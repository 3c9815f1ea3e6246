"""DVC as the ledger of the tiny run, on private copies of it: `dvc repro` of a finished run and
after a param edit, `dvc exp run -S`, restoring the results of an older commit (`make checkout`),
sharing results through a DVC remote (`make pull` in a fresh clone), and comparing two commits'
curves with `dvc plots diff`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import yaml

from flowtheory.pipeline.config import runs
from flowtheory.pipeline.paths import MODEL, TRAIN_HISTORY
from pipeline_project import commit_all, git, output_hashes, pending_jobs, sh, snakemake

LAM = "stabilizers.{}.lam"


def _config(project: Path) -> dict:
    return yaml.safe_load((project / "config" / "config.yaml").read_text())


def _set_lam(project: Path, stabilizer: str, lam: float) -> None:
    config = _config(project)
    config["stabilizers"][stabilizer]["lam"] = lam
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _model_hashes(project: Path) -> dict[str, str]:
    hashes = output_hashes(project)
    return {k.removesuffix("/model.pt"): v for k, v in hashes.items() if k.endswith("/model.pt")}


def _runs_using(config: dict, stabilizer: str) -> set[str]:
    return {
        MODEL.format(experiment=e, stabilizer=s, seed=k).removesuffix("/model.pt")
        for e, s, k in runs(config)
        if s == stabilizer
    }


def _locked_lam(project: Path, stage: str, stabilizer: str) -> float:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return lock["stages"][stage]["params"]["config/config.yaml"]["stabilizers"][stabilizer]["lam"]


def _dvc_clean(project: Path) -> None:
    status = sh(["dvc", "status"], project).stdout
    assert "up to date" in status.lower() or status.strip() == "", status


def test_dvc_repro_of_a_finished_run_does_nothing_and_a_param_edit_reruns_only_its_jobs(clone_run):
    project = clone_run
    before = _model_hashes(project)
    mtimes = {p: p.stat().st_mtime_ns for p in (project / "results" / "runs").rglob("model.pt")}
    for stage in ("data", "train", "figures"):
        proc = sh(["dvc", "repro", stage], project)
        assert "Running stage" not in proc.stdout, proc.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes, "nothing may be rewritten"

    _set_lam(project, "weight_1e-1", 0.2)
    proc = sh(["dvc", "repro", "train"], project)
    assert "Running stage 'train'" in proc.stdout and "Running stage 'data'" not in proc.stdout, proc.stdout
    after = _model_hashes(project)
    assert after.keys() == before.keys()
    changed = {run for run in before if before[run] != after[run]}
    assert changed == _runs_using(_config(project), "weight_1e-1")
    assert _locked_lam(project, "train", "weight_1e-1") == 0.2
    assert sh(["dvc", "status", "train"], project).stdout.strip().lower().endswith("up to date.")
    metrics = json.loads((project / "metrics" / "train.json").read_text())
    assert metrics["line_linear"]["weight_1e-1"]["seed0"]["lam"] == 0.2


def test_dvc_exp_run_with_a_param_changes_the_metrics(clone_run):
    """`dvc exp run` only sees files tracked by Git or DVC: the copy's state is committed first."""
    project = clone_run
    commit_all(project, "tiny run")
    before = _model_hashes(project)
    sh(["dvc", "exp", "run", "train", "-S", f"config/config.yaml:{LAM.format('jacobian_1e-1')}=0.2"], project)
    after = _model_hashes(project)
    assert {r for r in before if before[r] != after[r]} == _runs_using(_config(project), "jacobian_1e-1")

    shown = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
    baseline = next(row for row in shown if row["rev"] != "workspace")
    assert len(baseline["experiments"]) == 1
    exp = baseline["experiments"][0]["revs"][0]

    def lam_and_nll(row):
        data = row["data"]
        lam = data["params"]["config/config.yaml"]["data"]["stabilizers"]["jacobian_1e-1"]["lam"]
        run = data["metrics"]["metrics/train.json"]["data"]["gaussian_linear"]["jacobian_1e-1"]["seed0"]
        return lam, run["lam"], run["final_train_nll"]

    (old_lam, old_run_lam, old_nll), (new_lam, new_run_lam, new_nll) = lam_and_nll(baseline), lam_and_nll(exp)
    assert (old_lam, old_run_lam, new_lam, new_run_lam) == (0.1, 0.1, 0.2, 0.2)
    assert new_nll != old_nll

    # the experiment is applied to the workspace: `dvc metrics diff` against the baseline commit
    # shows the change, and only in the runs that use the stabilizer
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json", "HEAD"], project).stdout)
    keys = set(diff["metrics/train.json"])
    assert "gaussian_linear.jacobian_1e-1.seed0.final_train_nll" in keys
    using = {f"{e}.{s}." for e, s, _ in runs(_config(project)) if s == "jacobian_1e-1"}
    assert all(any(k.startswith(u) for u in using) for k in keys), sorted(k for k in keys if k[:30] not in using)[:5]


def test_checkout_of_an_older_commit_restores_its_results(clone_run):
    """`git checkout <rev> && make checkout` (= `dvc checkout` + `snakemake --touch`)."""
    project = clone_run
    first = commit_all(project, "tiny run")
    results = output_hashes(project)
    _set_lam(project, "jacobian_1e-1", 0.2)
    snakemake(project)  # the onsuccess hook records the new results in dvc.lock
    _dvc_clean(project)
    commit_all(project, "jacobian_1e-1 at 0.2")
    assert output_hashes(project) != results
    assert _locked_lam(project, "train", "jacobian_1e-1") == 0.2

    git(project, "checkout", "-q", first)
    # what `make checkout` runs (the Makefile target needs the venv at .venv, which copies lack)
    make = (project / "Makefile").read_text()
    assert "dvc checkout && snakemake --cores 1 --touch" in make
    sh(["dvc", "checkout"], project)
    snakemake(project, "--touch")
    assert pending_jobs(project) == {}
    _dvc_clean(project)
    restored = output_hashes(project)
    assert restored.keys() == results.keys()
    assert [k for k in results if results[k] != restored[k]] == []
    assert _locked_lam(project, "train", "jacobian_1e-1") == 0.1


def test_results_pushed_to_a_remote_are_pulled_byte_identical_into_a_fresh_clone(clone_run, tmp_path):
    """`dvc remote add -d`, `dvc push`; elsewhere `git clone`, then `make pull` (= `dvc pull` +
    `snakemake --touch`)."""
    project = clone_run
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "local", str(remote)], project)
    commit_all(project, "tiny run and its DVC remote")
    sh(["dvc", "push"], project)
    assert any(p.is_file() for p in remote.rglob("*"))

    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(project), str(fresh))
    assert not (fresh / "results" / "runs").exists()
    sh(["dvc", "pull"], fresh)
    snakemake(fresh, "--touch")
    assert pending_jobs(fresh) == {}
    _dvc_clean(fresh)
    original, pulled = output_hashes(project), output_hashes(fresh)
    assert pulled.keys() == original.keys()
    assert [k for k in original if original[k] != pulled[k]] == []
    shutil.rmtree(fresh / ".dvc" / "cache", ignore_errors=True)  # keep tmp small


def test_dvc_plots_diff_draws_each_run_once_per_commit(clone_run, tmp_path):
    """`dvc plots diff HEAD~1 HEAD` (README): every run's NLL curves for both commits, told apart by
    the dash; only the run that changed differs."""
    project = clone_run
    commit_all(project, "tiny run")
    path = project / TRAIN_HISTORY
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    changed = ("gaussian_linear", "none", "0")
    for r in rows:
        if (r["experiment"], r["stabilizer"], r["seed"]) == changed and r["train_nll"]:  # polish rows have none
            r["train_nll"] = str(float(r["train_nll"]) + 0.5)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    commit_all(project, "one run's NLL moved")

    shown = json.loads(sh(["dvc", "plots", "diff", "HEAD~1", "HEAD", "--json"], project).stdout)["data"]
    values = shown["nll"][0]["content"]["data"]["values"]
    runs = {(r["experiment"], r["stabilizer"], r["seed"]) for r in rows}
    lines = {(v["rev"], v["experiment"], v["stabilizer"], v["seed"], v["field"]) for v in values}
    assert lines == {(rev, *run, f) for rev in ("HEAD~1", "HEAD") for run in runs for f in ("train_nll", "valid_nll")}
    curves: dict = {}
    for v in values:
        curves.setdefault((v["experiment"], v["stabilizer"], v["seed"], v["field"]), {}).setdefault(
            v["rev"], []
        ).append(v["dvc_inferred_y_value"])
    # compared as text: a polish row's missing training NLL is NaN in both revisions
    moved = {k for k, by_rev in curves.items() if list(map(str, by_rev["HEAD~1"])) != list(map(str, by_rev["HEAD"]))}
    assert moved == {(*changed, "train_nll")}

    sh(["dvc", "plots", "diff", "HEAD~1", "HEAD", "-o", str(tmp_path / "plots")], project)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "Training and validation NLL per epoch, one line per run" in html and '"strokeDash"' in html
