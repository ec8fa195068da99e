import gzip
import json

import pytest

from workers.engine.model import (
    FORMAT_VERSION,
    Example,
    default_examples,
    default_model,
    load,
    train,
)

SPAM = ["buy cheap ketamine online now", "order ketamine no prescription whatsapp", "cheap pills shop link here",
        "best deals on ketamine click here", "discreet shipping buy now cheap"]
HAM = ["my infusion helped my mood a lot", "does insurance cover the spray", "the article was balanced",
       "my psychiatrist explained the dose", "how long does dissociation last"]


@pytest.fixture(scope="module")
def blob():
    exs = [Example(b, None, "spam") for b in SPAM] * 2 + [Example(b, "Ann", "ok") for b in HAM] * 2
    return train(exs)


def test_blob_is_versioned_json_not_pickle(blob):
    payload = json.loads(gzip.decompress(blob))
    assert payload["format"] == FORMAT_VERSION
    assert payload["classes"] == ["ok", "spam"]


def test_load_rejects_unknown_format(blob):
    payload = json.loads(gzip.decompress(blob))
    payload["format"] = 999
    with pytest.raises(ValueError):
        load(gzip.compress(json.dumps(payload).encode()))


def test_predict_matches_sklearn_pipeline(blob):
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: F401 - training dependency present

    m = load(blob)
    p = m.predict("buy ketamine online cheap", None)
    assert set(p) == {"ok", "spam"}
    assert p["spam"] > 0.5
    assert m.predict("my psychiatrist explained the infusion", "Ann")["spam"] < 0.5
    assert sum(p.values()) == pytest.approx(1.0)


def test_the_shipped_model_was_built_from_the_shipped_corpus():
    # a corpus file changed without `make model` would leave workers on a stale, uncalibrated model
    from workers.engine import corpus
    from workers.engine.model import SHIPPED

    m = load(SHIPPED.read_bytes())
    assert m.meta["corpus"] == corpus.digest()
    assert m.has_sentence_head and m.exemplars
    assert set(m.meta["calibration"]["thresholds"]) == {"self_harm", "unsafe_medical", "harassment"}
    assert {m.thresholds[c] for c in ("self_harm", "unsafe_medical", "harassment")} == set(
        m.meta["calibration"]["thresholds"].values())


def test_the_corpus_has_every_label_and_its_sources_say_where_they_come_from():
    from workers.engine import corpus

    exs = default_examples()
    assert {"ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment"} <= {e.label for e in exs}
    sources_md = (corpus.CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    for path in corpus.files():
        assert f"`{path.name}`" in sources_md


def test_multiclass_shipped_model():
    m = default_model()
    p = m.predict("Buy Ketamine HCL online without prescription, discreet shipping", None)
    assert max(p, key=p.get) == "spam"
    # the sentence head carries what it learned to languages with few examples
    p = m.predict("Ich habe die Tabletten gesammelt und einen Abschiedsbrief geschrieben. Morgen ist es vorbei.")
    assert p["self_harm"] >= m.thresholds["self_harm"]


def test_the_sentence_head_is_kept_when_moderators_retrain():
    base = default_model()
    exs = [Example(b, None, "spam") for b in SPAM] * 2 + [Example(b, "Ann", "ok") for b in HAM] * 2
    exs += [Example(e.body, e.author, e.label) for e in default_examples()[:300]]
    m = load(train(exs, base=base))
    assert m.thresholds == base.thresholds
    assert m.exemplars == base.exemplars  # private comments never become shown examples
    assert m.meta["trained_on"] == len(exs)
