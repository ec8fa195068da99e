import pytest

from tests.unit.engine.filters._filter_helpers import findings, top_score
from workers.engine.filters.self_harm import SelfHarmFilter


@pytest.fixture(scope="module")
def flt() -> SelfHarmFilter:
    return SelfHarmFilter()


POSITIVE = [
    "I won't be around by the time the next appointment comes.",
    "Me quiero morir. Esta noche lo hago.",
    "Hace un año lo intenté y hoy quiero matarme otra vez.",
    "Voglio togliermi la vita stasera.",
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


@pytest.mark.parametrize("body", [
    "I've counted the pills in the cabinet. It's enough.",
    "Standing on the balcony again, it's 9 floors down.",
    "I'm going to drive into a tree on the way home.",
    "Je n'en peux plus. Ce soir je vais en finir.",
])
def test_means_and_method_without_the_words(flt: SelfHarmFilter, body: str) -> None:
    assert top_score(flt, body) >= 0.5, body


@pytest.mark.parametrize("body", [
    "Our flat is on the 9th floor with a lovely balcony view.",
    "I counted my blessings after the third infusion.",
    "My psychiatrist counted out exactly how many tablets to take for the taper.",
    "I drove myself to the clinic and back, 20 minutes each way.",
    # a crisis told in the past, in other languages as in English
    "Hace tres años intenté quitarme la vida. Hoy estoy aquí, con terapia y con mi perro.",
    "Due anni fa ho provato a togliermi la vita. Oggi sono tornata a dipingere.",
    "Vor drei Jahren wollte ich mich umbringen. Heute bin ich froh, dass ich noch da bin.",
])
def test_ordinary_heights_pills_driving_and_past_crises(flt: SelfHarmFilter, body: str) -> None:
    assert top_score(flt, body) < 0.3, body

