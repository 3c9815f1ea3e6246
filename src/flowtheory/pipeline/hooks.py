"""Snakemake ``onsuccess`` hook: record what was built in ``dvc.lock``.

When Snakemake is started directly (not by ``dvc repro``, which exports ``DVC_STAGE``) with the
default config, every DVC stage whose outputs exist is committed, so ``dvc status`` is clean and
``git diff dvc.lock`` shows what changed. Runs with another ``--configfile`` (the tiny CI config)
are not recorded: their outputs do not belong to ``config/config.yaml``'s params.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from flowtheory.pipeline.paths import CLAIMS_JSON, CLAIMS_MD, GALLERY_PNG, STAGES, stage_files
from flowtheory.stages.claims import README_STOP

__all__ = [
    "REPORT",
    "dvc_commit_on_success",
    "on_success",
    "prune_gallery",
    "register_report_directives",
    "report_metadata",
    "splice_readme",
    "write_report",
]

REPORT = "results/report.html"


def on_success(config: dict, configfiles: list[str], root: str = ".") -> str:
    """After a successful run: drop other configs' gallery pages, refresh the HTML report if every
    figure exists, then record in DVC."""
    lines = [prune_gallery(config, root), write_report(config, configfiles, root)]
    if _default_config(configfiles, root):
        lines.append(splice_readme(Path(root, "README.md"), Path(root, CLAIMS_MD)))
    lines.append(dvc_commit_on_success(config, configfiles, root))
    return "\n".join(lines)


def _default_config(configfiles: list[str], root: str) -> bool:
    default = str(Path(root, "config", "config.yaml").resolve())
    return all(str(Path(f).resolve()) == default for f in configfiles)


def prune_gallery(config: dict, root: str = ".") -> str:
    """Removes the gallery pages (``GALLERY_PNG``) of experiments that are not in ``config``, so that
    the gallery holds the last run's experiments only, as the main figures do: in a clone the
    committed pages of the paper's experiments would otherwise stay beside a user's own
    (``git checkout results/figures/gallery`` brings them back)."""
    folder = Path(root, GALLERY_PNG).parent
    stale = sorted(p for p in folder.glob("*.png") if p.stem not in config["experiments"]) if folder.is_dir() else []
    for p in stale:
        p.unlink()
    if not stale:
        return "gallery: only this config's experiments"
    return (
        f"gallery: removed {len(stale)} page(s) of experiments not in this config ({', '.join(p.stem for p in stale)})"
    )


BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"


def splice_readme(readme: Path, claims_md: Path) -> str:
    """Copies the head of ``results/claims.md`` into the README between the markers: from its first
    section up to ``README_STOP`` (the five conclusions, then one row per claim), and a link to the
    full claim × experiment table in ``results/claims.md``."""
    if not (readme.exists() and claims_md.exists()):
        return "readme: nothing to update"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return "readme: no claims markers; left unchanged"
    lines = claims_md.read_text().split(README_STOP, 1)[0].splitlines()
    # from the first section or table (the conclusions) on; the title and its note stay in claims.md
    first = next((i for i, line in enumerate(lines) if line.startswith(("### ", "|"))), 0)
    table = "\n".join(line for line in lines[first:] if not line.startswith("# ")).strip()
    table += (
        f"\n\nEvery claim on every experiment it applies to (measured value, margin, gap, convergence, cause) "
        f"and each geometric error against the gap: [`{CLAIMS_MD}`]({CLAIMS_MD})."
    )
    before, rest = text.split(BEGIN, 1)
    new = f"{before}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}"
    if new != text:
        readme.write_text(new)
        return "readme: claims table updated"
    return "readme: claims table up to date"


#: the report's stylesheet: the front page (workflow/report/workflow.rst) as wide as the window
REPORT_STYLE = "workflow/report/style.css"


def register_report_directives() -> None:
    """Registers ``.. flowtheory-image:: <path>``, an image embedded in the report as a data URI, for
    the report's front page (``workflow/report/workflow.rst``). Snakemake's own ``embeddedimage`` sets
    the data URI after the image node is built, so its image stays a link to a file that is not next
    to ``results/report.html``. Called by the workflow (``workflow/rules/common.smk``): Snakemake
    renders the report's text in the process that read the workflow."""
    import base64
    import mimetypes

    from docutils.parsers.rst import directives
    from docutils.parsers.rst.directives.images import Image

    class EmbeddedImage(Image):
        def run(self):
            path = Path(directives.uri(self.arguments[0]))
            if path.is_file():
                mime = mimetypes.guess_type(path.name)[0] or "image/png"
                self.arguments[0] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
            return super().run()

    directives.register_directive("flowtheory-image", EmbeddedImage)


def report_metadata(root: str = ".") -> dict[str, int]:
    """The numbers the report's landing page lists beside the front page: how many of the paper's
    claims reproduce and how the checks came out (from ``results/claims.json``). Snakemake's landing
    page opens on these (not on the DAG) whenever there are any; it renders numbers only."""
    from flowtheory.stages import scorecard

    records, given = scorecard.load(Path(root, CLAIMS_JSON))
    rows = scorecard.conclusions(records, given)
    count = {c: sum(r["conclusion"] == c for r in rows) for c in scorecard.CONCLUSIONS}
    return {
        "Paper claims that reproduce": count["reproduces"],
        "Paper claims that reproduce within stated limits": count["reproduces within stated limits"],
        "Paper claims that do not reproduce": count["does not reproduce"],
        "Paper claims not conclusive (no run at the optimum)": count["not conclusive"],
        "Paper claims not tested in this config": count["not tested in this config"],
        "Checks passed (claim × experiment)": sum(r["pass"] for r in rows),
        "Checks failed": sum(r["fail"] for r in rows),
        "Checks not at the optimum": sum(r["not_at_optimum"] for r in rows),
        "Checks the flow cannot reach": sum(r["cannot_reach"] for r in rows),
    }


def write_report(config: dict, configfiles: list[str], root: str = ".") -> str:
    """``snakemake --report results/report.html`` once all figures exist (a separate, lock-free call):
    opening on the front page (the five conclusions and the scorecard) with the counts of
    :func:`report_metadata`."""
    import tempfile

    import yaml

    if "DVC_STAGE" in os.environ and os.environ["DVC_STAGE"] != "figures":
        return "report: not the figures stage; skipped"
    if not all(Path(root, p).exists() for p in stage_files("figures", config)):
        return "report: figures incomplete; skipped"
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp, "metadata.yaml")
        meta.write_text(yaml.safe_dump(report_metadata(root), sort_keys=False, allow_unicode=True))
        cmd = [sys.executable, "-m", "snakemake", "--nolock", "--report", REPORT, "--report-metadata", str(meta)]
        if Path(root, REPORT_STYLE).is_file():
            cmd += ["--report-stylesheet", REPORT_STYLE]
        for f in configfiles:
            cmd += ["--configfile", str(f)]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode:
        return f"report: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})"
    return f"report: wrote {REPORT}"


def dvc_commit_on_success(config: dict, configfiles: list[str], root: str = ".") -> str:
    """Commits every complete stage to DVC; returns a one-line account of what it did."""
    if "DVC_STAGE" in os.environ:
        return "dvc: started by dvc repro; nothing to commit"
    if not Path(root, ".dvc").is_dir() or importlib.util.find_spec("dvc") is None:
        return "dvc: no DVC repository here; nothing to commit"
    if not _default_config(configfiles, root):
        return "dvc: run with a non-default --configfile; dvc.lock left unchanged"
    complete = [s for s in STAGES if all(Path(root, p).exists() for p in stage_files(s, config))]
    if not complete:
        return "dvc: no complete stage; nothing to commit"
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *complete],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        return f"dvc: commit failed ({proc.stderr.strip() or proc.stdout.strip()})"
    return f"dvc: committed stages {', '.join(complete)} to dvc.lock"


if __name__ == "__main__":  # `make report`: the report of the default config's run
    from flowtheory.pipeline.config import load

    print(write_report(load("config/config.yaml"), ["config/config.yaml"]))
