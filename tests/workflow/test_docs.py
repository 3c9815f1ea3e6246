"""The repository documents itself: every reference a reader meets points inside it.

Users get the repository and nothing else, so code, configuration, captions and results may cite
only files that are tracked here: the documents under ``docs/`` (``docs/README.md`` explains the
citation forms). The checks:

* no tracked text file refers to a directory beside or above the checkout, or to a document by a
  bare name that does not resolve from the repository root (the names of the old, private inputs;
  ``docs/measurements.md`` is of course fine);
* every ``docs/<name>.md`` mentioned anywhere exists, and so does every ``#anchor`` cited in it;
* every section cited as ``docs/theory.md §X.Y`` is a numbered heading of ``docs/theory.md``, and
  every equation cited as ``docs/theory.md Eq. (N)`` or ``docs/theory.md#eq-<N>`` has its anchor;
* ``docs/theory.md`` keeps its fixed section numbers (§0 to §9 and their subsections);
* ``docs/README.md`` lists every anchor set in ``docs/measurements.md`` and ``docs/evidence.md``.

Fast and torch-free: it reads the files ``git ls-files`` lists and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
from functools import cache, lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: this file names the forbidden patterns, so it is exempt from the reference checks
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
THEORY = "docs/theory.md"

#: references to the world outside the checkout (checked in every file, docs/ included)
OUTSIDE = re.compile(r"\.\./shared|/work/shared|(?<![\w.-])shared/[\w.-]+\.md")
#: bare names of documents that do not exist in the repository (checked outside docs/ only, where
#: the sources may be discussed); ``docs/measurements.md`` must pass
BARE = re.compile(r"(?<![\w-])(?<!docs/)(?:paper|findings|design|style)\.md\b")
#: a path to a document under docs/ (not part of a longer path or URL), with its #anchor if any;
#: a placeholder such as ``#<anchor>`` or ``#eq-<N>`` is not an anchor
DOC_PATH = re.compile(r"(?<![\w./-])(docs/[\w./-]*?\.md)(?:#([\w.-]*\w)(?![\w<-]))?")
#: a section citation: docs/theory.md §2.4, §2.2–2.3, §4–§7, §2.2, §2.5, §2.2 and §2.5
_NUM = r"\d+(?:\.\d+)*"
SECTION_CITE = re.compile(
    rf"docs/theory\.md`?\s*,?\s*§\s*({_NUM}(?:\s*[–—-]\s*§?\s*{_NUM}|\s*(?:,|and|to)\s*§\s*{_NUM})*)"
)
SECTION_REF = re.compile(rf"§\s*({_NUM}(?:\s*[–—-]\s*§?\s*{_NUM}|\s*(?:,|and|to)\s*§\s*{_NUM})*)")
#: an equation citation, with an optional section in between: docs/theory.md Eq. (5),
#: `docs/theory.md` Eqs. (3), (11) and (18), docs/theory.md §2.5 Eq. (11)
_EQS = r"Eqs?\.\s*\((\d+)\)((?:\s*(?:,|and|to|[–—-])\s*\(\d+\))*)"
EQ_CITE = re.compile(rf"docs/theory\.md`?\s*,?\s*(?:§\s*{_NUM}\s*,?\s*)?{_EQS}")
EQ_REF = re.compile(_EQS)
EQ_ANCHOR = re.compile(r'<a id="eq-(\d+)"></a>')
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
HEADING_NUMBER = re.compile(rf"^({_NUM})\.?(?:\s|$)")
HTML_ID = re.compile(r'\bid="([^"]+)"')

#: section numbers that code and config cite and that docs/theory.md must keep
REQUIRED_SECTIONS = set("0 1 2 2.1 2.2 2.3 2.4 2.5 3 4 5 5.1 5.2 5.3 5.4 6 6.1 6.2 6.3 7 8 9".split())


@lru_cache(maxsize=1)
def tracked_texts() -> tuple[tuple[str, str], ...]:
    """(path, text) of every tracked text file; binary and non-UTF-8 files are skipped."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot list the tracked files")
    files = []
    for rel in sorted(p for p in out.split("\0") if p):
        path = ROOT / rel
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files.append((rel, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return tuple(files)


def _lines(text: str):
    yield from enumerate(text.splitlines(), start=1)


def _where(rel: str, lineno: int, line: str, m: re.Match) -> str:
    a, b = max(m.start() - 40, 0), min(m.end() + 40, len(line))
    return f"{rel}:{lineno}: {line[a:b].strip()}"


@cache
def _doc_text(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


def _numbers(refs: str) -> list[str]:
    return re.findall(_NUM, refs)


def theory_sections() -> set[str]:
    return {m.group(1) for h in HEADING.finditer(_doc_text(THEORY)) if (m := HEADING_NUMBER.match(h.group(1)))}


def theory_equations() -> list[int]:
    return [int(n) for n in EQ_ANCHOR.findall(_doc_text(THEORY))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(rel: str) -> frozenset[str]:
    text = _doc_text(rel)
    found = set(HTML_ID.findall(text))
    seen: dict[str, int] = {}
    for h in HEADING.finditer(text):
        base = slug(h.group(1))
        n = seen.get(base, 0)
        found.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return frozenset(found)


def offending_references() -> list[str]:
    """Every line that refers to a file outside the repository, as ``path:line: context  [matches]``."""
    bad = []
    for rel, text in tracked_texts():
        if rel == SELF:
            continue
        in_docs = rel.startswith("docs/")
        for lineno, line in _lines(text):
            found = list(OUTSIDE.finditer(line))
            if not in_docs:
                found += BARE.finditer(line)
            if found:
                found.sort(key=lambda m: m.start())
                names = ", ".join(dict.fromkeys(m.group(0) for m in found))
                bad.append(_where(rel, lineno, line, found[0]) + f"  [{names}]")
    return bad


def test_no_reference_outside_the_repository():
    bad = offending_references()
    assert not bad, (
        f"{len(bad)} reference(s) to files outside the repository; cite docs/theory.md, "
        "docs/measurements.md or docs/evidence.md instead (see docs/README.md):\n" + "\n".join(bad)
    )


def test_cited_docs_and_anchors_exist():
    bad = []
    for rel, text in tracked_texts():
        for lineno, line in _lines(text):
            for m in DOC_PATH.finditer(line):
                doc, frag = m.group(1), m.group(2)
                if not (ROOT / doc).is_file():
                    bad.append(_where(rel, lineno, line, m) + f"  [{doc} does not exist]")
                elif frag and frag not in anchors(doc):
                    bad.append(_where(rel, lineno, line, m) + f"  [no anchor #{frag} in {doc}]")
    assert not bad, "citations of missing documents or anchors:\n" + "\n".join(bad)


def test_theory_keeps_its_section_numbers():
    missing = sorted(REQUIRED_SECTIONS - theory_sections(), key=lambda s: [int(x) for x in s.split(".")])
    assert not missing, f"{THEORY} lost the numbered section(s) {missing}: code and config cite them"


def test_cited_theory_sections_exist():
    sections = theory_sections()
    bad = []
    for rel, text in tracked_texts():
        pattern = SECTION_REF if rel == THEORY else SECTION_CITE
        for lineno, line in _lines(text):
            for m in pattern.finditer(line):
                missing = [n for n in _numbers(m.group(1)) if n not in sections]
                if missing:
                    bad.append(_where(rel, lineno, line, m) + f"  [no §{', §'.join(missing)} in {THEORY}]")
    assert not bad, f"citations of sections that {THEORY} does not have:\n" + "\n".join(bad)


def test_theory_equation_anchors_are_unique_and_labelled():
    numbers = theory_equations()
    assert numbers, f"{THEORY} has no equation anchors"
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not dupes, f"{THEORY}: equation anchors used twice: {dupes}"
    text = _doc_text(THEORY)
    unlabelled = [n for n in numbers if not re.search(rf'<a id="eq-{n}"></a>\s*\n\*\*Eq\. \({n}\)\*\*', text)]
    assert not unlabelled, f"{THEORY}: anchors not followed by their label **Eq. (N)**: {unlabelled}"


def test_cited_theory_equations_exist():
    equations = set(theory_equations())
    bad = []
    for rel, text in tracked_texts():
        # inside docs/ every "Eq. (N)" is one of docs/theory.md's; elsewhere only prefixed ones are
        pattern = EQ_REF if rel.startswith("docs/") else EQ_CITE
        for lineno, line in _lines(text):
            for m in pattern.finditer(line):
                cited = [int(m.group(1))] + [int(n) for n in re.findall(r"\((\d+)\)", m.group(2))]
                missing = [n for n in cited if n not in equations]
                if missing:
                    bad.append(_where(rel, lineno, line, m) + f"  [no Eq. {missing} in {THEORY}]")
            for m in re.finditer(r"(?:docs/)?theory\.md#eq-(\d+)", line):
                if int(m.group(1)) not in equations:
                    bad.append(_where(rel, lineno, line, m) + f"  [no #eq-{m.group(1)} in {THEORY}]")
    assert not bad, f"citations of equations that {THEORY} does not have:\n" + "\n".join(bad)


def test_docs_index_lists_every_anchor_of_the_measurements_and_the_evidence():
    """docs/README.md's table of anchors is the reader's way in: each ``<a id>`` set in
    docs/measurements.md or docs/evidence.md is a row of it (an anchor added without its row was
    found unlisted on 2026-12-06: seven of them)."""
    index = _doc_text("docs/README.md")
    missing = [
        f"{doc}#{a}"
        for doc in ("docs/measurements.md", "docs/evidence.md")
        for a in HTML_ID.findall(_doc_text(doc))
        if f"| `{doc}#{a}` |" not in index
    ]
    assert not missing, "anchors missing from docs/README.md's table of anchors:\n" + "\n".join(missing)


def test_readme_module_tables_list_every_module_of_the_package():
    """The README's table of subpackages names every module of each, and no module that is gone."""
    text = (ROOT / "README.md").read_text()
    for sub in ("science", "datasets", "pipeline", "stages"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `flowtheory.{sub}`"))
        cell = row.split("|")[2]
        named = set(re.findall(r"(?:^|, |\s)`([a-z_]+)`(?= \(|,|\s*$)", cell))
        pkg = importlib.import_module(f"flowtheory.{sub}")
        actual = {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}
        assert named == actual, (sub, sorted(named - actual), sorted(actual - named))
