"""The onsuccess hook's README splice (src/flowtheory/pipeline/hooks.py): the head of
results/claims.md (the conclusions and the claims, up to the README stop) replaces what is between
the markers, with a link to the full claim × experiment table."""

from __future__ import annotations

from flowtheory.pipeline.hooks import BEGIN, END, splice_readme
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
