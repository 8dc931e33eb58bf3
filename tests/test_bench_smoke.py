"""The benchmarks still run: `python -m bench --quick` once, then its results checked for structure and behaviour.

No speed is asserted, and no ratio threshold, except one property that cannot flake: the quick run makes Zuora
slower than Slack's 3 s ack budget, so a command acked within the budget was acked before Zuora answered (the
bot acks before it calls Zuora); a bot that waited would time out instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import ack, compare, memory, process, report, zuora_client
from bench.__main__ import main
from bench.common import ACK_BUDGET, percentile, summarize
from bench.report import format_table, problems, rows

BENCHMARKS = {"ack_latency", "zuora_client", "memory", "process"}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench") / "nested" / "latest.json"


@pytest.fixture(scope="module")
def run(out: Path) -> tuple[int, dict[str, Any], str]:
    """One quick run of every benchmark through the command line entry point."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        status = main(["--quick", "--all", "--out", str(out)])
    return status, json.loads(Path(out).read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def results(run: tuple[int, dict[str, Any], str]) -> dict[str, Any]:
    benchmarks: dict[str, Any] = run[1]["benchmarks"]
    return benchmarks


def test_every_benchmark_runs_and_the_run_is_clean(run: tuple[int, dict[str, Any], str]) -> None:
    status, document, printed = run
    assert status == 0
    assert set(document["benchmarks"]) == BENCHMARKS
    assert document["problems"] == []
    assert document["meta"]["quick"] is True
    assert "ratio" in printed.splitlines()[0]
    assert "tracemalloc peak" in printed and "p95 ack" in printed


def test_the_run_is_also_written_as_a_markdown_table(
    run: tuple[int, dict[str, Any], str], out: Path
) -> None:
    markdown = out.with_suffix(".md").read_text().splitlines()
    assert markdown[0] == "| benchmark | measure | bot side | baseline | ratio |"
    assert markdown[1] == "| --- | --- | --- | --- | --- |"
    config = process.QUICK
    for size in config.sizes:
        row = f"| process x{size}x{config.rounds} | p99 ack"
        assert len([line for line in markdown if line.startswith(row)]) == 1, row
    goals = [line for line in markdown if line.endswith(("| met |", "| missed |"))]
    assert len(goals) == len(report.goals(run[1]["benchmarks"])) > 0
    assert all(line.count("|") == 4 for line in goals)


def test_ack_bench_every_request_acked_and_handled(results: dict[str, Any]) -> None:
    result = results["ack_latency"]
    config = ack.QUICK
    sent = config.requests * config.rounds
    assert result["sent"] == sent
    assert result["statuses"] == {"bot": {"200": sent}, "bare": {"200": sent}}
    assert result["handled"] == sent  # every reply was delivered, not only acked
    cancels = sum(1 for n in range(config.requests) if config.mix[n % len(config.mix)] == "cancel")
    assert result["zuora_cancels"] == result["expected_cancels"] == cancels * config.rounds
    assert sum(kind["count"] for kind in result["bot_by_kind"].values()) == sent
    assert set(result["bot_by_kind"]) == set(config.mix)
    for side in ("bot", "bare"):
        assert result[side]["count"] == sent
        assert 0 < result[side]["p50"] <= result[side]["p95"] <= result[side]["max"]
    assert set(result["ratio"]) == {"p50", "p95", "max"}
    assert len(result["drain_seconds"]) == config.rounds


def test_the_bots_ack_does_not_wait_for_a_slow_zuora(results: dict[str, Any]) -> None:
    result = results["ack_latency"]
    latency = result["config"]["zuora_latency"]
    assert latency == ack.QUICK.zuora_latency > ACK_BUDGET
    assert result["statuses"]["bot"] == {"200": result["sent"]}  # all acked within the budget...
    assert result["bot"]["max"] < latency  # ...so before Zuora answered any of them
    assert result["bot_p95_below_zuora_latency"] is True
    # ...while the work itself did wait for Zuora: the replies came after its latency.
    assert min(result["drain_seconds"]) >= latency


def test_zuora_client_bench_counts_every_call(results: dict[str, Any]) -> None:
    result = results["zuora_client"]
    config = zuora_client.QUICK
    per_side = (config.calls + config.concurrency) * config.rounds
    assert result["calls"] == {"client": per_side, "raw": per_side}
    assert result["simulator_get_job_requests"] == 2 * per_side
    for side in ("client", "raw"):
        assert result["sequential"][side]["count"] == config.calls * config.rounds
        assert result["concurrent"][side]["count"] == config.rounds
    assert set(result["sequential"]["ratio"]) == {"p50", "p95", "mean"}
    assert all(value > 0 for value in result["sequential"]["ratio"].values())


def test_memory_bench_measures_and_leaves_nothing_in_flight(results: dict[str, Any]) -> None:
    result = results["memory"]
    k = memory.QUICK.requests
    assert result["sent"] == k
    assert result["statuses"] == {"bot": {"200": k}, "bare": {"200": k}}
    assert result["jobs_cancelled"] == k
    for side in ("bot", "bare"):
        assert result[side]["peak_bytes"] > 0
        assert result[side]["per_request_bytes"] == result[side]["peak_bytes"] / k
    assert result["ratio_peak"] == result["bot"]["peak_bytes"] / result["bare"]["peak_bytes"]
    assert result["bot"]["jobs_followed_when_handled"] == k  # job cards were really being followed
    assert set(result["bot"]["retained_by_owner"]) == {"bot", "simulators", "bench", "libraries"}
    after = result["after_jobs_end"]
    assert after["jobs_ended"] is True
    assert after["live_watching"] == after["live_card_tasks"] == 0
    assert after["cancels_in_flight"] == after["refreshes_in_flight"] == 0
    assert after["background_tasks_after"] <= after["background_tasks_before"]
    assert after["notification_cards_remembered"] == k


def test_problems_name_what_went_wrong(results: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(results))
    broken["ack_latency"]["statuses"]["bot"] = {
        "200": 1,
        "timeout": broken["ack_latency"]["sent"] - 1,
    }
    broken["ack_latency"]["bot_p95_below_zuora_latency"] = False
    broken["memory"]["after_jobs_end"]["live_watching"] = 2
    broken["zuora_client"]["simulator_get_job_requests"] -= 1
    found = problems(broken)
    assert len(found) == 4
    assert any("bot app was acked" in p for p in found)
    assert any("p95" in p for p in found)
    assert any("live_watching is 2" in p for p in found)
    assert any("one request per call" in p for p in found)
    assert problems(results) == []


def test_the_process_benchmark_measures_both_sides_and_minimal_slack_calls(
    results: dict[str, Any],
) -> None:
    result = results["process"]
    for burst in result["bursts"].values():
        for side in ("bot", "bare"):
            assert burst[side]["not_200"] == 0
            assert burst[side]["p50"]["median"] <= burst[side]["p99"]["median"]
    assert result["token_requests"] == 1  # however many commands ran at once
    # The bot's own /metrics timed every ack it sent (the bare app's are not its).
    sent = sum(process.QUICK.sizes) * process.QUICK.rounds
    assert result["bot_metrics"]["acks"] == result["bot_metrics"]["handled"] == sent
    assert 0 < result["zuora_connections"] <= result["config"]["pool"]
    assert result["exit_codes"] == {"bot": 0, "bare": 0}
    assert result["peak_rss"]["bot"] > 0 and result["startup"]["bot"] > 0
    for side in ("bot", "bare"):  # the start-up reported is the median of every start timed
        samples = result["startup"]["samples"][side]
        assert len(samples) == process.QUICK.startups
        assert result["startup"][side] == statistics.median(samples)
    # One job's life, QUEUED -> cancel -> CANCELLING -> CANCELLED: the channel card, the notification card,
    # its audit line, each card edited once to CANCELLED, an end-of-job reply under each; the history once.
    assert result["lifecycle"]["slack_calls"] == {
        "chat.postMessage": 5,
        "chat.update": 2,
        "conversations.history": 1,
    }
    polling = result["polling"]
    assert polling["by_operation"].keys() == {"getAllJobsOfTestEnvironment"}  # no GET per job


def test_table_has_a_row_per_measure(results: dict[str, Any]) -> None:
    table = rows(results)
    assert {row[0].split()[0] for row in table} == {
        "ack", "zuora", "memory", "process", "polling", "lifecycle",
    }  # fmt: skip
    text = format_table(table)
    assert len(text.splitlines()) == len(table) + 2  # header and rule


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 95) == 7.0
    assert summarize([3.0, 1.0, 2.0]) == {
        "count": 3,
        "p50": 2.0,
        "p95": 3.0,
        "max": 3.0,
        "mean": 2.0,
    }
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_compare_runs_bots_from_source_trees_side_by_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m bench.compare` with this checkout as the one tree: one short round, a summary line each."""
    here = str(Path(__file__).resolve().parent.parent)
    assert compare.main(["--rounds", "1", "--sizes", "4", "--latency", "0.2", f"this={here}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 at once, 1 rounds: bare p99")
    assert lines[1].startswith("  this: p99") and "x bare" in lines[1] and "bound 1.2 s" in lines[1]
    with pytest.raises(SystemExit):
        compare.main(["bare=" + here])  # the baseline's name is taken


def modules_loaded_by(module: str) -> list[str]:
    """Every module a fresh interpreter has loaded once it has imported `module`."""
    return subprocess.run(  # noqa: S603  # this interpreter, a module name written in this file
        [sys.executable, "-c", f"import sys, {module}; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()


def test_the_bare_app_baseline_loads_nothing_of_the_bot() -> None:
    """The bare app's memory and start-up are the baseline of the bot's: had it imported the bot's modules (it
    once did, for two constants), their cost would have been counted on both sides."""
    loaded = modules_loaded_by("bench.bare_app")
    assert "slack_bolt.async_app" in loaded and "aiohttp.web" in loaded
    assert [name for name in loaded if name == "bot" or name.startswith("bot.")] == []
    assert "pydantic" not in loaded and "httpx" not in loaded


def test_a_bot_without_redis_or_socket_mode_does_not_load_their_clients() -> None:
    loaded = modules_loaded_by("bot.runtime")
    assert "bot.runtime" in loaded
    assert [name for name in loaded if name == "redis" or name.startswith("redis.")] == []
    assert [name for name in loaded if name.startswith("slack_sdk.socket_mode")] == []


def test_the_process_benchmark_options_are_checked_and_change_its_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.__main__ import parse_args, process_overrides

    for bad in (["--sizes", "0"], ["--sizes", "a,b"], ["--latency", "-1"], ["--rounds", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert bad[0] in capsys.readouterr().err
    args = parse_args(["--sizes", "3,5", "--rounds", "2", "--latency", "0.5", "--pool", "4"])
    config = process_overrides(args).config(quick=False)
    assert (config.sizes, config.rounds, config.zuora_latency, config.pool) == ((3, 5), 2, 0.5, 4)
    assert process_overrides(parse_args([])).config(quick=True) == process.QUICK
