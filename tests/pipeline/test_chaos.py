"""The chaos measurement as the claims and verify read it: which experiments it still speaks for
(flowtheory.pipeline.chaos). Verify's use of it is tested in test_verify.py."""

from __future__ import annotations

import copy
import json

from flowtheory.pipeline.chaos import experiment_digests, same_settings, summary_digests
from flowtheory.pipeline.config import load


def test_an_experiments_digest_moves_with_its_own_settings_and_the_global_ones_only():
    config = load("config/config.yaml")
    before = experiment_digests(config)
    assert len(set(before.values())) == len(before)
    edited = copy.deepcopy(config)
    first, second = list(edited["experiments"])[:2]
    edited["experiments"][first]["epochs"] += 1
    edited["experiments"]["added"] = copy.deepcopy(edited["experiments"][second])
    after = experiment_digests(edited)
    assert after[first] != before[first]
    assert all(after[e] == before[e] for e in before if e != first)
    edited["seeds"] = [*edited["seeds"], 99]  # a global setting moves every digest
    assert all(d != before[e] for e, d in experiment_digests(edited).items() if e in before)


def test_same_settings_by_the_whole_config_or_each_experiments_own_digest():
    doc = {"config_digest": "sha256:c", "experiment_digests": {"a": "sha256:a", "b": "sha256:b"}}
    assert same_settings(doc, "sha256:c", {"a": "x", "b": "y", "new": "z"}) == {"a", "b", "new"}
    assert same_settings(doc, "sha256:other", {"a": "sha256:a", "b": "sha256:b2", "new": "z"}) == {"a"}
    # no digest of its own (a caller without them, or an old measurement without them): nothing
    assert same_settings(doc, "sha256:other", {"a": None, "b": None}) == set()
    assert same_settings({"config_digest": "sha256:c"}, "sha256:other", {"a": "sha256:a"}) == set()


def test_summary_digests_follow_each_experiments_entry_only():
    train = {"a": {"none": {"seed0": {"final_train_nll": 1.0}}}, "b": {"none": {"seed0": {"final_train_nll": 2.0}}}}
    before = summary_digests(train)
    train["b"]["none"]["seed0"]["final_train_nll"] = 2.5
    json_bytes = json.dumps(train).encode()
    after = summary_digests(json_bytes)
    assert after["a"] == before["a"] and after["b"] != before["b"]
    assert summary_digests(json_bytes) == summary_digests(train) and summary_digests(None) == {}
