"""The learned model, two heads over the labels, averaged:

- n-grams: TF-IDF (binary term presence) over word and character n-grams of the normalised text
  (plus the author name), multinomial logistic regression;
- sentence: a multilingual sentence vector (encoder.py) of the normalised text, multinomial
  logistic regression. It carries what was learned in one language to the others;
- neighbours: the labels of the ten training comments nearest in that vector space, weighted
  by similarity (the same memory names the examples a moderator is shown).

The thresholds at which the model alone holds a comment are calibrated on out-of-sample
predictions (`calibrate`) and travel with the model.

Training uses scikit-learn; prediction does not. At load time the fitted vocabulary, idf
weights and coefficients are kept as plain arrays and a comment is scored with a sparse dot
product, because a scikit-learn `predict_proba` call costs far more than the whole rule chain.

The blob is gzip-compressed JSON with a format version: no pickle, so loading a blob cannot run
code. Blobs are only ever loaded from our own database or the seed data shipped here.
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from workers.engine.encoder import ENCODER_ID, SentenceEncoder, default_encoder
from workers.engine.filters.base import Text
from workers.engine.normalise import normalise
from workers.engine.patterns import (
    MODEL_EMAIL as _EMAIL,
)
from workers.engine.patterns import (
    MODEL_HANDLE as _HANDLE,
)
from workers.engine.patterns import (
    MODEL_PHONE as _PHONE,
)
from workers.engine.patterns import (
    MODEL_URL as _URL,
)
from workers.engine.patterns import (
    MODEL_URL_HINT as _URL_HINT,
)
from workers.engine.patterns import (
    host_of,
    is_reputable,
)

FORMAT_VERSION = 2
MODEL_ID = "model@2"
KIND = "ngram+sentence"
# Categories the model may hold a comment for on its own, with the thresholds used until a
# calibration says otherwise.
MODEL_CATEGORIES = ("self_harm", "unsafe_medical", "harassment", "spam")
DEFAULT_THRESHOLDS = {"self_harm": 0.3, "unsafe_medical": 0.5, "harassment": 0.5, "spam": 0.5}
NEIGHBOURS = 10
NEIGHBOUR_SHARPNESS = 10.0  # weight exp(10 · cosine): the nearest count most
# Labels whose training comments may be shown to moderators as "similar" (shipped corpus only).
SHOWN_LABELS = ("self_harm", "unsafe_medical", "harassment")
DATA = Path(__file__).parent / "filters" / "data"
log = logging.getLogger(__name__)

_MONEY = re.compile(r"[$€£]\s?\d[\d,.]*|\d[\d,.]*\s?(?:usd|eur|gbp|dollars|euros)")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[^\W_]+|[!?]+|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


@dataclass(frozen=True, slots=True)
class SentenceFeatures:
    """What the sentence encoder gives one comment of a batch: its vector and the label shares
    of its nearest training comments (found for the whole batch in one product)."""

    vector: np.ndarray
    near: np.ndarray | None


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled comment: label is "ok" or a category."""

    body: str
    author: str | None
    label: str


def _vetted_link(m: re.Match[str]) -> str:
    return " vettedlinktok " if is_reputable(host_of(m.group(0))) else m.group(0)


def _parts(text: str) -> tuple[list[str], list[str]]:
    """Tag features (links, emails, handles, phones, money) and the word tokens."""
    s = text
    tags: list[str] = []
    links = "." in s and ("http" in s or "www." in s or _URL_HINT.search(s) is not None)
    if links:
        # links to vetted health sources are a different thing from link drops
        s = _URL.sub(_vetted_link, s)
    at = "@" in s
    digits = _DIGIT.search(s) is not None
    for pat, tag, present in ((_URL, "URL", links), (_EMAIL, "EMAIL", at), (_HANDLE, "HANDLE", at),
                              (_PHONE, "PHONE", digits), (_MONEY, "MONEY", digits)):
        if not present:
            continue
        n = 0
        for _ in pat.finditer(s):
            n += 1
        if n:
            tags.append("t:" + tag)
            if n > 1:
                tags.append("t:" + tag + "+")
            s = pat.sub(" " + tag.lower() + "tok ", s)
    words = _WORD.findall(s)
    nw = len(words)
    tags.append("len:" + ("0" if nw < 3 else "1" if nw < 8 else "2" if nw < 25 else "3" if nw < 60 else "4"))
    return tags, words


def word_features(w: str) -> list[str]:
    """The word itself and its character 3- and 4-grams (with word-boundary padding)."""
    feats = ["w:" + w]
    if len(w) >= 3 and w.isalpha():
        p = " " + w + " "
        for n in (3, 4):
            for i in range(len(p) - n + 1):
                feats.append("c:" + p[i:i + n])
    return feats


def author_features(author: str | None) -> list[str]:
    """Word features of the display name."""
    if not author:
        return ["a:<none>"]
    return ["a:" + w for w in _WORD.findall(normalise(author).normalised)]


def features(text: str, author: str | None) -> list[str]:
    """Feature strings for one (already normalised) comment and its author."""
    tags, words = _parts(text)
    feats = list(tags)
    for w in words:
        feats.extend(word_features(w))
    feats.extend("b:" + a + " " + b for a, b in zip(words, words[1:]))
    feats.extend(author_features(author))
    return feats


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A labelled training comment shown to moderators as "similar to" (shipped data only)."""

    label: str
    text: str
    ref: str


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Model:
    """A fitted model, scored without scikit-learn."""

    def __init__(self, vocab: dict[str, int], idf: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, classes: list[str], meta: dict,
                 dense_coef: np.ndarray | None = None, dense_intercept: np.ndarray | None = None,
                 thresholds: dict[str, float] | None = None,
                 exemplars: tuple[Exemplar, ...] = (), exemplar_vectors: np.ndarray | None = None,
                 encoder: SentenceEncoder | None = None) -> None:
        self.vocab = vocab
        self.idf = idf
        self.coef_t = np.ascontiguousarray(coef.T)  # (features, classes): row gather is cheap
        self.intercept = intercept
        self.classes = classes
        self.meta = meta
        self.dense_coef_t = None if dense_coef is None else np.ascontiguousarray(dense_coef.T, dtype=np.float32)
        self.dense_intercept = dense_intercept
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.exemplars = exemplars
        self.exemplar_vectors = exemplar_vectors
        label_index = {c: i for i, c in enumerate(classes)}
        self._exemplar_labels = np.array([label_index.get(e.label, -1) for e in exemplars], dtype=np.int64)
        # per label, the exemplars that may be shown (only the shipped corpus keeps texts)
        shown: dict[str, list[int]] = {}
        for i, e in enumerate(exemplars):
            if e.text:
                shown.setdefault(e.label, []).append(i)
        self._shown = {k: np.asarray(v, dtype=np.int64) for k, v in shown.items()}
        # their vectors, contiguous per label: gathering them for every flagged comment cost more
        # than the rest of its explanation
        self._shown_vectors = ({k: np.ascontiguousarray(exemplar_vectors[v]) for k, v in self._shown.items()}
                               if exemplar_vectors is not None else {})
        self.encoder = encoder if encoder is not None else (default_encoder() if dense_coef is not None else None)
        # word -> (vocabulary columns of its features, {next word: column of the pair}): words
        # repeat, so n-gram and pair strings need not be rebuilt
        self._word_cols: dict[str, tuple[tuple[int, ...], dict[str, int] | None]] = {}
        # "b:first second" columns as first -> {second: column}: no string is built per word pair
        # (words never hold a space, so the split is unambiguous)
        self._bigrams: dict[str, dict[str, int]] = {}
        for f, j in vocab.items():
            if f.startswith("b:") and f.count(" ") == 1:
                a, b = f[2:].split(" ")
                self._bigrams.setdefault(a, {})[b] = j
        self._author_cols: dict[str | None, tuple[int, ...]] = {}
        self.model_id = f"model@{meta.get('format', FORMAT_VERSION)}.{meta.get('trained_on', 0)}"

    @property
    def has_sentence_head(self) -> bool:
        return self.dense_coef_t is not None

    def vectors(self, texts: Sequence[Text | str]) -> np.ndarray | None:
        """Sentence vectors of (normalised) comments, or None for an n-gram-only model."""
        if self.encoder is None or self.dense_coef_t is None:
            return None
        return self.encoder.encode([t.normalised if isinstance(t, Text) else normalise(t).normalised
                                    for t in texts])

    def _columns(self, s: str, author: str | None) -> list[int]:
        vocab = self.vocab
        cache = self._word_cols
        tags, words = _parts(s)
        cols: list[int] = [vocab[f] for f in tags if f in vocab]
        # Columns in the order tags, words, word pairs, author: the set below, hence the order
        # of the sums and the probabilities to the last bit, depends on it.
        pairs: list[int] = []
        bigrams = self._bigrams
        after: dict[str, int] | None = None  # second words that make a known pair with the last word
        for w in words:
            known = cache.get(w)
            if known is None:
                if len(cache) > 50_000:
                    cache.clear()
                known = cache[w] = (tuple(vocab[f] for f in word_features(w) if f in vocab), bigrams.get(w))
            cols.extend(known[0])
            if after is not None:
                j = after.get(w)
                if j is not None:
                    pairs.append(j)
            after = known[1]
        cols += pairs
        ac = self._author_cols.get(author)
        if ac is None:
            if len(self._author_cols) > 10_000:
                self._author_cols.clear()
            ac = self._author_cols[author] = tuple(vocab[f] for f in author_features(author) if f in vocab)
        cols.extend(ac)
        return cols

    def ngram_probs(self, text: Text | str, author: str | None = None) -> np.ndarray:
        """The n-gram head's probabilities, in the order of `classes`."""
        s = text.normalised if isinstance(text, Text) else normalise(text).normalised
        cols = self._columns(s, author)
        if cols:
            uniq = set(cols)
            idx = np.fromiter(uniq, dtype=np.int64, count=len(uniq))
            vals = self.idf[idx]
            norm = math.sqrt(float(vals @ vals))
            if norm:
                vals /= norm
            z = vals @ self.coef_t[idx] + self.intercept
        else:
            z = self.intercept.copy()
        if len(self.classes) == 2 and z.shape[0] == 1:
            p1 = 1.0 / (1.0 + math.exp(-float(z[0])))
            return np.array([1.0 - p1, p1])
        return _softmax(z)

    def sentence_probs(self, vector: np.ndarray) -> np.ndarray:
        """The sentence head's probabilities for one vector."""
        assert self.dense_coef_t is not None and self.dense_intercept is not None
        z = vector @ self.dense_coef_t + self.dense_intercept
        if z.shape[0] == 1:  # two labels: one logit
            p1 = 1.0 / (1.0 + math.exp(-float(z[0])))
            return np.array([1.0 - p1, p1])
        return _softmax(z)

    def neighbour_probs(self, vector: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray | None:
        """Label shares among the k nearest training comments, weighted by similarity."""
        near = self.neighbour_probs_many(vector[None, :], k)
        return None if near is None else near[0]

    def neighbour_probs_many(self, vectors: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray | None:
        """`neighbour_probs` for many vectors: one matrix product streams the training vectors
        once for the whole batch instead of once per comment."""
        if self.exemplar_vectors is None or len(self.exemplars) < k:
            return None
        sims = vectors @ self.exemplar_vectors.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        w = np.exp(NEIGHBOUR_SHARPNESS * np.take_along_axis(sims, top, axis=1))
        n = len(self.classes)
        out = np.empty((len(vectors), n))
        for i in range(len(vectors)):
            p = np.bincount(self._exemplar_labels[top[i]], weights=w[i], minlength=n)[:n]
            out[i] = p / p.sum()
        return out

    def features(self, vectors: np.ndarray | None) -> list[SentenceFeatures] | None:
        """Per comment of a batch, its vector and its neighbours' label shares."""
        if vectors is None:
            return None
        near = self.neighbour_probs_many(vectors)
        return [SentenceFeatures(v, None if near is None else near[i]) for i, v in enumerate(vectors)]

    def predict(self, text: Text | str, author: str | None = None,
                vector: np.ndarray | None = None, near: np.ndarray | None = None) -> dict[str, float]:
        """Probability per label ("ok" and categories) for one comment (`near`: its neighbours'
        label shares, when already found for its batch)."""
        p = self.ngram_probs(text, author)
        if self.dense_coef_t is not None:
            if vector is None:
                vecs = self.vectors([text])
                vector = None if vecs is None else vecs[0]
            if vector is not None:
                heads = [p, self.sentence_probs(vector)]
                if near is None:
                    near = self.neighbour_probs(vector)
                if near is not None:
                    heads.append(near)
                p = np.mean(heads, axis=0)
        return dict(zip(self.classes, p.tolist(), strict=True))

    def weighty_words(self, text: Text, author: str | None, category: str, n: int = 3) -> list[str]:
        """The words of the comment that pushed the n-gram head most towards `category`."""
        if category not in self.classes:
            return []
        c = self.classes.index(category)
        ok = self.classes.index("ok") if "ok" in self.classes else None
        _, words = _parts(text.normalised)
        weight: dict[str, float] = {}
        for w in set(words):
            cols = [self.vocab[f] for f in word_features(w) if f in self.vocab]
            if not cols:
                continue
            idx = np.asarray(cols)
            diff = self.coef_t[idx, c] - (self.coef_t[idx, ok] if ok is not None else 0.0)
            weight[w] = float((self.idf[idx] * diff).sum())
        top = sorted((w for w in weight if weight[w] > 0 and len(w) > 2), key=lambda w: -weight[w])
        return top[:n]

    def similar(self, vector: np.ndarray | None, category: str, n: int = 2) -> list[Exemplar]:
        """The labelled examples of `category` nearest to the comment's sentence vector."""
        idx = self._shown.get(category)
        if vector is None or self.exemplar_vectors is None or idx is None:
            return []
        sims = self._shown_vectors[category] @ vector
        return [self.exemplars[idx[i]] for i in np.argsort(-sims)[:n]]


def _identity(x: list[str]) -> list[str]:
    return x


def _b64(a: np.ndarray, dtype: str) -> dict:
    a = np.ascontiguousarray(a, dtype=dtype)
    return {"dtype": dtype, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _unb64(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), dtype=d["dtype"]).reshape(d["shape"]).astype(np.float32)


def _fit_ngram(exs: list[Example], C: float) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    docs = [features(normalise(e.body).normalised, e.author) for e in exs]
    vec = TfidfVectorizer(analyzer=_identity, binary=True, min_df=2, norm="l2")
    X = vec.fit_transform(docs)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
    clf.fit(X, [e.label for e in exs])
    return vec, clf


def _fit_sentence(vectors: np.ndarray, labels: list[str], classes: list[str],
                  C: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    clf.fit(vectors, labels)
    if list(clf.classes_) != classes:  # same label order as the n-gram head
        raise ValueError(f"sentence head labels {list(clf.classes_)} differ from {classes}")
    return clf.coef_, clf.intercept_


def train(examples: Iterable[Example], *, C: float = 10.0, base: Model | None = None,
          vectors: np.ndarray | None = None, thresholds: dict[str, float] | None = None,
          refs: Sequence[str] | None = None, sentence: bool = True,
          encoder: SentenceEncoder | None = None, sentence_C: float = 4.0,
          meta: dict[str, Any] | None = None) -> bytes:
    """Fit on labelled examples and return a versioned blob for `load`.

    With `base`, only the n-gram head is fitted again (moderators' decisions teach it); the
    sentence head, its thresholds and its neighbours come from `base`, so no private comment is
    ever shown as an example. Otherwise the sentence head is fitted on `vectors` (computed when
    not given), and every example becomes a neighbour; with `refs` (the shipped corpus, one
    reference per example) the texts of SHOWN_LABELS are kept to be shown.
    """
    exs = list(examples)
    vec, clf = _fit_ngram(exs, C)
    classes = [str(c) for c in clf.classes_]
    vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
    payload: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "kind": KIND,
        "trained_on": len(exs),
        "classes": classes,
        "vocab": sorted(vocab, key=vocab.__getitem__),
        "idf": [round(float(x), 6) for x in vec.idf_],
        "coef": [[round(float(x), 6) for x in row] for row in clf.coef_],
        "intercept": [float(x) for x in clf.intercept_],
        "meta": dict(meta or {}),
    }
    if base is not None and base.dense_coef_t is not None and base.classes == classes:
        assert base.dense_intercept is not None
        payload["sentence"] = {"encoder": ENCODER_ID, "coef": _b64(base.dense_coef_t.T, "float32"),
                               "intercept": _b64(base.dense_intercept, "float32")}
        payload["thresholds"] = dict(base.thresholds)
        if base.exemplar_vectors is not None:
            payload["exemplars"] = {"items": [[e.label, e.text, e.ref] for e in base.exemplars],
                                    "vectors": _b64(base.exemplar_vectors, "float16")}
    elif sentence:
        enc = encoder or default_encoder()
        if vectors is None:
            vectors = enc.encode([normalise(e.body).normalised for e in exs])
        coef, intercept = _fit_sentence(vectors, [e.label for e in exs], classes, sentence_C)
        payload["sentence"] = {"encoder": ENCODER_ID, "coef": _b64(coef, "float32"),
                               "intercept": _b64(intercept, "float32")}
        texts = [e.body[:280] if refs is not None and e.label in SHOWN_LABELS else "" for e in exs]
        payload["exemplars"] = {"items": [[e.label, t, ref] for e, t, ref in
                                          zip(exs, texts, refs or [""] * len(exs), strict=True)],
                                "vectors": _b64(vectors, "float16")}
    if thresholds is not None:
        payload["thresholds"] = {k: round(float(v), 4) for k, v in thresholds.items()}
    return gzip.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), mtime=0)


def load(blob: bytes, encoder: SentenceEncoder | None = None) -> Model:
    """Rebuild a model from a blob made by `train`; refuses unknown formats."""
    payload = json.loads(gzip.decompress(blob).decode("utf-8"))
    if payload.get("format") != FORMAT_VERSION or payload.get("kind") != KIND:
        raise ValueError(f"unsupported model blob format {payload.get('format')!r}")
    vocab = {f: i for i, f in enumerate(payload["vocab"])}
    meta = {k: payload[k] for k in ("format", "kind", "trained_on")} | payload.get("meta", {})
    dense = payload.get("sentence")
    ex = payload.get("exemplars")
    return Model(vocab, np.asarray(payload["idf"]), np.asarray(payload["coef"]),
                 np.asarray(payload["intercept"]), list(payload["classes"]), meta,
                 dense_coef=_unb64(dense["coef"]) if dense else None,
                 dense_intercept=_unb64(dense["intercept"]) if dense else None,
                 thresholds=payload.get("thresholds"),
                 exemplars=tuple(Exemplar(*it) for it in ex["items"]) if ex else (),
                 exemplar_vectors=_unb64(ex["vectors"]) if ex else None,
                 encoder=encoder)


def read_jsonl_examples(path: Path) -> Iterator[Example]:
    """Examples from a labelled JSONL file (shared/data/LABELS.md format)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                yield Example(r["body"], r.get("author"), r["label"])


def read_youtube_examples(path: Path) -> Iterator[Example]:
    """Examples from a YouTube Spam Collection CSV: CONTENT and AUTHOR only (never DATE)."""
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            yield Example(r["CONTENT"], r["AUTHOR"], "spam" if r["CLASS"].strip() == "1" else "ok")


def default_examples() -> list[Example]:
    """The shipped corpus (filters/data/corpus/), every source."""
    from workers.engine import corpus

    return [Example(x.body, x.author, x.label) for items in corpus.sources().values() for x in items]


SHIPPED = DATA / "model.json.gz"


def _shipped_if_current() -> tuple[bytes, Model] | None:
    """The shipped blob and its model, if it was built from the corpus as it is now."""
    from workers.engine import corpus

    if not SHIPPED.exists():
        return None
    blob = SHIPPED.read_bytes()
    model = load(blob)
    return (blob, model) if model.meta.get("corpus") == corpus.digest() else None


def _train_default() -> bytes:
    log.warning("the shipped model does not match the corpus: training one now, with default "
                "thresholds (run `make model`)")
    return train(default_examples())


def default_blob() -> bytes:
    """The shipped model (built by `triage model build` from the corpus it names); trained here,
    uncalibrated, only if the corpus changed since it was built."""
    shipped = _shipped_if_current()
    return shipped[0] if shipped else _train_default()


@lru_cache(maxsize=1)
def default_model() -> Model:
    """The default model, loaded once per process (the blob parsed once)."""
    shipped = _shipped_if_current()
    return shipped[1] if shipped else load(_train_default())
