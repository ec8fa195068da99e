"""The metamorphic robustness check over the whole labelled dev set: obfuscating a comment
(marks, look-alikes, fillers, spacing, dots, leetspeak, full-width, mathematical letters, case)
must not change what happens to it. README's robustness table counts the same thing."""

import json

import pytest

from services.config import ROOT
from workers.engine.evaluation import evaluate_robustness
from workers.engine.obfuscations import OBFUSCATIONS
from workers.engine.pipeline import Engine

DEV = ROOT / "workers" / "engine" / "filters" / "data" / "corpus" / "dev.jsonl"
# Known gaps, shown in README's table: spaced or dotted-out spam is mostly held instead of
# blocked (one spaced-out "DM me for K" is published); whole-word leetspeak ("15" for "is")
# moves a few outcomes either way; a comment in capitals draws the capitals doubt. Strict: a
# fix makes these fail until the mark is removed.
NOT_YET_EXACT = {"spaced letters", "dotted letters", "leetspeak", "upper case"}
NOT_YET_SAFE = {"spaced letters", "leetspeak"}


@pytest.fixture(scope="module")
def result():
    items = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return evaluate_robustness(Engine(), items)


def _changed(result, name, label=None):
    return [c for c in result.changed if c["obfuscation"] == name and label in (None, c["label"])]


@pytest.mark.parametrize("name", list(OBFUSCATIONS))
def test_no_crisis_slips_through(result, name):
    kept, n = result.kept[name]["self_harm"]
    assert kept == n, _changed(result, name, "self_harm")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True)) if n in NOT_YET_SAFE
                                  else n for n in OBFUSCATIONS])
def test_nothing_held_is_published_and_nothing_ordinary_blocked(result, name):
    slips = [c for c in _changed(result, name) if (c["label"] != "ok" and c["after"][0] == "publish")
             or (c["label"] == "ok" and c["after"][0] == "block")]
    assert not slips, slips[:5]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True)) if n in NOT_YET_EXACT
                                  else n for n in OBFUSCATIONS])
def test_every_obfuscation_keeps_outcomes(result, name):
    changed = _changed(result, name)
    assert not changed, changed[:5]
