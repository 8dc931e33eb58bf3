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


def rows(results: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
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


def problems(results: dict[str, Any]) -> list[str]:
    """What went wrong in behaviour: unanswered requests, work not done, state left behind."""
    found: list[str] = []
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
