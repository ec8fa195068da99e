"""The labelled comments the shipped model learns from: one JSONL file per source in
filters/data/corpus/ (format: shared/data/LABELS.md; where each came from: SOURCES.md there)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "filters" / "data" / "corpus"
LABELS = ("ok", "spam", "profanity", "unsafe_medical", "self_harm", "harassment")


@dataclass(frozen=True, slots=True)
class Labelled:
    """One labelled comment of the corpus."""

    ref: str  # "<source>/<id>"
    body: str
    author: str | None
    label: str
    ambiguous: bool
    kind: str
    expect: str


def files() -> list[Path]:
    """The corpus files, in a stable order."""
    return sorted(CORPUS.glob("*.jsonl"))


def read(path: Path) -> list[Labelled]:
    """One source's comments; refuses unknown labels."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if r["label"] not in LABELS:
                raise ValueError(f"{path.name}:{n}: unknown label {r['label']!r}")
            out.append(Labelled(f"{path.stem}/{r['id']}", r["body"], r.get("author"), r["label"],
                                bool(r.get("ambiguous")), str(r.get("kind", "")),
                                str(r.get("expect") or ("publish" if r["label"] == "ok" else "hold"))))
    return out


def sources() -> dict[str, list[Labelled]]:
    """Every source by name (the file's stem)."""
    return {p.stem: read(p) for p in files()}


def digest() -> str:
    """A hash of every corpus file: the shipped model records the corpus it learned from."""
    h = hashlib.sha256()
    for p in files():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
