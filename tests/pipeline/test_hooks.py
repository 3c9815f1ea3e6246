"""The onsuccess hook's README splice (src/flowtheory/pipeline/hooks.py): the claims table and the
claim × experiment table of results/claims.md replace what is between the markers."""

from __future__ import annotations

from flowtheory.pipeline.hooks import BEGIN, END, splice_readme

CLAIMS_MD = """# Claim checks

Generated; do not edit.

| id | result |
|---|---|
| `a` | PASS |

### Per experiment

| claim | experiment | result |
|---|---|---|
| `a` | exp1 | PASS |
"""


def test_splice_copies_both_tables_without_the_title(tmp_path):
    readme, claims = tmp_path / "README.md", tmp_path / "claims.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n")
    claims.write_text(CLAIMS_MD)
    assert splice_readme(readme, claims) == "readme: claims table updated"
    text = readme.read_text()
    block = text.split(BEGIN)[1].split(END)[0]
    assert "# Claim checks" not in block and "old table" not in block
    assert "| `a` | PASS |" in block and "### Per experiment" in block and "| `a` | exp1 | PASS |" in block
    assert text.startswith("intro\n") and text.endswith(f"{END}\nafter\n")
    assert splice_readme(readme, claims) == "readme: claims table up to date"
