"""The DAG on a real SLURM cluster: `config/ci.yaml` through `profiles/slurm` on a one-node cluster
started on this machine (`tools/slurm/cluster.sh`: Debian's slurm-wlm and munge), compared byte for
byte with the local tiny run (the session's `ci_run`). Every rule except the target rule `all` must
be an sbatch job that slurmctld ran to completion; afterwards the daemons are stopped and nothing is
left behind (no process, no folder, no file in /etc/slurm).

Skips only where the cluster cannot be had at all: not root (slurmd and munged need it), or
slurm-wlm/munge missing and not installable (`make test-slurm`, as root). FLOWTHEORY_REQUIRE_SLURM=1
(set by `.ci/run`) turns those skips into failures. Run with `-s` to see the two wall times.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from pipeline_project import (
    BIN,
    ROOT,
    SLURM_BINARIES,
    dry_run_jobs,
    env_for,
    make_project,
    output_hashes,
    unloadable_outputs,
    which,
)

CLUSTER = ROOT / "tools" / "slurm" / "cluster.sh"
PARTITION = "debug"  # the partition cluster.sh creates (FLOWTHEORY_SLURM_PARTITION)
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
#: rules Snakemake runs itself, on the submit host (Snakefile's `localrules`)
LOCAL_RULES = {"all", "stage_data", "stage_train", "stage_analysis", "stage_components", "stage_figures"}
#: first squeue poll after a submission; the plugin then adds 10 s per poll that finds nothing done
#: (its default, 40 s, suits a busy cluster, not one whose jobs take seconds)
FIRST_POLL_S = 5
RUN_TIMEOUT_S = 1800


def _unavailable(reason: str):
    if os.environ.get("FLOWTHEORY_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason} (FLOWTHEORY_REQUIRE_SLURM=1 makes this a failure)")
    pytest.skip(reason)


def _cluster(command: str, folder: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWTHEORY_SLURM_DIR": folder}
    env.pop("SLURM_CONF", None)
    return subprocess.run(["bash", str(CLUSTER), command], env=env, capture_output=True, text=True, timeout=timeout)


def _pids(folder: Path) -> list[int]:
    files = [folder / "munge" / "munged.pid", folder / "run" / "slurmctld.pid", folder / "run" / "slurmd.pid"]
    return [int(f.read_text()) for f in files if f.is_file() and f.read_text().strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def slurm_installed():
    """slurm-wlm and munge, installed here if need be; skips (before the session's local run is
    made for nothing) where that cannot be done."""
    if os.geteuid() != 0:
        _unavailable("a SLURM cluster on this machine needs root (slurmd, slurmctld; munged as munge)")
    if not all(which(b) for b in SLURM_BINARIES):
        if not shutil.which("apt-get"):
            _unavailable("slurm-wlm/munge are not installed and there is no apt-get to install them")
        proc = _cluster("install", "/nonexistent", timeout=900)
        if proc.returncode != 0 or not all(which(b) for b in SLURM_BINARIES):
            _unavailable(f"cannot install slurm-wlm and munge: {(proc.stdout + proc.stderr)[-1500:]}")


@pytest.fixture(scope="module")
def slurm_cluster(slurm_installed):
    """A running one-node cluster in its own temporary folder; stopped (and removed) at the end
    whatever happens. Yields (folder, SLURM_CONF path, the node's CPUs)."""
    system_conf_before = SYSTEM_CONF.exists()
    folder = tempfile.mkdtemp(prefix="flowtheory-slurm-", dir="/tmp")  # short: munge's socket is in it
    try:
        proc = _cluster("start", folder)
        assert proc.returncode == 0, f"cluster.sh start failed:\n{proc.stdout}\n{proc.stderr}"
        conf = Path(folder) / "slurm.conf"
        assert f"export SLURM_CONF={conf}" in proc.stdout, proc.stdout
        # the node has the CPUs asked for, at most the machine's, whatever OMP_NUM_THREADS says (1 here,
        # tests/conftest.py; GNU nproc obeys it, and a 2-core machine once got a 1-CPU node)
        assert os.environ.get("OMP_NUM_THREADS") == "1"
        wanted = min(int(os.environ.get("FLOWTHEORY_SLURM_CPUS", "2")), len(os.sched_getaffinity(0)))
        assert f", {wanted} CPUs, " in proc.stderr, proc.stderr
        yield Path(folder), conf, wanted
    finally:
        _cluster("stop", folder)
        shutil.rmtree(folder, ignore_errors=True)
    assert SYSTEM_CONF.exists() == system_conf_before, "a slurm.conf was left in /etc/slurm"


def _slurm_command(partition: str) -> list[str]:
    """`snakemake --profile profiles/slurm` as a cluster user runs it here: the profile's default
    resources with this cluster's partition and no account (there is no accounting database), and
    squeue (not sacct) for job status."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    resources = {**profile["default-resources"], "slurm_partition": partition}
    resources.pop("slurm_account")  # an empty account: sbatch without -A (see docs/cluster.md)
    return [
        str(BIN / "snakemake"),
        "--profile",
        "profiles/slurm",
        "--default-resources",
        *(f"{k}={v}" for k, v in resources.items()),
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        str(FIRST_POLL_S),
    ]


@pytest.mark.slow
def test_ci_config_runs_on_slurm_with_the_local_outputs(slurm_installed, ci_run, slurm_cluster, tmp_path):
    local, local_seconds = ci_run
    folder, conf, cpus = slurm_cluster
    project = make_project(tmp_path / "slurm_project")
    expected_jobs = sum(n for rule, n in dry_run_jobs(project).items() if rule not in LOCAL_RULES)
    assert expected_jobs > 0

    # the jobs inherit this environment (sbatch --export=ALL): the venv's python and the copy's
    # package, and the cluster's config (SLURM_CONF; srun inside a job loses it, and finds it
    # through the wrapper in <folder>/bin, see cluster.sh)
    env = env_for(project)
    env["PATH"] = f"{folder / 'bin'}:{BIN}:{os.environ['PATH']}"
    env["PYTHONPATH"] = str(project / "src")
    env["SLURM_CONF"] = str(conf)
    t0 = time.perf_counter()
    proc = subprocess.run(
        _slurm_command(PARTITION), cwd=project, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    slurm_seconds = time.perf_counter() - t0
    (project / "run.log").write_text(proc.stdout + proc.stderr)
    print(
        f"\nconfig/ci.yaml wall time: SLURM (profiles/slurm, 1 node, {cpus} CPUs) {slurm_seconds:.1f} s; "
        f"local (--cores 2) {local_seconds:.1f} s"
    )
    failed_logs = "".join(p.read_text()[-2000:] for p in (project / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert proc.returncode == 0, (
        proc.stdout[-3000:] + proc.stderr[-5000:] + "\nfailed jobs' SLURM logs:\n" + failed_logs[-5000:]
    )

    # every job went through sbatch, and slurmctld saw each one finish with status 0
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr)
    assert len(submitted) == len(set(submitted)) == expected_jobs
    ctld_log = (folder / "log" / "slurmctld.log").read_text()
    completed = set(re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0\n", ctld_log))
    assert set(submitted) <= completed, f"not completed by slurmctld: {sorted(set(submitted) - completed)}"

    # the same results as the local run, byte for byte (figures and PDFs included), and up to date
    assert unloadable_outputs(project) == []
    ours, theirs = output_hashes(project), output_hashes(local)
    assert ours.keys() == theirs.keys(), sorted(ours.keys() ^ theirs.keys())
    differ = sorted(k for k in ours if ours[k] != theirs[k])
    assert not differ, f"{len(differ)} of {len(ours)} files differ from the local run, e.g. {differ[:8]}"
    assert (project / "dvc.lock").read_text() == (local / "dvc.lock").read_text()
    assert dry_run_jobs(project) == {}

    # stop: the daemons are gone, and so is the folder (config, key, state, logs)
    pids = _pids(folder)
    assert len(pids) == 3
    stop = _cluster("stop", str(folder))
    assert stop.returncode == 0, stop.stderr
    assert not [p for p in pids if _alive(p)], "a daemon outlived cluster.sh stop"
    assert not folder.exists()
