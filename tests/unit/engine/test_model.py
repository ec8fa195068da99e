import gzip
import json

import pytest

from workers.engine.model import FORMAT_VERSION, Example, default_examples, load, train

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


def test_multiclass_on_seed_data():
    exs = default_examples()
    labels = {e.label for e in exs}
    assert {"ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment"} <= labels
    m = load(train(exs))
    p = m.predict("Buy Ketamine HCL online without prescription, discreet shipping", None)
    assert max(p, key=p.get) == "spam"
