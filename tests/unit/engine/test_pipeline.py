import io
import json

import pytest

from workers.engine.evaluation import classify_stream, score_verdicts
from workers.engine.pipeline import Engine


@pytest.fixture(scope="module")
def engine():
    return Engine()


def test_engine_runs_every_filter(engine):
    names = {f.name for f in engine.filters}
    assert {"spam", "profanity"} <= names
    assert len(engine.filters) == 5


def test_verdict_json_shape(engine):
    j = engine.classify("Holy sh1t, this helped", "Jen").to_json()
    assert set(j) == {"action", "priority", "categories", "published_body", "findings", "scores", "policy_version"}
    assert j["action"] == "publish"
    assert j["published_body"] == "Holy ****, this helped"
    assert all(set(f) == {"category", "score", "rule", "spans", "detail"} for f in j["findings"])


def test_blatant_homoglyph_spam_blocked(engine):
    v = engine.classify("Вuу kеtаminе оnlinе, nо рrеsсriрtiоn: kеtа-shор.example", "Рhаrmа Stоrе")
    assert v.action == "block"
    assert v.published_body is None


def test_ok_comment_with_health_link_published_unchanged(engine):
    body = "The NIMH page is a good summary: https://www.nimh.nih.gov/health/topics/depression"
    v = engine.classify(body, "Helen")
    assert (v.action, v.published_body) == ("publish", body)


def test_scunthorpe_not_masked(engine):
    body = "Any clinics up near Scunthorpe? The assessment took ages."
    assert engine.classify(body, "Davey").published_body == body


def test_batch_duplicates_count_as_recent(engine):
    body = "Amazing results, everyone should try this right away honestly"
    vs = engine.classify_batch([{"body": body}] * 4 + [{"body": "ok then"}])
    assert any(f.rule == "spam.duplicate" for f in vs[0].findings)
    assert not any(f.rule == "spam.duplicate" for f in vs[4].findings)


def test_the_same_words_from_different_people_are_no_duplicate(engine):
    body = "Thank you so much for writing this, it helps"
    vs = engine.classify_batch([{"body": body, "author": f"reader {i}"} for i in range(4)])
    assert not any(f.rule == "spam.duplicate" for v in vs for f in v.findings)
    assert all(v.action == "publish" for v in vs)


def test_a_model_finding_says_why(engine):
    # told as a situation, with none of the crisis phrases the rules know
    v = engine.classify("Ich habe meine Katze der Nachbarin gegeben und die Briefe liegen auf dem Tisch. "
                        "Morgen früh ist alles erledigt.", "anon")
    assert (v.action, v.priority) == ("hold", "urgent")
    model = [f for f in v.findings if f.category == "self_harm" and ".model@" in f.rule]
    assert model, v.findings
    assert "words:" in model[0].detail and "like:" in model[0].detail
    assert model[0].spans  # the words that weighed most, highlighted in the original text


def test_batch_vectors_give_the_single_comment_verdicts(engine):
    bodies = ["I stockpiled my pills and wrote the letters", "Great article, thanks", "buy ketamine cheap"]
    one = [engine.classify(b).to_json() for b in bodies]
    batch = [v.to_json() for v in engine.classify_batch([{"body": b} for b in bodies])]
    assert [(v["action"], v["priority"]) for v in one] == [(v["action"], v["priority"]) for v in batch]


def test_classify_stream_keeps_order_and_shape(engine):
    lines = [json.dumps({"id": "a", "body": "great article"}),
             json.dumps({"id": "b", "body": "f u c k yeah", "author": "x"})]
    out = io.StringIO()
    assert classify_stream(engine, lines, out) == 2
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert set(rows[0]) == {"id", "action", "priority", "categories", "published_body", "findings"}
    assert rows[1]["published_body"] == "**** yeah"


def test_score_verdicts_matches_score_py_rules():
    items = [{"id": "1", "label": "ok", "expect": "publish", "body": "hi"},
             {"id": "2", "label": "spam", "expect": "block", "body": "buy"},
             {"id": "3", "label": "profanity", "expect": "hold", "body": "shit"}]
    verdicts = {"1": {"action": "publish", "published_body": "hi"},
                "2": {"action": "hold"},
                "3": {"action": "publish", "published_body": "****"}}
    m, _, _ = score_verdicts(items, verdicts)
    assert m["ok_published"] == 1.0 and m["spam_caught"] == 1.0
    assert m["spam_blocked_of_expect_block"] == 0.0 and m["profanity_safe"] == 1.0
