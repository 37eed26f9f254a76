"""A fake Slack: the Web API methods the approvals use, and Slack's side of interactivity
(a user clicking a button in a posted message, submitting a modal), signed as Slack signs.

Web API (https://docs.slack.dev/reference/methods), under `/api/`, HTTP 200 with `ok`:
- `chat.postMessage` {channel, text?, blocks?} -> `{"ok": true, "channel", "ts", "message"}`;
  `channel_not_found`, `not_in_channel`, `no_text`, `invalid_blocks`
- `chat.update` {channel, ts, text?, blocks?} -> `{"ok": true, "channel", "ts", "text",
  "message"}`; `message_not_found`, `cant_update_message` (not the bot's own), `invalid_blocks`
- `chat.postEphemeral` {channel, user, text} -> `{"ok": true, "message_ts"}`;
  `user_not_in_channel`
- `views.open` {trigger_id, view} -> `{"ok": true, "view": {...}}`; `invalid_trigger_id`,
  `expired_trigger_id` (older than 3 s), `exchanged_trigger_id` (used twice), `invalid_arguments`
- `users.info` ?user= -> `{"ok": true, "user": {"id", "name", "profile": {"email"}}}`;
  `user_not_found`
Auth is `Authorization: Bearer <bot token>` (or a `token` parameter): none -> `not_authed`,
another -> `invalid_auth`. Bodies are JSON or form-encoded, as Slack takes both. Block Kit
limits are checked as Slack documents them, so a message Slack would refuse is refused here.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

BOT_TOKEN = "xoxb-fake-bot-token-0001"
SIGNING_SECRET = "fake-signing-secret-8f3a1c"
BOT_ID = "B0FAKEBOT"
TRIGGER_LIFETIME = 3.0


@dataclass
class Posted:
    """A message as the fake holds it: what was posted, then each update."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    updates: int = 0
    bot: bool = True


@dataclass
class User:
    id: str
    name: str
    email: str | None = None


@dataclass
class Calls:
    """Every Web API call, by method, with its parameters as the fake read them."""

    by_method: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, method: str, params: dict[str, Any]) -> None:
        self.by_method.setdefault(method, []).append(params)

    def of(self, method: str) -> list[dict[str, Any]]:
        return list(self.by_method.get(method, []))


def block_kit_problem(blocks: Any, limit: int = 50) -> str | None:
    """The Block Kit limits our messages could reach; None when Slack would take them."""
    if not isinstance(blocks, list) or len(blocks) > limit:
        return f"blocks must be a list of at most {limit}"
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, dict) or "type" not in block:
            return f"{where}: no type"
        kind = block["type"]
        if kind == "section":
            text = (block.get("text") or {}).get("text", "")
            if len(text) > 3000:
                return f"{where}.text: more than 3000 characters"
            fields = block.get("fields") or []
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                return f"{where}.fields: at most 10 of at most 2000 characters"
            if not text and not fields:
                return f"{where}: a section needs text or fields"
        elif kind == "header":
            if len(block["text"]["text"]) > 150 or block["text"]["type"] != "plain_text":
                return f"{where}.text: plain_text of at most 150 characters"
        elif kind == "context":
            if not 1 <= len(block.get("elements", [])) <= 10:
                return f"{where}.elements: 1 to 10"
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                return f"{where}.elements: 1 to 25"
            ids = [e.get("action_id") for e in elements]
            if len(ids) != len(set(ids)):
                return f"{where}: action_ids must be unique"
            for button in elements:
                if button.get("type") != "button":
                    continue
                if len(button["text"]["text"]) > 75:
                    return f"{where}: button text over 75 characters"
                if len(button.get("value", "")) > 2000:
                    return f"{where}: button value over 2000 characters"
                if len(button.get("url", "")) > 3000:
                    return f"{where}: button url over 3000 characters"
                if button.get("style") not in (None, "primary", "danger"):
                    return f"{where}: style must be primary or danger"
        elif kind == "input":
            if "label" not in block or "element" not in block:
                return f"{where}: an input needs a label and an element"
        elif kind not in ("divider",):
            return f"{where}: type {kind!r} is not one the fake knows"
    return None


class FakeSlack:
    def __init__(self, *, token: str = BOT_TOKEN, signing_secret: str = SIGNING_SECRET,
                 channels: tuple[str, ...] = ("C0SUPPORT", "C0FINANCE", "C0GENERAL"),
                 users: tuple[User, ...] = ()) -> None:
        self.token = token
        self.signing_secret = signing_secret
        self.channels = set(channels)  # channels the bot is a member of
        self.users = {user.id: user for user in users}
        self.messages: dict[tuple[str, str], Posted] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.calls = Calls()
        self.log = RequestLog()
        self._triggers: dict[str, float] = {}  # trigger_id -> issued at; removed when used
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/api/{method}", self._api, methods=["GET", "POST"])])

    # -- the Web API --------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        params = self._params(request, body)
        if params is None:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        method = request.path_params["method"]
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ") if given.startswith("Bearer ") else params.pop(
            "token", None)
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if not hmac.compare_digest(str(token), self.token):
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        handler = {"chat.postMessage": self._post_message, "chat.update": self._update,
                   "chat.postEphemeral": self._post_ephemeral, "views.open": self._views_open,
                   "users.info": self._users_info}.get(method)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        with self._lock:
            self.calls.add(method, params)
            return JSONResponse(handler(params))

    @staticmethod
    def _params(request: Request, body: bytes) -> dict[str, Any] | None:
        params: dict[str, Any] = {k: v for k, v in request.query_params.items()}
        if not body:
            return params
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                found = json.loads(body)
            except ValueError:
                return None
            return {**params, **found} if isinstance(found, dict) else None
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        for key in ("blocks", "view"):  # form-encoded calls send these as JSON text
            if isinstance(form.get(key), str):
                try:
                    form[key] = json.loads(form[key])
                except ValueError:
                    return None
        return {**params, **form}

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _message_json(self, posted: Posted) -> dict[str, Any]:
        return {"type": "message", "subtype": "bot_message", "bot_id": BOT_ID,
                "text": posted.text, "ts": posted.ts, "blocks": posted.blocks}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.channels:
            return {"ok": False, "error": "not_in_channel" if str(channel).startswith("C0")
                    else "channel_not_found"}
        blocks = params.get("blocks")
        if not params.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        if blocks is not None and (problem := block_kit_problem(blocks)) is not None:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        posted = Posted(channel, self._next_ts(), params.get("text", ""), blocks or [])
        self.messages[(channel, posted.ts)] = posted
        return {"ok": True, "channel": channel, "ts": posted.ts,
                "message": self._message_json(posted)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        posted = self.messages.get((channel, ts))
        if posted is None:
            return {"ok": False, "error": "message_not_found"}
        if not posted.bot:
            return {"ok": False, "error": "cant_update_message"}
        blocks = params.get("blocks")
        if blocks is not None and (problem := block_kit_problem(blocks)) is not None:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        if not params.get("text") and not blocks:
            return {"ok": False, "error": "no_text"}
        posted.text = params.get("text", posted.text)
        posted.blocks = blocks if blocks is not None else posted.blocks
        posted.updates += 1
        return {"ok": True, "channel": channel, "ts": ts, "text": posted.text,
                "message": self._message_json(posted)}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = params.get("channel"), params.get("user")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if self.users and user not in self.users:
            return {"ok": False, "error": "user_not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        self.ephemeral.append({"channel": channel, "user": user, "text": params.get("text")})
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params.get("trigger_id")
        view = params.get("view")
        if not isinstance(trigger, str) or trigger not in self._triggers:
            error = "exchanged_trigger_id" if isinstance(trigger, str) and trigger.startswith(
                "fake-trigger-") else "invalid_trigger_id"
            return {"ok": False, "error": error}
        issued = self._triggers.pop(trigger)
        if time.monotonic() - issued > TRIGGER_LIFETIME:
            return {"ok": False, "error": "expired_trigger_id"}
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        title = (view.get("title") or {}).get("text", "")
        if not 1 <= len(title) <= 24 or len(view.get("private_metadata", "")) > 3000 or (
                len((view.get("submit") or {}).get("text", "")) > 24):
            return {"ok": False, "error": "invalid_arguments"}
        if (problem := block_kit_problem(view.get("blocks"), limit=100)) is not None:
            return {"ok": False, "error": "invalid_arguments", "errors": [problem]}
        view_id = f"V0FAKE{next(self._ids):04d}"
        opened = {**view, "id": view_id, "state": {"values": {}},
                  "hash": hashlib.sha256(view_id.encode()).hexdigest()[:16]}
        self.views[view_id] = opened
        return {"ok": True, "view": opened}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        profile = {"real_name": user.name} | ({"email": user.email} if user.email else {})
        return {"ok": True, "user": {"id": user.id, "name": user.name, "profile": profile}}

    # -- Slack's side of interactivity --------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None,
             secret: str | None = None) -> dict[str, str]:
        """The headers Slack sends: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new((secret or self.signing_secret).encode(),
                          b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
                "Content-Type": "application/x-www-form-urlencoded"}

    @staticmethod
    def form(payload: dict[str, Any]) -> bytes:
        return urlencode({"payload": json.dumps(payload)}).encode()

    def _user_json(self, user_id: str) -> dict[str, Any]:
        user = self.users.get(user_id)
        return {"id": user_id, "username": user.name if user else user_id.lower(),
                "name": user.name if user else user_id.lower(), "team_id": "T0FAKE"}

    def click(self, channel: str, ts: str, action_id: str, user_id: str) -> dict[str, Any]:
        """The block_actions payload of `user_id` clicking a button of a posted message."""
        with self._lock:
            posted = self.messages[(channel, ts)]
            block, button = next((b, e) for b in posted.blocks if b["type"] == "actions"
                                 for e in b["elements"] if e.get("action_id") == action_id)
            trigger = f"fake-trigger-{next(self._ids)}"
            self._triggers[trigger] = time.monotonic()
            action = {"type": "button", "action_id": action_id, "block_id": block.get("block_id"),
                      "text": button["text"], "action_ts": self._next_ts()}
            if "value" in button:
                action["value"] = button["value"]
            return {"type": "block_actions", "user": self._user_json(user_id),
                    "api_app_id": "A0FAKE", "token": "deprecated-verification-token",
                    "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                                  "is_ephemeral": False},
                    "trigger_id": trigger, "team": {"id": "T0FAKE", "domain": "fake"},
                    "channel": {"id": channel, "name": channel.lower()},
                    "message": self._message_json(posted),
                    "response_url": "https://hooks.slack.com/actions/T0FAKE/1/fake",
                    "actions": [action]}

    def submit(self, view_id: str, user_id: str, values: dict[str, dict[str, str]]
               ) -> dict[str, Any]:
        """The view_submission payload of a modal opened through views.open: `values` is
        {block_id: {action_id: typed text}}."""
        with self._lock:
            view = dict(self.views[view_id])
        view["state"] = {"values": {block: {action: {"type": "plain_text_input", "value": text}
                                            for action, text in inputs.items()}
                                    for block, inputs in values.items()}}
        return {"type": "view_submission", "team": {"id": "T0FAKE", "domain": "fake"},
                "user": self._user_json(user_id), "api_app_id": "A0FAKE",
                "trigger_id": f"fake-trigger-{next(self._ids)}", "view": view}

    def message(self, channel: str, ts: str) -> Posted:
        with self._lock:
            return self.messages[(channel, ts)]

    def posted_in(self, channel: str) -> list[Posted]:
        with self._lock:
            return [m for (c, _), m in self.messages.items() if c == channel]
