"""Which runs are chaotic under round-off? Perturbation replicas, measured (``results/chaos.json``).

The pipeline runs again in a throwaway copy of the repository (its tracked files, less the results
and DVC), once per perturbation and only up to the files compared (figures are no measurement),
with ``FLOWTHEORY_PERTURB_INIT`` set: every initial parameter of every run moves by whole ulps
(:func:`flowtheory.stages.train.perturb_init`), which stands in for another host's round-off. Each
replica's ``metrics/*.json``, ``results/claims.json``, ``plots/*.csv`` and ``results/tables/*.csv``
are compared with the working tree's (the committed results, which must come from the same config)
by :func:`flowtheory.pipeline.verify.measure_chaos`. Written: per experiment and per run, ``stable``
(every number within the round-off tier of ``make verify``) or ``chaotic``; for a chaotic
experiment the largest relative change per key over the replicas (its spread) and the keys whose
strings, nulls or rows changed; and the verdicts a replica flipped (``fragile``). ``make verify``
reads the file (docs/measurements.md#chaos; the format is documented in
:mod:`flowtheory.pipeline.verify`).

Usage: ``python -m bench.chaos [--config config/config.yaml] [--out results/chaos.json]
[--perturb up down 2] [--cores 2|all] [--experiments E ... | --add P ... | --merge FILE ...]`` (``make chaos``). Each perturbation is one replica and costs one
pipeline run of that config. Three by default because one replica is one sample: a run whose
trajectories are still separating exponentially moves by amounts that differ by orders of
magnitude from one perturbation to the next; measured on the chaos test config, a rerun exceeded
verify's tolerance in 5 of 20 trials with one replica, 1 of 30 with two and none of 20 with three
(docs/measurements.md#chaos). Regenerate the file whenever the committed results change (``make
chaos`` then reruns the claims, which mark its fragile verdicts): verify ignores a file measured on
another ``metrics/train.json``.

``--add P ...`` runs replicas with more perturbations, of the whole config, and adds them to the
existing ``results/chaos.json`` of the same committed results
(:func:`flowtheory.pipeline.chaos.merge_replicas`): the cost of those replicas only, and the same
document as one measurement of all of them. For when a rerun under other round-off flipped a verdict
the measured replicas did not (docs/measurements.md#chaos).

With ``--keep DIR`` the replicas run in ``DIR/replica_<perturbation>`` and stay there; the same
command again resumes a replica that was interrupted, even killed (its Snakemake run goes on from
the jobs it finished, ``--rerun-incomplete``, after removing the lock a killed sitting leaves), so a
measurement can span several sittings. A sitting holds its folder (``.chaos-sitting.pid``): the same
command started twice at once stops with one clear error.

``--merge FILE ...`` runs nothing: it merges whole-config measurements of the same committed
results taken separately (one replica each, say, run side by side or on other machines, each with
the same ``results/chaos.json`` copied in, as one run of all would have had) into ``--out``, with
:func:`flowtheory.pipeline.chaos.merge_replicas`, in the order given.

``--experiments E ...`` measures only those experiments (new or retrained ones) and merges the
result into the existing ``results/chaos.json``
(:func:`flowtheory.pipeline.chaos.merge_measurement`): each replica starts from a copy of every other
experiment's results, unperturbed, and retrains only ``E ...`` and what depends on them, so the cost
is theirs, not the whole config's. The perturbations are those of the existing file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from flowtheory.pipeline.chaos import load_chaos, merge_measurement, merge_replicas
from flowtheory.pipeline.paths import ANALYSIS_DIR, COMPONENTS_DIR, RUN_DIR
from flowtheory.pipeline.verify import CHAOS_JSON, COMPARED, measure_chaos
from flowtheory.stages.train import PERTURB_INIT, perturb_ulps

__all__ = ["compared_files", "copy_project", "copy_results", "main", "replicate"]

ROOT = Path(__file__).resolve().parents[1]
#: not copied: the results (the replica makes its own) and DVC (a replica records nothing)
SKIP = ("results/", "metrics/", "plots/", ".dvc/", "dvc.lock")
#: a partial replica's starting point (:func:`copy_results`): what the pipeline wrote before the figures
RESULTS = (
    "results/data",
    "results/runs",
    "results/analysis",
    "results/components",
    "results/tables",
    "metrics",
    "plots",
)
#: the per-experiment stage directories: not copied for a retrained experiment
EXPERIMENT_DIRS = (RUN_DIR, ANALYSIS_DIR, COMPONENTS_DIR)


def copy_project(root: Path, dst: Path) -> None:
    """The tracked files of ``root`` (less :data:`SKIP`) into ``dst``, and the chaos measurement of
    ``root`` if there is one: the claims rule sets its fragile verdicts aside, in the replica as in
    the original, so that the two claims files are comparable."""
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    copied = [f for f in files.splitlines() if not f.startswith(SKIP)] + [CHAOS_JSON]
    for f in copied:
        if (root / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, dst / f)


def copy_results(root: Path, dst: Path, retrained: list[str]) -> None:
    """The pipeline's results under ``root`` (:data:`RESULTS` and the claims) into ``dst``, with
    their modification times, less the stage directories of the ``retrained`` experiments: a
    pipeline run in ``dst`` with mtime triggers then retrains those and rebuilds what depends on them."""
    skip = {d.format(experiment=e) for d in EXPERIMENT_DIRS for e in retrained}
    for top in RESULTS:
        src = root / top
        if not src.is_dir():
            continue
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir() or any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / rel)
    for f in ("results/claims.json", "results/claims.md"):
        if (root / f).is_file():
            shutil.copy2(root / f, dst / f)


def compared_files(root: Path) -> list[str]:
    """The files a replica must rebuild: the results under ``root`` that verify compares by value
    (JSON and CSV; figures are not measurements)."""
    found = {p for pattern, kind in COMPARED.items() if kind != "bytes" for p in root.glob(pattern) if p.is_file()}
    return sorted(str(p.relative_to(root)) for p in found)


def _cores(value: str) -> int | str:
    """``--cores``: a positive number, or ``all``, which each replica's Snakemake resolves itself (not
    GNU ``nproc``, which obeys the OMP_NUM_THREADS=1 that ``make`` exports, and would say 1)."""
    if value == "all":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a positive number or all, not {value!r}")
    return int(value)


#: a sitting's claim on its replica folder (:func:`_sitting`)
SITTING = ".chaos-sitting.pid"


@contextlib.contextmanager
def _sitting(dst: Path):
    """Holds ``dst`` for this process while a replica runs there: refuses, with one clear error, a
    folder another live sitting holds (the same ``--keep`` command started twice); a claim left by
    a sitting that was killed is taken over."""
    claim = dst / SITTING
    if claim.is_file():
        text = claim.read_text().strip()
        try:
            pid = int(text)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            pass  # a killed sitting's
        except PermissionError:  # alive, another user's
            raise RuntimeError(f"{dst} is in use by process {text} ({claim})") from None
        else:
            if pid != os.getpid():
                raise RuntimeError(f"{dst} is in use by another sitting (process {pid}); if none runs, remove {claim}")
    claim.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        claim.unlink(missing_ok=True)


def replicate(
    root: Path,
    config: str,
    dst: Path,
    perturb: str = "up",
    cores: int | str = 2,
    targets: list[str] | None = None,
    retrain: list[str] | None = None,
) -> float:
    """The pipeline of ``config`` (a path relative to ``root``, or absolute) run from scratch in a
    copy of ``root`` at ``dst``, initial parameters perturbed, up to ``targets`` (default: every
    output); with ``retrain``, from a copy of the other experiments' results (:func:`copy_results`),
    retraining only those. Returns the wall seconds. In a kept folder where an earlier sitting was
    interrupted, even killed, it resumes: the jobs that finished are not run again."""
    dst.mkdir(parents=True, exist_ok=True)
    with _sitting(dst):
        return _replicate(root, config, dst, perturb, cores, targets, retrain)


def _replicate(root, config, dst, perturb, cores, targets, retrain) -> float:
    copy_project(root, dst)
    if retrain:
        copy_results(root, dst, retrain)
    cfg = Path(config) if Path(config).is_absolute() else dst / config
    if not Path(config).is_absolute():
        cfg.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / config, cfg)
    env = dict(os.environ, PYTHONPATH=str(dst / "src"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env[PERTURB_INIT] = perturb
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DVC_STAGE", None)
    snakemake = str(Path(sys.executable).parent / "snakemake")
    configfile = ["--configfile", str(cfg.relative_to(dst) if cfg.is_relative_to(dst) else cfg)]
    t0 = time.perf_counter()
    if (dst / ".snakemake" / "locks").is_dir() and any((dst / ".snakemake" / "locks").iterdir()):
        # no other sitting runs here (_sitting): the lock is a killed sitting's, which Snakemake
        # cannot tell from a live one and would stop on
        subprocess.run([snakemake, "--unlock", *configfile], cwd=dst, env=env, capture_output=True, check=True)
    proc = subprocess.run(
        [
            snakemake,
            *(targets or []),  # before --configfile, which takes every word that follows
            "--cores",
            str(cores),
            *configfile,
            # the copies carry no Snakemake metadata, and an existing summary is not rebuilt for a
            # missing input alone: the retrained experiments' jobs are forced, and what follows them
            *(["--forcerun", *(RUN_DIR.format(experiment=e) for e in retrain)] if retrain else []),
            *(["--rerun-triggers", "mtime"] if retrain else []),
            "--rerun-incomplete",  # a kept replica that was interrupted resumes where it stopped
        ],
        cwd=dst,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"the perturbed run in {dst} failed:\n{proc.stderr[-3000:]}")
    missing = [e for e in retrain or [] if not (dst / RUN_DIR.format(experiment=e)).is_dir()]
    if missing:  # not copied, so not retrained: the measurement would compare copies
        raise RuntimeError(f"the perturbed run in {dst} did not retrain {', '.join(missing)}")
    return time.perf_counter() - t0


def merged(parser: argparse.ArgumentParser, root: Path, files: list[str], out: Path) -> dict:
    """``--merge``: the measurements in ``files`` (relative to ``root``) as one, written to ``out``."""
    if len(files) < 2:
        parser.error("--merge: give at least two measurements")
    docs = []
    for f in files:
        try:
            doc = load_chaos(root / f)
        except ValueError as err:
            parser.error(f"--merge: {f}: {err}")
        if doc is None:
            parser.error(f"--merge: {f} is absent")
        docs.append(doc)
    doc = docs[0]
    try:
        for more in docs[1:]:
            doc = merge_replicas(doc, more, merged=True)
    except ValueError as err:
        parser.error(f"--merge: {err}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"merged {len(docs)} measurements ({', '.join(doc['perturbations'])}) into {out}")
    return doc


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="the config the committed results come from")
    parser.add_argument("--out", default=CHAOS_JSON, help=f"where to write (default {CHAOS_JSON})")
    parser.add_argument(
        "--perturb",
        nargs="+",
        default=None,
        help=f"one replica per value of {PERTURB_INIT} (default: up down 2, or with --experiments those of "
        "the existing file; each costs one pipeline run)",
    )
    parser.add_argument(
        "--experiments",
        nargs="+",
        default=None,
        help="measure only these experiments (new or retrained) and merge them into the existing file",
    )
    parser.add_argument(
        "--add",
        nargs="+",
        default=None,
        metavar="PERTURB",
        help="run replicas with these perturbations (whole config) and add them to the existing file",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="FILE",
        help="run nothing: merge these whole-config measurements of the same results into --out",
    )
    parser.add_argument(
        "--cores", type=_cores, default=2, help="cores per replica: a number, or all (Snakemake counts them)"
    )
    parser.add_argument("--root", default=str(ROOT), help="the repository whose results are the original")
    parser.add_argument(
        "--keep",
        default=None,
        help="run the replicas in this folder (one subfolder each) and keep them; the same command again "
        "resumes an interrupted replica there",
    )
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if args.merge:
        if args.add or args.experiments or args.perturb:
            parser.error("--merge: not with --add, --experiments or --perturb (it runs no replica)")
        return merged(parser, root, args.merge, root / args.out)
    config = yaml.safe_load((root / args.config).read_text())
    old = None
    if args.add:
        if args.experiments or args.perturb:
            parser.error("--add: not with --experiments or --perturb (it adds whole-config replicas)")
        old = load_chaos(root / args.out)
        if old is None:
            parser.error(f"--add needs an existing measurement to add to: {root / args.out} is absent")
        known = {perturb_ulps(p.split("=", 1)[1]) for p in old.get("perturbations", [])}
        again = [p for p in args.add if perturb_ulps(p) in known]  # "up" and "1" are one replica
        if again:
            parser.error(f"--add {' '.join(again)}: already measured in {args.out}")
        args.perturb = args.add
    elif args.experiments:
        unknown = sorted(set(args.experiments) - set(config["experiments"]))
        if unknown:
            parser.error(f"--experiments: not in {args.config}: {', '.join(unknown)}")
        old = load_chaos(root / args.out)
        if old is None:
            parser.error(f"--experiments needs an existing measurement to merge into: {root / args.out} is absent")
        measured = [p.split("=", 1)[1] for p in old.get("perturbations", [])]
        if args.perturb is None:
            args.perturb = measured
        elif args.perturb != measured:
            parser.error(f"--perturb {' '.join(args.perturb)}: the existing file used {' '.join(measured)}")
    args.perturb = args.perturb or ["up", "down", "2"]
    for value in args.perturb:
        if not perturb_ulps(value):
            parser.error(f"--perturb {value!r}: not a perturbation")
    with tempfile.TemporaryDirectory(prefix="flowtheory-chaos-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        replicas, walls = {}, []
        for value in args.perturb:
            dst = base / f"replica_{value}"
            dst.mkdir(parents=True, exist_ok=True)
            print(f"running {args.config} with {PERTURB_INIT}={value} in {dst} ...", flush=True)
            walls.append(replicate(root, args.config, dst, value, args.cores, compared_files(root), args.experiments))
            replicas[f"{PERTURB_INIT}={value}"] = dst
        doc = measure_chaos(
            root,
            replicas,
            [config],
            head={
                "about": "python -m bench.chaos: the pipeline rerun with every initial parameter moved by whole ulps, "
                "compared with the committed results (docs/measurements.md#ensembles)",
                "config": args.config,
            },
        )
    if args.add:
        doc = merge_replicas(old, doc)
    elif old is not None:
        doc = merge_measurement(old, doc, args.experiments)
    out = root / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    s = doc["summary"]
    print(f"replicas: {', '.join(f'{w:.0f} s' for w in walls)}; stable: {', '.join(s['stable']) or 'none'}")
    for e in s["chaotic"]:
        rec = doc["experiments"][e]
        top = sorted(rec["spread"].items(), key=lambda kv: -kv[1])[:3]
        print(
            f"chaotic: {e}: {rec['beyond_round_off']:,} of {rec['numbers']:,} numbers beyond round-off; "
            f"largest spreads {', '.join(f'{k} {v:.2g}' for k, v in top)}"
        )
    for f in doc["fragile"]:
        print(
            f"fragile: {f['file']}: {f['where']}: {f['original']!r} -> {f['replica']!r} ({', '.join(f['flipped_by'])})"
        )
    print(f"wrote {out}")
    return doc


if __name__ == "__main__":
    main()
