"""`sandbox-bot` (same as `python -m bot`): run | demo | check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from bot import logs
from bot.config import ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox-bot",
        description="Slack bot for Zuora Central Sandbox refresh jobs. Without a subcommand it runs the bot: "
        "Socket Mode when SLACK_APP_TOKEN is set, otherwise an HTTP server on PORT.",
    )
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("run", help="run the bot (the default)")
    demo = sub.add_parser(
        "demo", help="run the bot against a local Zuora simulator and Slack console"
    )
    demo.add_argument(
        "--port", type=int, default=3000, help="console port (default 3000; 0 picks a free one)"
    )
    demo.add_argument("--open", action="store_true", help="open the console in a browser")
    demo.add_argument(
        "--verbose",
        action="store_true",
        help="show the bot's log and audit lines (INFO) on standard error; without it only warnings",
    )
    check = sub.add_parser("check", help="validate the configuration and exit 0, or 2 on problems")
    check.add_argument(
        "--online", action="store_true", help="also call Slack auth.test and request a Zuora token"
    )
    return parser


def _print_problems(error: ConfigError) -> None:
    print("sandbox-bot: the configuration has problems:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)
    print("See .env.example; `sandbox-bot demo` runs without any configuration.", file=sys.stderr)


def _warn(warnings: Sequence[str]) -> None:
    sys.stdout.flush()  # keep the listing and the warnings in order when both go to one pipe
    for warning in warnings:
        print(f"  warning: {warning}", file=sys.stderr)


def _roles(settings: Settings) -> list[str]:
    """Who is an operator and who a viewer, in words, and a note when a role has nobody."""

    def members(users: tuple[str, ...], groups: tuple[str, ...]) -> str:
        parts = []
        if "*" in users:
            parts.append("every full member of the workspace (no guests, no other teams)")
        if listed := [u for u in users if u != "*"]:
            parts.append("users " + ", ".join(listed))
        if groups:
            parts.append("members of user groups " + ", ".join(groups))
        return "; ".join(parts) or "nobody"

    operators = members(settings.sandbox_allowed_users, settings.sandbox_allowed_usergroups)
    viewers = members(settings.sandbox_viewer_users, settings.sandbox_viewer_usergroups)
    lines = [
        "roles:",
        f"  operators (may cancel and refresh, and look): {operators}",
        f"  viewers (may look: status, jobs, envs, the App Home): {viewers}"
        + (" (operators look too)" if viewers == "nobody" and operators != "nobody" else ""),
    ]
    if operators == viewers == "nobody":
        lines.append("note: no allowlist is set, so every Zuora-touching command is denied.")
    elif operators == "nobody":
        lines.append("note: no operator is set, so nobody may cancel or refresh through the bot.")
    return lines


def _check(online: bool) -> int:
    """Print what was found, then the verdict: "configuration is valid." only once every check has passed
    (with --online, the online checks too); otherwise every problem and exit 2. Warnings do not fail it."""
    try:
        settings = load_settings()
    except ConfigError as error:
        _print_problems(error)
        return 2
    print("sandbox-bot: configuration found (secrets masked):")
    print(f"  mode: {'Socket Mode' if settings.socket_mode else f'HTTP on port {settings.port}'}")
    width = max(len(name) for name, _ in settings.describe())
    for name, shown in settings.describe():
        print(f"  {name.ljust(width)}  {shown}")
    for line in _roles(settings):
        print(f"  {line}")
    warnings = settings.config_warnings()
    _warn(warnings)
    if online:
        from bot.online_check import check_online

        problems = asyncio.run(check_online(settings))
        if problems:
            sys.stdout.flush()
            print(
                "sandbox-bot: the configuration is well-formed, but the online checks failed:",
                file=sys.stderr,
            )
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
        print("  online: Slack auth.test and a Zuora token request both succeeded.")
    verdict = "configuration is valid"
    if warnings:
        verdict += f" ({len(warnings)} warning{'' if len(warnings) == 1 else 's'} above)"
    print(f"sandbox-bot: {verdict}.")
    return 0


def _run() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        _print_problems(error)
        return 2
    _start(settings)
    return 0


def _start(settings: Settings) -> None:
    from bot.runtime import Runtime, secrets_of

    logs.configure(settings.log_level, settings.log_format, secrets_of(settings))
    for warning in settings.config_warnings():
        logging.getLogger("bot").warning(warning)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Runtime(settings).run_forever())


def _newcomer() -> bool:
    """A person at a terminal with neither Slack nor Zuora configured: their first run shows the demo.

    Only at a terminal: a deployment whose secrets failed to mount has no terminal, and must fail fast with
    the list of problems instead of quietly serving a demo."""
    return sys.stdin.isatty() and _no_settings_at_all()


def _no_settings_at_all() -> bool:
    """True when neither Slack nor Zuora is configured."""
    import os

    from dotenv import dotenv_values

    names = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "ZUORA_BASE_URL", "ZUORA_CLIENT_ID")
    file_values = dotenv_values(".env") if os.path.exists(".env") else {}
    return not any(os.environ.get(n) or file_values.get(n) for n in names)


def _demo(port: int, open_browser: bool, verbose: bool = False) -> int:
    from bot.demo import run_demo

    return run_demo(port=port, open_browser=open_browser, verbose=verbose)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "check":
        return _check(args.online)
    if args.action == "demo":
        return _demo(args.port, args.open, args.verbose)
    if args.action is None and _newcomer():
        print(
            "sandbox-bot: no Slack or Zuora settings found, so starting the demo (see README).",
            file=sys.stderr,
        )
        return _demo(3000, False)
    return _run()


if __name__ == "__main__":
    sys.exit(main())
