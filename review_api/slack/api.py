"""The few Slack Web API calls the approvals need, through slack_sdk's `WebClient`.

`WebClient` is synchronous (urllib); each call runs in a worker thread so a slow Slack never
stalls the event loop the proxy's hooks run on. slack_sdk's async client would need aiohttp,
a second HTTP stack for four calls.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from review_api.slack.settings import SlackSettings

logger = logging.getLogger("hitl_proxy")


class SlackError(RuntimeError):
    """A Web API call failed; `error` is Slack's code (channel_not_found, invalid_auth...)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a posted message is: Slack names a message by its channel and timestamp."""

    channel: str
    ts: str


class SlackApi:
    def __init__(self, settings: SlackSettings) -> None:
        self._client = WebClient(
            token=settings.bot_token, base_url=settings.api_url, timeout=int(settings.timeout),
            proxy=settings.http_proxy,
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                            RateLimitErrorRetryHandler(max_retry_count=2)])

    async def _call(self, method: str, *, query: dict[str, str] | None = None,
                    **body: Any) -> dict[str, Any]:
        """A JSON body for the write methods; `query` for reads, which Slack takes as GET."""

        def call() -> dict[str, Any]:
            answer = (self._client.api_call(method, http_verb="GET", params=query)
                      if query is not None else self._client.api_call(method, json=body))
            return dict(answer.data) if isinstance(answer.data, dict) else {}

        try:
            return await asyncio.to_thread(call)
        except SlackApiError as exc:
            raise SlackError(method, str(exc.response.get("error", "unknown_error"))) from None
        except (SlackClientError, OSError) as exc:
            raise SlackError(method, repr(exc)) from None

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]], *,
                           thread_ts: str | None = None) -> MessageRef:
        """chat.postMessage (a reply in the thread of `thread_ts` if given); the channel in
        the answer is the id, even if a name was given."""
        thread = {} if thread_ts is None else {"thread_ts": thread_ts}
        answer = await self._call("chat.postMessage", channel=channel, text=text, blocks=blocks,
                                  unfurl_links=False, unfurl_media=False, **thread)
        return MessageRef(str(answer["channel"]), str(answer["ts"]))

    async def update(self, ref: MessageRef, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call("chat.update", channel=ref.channel, ts=ref.ts, text=text,
                         blocks=blocks)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views.open", trigger_id=trigger_id, view=view)

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees in `channel`: why their click decided nothing."""
        await self._call("chat.postEphemeral", channel=channel, user=user, text=text)

    async def email_of(self, user: str) -> str | None:
        """users.info's profile email (scope users:read.email); None if Slack gives none."""
        try:
            answer = await self._call("users.info", query={"user": user})
        except SlackError as exc:
            logger.warning("%s", exc)
            return None
        profile = (answer.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return email if isinstance(email, str) and email else None
