"""The learned model: TF-IDF (binary term presence) over word and character n-grams of the normalised text (plus the
author name), multinomial logistic regression over the labels.

Training uses scikit-learn; prediction does not. At load time the fitted vocabulary, idf
weights and coefficients are kept as plain arrays and a comment is scored with a sparse dot
product, because a scikit-learn `predict_proba` call costs far more than the whole rule chain.

The blob is gzip-compressed JSON with a format version: no pickle, so loading a blob cannot run
code. Blobs are only ever loaded from our own database or the seed data shipped here.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

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

FORMAT_VERSION = 1
MODEL_ID = "model@1"
DATA = Path(__file__).parent / "filters" / "data"

_MONEY = re.compile(r"[$€£]\s?\d[\d,.]*|\d[\d,.]*\s?(?:usd|eur|gbp|dollars|euros)")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[^\W_]+|[!?]+|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


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


class Model:
    """A fitted model, scored without scikit-learn."""

    def __init__(self, vocab: dict[str, int], idf: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, classes: list[str], meta: dict) -> None:
        self.vocab = vocab
        self.idf = idf
        self.coef_t = np.ascontiguousarray(coef.T)  # (features, classes): row gather is cheap
        self.intercept = intercept
        self.classes = classes
        self.meta = meta
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

    def predict(self, text: Text | str, author: str | None = None) -> dict[str, float]:
        """Probability per label ("ok" and categories) for one comment."""
        s = text.normalised if isinstance(text, Text) else normalise(text).normalised
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
            return {self.classes[0]: 1.0 - p1, self.classes[1]: p1}
        e = np.exp(z - z.max())
        e /= e.sum()
        return dict(zip(self.classes, e.tolist()))


def _identity(x: list[str]) -> list[str]:
    return x


def train(examples: Iterable[Example], *, C: float = 10.0) -> bytes:
    """Fit on labelled examples and return a versioned blob for `load`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    exs = list(examples)
    docs = [features(normalise(e.body).normalised, e.author) for e in exs]
    labels = [e.label for e in exs]
    vec = TfidfVectorizer(analyzer=_identity, binary=True, min_df=2, norm="l2")
    X = vec.fit_transform(docs)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
    clf.fit(X, labels)
    vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
    payload = {
        "format": FORMAT_VERSION,
        "kind": "tfidf-logreg",
        "trained_on": len(exs),
        "classes": [str(c) for c in clf.classes_],
        "vocab": sorted(vocab, key=vocab.__getitem__),
        "idf": [round(float(x), 6) for x in vec.idf_],
        "coef": [[round(float(x), 6) for x in row] for row in clf.coef_],
        "intercept": [float(x) for x in clf.intercept_],
    }
    return gzip.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), mtime=0)


def load(blob: bytes) -> Model:
    """Rebuild a model from a blob made by `train`; refuses unknown formats."""
    payload = json.loads(gzip.decompress(blob).decode("utf-8"))
    if payload.get("format") != FORMAT_VERSION or payload.get("kind") != "tfidf-logreg":
        raise ValueError(f"unsupported model blob format {payload.get('format')!r}")
    vocab = {f: i for i, f in enumerate(payload["vocab"])}
    meta = {k: payload[k] for k in ("format", "kind", "trained_on")}
    return Model(vocab, np.asarray(payload["idf"]), np.asarray(payload["coef"]),
                 np.asarray(payload["intercept"]), list(payload["classes"]), meta)


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
    """Seed training data shipped in workers/filters/data/ (seed_*.jsonl and seed_*.csv)."""
    out: list[Example] = []
    for p in sorted(DATA.glob("seed_*.jsonl")):
        out.extend(read_jsonl_examples(p))
    for p in sorted(DATA.glob("seed_*.csv")):
        out.extend(read_youtube_examples(p))
    return out


@lru_cache(maxsize=1)
def default_model() -> Model:
    """The model trained on the seed data, built once per process."""
    return load(train(default_examples()))
