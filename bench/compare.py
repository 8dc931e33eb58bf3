"""`python -m bench.compare [--rounds R] [--sizes 100,200] NAME=TREE ...`: bots from several source trees (this
checkout and, say, `git archive HEAD~1 | tar -x -C /tmp/before`), side by side with the bare Bolt app in one
run, so that a change is measured before and after under the same load.

Each tree's bot runs as `python -m bot` from that tree, against the same Zuora (bench/zuora_server.py, 1 s per
cancel) and the same Slack emulator; every round sends the same burst to each side, in an order that rotates
from round to round. Printed per size: each side's median ack p99 (and its ratio to the bare app's of the same
run), median p50 ratio, and the median and slowest time until every result was delivered. Speeds only; nothing
is judged. The process benchmark (`python -m bench`) remains the one the goals are measured with.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import BOT_TOKEN, SIGNING_SECRET
from bench.process import (
    Process,
    ZuoraProcess,
    bot_environment,
    compile_bot,
    free_port,
    one_burst,
    spawn,
)
from bot.sim.slack import SlackEmulator

BARE = "bare"
HERE = Path(__file__).resolve().parent.parent  # this checkout: its bare app is the baseline


async def _spawn_from(
    tree: Path, name: str, args: Sequence[str], env: dict[str, str], port: int
) -> Process:
    """Start `python args` with `tree` first on the path and as the working directory."""
    here = os.getcwd()
    os.chdir(tree)
    try:
        return await spawn(name, args, {**env, "PYTHONPATH": str(tree)}, port)
    finally:
        os.chdir(here)


async def compare(
    trees: dict[str, Path], sizes: Sequence[int], rounds: int, pool: int, latency: float
) -> dict[str, Any]:
    zuora = ZuoraProcess()
    slack = SlackEmulator(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET)
    await slack.start()
    sides: list[Process] = []
    try:
        await zuora.start(latency)
        for name, tree in trees.items():
            port = free_port()
            env = bot_environment(zuora.url, slack, port, pool)
            compile_bot(tree)
            sides.append(await _spawn_from(tree, name, ["-m", "bot"], env, port))
        port = free_port()
        env = bot_environment(zuora.url, slack, port, pool)
        sides.append(
            await _spawn_from(HERE, BARE, ["-m", "bench.bare_app", "--port", str(port)], env, port)
        )
        results: dict[str, Any] = {}
        sent: dict[str, int] = dict.fromkeys(trees, 0)  # commands sent to each bot so far
        for size in sizes:
            by_side: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
            for number in range(rounds):
                turn = number % len(sides)
                for side in sides[turn:] + sides[:turn]:
                    texts = [f"cancel {env_id} {job}" for env_id, job in await zuora.seed(size)]
                    handled = None
                    if side.name != BARE:
                        sent[side.name] += len(texts)
                        handled = sent[side.name]
                    by_side[side.name].append(
                        await one_burst(slack, side.url, texts, handled=handled)
                    )
                print(
                    f"{size} round {number}: "
                    + "  ".join(
                        f"{name} p99 {runs[-1]['p99'] * 1000:.0f} ms"
                        for name, runs in by_side.items()
                    ),
                    file=sys.stderr,
                    flush=True,
                )
            results[str(size)] = by_side
        return results
    finally:
        for side in sides:
            await side.stop()
        await zuora.stop()
        await slack.stop()


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(run[key]) for run in runs))


def summary(results: dict[str, Any], pool: int, latency: float) -> list[str]:
    lines = []
    for size, by_side in results.items():
        bare99, bare50 = _median(by_side[BARE], "p99"), _median(by_side[BARE], "p50")
        bound = math.ceil(int(size) / pool) * latency + 1.0
        lines.append(
            f"{size} at once, {len(by_side[BARE])} rounds: bare p99 {bare99 * 1000:.0f} ms"
        )
        for name, runs in by_side.items():
            if name == BARE:
                continue
            p99, p50 = _median(runs, "p99"), _median(runs, "p50")
            slowest = max(run["delivered"] for run in runs)
            lines.append(
                f"  {name}: p99 {p99 * 1000:.0f} ms, {p99 / bare99:.2f} x bare (p50 {p50 / bare50:.2f} x);"
                f" delivered {_median(runs, 'delivered'):.2f} s median, {slowest:.2f} s slowest"
                f" (bound {bound:g} s)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE", help="a name and a source tree")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sizes", default="100,200", help="commands per burst, comma-separated")
    parser.add_argument("--pool", type=int, default=20, help="ZUORA_MAX_CONNECTIONS of each bot")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds Zuora takes per cancel")
    args = parser.parse_args(argv)
    trees = {}
    for spec in args.trees:
        name, _, tree = spec.partition("=")
        if not tree or name == BARE or not (Path(tree) / "bot" / "__main__.py").is_file():
            parser.error(f"{spec}: expected NAME=TREE, TREE a checkout with bot/__main__.py")
        trees[name] = Path(tree).resolve()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = asyncio.run(compare(trees, sizes, args.rounds, args.pool, args.latency))
    print("\n".join(summary(results, args.pool, args.latency)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
