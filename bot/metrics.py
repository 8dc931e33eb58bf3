"""Prometheus metrics, one registry per running bot (so tests and the demo can run several side by side),
with prometheus-client's process (`process_*`) and Python (`python_info`, `python_gc_*`) collectors on it."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

SLOW_ACK_SECONDS = 1.0  # an ack slower than this is counted: Slack gives up after 3 s


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.commands = Counter(
            "sandbox_commands",
            "Slack commands and button clicks handled, by subcommand/action and outcome.",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.zuora_calls = Counter(
            "sandbox_zuora_calls",
            "HTTP exchanges with Zuora, by operation and status (or timeout/connection).",
            ["operation", "status"],
            registry=self.registry,
        )
        self.zuora_seconds = Histogram(
            "sandbox_zuora_call_seconds",
            "Latency of HTTP exchanges with Zuora.",
            ["operation"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.rejected_requests = Counter(
            "sandbox_rejected_requests",
            "Requests to /slack/events turned away before parsing, by HTTP status (401, 400, 413).",
            ["status"],
            registry=self.registry,
        )
        self.duplicate_deliveries = Counter(
            "sandbox_duplicate_deliveries",
            "Requests Slack delivered again (retries, replays) that were answered and not acted on.",
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "sandbox_slack_calls",
            "Slack calls made for cards and answers, by method and outcome.",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.deliveries_given_up = Counter(
            "sandbox_deliveries_given_up",
            "Notification cards and audit lines that could not be delivered in the retry budget.",
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "sandbox_handler_seconds",
            "Time from a Slack request's ack to its reply being delivered.",
            ["command"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

        self.ack_seconds = Histogram(
            "sandbox_ack_seconds",
            "Time from a Slack request's arrival at /slack/events to its ack being sent.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5),
            registry=self.registry,
        )
        self.slow_acks = Counter(
            "sandbox_acks_over_1s",
            "Slack requests whose ack took longer than 1 s from their arrival at /slack/events.",
            registry=self.registry,
        )
        self.cards_followed = Gauge(
            "sandbox_cards_followed",
            "Jobs whose cards are being kept current (followed until the job ends).",
            registry=self.registry,
        )
        self.token_requests = Counter(
            "sandbox_zuora_token_requests",
            "Zuora OAuth token requests (renewals included), by outcome: ok, refused, timeout, connection, "
            "or the HTTP status.",
            ["outcome"],
            registry=self.registry,
        )

    def observe_ack(self, seconds: float) -> None:
        self.ack_seconds.observe(seconds)
        if seconds > SLOW_ACK_SECONDS:
            self.slow_acks.inc()

    def observe_token(self, outcome: str) -> None:
        self.token_requests.labels(outcome).inc()

    def count_followed(self, following: Callable[[], int]) -> None:
        """`following` says, when /metrics is read, how many jobs are followed."""
        self.cards_followed.set_function(following)

    def observe_zuora(self, operation: str, outcome: str, seconds: float) -> None:
        self.zuora_calls.labels(operation, outcome).inc()
        self.zuora_seconds.labels(operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
