"""The filter chain alone, timed in a process that holds only the engine."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from . import corpus as corpus_mod
from .common import Run
from .stack import wait_quiet
from .stats import percentile


def measure_classify(engine: Any, dev: list[dict[str, Any]], corpus: corpus_mod.Corpus,
                     passes: int = 3) -> dict[str, Any]:
    """Per-comment time of Engine.classify on the dev set (in the calling process, steady state)."""
    rows = [(r["body"], r.get("author")) for r in dev] or [
        (b, "Maya") for _, b in corpus.mixed(400)]
    for body, author in rows[:50]:
        engine.classify(body, author)
    samples: list[float] = []
    for _ in range(passes):
        for body, author in rows:
            t = time.perf_counter_ns()
            engine.classify(body, author)
            samples.append((time.perf_counter_ns() - t) / 1000)
    return {"source": "dev set" if dev else "generated", "comments": len(rows),
            "samples": len(samples), "p50": percentile(samples, 50), "p99": percentile(samples, 99),
            "mean": sum(samples) / len(samples)}


def classify_alone(repo: str, conn: Any, passes: int = 3) -> None:
    """In a process of its own, as a worker's pool process holds the engine: load the engine and
    the dev set, freeze them out of the collector's sight (workers.tasks does the same), say
    "ready", and on "go" send back measure_classify's figures (or the error, as text)."""
    try:
        from workers.engine.pipeline import Engine

        engine = Engine()
        dev = corpus_mod.load_dev_set(Path(repo))
        corpus = None if dev else corpus_mod.Corpus(dev)
        gc.collect()
        gc.freeze()
        conn.send("ready")
        if conn.recv() == "go":
            conn.send(measure_classify(engine, dev, corpus, passes))  # type: ignore[arg-type]
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(f"error: {exc!r}")


class ClassifyAlone:
    """classify_alone in a spawned process (nothing of this process's heap or threads comes
    along): the engine loads while the stack settles; the chain is timed on run()."""

    def __init__(self, repo: Path, timeout: float = 120) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.conn, there = ctx.Pipe()
        self.proc = ctx.Process(target=classify_alone, args=(str(repo), there), daemon=True)
        self.proc.start()

    def _answer(self) -> Any:
        if not self.conn.poll(self.timeout):
            raise RuntimeError(f"the classify process did not answer within {self.timeout:.0f} s")
        got = self.conn.recv()
        if isinstance(got, str) and got.startswith("error:"):
            raise RuntimeError(f"the classify process failed: {got[7:]}")
        return got

    def wait_ready(self) -> None:
        if self._answer() != "ready":
            raise RuntimeError("the classify process did not say it was ready")

    def run(self) -> dict[str, Any]:
        """Let it time the chain (after wait_ready) and return its figures."""
        try:
            self.conn.send("go")
            return self._answer()  # type: ignore[no-any-return]
        finally:
            self.close()

    def close(self) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def measure(run: Run, repo: Path) -> None:
    """Timed once the stack is idle and warm, in a process of its own (see ClassifyAlone)."""
    # After the read setup the worker's processes were seen still busy for a second or two
    # (their engines loading, the last batches), on the same two cores.
    run.progress("classify: loading the engine in a process of its own; waiting for the stack "
                 "to go quiet")
    classifier = ClassifyAlone(repo)
    classifier.wait_ready()
    quiet, waited = wait_quiet([p.pid for p in run.stack.procs.values()], time.monotonic() + 15)
    run.progress("classify: filter chain on the dev set, in a process of its own")
    cls = classifier.run()
    cls.update(stack_quiet=quiet, quiet_wait_s=round(waited, 2))
    run.details["classify"] = cls
    run.results["classify_us_p50"] = cls["p50"]
    run.results["classify_us_p99"] = cls["p99"]
