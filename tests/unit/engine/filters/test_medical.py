import pytest

from tests.unit.engine.filters._filter_helpers import findings, top_score
from workers.engine.filters.medical import MedicalFilter


@pytest.fixture(scope="module")
def flt() -> MedicalFilter:
    return MedicalFilter()


POSITIVE = [
    "Ketamine will cure your depression, full stop.",
    "Just bin your antidepressants once the infusions start, you won't need them.",
    "Honestly never start SSRIs, go straight for the spray instead.",
    "You can get vet ketamine from a farm supply shop and dose yourself, way cheaper.",
    "A few glasses of wine after your session are totally fine, helps you relax.",
    "Take a Valium before the infusion so the trip is less intense.",
    "It's not addictive at all, whatever the papers say.",
    "Therapy is a scam, all you need is K.",
    "Antidepressants are poison, plain and simple.",
    "I drive myself home right after the spray every week, the two-hour wait is pointless.",
    "Skip the monitoring, it's liability theatre.",
    "Works for everyone, guaranteed results after three sessions.",
    "If the lozenge doesn't hit, take another one an hour later.",
]

NEGATIVE = [
    "It is not a cure, and my psychiatrist was clear about that.",
    "Is it safe to drink a glass of wine the evening after the spray?",
    "Ignore anyone saying it's a miracle cure. It helps some people, that's all.",
    "My psychiatrist started me at 56 mg and moved me to 84 mg after two weeks.",
    "Please don't stop your SSRIs without talking to your prescriber first.",
    "Don't mix it with alcohol or benzos, the clinic was very firm about that.",
    "Does anyone know whether it interacts with lithium? I'll ask my doctor too.",
    "Be wary of ads promising 'guaranteed results'. That's a red flag.",
    "Ketamine can be addictive, which is why it's only given in clinics.",
    "Somebody has to drive you home after each session, so plan for that.",
    "I was on sertraline the whole time and nobody asked me to stop it.",
]


@pytest.mark.parametrize("body", POSITIVE)
def test_catches_unsafe_claims(flt: MedicalFilter, body: str) -> None:
    assert top_score(flt, body) >= 0.5, body


@pytest.mark.parametrize("body", NEGATIVE)
def test_leaves_context_alone(flt: MedicalFilter, body: str) -> None:
    assert top_score(flt, body) < 0.5, body


def test_finding_shape_and_spans(flt: MedicalFilter) -> None:
    body = "Tip: THROW your SSRIs in the bin."
    [f] = findings(flt, body)
    assert f.category == "unsafe_medical"
    assert f.rule.startswith("unsafe_medical.")
    assert f.detail
    assert any("SSRIs" in body[a:b] for a, b in f.spans)


def test_attributes() -> None:
    flt = MedicalFilter()
    assert flt.name == "unsafe_medical"
    assert flt.version
