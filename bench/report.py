"""Results as a table for people and a list of failed checks (behaviour, never speed thresholds)."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str]
HEADER: Row = ("benchmark", "measure", "bot side", "baseline", "ratio")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _bytes(count: float) -> str:
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _acked(statuses: dict[str, int], sent: int) -> str:
    return f"{statuses.get('200', 0)}/{sent} 200"


def _spread(values: dict[str, float]) -> str:
    return (
        f"{values['median'] * 1000:.0f} ms ({values['min'] * 1000:.0f}-{values['max'] * 1000:.0f})"
    )


def _process_rows(result: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    c = result["config"]
    for size, burst in result["bursts"].items():
        name = f"process x{size}x{c['rounds']}"
        for key in ("p50", "p95", "p99"):
            table.append(
                (name, f"{key} ack, median (spread)", _spread(burst["bot"][key]),
                 _spread(burst["bare"][key]), _ratio(burst.get(f"ratio_{key}")
                 or (burst["bot"][key]["median"] / burst["bare"][key]["median"])))
            )  # fmt: skip
        table.append(
            (name, f"every result delivered (bound {burst['delivery_bound']:g} s)",
             _spread(burst["bot"]["delivered"]), "", "")
        )  # fmt: skip
        table.append(
            (name, "acks over 1 s / not 200", f"{burst['bot']['over_1s']} / {burst['bot']['not_200']}",
             f"{burst['bare']['over_1s']} / {burst['bare']['not_200']}", "")
        )  # fmt: skip
    table.append(("process", "peak RSS", _bytes(result["peak_rss"]["bot"]),
                  _bytes(result["peak_rss"]["bare"]), _ratio(result["peak_rss"]["ratio"])))  # fmt: skip
    table.append(("process", "start-up to healthy (median of starts)", _ms(result["startup"]["bot"]),
                  _ms(result["startup"]["bare"]), _ratio(result["startup"]["ratio"])))  # fmt: skip
    table.append(("process", "Zuora token requests / connections opened",
                  f"{result['token_requests']} / {result['zuora_connections']}", f"pool {c['pool']}", ""))  # fmt: skip
    calls = ", ".join(f"{k} {v}" for k, v in result["slack_calls"].items())
    table.append(("process", "Slack Web API calls", calls, "", ""))
    own = result["bot_metrics"]
    table.append(("process", "acks the bot timed (its /metrics) / over 1 s",
                  f"{own['acks']:.0f} / {own['acks_over_1s']:.0f}", "", ""))  # fmt: skip
    polling = result["polling"]
    table.append(("polling", f"Zuora calls per environment per hour ({polling['environments']} watched, each "
                  "with a followed job, every 1 s)", f"{polling['calls_per_environment_per_hour']:.0f}",
                  f"before the shared view: {polling['before_per_environment_per_hour']:.0f}",
                  _ratio(polling["calls_per_environment_per_hour"] / polling["before_per_environment_per_hour"])))  # fmt: skip
    life = result["lifecycle"]
    calls = ", ".join(f"{k} {v}" for k, v in life["slack_calls"].items())
    table.append(
        (
            "lifecycle",
            "Slack calls, QUEUED -> cancel -> CANCELLED",
            f"{life['total']}: {calls}",
            "",
            "",
        )
    )
    return table


def goals(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The performance goals (issue 12), each with what was measured and whether it held in this run."""
    result = results.get("process")
    if result is None:
        return []
    c = result["config"]
    found: list[tuple[str, str, bool]] = []
    for size, burst in result["bursts"].items():
        p99 = burst["bot"]["p99"]["median"] / burst["bare"]["p99"]["median"]
        found.append((f"ack p99 <= 1.2 x bare at {size}", f"{p99:.2f}", p99 <= 1.2))
        slowest = burst["bot"]["delivered"]["max"]
        bound = burst["delivery_bound"]
        found.append(
            (f"all {size} results within {bound:g} s", f"{slowest:.1f} s", slowest <= bound)
        )
    found.append(("1 token request", str(result["token_requests"]), result["token_requests"] == 1))
    found.append((f"Zuora connections <= pool ({c['pool']})", str(result["zuora_connections"]),
                  result["zuora_connections"] <= c["pool"]))  # fmt: skip
    for key, label in (("peak_rss", "peak RSS"), ("startup", "start-up to healthy")):
        value = result[key]["ratio"]
        found.append((f"{label} <= 1.5 x bare", f"{value:.2f}", value is not None and value <= 1.5))
    return found


def rows(results: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    process = results.get("process")
    if process is not None:
        table.extend(_process_rows(process))
    ack = results.get("ack_latency")
    if ack is not None:
        c = ack["config"]
        name = f"ack x{c['requests']}x{c['rounds']}"
        for k in ("p50", "p95", "max"):
            table.append(
                (name, f"{k} ack", _ms(ack["bot"][k]), _ms(ack["bare"][k]), _ratio(ack["ratio"][k]))
            )
        table.append(
            (
                name,
                "acked",
                _acked(ack["statuses"]["bot"], ack["sent"]),
                _acked(ack["statuses"]["bare"], ack["sent"]),
                "",
            )
        )
        table.append(
            (
                name,
                f"p95 ack vs Zuora latency {c['zuora_latency']:g} s",
                _ms(ack["bot"]["p95"]),
                _ms(c["zuora_latency"]),
                _ratio(ack["bot"]["p95"] / c["zuora_latency"]),
            )
        )
        table.append((name, "all replies delivered after", _ms(max(ack["drain_seconds"])), "", ""))
    client = results.get("zuora_client")
    if client is not None:
        c = client["config"]
        seq, conc = client["sequential"], client["concurrent"]
        for k in ("p50", "mean"):
            table.append(
                (
                    "zuora get_job",
                    f"sequential {k} per call",
                    _ms(seq["client"][k]),
                    _ms(seq["raw"][k]),
                    _ratio(seq["ratio"][k]),
                )
            )
        table.append(
            (
                "zuora get_job",
                "client overhead per call (mean)",
                f"{client['overhead_per_call_seconds'] * 1e6:.0f} µs",
                "",
                "",
            )
        )
        table.append(
            (
                "zuora get_job",
                f"burst of {c['concurrency']}, p50 wall",
                _ms(conc["client"]["p50"]),
                _ms(conc["raw"]["p50"]),
                _ratio(conc["ratio"]["p50"]),
            )
        )
    memory = results.get("memory")
    if memory is not None:
        name = f"memory x{memory['sent']}"
        bot, bare = memory["bot"], memory["bare"]
        table.append(
            (
                name,
                "tracemalloc peak",
                _bytes(bot["peak_bytes"]),
                _bytes(bare["peak_bytes"]),
                _ratio(memory["ratio_peak"]),
            )
        )
        table.append(
            (
                name,
                "peak per request",
                _bytes(bot["per_request_bytes"]),
                _bytes(bare["per_request_bytes"]),
                "",
            )
        )
        owners = bot["retained_by_owner"]
        table.append(
            (
                name,
                "retained after jobs end (bot/sims/libs)",
                _bytes(owners["bot"]),
                f"{_bytes(owners['simulators'])} / {_bytes(owners['libraries'])}",
                "",
            )
        )
        after = memory["after_jobs_end"]
        table.append(
            (
                name,
                "after end: watching/pollers/in flight",
                f"{after['live_watching']}/{after['live_card_tasks']}/"
                f"{after['cancels_in_flight'] + after['refreshes_in_flight']}",
                "",
                "",
            )
        )
    return table


def format_table(table: list[Row]) -> str:
    lines = [HEADER, *table]
    widths = [max(len(row[i]) for row in lines) for i in range(len(HEADER))]
    out = []
    for number, row in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in out)


def format_markdown(table: list[Row], met: list[tuple[str, str, bool]]) -> str:
    """The same table, and the goals, as Markdown (for README.md and docs/performance.md to quote)."""

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    out = [line(HEADER), line(tuple("---" for _ in HEADER)), *(line(row) for row in table)]
    if met:
        out += ["", "| goal | measured | held |", "| --- | --- | --- |"]
        out += [line((goal, measured, "met" if held else "missed")) for goal, measured, held in met]
    return "\n".join(out) + "\n"


def problems(results: dict[str, Any]) -> list[str]:
    """What went wrong in behaviour: unanswered requests, work not done, state left behind."""
    found: list[str] = []
    process = results.get("process")
    if process is not None:
        for size, burst in process["bursts"].items():
            for side in ("bot", "bare"):
                if burst[side]["not_200"]:
                    found.append(f"process x{size}: {side} left commands without a 200 ack")
        if any(process["exit_codes"].values()):
            found.append(f"process: exit codes {process['exit_codes']} (0 expected after SIGTERM)")
    ack = results.get("ack_latency")
    if ack is not None:
        for side in ("bot", "bare"):
            if ack["statuses"][side] != {"200": ack["sent"]}:
                found.append(f"ack: not every request to the {side} app was acked with 200")
        if ack["handled"] != ack["sent"]:
            found.append(f"ack: the bot delivered {ack['handled']} of {ack['sent']} replies")
        if ack["zuora_cancels"] != ack["expected_cancels"]:
            found.append("ack: Zuora did not receive one cancel per cancel command")
        if not ack["bot_p95_below_zuora_latency"]:
            found.append("ack: the bot's p95 ack was not below Zuora's latency")
    client = results.get("zuora_client")
    if client is not None and client["simulator_get_job_requests"] != sum(client["calls"].values()):
        found.append("zuora client: the simulator did not see one request per call")
    memory = results.get("memory")
    if memory is not None:
        for side in ("bot", "bare"):
            if memory["statuses"][side] != {"200": memory["sent"]}:
                found.append(f"memory: not every request to the {side} app was acked with 200")
        after = memory["after_jobs_end"]
        if memory["jobs_cancelled"] != memory["sent"] or not after["jobs_ended"]:
            found.append("memory: not every cancelled job ended")
        for key in ("live_watching", "live_card_tasks", "cancels_in_flight", "refreshes_in_flight"):
            if after[key]:
                found.append(f"memory: {key} is {after[key]} after every job ended")
        if after["background_tasks_after"] > after["background_tasks_before"]:
            found.append("memory: background tasks were left running after every job ended")
    return found
