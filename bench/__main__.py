"""`python -m bench [--quick] [--all] [--only NAME] [--out PATH] [--sizes 100,200] [--rounds 5] [--latency 1]
[--pool 20]`: the benchmarks; a table, and JSON and Markdown files (PATH, and PATH with `.md`).

By default (`make bench`, under 2 minutes) it runs `process`, the benchmark of issue 12 (the bot and a bare Bolt
app as processes), and `zuora_client`; `--all` adds the older in-process `ack_latency` and `memory` benchmarks,
which `process` has replaced (its acks are timed against a separate process, its memory is the peak RSS).

Exit status 0 when every benchmark ran and behaved (every request acked, every job ended, nothing left in
flight); 1 when a behavioural check failed. Speeds are reported, never judged: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ack, memory, process, zuora_client
from bench.report import format_markdown, format_table, goals, problems, rows


@dataclasses.dataclass
class ProcessOverrides:
    """What the command line changes in the process benchmark (`--sizes`, `--rounds`, `--latency`, `--pool`)."""

    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def config(self, quick: bool) -> process.ProcessConfig:
        base = process.QUICK if quick else process.ProcessConfig()
        return dataclasses.replace(base, **self.values)


PROCESS_OVERRIDES = ProcessOverrides()


BENCHMARKS: dict[str, tuple[Callable[[bool], Awaitable[dict[str, Any]]], str]] = {
    "process": (
        lambda quick: process.run(PROCESS_OVERRIDES.config(quick)),
        "bot and bare Bolt app as processes: acks, delivery, Zuora and Slack calls, RSS, start-up",
    ),
    "ack_latency": (
        lambda quick: ack.run(ack.QUICK if quick else ack.AckConfig()),
        "ack latency under load, bot vs bare Bolt app",
    ),
    "zuora_client": (
        lambda quick: zuora_client.run(
            zuora_client.QUICK if quick else zuora_client.ClientConfig()
        ),
        "ZuoraClient.get_job vs raw httpx",
    ),
    "memory": (
        lambda quick: memory.run(memory.QUICK if quick else memory.MemoryConfig()),
        "tracemalloc peak, bot cancels vs bare acks",
    ),
}


DEFAULT = ("process", "zuora_client")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1: {text!r}")
    return sizes


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a handful of requests each (CI)")
    parser.add_argument(
        "--out", type=Path, help="JSON results file (default: latest.json in a new temp dir)"
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only these (repeatable)"
    )
    parser.add_argument(
        "--all", action="store_true", help="every benchmark, not only the default ones"
    )
    process_options = parser.add_argument_group("the process benchmark")
    process_options.add_argument(
        "--sizes", type=_sizes, help="commands per burst, comma-separated (default 100,200)"
    )
    process_options.add_argument(
        "--rounds", type=_positive(int), help="rounds per size and side (default 5)"
    )
    process_options.add_argument(
        "--latency", type=_positive(float), help="seconds Zuora takes per cancel (default 1)"
    )
    process_options.add_argument(
        "--pool", type=_positive(int), help="the bot's ZUORA_MAX_CONNECTIONS (default 20)"
    )
    return parser.parse_args(argv)


def process_overrides(args: argparse.Namespace) -> ProcessOverrides:
    """What `--sizes`, `--rounds`, `--latency` and `--pool` change in the process benchmark (only those given)."""
    return ProcessOverrides(
        {
            field: value
            for field, value in (
                ("sizes", args.sizes),
                ("rounds", args.rounds),
                ("zuora_latency", args.latency),
                ("pool", args.pool),
            )
            if value is not None
        }
    )


async def run_all(names: list[str], quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        run, label = BENCHMARKS[name]
        print(f"running {name}: {label} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results[name] = await run(quick)
        results[name]["seconds"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    PROCESS_OVERRIDES.values = process_overrides(args).values
    names = args.only or list(BENCHMARKS if args.all else DEFAULT)
    started = time.perf_counter()
    benchmarks = asyncio.run(run_all(names, args.quick))
    seconds = time.perf_counter() - started
    found = problems(benchmarks)
    document: dict[str, Any] = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "seconds": seconds,
        },
        "benchmarks": benchmarks,
        "problems": found,
    }
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="sandbox-bot-bench-")) / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")

    print(format_table(rows(benchmarks)))
    met = goals(benchmarks)
    if met:
        print("\ngoals (this run):")
        for goal, measured, held in met:
            print(f"  {'met ' if held else 'MISSED'}  {goal}: {measured}")
    document["goals"] = [{"goal": g, "measured": m, "met": h} for g, m, h in met]
    out.write_text(json.dumps(document, indent=2) + "\n")
    markdown = out.with_suffix(".md")
    markdown.write_text(format_markdown(rows(benchmarks), met))
    print(f"\n{seconds:.1f} s; ratios are bot side / baseline; results in {out} and {markdown}")
    for problem in found:
        print(f"CHECK FAILED: {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
