"""The onsuccess hook's README splice (src/flowtheory/pipeline/hooks.py): the head of
results/claims.md (the conclusions and the claims, up to the README stop) replaces what is between
the markers, with a link to the full claim × experiment table."""

from __future__ import annotations

from flowtheory.pipeline.hooks import BEGIN, END, prune_gallery, splice_readme
from flowtheory.pipeline.paths import GALLERY_PNG
from flowtheory.stages.claims import README_STOP

CLAIMS_MD = f"""# Claim checks

Generated; do not edit.

### Conclusions

| paper claim | conclusion |
|---|---|
| 1. whitening | reproduces |

### Claims

| id | result |
|---|---|
| `a` | PASS |

{README_STOP}

### Per experiment

| claim | experiment | result |
|---|---|---|
| `a` | exp1 | PASS |
"""


def test_splice_copies_the_conclusions_and_claims_and_links_the_rest(tmp_path):
    readme, claims = tmp_path / "README.md", tmp_path / "claims.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n")
    claims.write_text(CLAIMS_MD)
    assert splice_readme(readme, claims) == "readme: claims table updated"
    text = readme.read_text()
    block = text.split(BEGIN)[1].split(END)[0]
    assert block.startswith("\n### Conclusions\n"), "the README block opens with the conclusions"
    assert "# Claim checks" not in block and "Generated" not in block and "old table" not in block
    assert "| 1. whitening | reproduces |" in block and "| `a` | PASS |" in block
    assert "### Per experiment" not in block and "| `a` | exp1 | PASS |" not in block
    assert "[`results/claims.md`](results/claims.md)" in block
    assert text.startswith("intro\n") and text.endswith(f"{END}\nafter\n")
    assert splice_readme(readme, claims) == "readme: claims table up to date"


def test_an_old_claims_file_without_the_stop_is_copied_whole(tmp_path):
    readme, claims = tmp_path / "README.md", tmp_path / "claims.md"
    readme.write_text(f"{BEGIN}\n{END}\n")
    claims.write_text("# Claim checks\n\n| id | result |\n|---|---|\n| `a` | PASS |\n\n### Per experiment\n")
    splice_readme(readme, claims)
    block = readme.read_text().split(BEGIN)[1].split(END)[0]
    assert block.startswith("\n| id | result |") and "### Per experiment" in block


def test_the_report_front_page_shows_the_conclusions_and_embeds_the_scorecard(tmp_path, monkeypatch):
    """workflow/report/workflow.rst as Snakemake renders it (Jinja, then docutils, from the project
    root): the conclusions table is read from its CSV and the scorecard is embedded as a data URI,
    so that results/report.html shows both wherever it is opened."""
    import json
    from pathlib import Path

    import jinja2
    from docutils.core import publish_parts

    from flowtheory.pipeline.hooks import register_report_directives, report_metadata
    from flowtheory.stages import scorecard

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    claims = [
        {"id": "a", "paper_claim": 1, "experiments": {"e": {"verdict": "PASS", "measured": 1.0, "threshold": 2.0}}},
        {"id": "b", "paper_claim": 2, "experiments": {"e": {"verdict": "NOT_AT_OPTIMUM"}}},
    ]
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "figures").mkdir(parents=True)
    (tmp_path / "results" / "claims.json").write_text(json.dumps(claims))
    scorecard.conclusions_table(claims, {}).to_csv(tmp_path / "results/tables/table_conclusions.csv", index=False)
    (tmp_path / "results/figures/fig_scorecard.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    register_report_directives()
    text = jinja2.Environment().from_string((root / "workflow/report/workflow.rst").read_text())
    html = publish_parts(text.render(snakemake=None, categories={}, files=[]), writer="html")["html_body"]
    assert "not conclusive" in html and "reproduces" in html  # claims 2 and 1
    assert 'src="data:image/png;base64,' in html
    meta = report_metadata(str(tmp_path))
    assert meta["Paper claims that reproduce"] == 1 and meta["Paper claims not conclusive (no run at the optimum)"] == 1
    assert meta["Checks not at the optimum"] == 1 and all(isinstance(v, int) for v in meta.values())


def test_the_gallery_keeps_only_this_configs_experiments(tmp_path):
    """A user's config run in a clone: the committed pages of the paper's experiments go, the
    config's own stay, and nothing else in the folder is touched."""
    page = {e: tmp_path / GALLERY_PNG.format(experiment=e) for e in ("mine", "paper_a", "paper_b")}
    for p in page.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"png")
    note = page["mine"].parent / "README.txt"
    note.write_text("kept")
    config = {"experiments": {"mine": {}}}
    assert prune_gallery(config, str(tmp_path)) == (
        "gallery: removed 2 page(s) of experiments not in this config (paper_a, paper_b)"
    )
    assert sorted(p.name for p in page["mine"].parent.iterdir()) == ["README.txt", "mine.png"]
    assert prune_gallery(config, str(tmp_path)) == "gallery: only this config's experiments"
    assert prune_gallery(config, str(tmp_path / "elsewhere")) == "gallery: only this config's experiments"
