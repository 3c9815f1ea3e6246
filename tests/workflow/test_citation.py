"""CITATION.cff is valid YAML with the keys Citation File Format 1.2.0 requires, cites the paper and
the authors' code, and names the same licence as pyproject.toml and LICENSE."""

from __future__ import annotations

import tomllib

import yaml

from pipeline_project import ROOT

REQUIRED = {"cff-version", "message", "title", "authors"}  # CFF 1.2.0, top level
REQUIRED_REFERENCE = {"type", "title", "authors"}  # CFF 1.2.0, each reference


def _has_name(person: dict) -> bool:
    return bool(person.get("name") or person.get("family-names"))


def test_citation_cff_parses_and_has_the_required_keys():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert REQUIRED <= set(cff), REQUIRED - set(cff)
    assert cff["cff-version"] == "1.2.0"
    assert cff["authors"] and all(_has_name(a) for a in cff["authors"])
    for ref in cff["references"]:
        assert REQUIRED_REFERENCE <= set(ref), ref["title"]
        assert ref["authors"] and all(_has_name(a) for a in ref["authors"])
    paper, code = cff["references"]
    assert "arXiv:1907.06496" in {i["value"] for i in paper["identifiers"]}
    assert {a["family-names"] for a in paper["authors"]} == {"Feinman", "Parthasarathy"}
    assert code["repository-code"] == "https://github.com/zdf233/normflow-theory"
    assert code["commit"] == "a0789cc"


def test_licence_is_the_same_everywhere():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    licence = (ROOT / "LICENSE").read_text()
    assert cff["license"] == pyproject["project"]["license"]["text"] == "MIT"
    assert licence.startswith("MIT License") and "Copyright (c) 2026 flowtheory contributors" in licence
    assert cff["version"] == pyproject["project"]["version"]
