"""`python -m bench.block_kit`: what a job card costs to build as plain dicts (how `bot.blocks` builds every
message) against the same card built with `slack_sdk.models.blocks` and turned into dicts. Printed as a ratio
of the two, measured in the same run; the decision it informs is in docs/architecture.md."""

from __future__ import annotations

import timeit
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot import blocks
from bot.commands import EnvRef
from bot.zuora.models import Job

ENV = EnvRef("c0ffee00000000000000000000000001", "staging")
JOB = Job.model_validate(
    {
        "id": "8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a",
        "status": "EXPORTING",
        "jobType": "REFRESH",
        "progressPercentage": 40,
        "createTime": "2026-11-30T10:00:00Z",
    }
)


def as_dicts() -> list[dict[str, Any]]:
    return blocks.job_card(JOB, ENV, requested_by="U0ALICE", track_id="sandbox-bot-1").blocks


def as_models() -> list[dict[str, Any]]:
    """The same card through slack_sdk's models (field texts taken as `bot.blocks` writes them)."""
    fields = [MarkdownTextObject(text=field["text"]) for field in as_dicts()[1]["fields"]]
    value = (
        '{"env":"c0ffee00000000000000000000000001","job":"8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a"}'
    )
    built = [
        HeaderBlock(text=PlainTextObject(text="Refresh job · EXPORTING")),
        SectionBlock(fields=fields),
        ActionsBlock(
            block_id="job:8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a:U0ALICE",
            elements=[
                ButtonElement(
                    text="Cancel job",
                    action_id=blocks.ACTION_CANCEL_JOB,
                    value=value,
                    style="danger",
                    confirm=ConfirmObject(
                        title="Cancel this refresh?",
                        text="The refresh stops and the sandbox keeps its current data.",
                        confirm="Cancel job",
                        deny="Keep it running",
                    ),
                ),
                ButtonElement(
                    text="Refresh status", action_id=blocks.ACTION_JOB_STATUS, value=value
                ),
            ],
        ),
        ContextBlock(elements=[MarkdownTextObject(text="Zuora-Track-Id `sandbox-bot-1`")]),
    ]
    return [block.to_dict() for block in built]


def main(number: int = 2000) -> None:
    dicts = min(timeit.repeat(as_dicts, number=number, repeat=5)) / number
    models = min(timeit.repeat(as_models, number=number, repeat=5)) / number
    print(f"job card as dicts: {dicts * 1e6:.1f} µs; with slack_sdk models: {models * 1e6:.1f} µs")
    print(f"ratio models/dicts: {models / dicts:.1f}")


if __name__ == "__main__":
    main()
