import pytest

from tests.unit._filter_helpers import findings, top_score
from workers.filters.self_harm import SelfHarmFilter


@pytest.fixture(scope="module")
def flt() -> SelfHarmFilter:
    return SelfHarmFilter()


POSITIVE = [
    "I won't be around by the time the next appointment comes.",
    "This is my last post here. Thanks to everyone who was kind.",
    "How much would it take to not wake up? Asking seriously.",
    "What amount of ketamine would stop someone's breathing?",
    "I want to die and nothing has worked.",
    "I've been stockpiling my tablets for weeks.",
    "Everyone would be better off without me.",
    "Tonight I'm going to end it. I just wanted to say it somewhere.",
    "@Sam if nothing works for you, maybe just check out.",
    "I can't go on like this anymore.",
    "I've made a plan and I feel strangely calm about it.",
]

NEGATIVE = [
    "Two years ago I wanted to die, now I'm back at work and enjoying it.",
    "Last year I was suicidal most days. The spray helped me get to therapy.",
    "If anyone reading this is in a dark place, please call a crisis line tonight.",
    "My brother died by suicide in 2019 and I think about him reading this.",
    "What does an overdose look like? My son's friend was taken to hospital.",
    "I'm done with waiting lists, so I'm going private.",
    "The dissociation was a killer the first time but fine after.",
    "I thought about killing myself for years. Today is a good day.",
    "Will I need a higher dose over time?",
]


@pytest.mark.parametrize("body", POSITIVE)
def test_catches_crisis(flt: SelfHarmFilter, body: str) -> None:
    assert top_score(flt, body) >= 0.5, body


@pytest.mark.parametrize("body", NEGATIVE)
def test_recovery_and_support_are_not_crises(flt: SelfHarmFilter, body: str) -> None:
    assert top_score(flt, body) < 0.5, body


def test_spans_point_at_original_words(flt: SelfHarmFilter) -> None:
    body = "Said my goodbyes today."
    [f] = findings(flt, body)
    assert f.category == "self_harm" and f.detail
    assert any("goodbyes" in body[a:b] for a, b in f.spans)
