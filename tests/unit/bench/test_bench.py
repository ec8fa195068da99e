"""The benchmark's pure helpers: wrk parsing, Lua quoting, statistics, targets, corpus."""

import json

import pytest

from bench import corpus as corpus_mod
from bench import report
from bench.load import MARK, lua_script, lua_string, parse_wrk
from bench.stats import (
    evaluate_targets,
    percentile,
    percentile_censored,
    ratio,
    render_markdown,
    render_text,
    table_rows,
)


def test_percentile_interpolates_and_handles_edges():
    assert percentile([], 50) is None
    assert percentile([7], 99) == 7
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99
    assert percentile([5, 1, 3], 0) == 1 and percentile([5, 1, 3], 100) == 5


def test_censored_percentile_is_a_lower_bound_only_when_it_lands_on_unseen():
    observed = [10.0] * 98
    assert percentile_censored(observed, [], 99) == (10.0, False)
    value, lower = percentile_censored(observed, [5000.0, 5000.0], 99)
    assert lower and value == pytest.approx(5000.0)
    value, lower = percentile_censored(observed, [5000.0, 5000.0], 50)
    assert (value, lower) == (10.0, False)


def test_ratio_refuses_missing_or_zero():
    assert ratio(1.0, 2.0) == 0.5
    assert ratio(None, 2.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None


def test_targets_compare_in_the_right_direction():
    t = evaluate_targets({"ingest_ratio": 0.5, "pipeline_ratio": 0.49, "e2e_p99_ms": 100.0,
                          "e2e_p50_ms": 30.0, "classify_us_p50": None})
    assert t["ingest_ratio"]["met"] is True
    assert t["pipeline_ratio"]["met"] is False
    assert t["e2e_p99_ms"]["met"] is True
    assert t["e2e_p50_ms"]["met"] is False
    assert t["classify_us_p50"]["met"] is None
    assert t["read_ratio"]["target"] == ">= 0.8"


def test_tables_show_ratio_result_and_lower_bounds():
    figures = {"ingest_rps": 900.0, "ingest_baseline_rps": 2000.0, "ingest_ratio": 0.45,
               "e2e_p99_ms": 4000.0, "e2e_p99_ms_lower_bound": True}
    rows = table_rows(figures)
    ingest = next(r for r in rows if r[0].startswith("ingest"))
    assert ingest[1] == "900 req/s" and ingest[2] == "2,000" and ingest[3] == "0.45"
    assert ingest[5] == "NOT MET"
    p99 = next(r for r in rows if "p99" in r[0] and "e2e" in r[0])
    assert p99[1].startswith("≥ 4,000.0")
    assert "—" in next(r for r in rows if r[0].startswith("pipeline"))[1]
    md = render_markdown(rows)
    assert md.splitlines()[1] == "|---|---|---|---|---|---|"
    assert len(render_text(rows).splitlines()) == len(rows) + 2


def _wrk_output(**over):
    data = {"requests": 1000, "duration_us": 2_000_000, "bytes": 1,
            "errors": {"connect": 0, "read": 0, "write": 0, "status": 100, "timeout": 0},
            "latency_us": {"p50": 1, "p90": 2, "p99": 3, "max": 4, "mean": 1.5}}
    data.update(over)
    return "Running 2s test @ http://x\n  Requests/sec: 500\n" + MARK + json.dumps(data) + "\n"


def test_parse_wrk_counts_only_successful_responses():
    out = parse_wrk(_wrk_output())
    assert out["ok"] == 900 and out["rps"] == pytest.approx(450.0) and out["error_count"] == 100


def test_parse_wrk_without_summary_fails_clearly():
    with pytest.raises(ValueError, match="no summary"):
        parse_wrk("Running 2s test\nunable to connect\n")


@pytest.mark.parametrize("text", ["plain", 'a "quoted" ]] body', "ends with ]", "x]=]y]==]", "]"])
def test_lua_long_strings_never_close_early(text):
    lit = lua_string(text)
    level = lit.index("[", 1) - 1
    close = "]" + "=" * level + "]"
    assert lit.endswith(close) and lit[level + 2:-len(close)] == text
    assert close not in text and not text.endswith("]" + "=" * level)


def test_lua_script_has_bodies_headers_and_summary():
    script = lua_script("POST", "/v1/x", {"Content-Type": "application/json"}, ['{"a": 1}', "{}"])
    assert "[ [[Content-Type]] ] = [[application/json]]" in script
    assert "bodies[math.random(n)]" in script and "BENCHJSON" in script
    assert "local req" in lua_script("GET", "/bench/hello")


def test_corpus_mixes_kinds_and_varies_bodies():
    c = corpus_mod.Corpus([], seed=1)
    items = c.mixed(1000)
    kinds = {k for k, _ in items}
    assert kinds == set(corpus_mod.Corpus.KINDS)
    assert len({b for _, b in items}) > 500
    clean = c.clean_unique(300)
    assert len(set(clean)) == 300
    p = c.payload("hello there")
    assert p["body"] == "hello there" and p["author"]


def test_corpus_drops_clean_fragments_the_engine_would_hold():
    c = corpus_mod.Corpus([], seed=1)
    dropped = c.keep_clean(lambda s: "nurse" not in s)
    assert dropped >= 1 and not any("nurse" in s for s in c.clean_openers)


def test_dev_set_is_found_beside_the_repository(tmp_path):
    repo = tmp_path / "repo"
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    repo.mkdir()
    (data / "dev_comments.jsonl").write_text('{"body": "Hi there. Thanks!", "label": "ok"}\n')
    assert corpus_mod.load_dev_set(repo)[0]["label"] == "ok"
    assert corpus_mod.load_dev_set(tmp_path / "elsewhere" / "repo") == []


def test_alternating_loads_take_turns_and_add_up():
    from bench.load import alternate

    order = []

    def load(name, rps, p99):
        def run(seconds):
            order.append((name, seconds))
            return {"tool": "wrk", "requests": rps * seconds, "ok": rps * seconds, "seconds": seconds,
                    "rps": rps, "errors": {"status": 0, "read": 1}, "error_count": 1,
                    "latency_us": {"p50": 100, "p99": p99 + len(order), "max": 1000}}
        return run

    out = alternate({"base": load("base", 100, 500), "post": load("post", 40, 900)}, 6, 3)
    assert order == [("base", 2), ("post", 2)] * 3
    assert out["base"]["ok"] == 600 and out["base"]["seconds"] == 6 and out["base"]["rps"] == 100
    assert out["post"]["rps"] == 40 and out["post"]["rounds"] == [40, 40, 40]
    assert out["post"]["errors"] == {"status": 0, "read": 3} and out["post"]["error_count"] == 3
    assert out["post"]["latency_us"]["p99"] == 906 and out["post"]["latency_us"]["p50"] == 100


def test_ingest_note_says_when_the_server_closed_connections():
    base = {"tool": "wrk", "ingest": {"rounds": [2000.0]}, "ingest_baseline": {"rounds": [4000.0]}}
    closed = report.notes_for({**base, "read_check": {"connection": "close"}})[0]
    kept = report.notes_for({**base, "read_check": {"connection": None}})[0]
    assert "closes each connection" in closed and closed.endswith(".")
    assert "closes each connection" not in kept and kept.endswith("(baseline 4,000).")


def test_each_database_writes_its_own_readme_table():
    assert report.readme_section("sqlite:////tmp/bench.db") == "performance"
    assert report.readme_section("postgresql+psycopg://u@h:5432/db") == "performance-postgresql"
