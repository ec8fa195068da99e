import pytest

from tests.unit.engine.filters._filter_helpers import findings, top_score
from workers.engine.filters.harassment import HarassmentFilter


@pytest.fixture(scope="module")
def flt() -> HarassmentFilter:
    return HarassmentFilter()


POSITIVE = [
    "You're an idiot if you believe this.",
    "@Mark you clueless clown, read the study before posting.",
    "The author is a shill for the drug companies.",
    "People like you are why nobody trusts patients.",
    "I hope your next infusion goes badly wrong.",
    "Go back to your own country.",
    "Depressed people are just lazy, honestly.",
    "I know where you live, Dana.",
    "Shut up, nobody asked you.",
    "Whoever wrote this has the brain of a goldfish... no, the IQ of a rock.",
    "Typical snowflake whining about a bad day.",
]

NEGATIVE = [
    "This article is one-sided and skips the relapse data.",
    "Pharma companies fund most of these trials, which is worth knowing.",
    "I disagree with you, the trials were small.",
    "Someone at work called me a junkie for taking it, which hurt.",
    "The author could have included the Cochrane review.",
    "Nobody asked me about side effects at the first appointment.",
    "My therapist is great and very patient with me.",
    "You're not an idiot for trying it, it helps a lot of people.",
    "The price is pathetic though, insurance should cover it.",
]


@pytest.mark.parametrize("body", POSITIVE)
def test_catches_attacks(flt: HarassmentFilter, body: str) -> None:
    assert top_score(flt, body) >= 0.5, body


@pytest.mark.parametrize("body", NEGATIVE)
def test_criticism_is_not_harassment(flt: HarassmentFilter, body: str) -> None:
    assert top_score(flt, body) < 0.5, body


def test_spans(flt: HarassmentFilter) -> None:
    body = "@nina you smug little IDIOT."
    [f] = findings(flt, body)
    assert f.category == "harassment" and f.detail
    assert any("IDIOT" in body[a:b] for a, b in f.spans)


@pytest.mark.parametrize("body", [
    "These pill-pushing psychiatrists deserve a beating.",
    "Only weaklings need a nasal spray to get out of bed.",
    "Junkies like you are nothing but a drain on the system.",
    "@Claire stop polluting every article with your nonsense.",
    "T'es vraiment con ou tu fais semblant ?",
    "Someone should put a bullet in that judge",
    "That traitor of a minister should be hanged.",
])
def test_contempt_and_wished_violence_without_stock_insults(flt: HarassmentFilter, body: str) -> None:
    assert top_score(flt, body) >= 0.5, body


@pytest.mark.parametrize("body", [
    "I felt like a burden to my family before treatment.",
    "The insurers are ruining every appointment with their paperwork.",
    "They deserve a medal, the nurses at my clinic.",
    "The judge in that case was shot at in 1989, the article says.",
    "Flu shot done, and the bullet points in this piece are clear.",
])
def test_self_description_and_praise_are_not_contempt(flt: HarassmentFilter, body: str) -> None:
    assert top_score(flt, body) < 0.5, body
