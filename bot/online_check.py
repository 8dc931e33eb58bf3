"""`sandbox-bot check --online`: one Slack auth.test and one Zuora token request, nothing else."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.app import build_slack_client
from bot.config import Settings
from bot.runtime import zuora_auth, zuora_http_client
from bot.zuora.errors import ZuoraError


async def check_online(settings: Settings) -> list[str]:
    problems: list[str] = []
    if settings.slack_bot_token is not None:
        slack = build_slack_client(
            settings.slack_bot_token.get_secret_value(), settings.slack_api_url
        )
        try:
            await slack.auth_test()
        except SlackApiError as error:
            problems.append(
                f"SLACK_BOT_TOKEN: Slack auth.test failed ({error.response.get('error')})"
            )
        except Exception as error:  # network failures of any kind
            problems.append(f"SLACK_API_URL: Slack could not be reached ({type(error).__name__})")
    async with zuora_http_client(settings) as http:
        try:
            await zuora_auth(settings, http).get()
        except ZuoraError as error:
            problems.append(
                f"ZUORA_CLIENT_ID/ZUORA_CLIENT_SECRET/ZUORA_BASE_URL: token request failed: {error}"
            )
        except Exception as error:  # whatever else went wrong: a problem line, never a traceback
            problems.append(
                f"ZUORA_BASE_URL: the token request could not be made ({type(error).__name__})"
            )
    return problems
