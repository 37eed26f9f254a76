"""A fake Jira Cloud platform REST API (issues, transitions, comments, watchers, worklogs,
user search, search).

https://developer.atlassian.com/cloud/jira/platform/rest/v3/
- served under /rest/api/2/, /rest/api/3/ and /rest/api/latest/ (latest answers as v2)
- v3 carries rich text (`description`, comment `body`) as Atlassian Document Format (ADF), v2 as
  plain (wiki) strings; a value is stored as written and converted when read through the other
  version, as Jira does
- authentication is Basic `email:api_token` or Bearer; a failure is 401 with the plain-text body
  "Client must be authenticated to access this resource."
- errors are {"errorMessages": [...], "errors": {field: message}}
- watchers, worklogs and user search answer as the shipped description
  (connectors_schemas/descriptions/jira-cloud-swagger-v3.json.gz) documents them; an issue's
  `watches`, `worklog` and `timespent` fields follow its watchers and worklogs, and the reporter
  of a seeded issue watches it, as on Jira Cloud
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import itertools
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route

from tests.fakes.server import RequestLog, Seen

VERSIONS = {"2", "3", "latest"}
ME_ID = "5b10ac8d82e05b22cc7d4ef5"
TEAMMATE_ID = "5b10a2844c20165700ede21g"
UNAUTHORIZED_TEXT = "Client must be authenticated to access this resource."
ISSUE_MISSING = "Issue does not exist or you do not have permission to see it."
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
SEARCH_ISSUE_EXPAND = "operations,versionedRepresentations,editmeta,changelog,renderedFields"
ADF_ERROR = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# (id, name, category id, category key, colour, category name)
STATUSES = [
    ("10000", "To Do", 2, "new", "blue-gray", "To Do"),
    ("3", "In Progress", 4, "indeterminate", "yellow", "In Progress"),
    ("10001", "Done", 3, "done", "green", "Done"),
]
# the "simplified" workflow: global transitions into each status
TRANSITIONS = [("11", "To Do", "To Do"), ("21", "In Progress", "In Progress"),
               ("31", "Done", "Done")]
ISSUE_TYPES = {  # name -> (id, subtask, hierarchyLevel, description)
    "Epic": ("10000", False, 1, "A big user story that needs to be broken down."),
    "Story": ("10001", False, 0, "Functionality or a feature expressed as a user goal."),
    "Task": ("10002", False, 0, "A small, distinct piece of work."),
    "Subtask": ("10003", True, -1, "A small piece of work that's part of a larger task."),
    "Bug": ("10004", False, 0, "A problem or error."),
}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
FIELD_NAMES = {
    "summary": "Summary", "description": "Description", "status": "Status",
    "issuetype": "Issue Type", "project": "Project", "priority": "Priority",
    "assignee": "Assignee", "reporter": "Reporter", "creator": "Creator", "labels": "Labels",
    "created": "Created", "updated": "Updated", "resolution": "Resolution",
    "resolutiondate": "Resolved", "duedate": "Due date", "parent": "Parent",
    "subtasks": "Sub-tasks", "issuelinks": "Linked Issues", "attachment": "Attachment",
    "statuscategorychangedate": "Status Category Changed", "comment": "Comment",
    "watches": "Watchers", "worklog": "Log Work", "timespent": "Time Spent",
}
ALL_FIELDS = list(FIELD_NAMES)
NAVIGABLE = [f for f in ALL_FIELDS if f not in {"comment", "worklog"}]
# Jira's default time tracking: a day is 8 hours, a week 5 days
TIME_UNITS = {"w": 5 * 8 * 3600, "d": 8 * 3600, "h": 3600, "m": 60}
ADJUST_ESTIMATE = {"new", "leave", "manual", "auto"}
CREATE_FIELDS = {"project", "issuetype", "summary", "description", "labels", "priority",
                 "assignee", "reporter", "duedate", "parent"}
EDIT_FIELDS = {"summary", "description", "labels", "priority", "assignee", "reporter",
               "duedate"}
OPERATIONS = {"summary": {"set"}, "description": {"set"}, "labels": {"add", "remove", "set"},
              "priority": {"set"}, "assignee": {"set"}, "reporter": {"set"},
              "duedate": {"set"}, "comment": {"add"}, "resolution": {"set"}}


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _error(status: int, messages: list[str] | None = None,
           errors: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errorMessages": messages or [], "errors": errors or {}},
                        status_code=status)


def _issue_missing() -> JSONResponse:
    return _error(404, [ISSUE_MISSING])


# ---------------------------------------------------------------------------------------------
# Atlassian Document Format <-> plain (wiki) text, for values read through the other version
# ---------------------------------------------------------------------------------------------

def text_to_adf(text: str) -> dict[str, Any]:
    """Blank lines split paragraphs, single newlines become hardBreaks (Jira's conversion)."""
    content: list[dict[str, Any]] = []
    text = text.replace("\r\n", "\n")
    if text.strip():
        for block in re.split(r"\n[ \t]*\n", text.strip("\n")):
            nodes: list[dict[str, Any]] = []
            for i, line in enumerate(block.split("\n")):
                if i:
                    nodes.append({"type": "hardBreak"})
                if line:
                    nodes.append({"type": "text", "text": line})
            content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def _marked(node: dict[str, Any]) -> str:
    text = str(node.get("text", ""))
    for mark in node.get("marks") or []:
        kind = mark.get("type")
        if kind == "strong":
            text = f"*{text}*"
        elif kind == "em":
            text = f"_{text}_"
        elif kind == "code":
            text = "{{" + text + "}}"
        elif kind == "strike":
            text = f"-{text}-"
        elif kind == "link":
            text = f"[{text}|{(mark.get('attrs') or {}).get('href', '')}]"
    return text


def _inline(nodes: list[dict[str, Any]]) -> str:
    out = []
    for node in nodes:
        kind, attrs = node.get("type"), node.get("attrs") or {}
        if kind == "text":
            out.append(_marked(node))
        elif kind == "hardBreak":
            out.append("\n")
        elif kind in {"mention", "emoji"}:
            out.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind == "inlineCard":
            out.append(str(attrs.get("url", "")))
        else:
            out.append(_inline(node.get("content") or []))
    return "".join(out)


def _block(node: dict[str, Any]) -> str:
    kind, content = node.get("type"), node.get("content") or []
    if kind == "paragraph":
        return _inline(content)
    if kind == "heading":
        return f"h{(node.get('attrs') or {}).get('level', 1)}. {_inline(content)}"
    if kind in {"bulletList", "orderedList"}:
        bullet = "*" if kind == "bulletList" else "#"
        return "\n".join(f"{bullet} " + "\n".join(_block(b) for b in item.get("content") or [])
                         for item in content)
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language")
        opener = "{code:" + language + "}" if language else "{code}"
        return f"{opener}\n{_inline(content)}\n" + "{code}"
    if kind == "blockquote":
        return "{quote}" + "\n\n".join(_block(b) for b in content) + "{quote}"
    if kind == "rule":
        return "----"
    if kind in {"text", "hardBreak", "mention", "emoji", "inlineCard"}:
        return _inline([node])
    return "\n\n".join(_block(b) for b in content)


def adf_to_text(doc: dict[str, Any]) -> str:
    return "\n\n".join(_block(b) for b in doc.get("content") or [])


def _is_adf(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1
            and isinstance(value.get("content"), list))


def _as_version(value: Any, version: str) -> Any:
    """A stored rich-text value as the requested API version represents it."""
    if value is None:
        return None
    if version == "3":
        return value if isinstance(value, dict) else text_to_adf(str(value))
    return adf_to_text(value) if isinstance(value, dict) else value


def _plain(value: Any) -> str:
    if value is None:
        return ""
    return adf_to_text(value) if isinstance(value, dict) else str(value)


def _html(value: Any) -> str | None:
    if value is None:
        return None
    blocks = re.split(r"\n[ \t]*\n", _plain(value))
    return "".join(f"<p>{html.escape(b).replace(chr(10), '<br/>')}</p>" for b in blocks if b)


# ---------------------------------------------------------------------------------------------
# A small JQL: clauses joined by AND / OR / NOT, parentheses, ORDER BY
# ---------------------------------------------------------------------------------------------

class JqlError(Exception):
    pass


_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
                    |(?P<op>!=|!~|<=|>=|=|~|<|>)|(?P<punct>[(),])|(?P<word>[^\s=!~<>(),"']+))""",
                    re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "order", "by", "empty", "null", "asc", "desc"}
_TEXT_FIELDS = {"summary", "description", "text", "comment"}
Predicate = Callable[[dict[str, Any]], bool]


def _tokenize(jql: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(jql):
        if not jql[pos:].strip():
            break
        match = _TOKEN.match(jql, pos)
        if not match or match.end() == pos:
            raise JqlError(f"Error in the JQL Query: The character '{jql[pos]}' is a reserved "
                           f"JQL character. (line 1, character {pos + 1})")
        kind = match.lastgroup or "word"
        text = match.group(kind)
        if kind == "str":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", text[1:-1])))
        elif kind == "word" and text.lower() in _KEYWORDS:
            tokens.append(("kw", text.lower()))
        else:
            tokens.append((kind if kind != "word" else "value", text))
        pos = match.end()
    return tokens


class _Jql:
    """Parses and evaluates a query against the fake's issues (called under the fake's lock)."""

    def __init__(self, fake: FakeJira, jql: str) -> None:
        self.fake = fake
        self.jql = jql
        self.tokens = _tokenize(jql)
        self.pos = 0
        self.order: list[tuple[str, bool]] = []

    def _peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise JqlError(f"Error in the JQL Query: Expecting {what} but got the end of the "
                           "query.")
        self.pos += 1
        return token

    def _syntax(self, what: str, token: tuple[str, str]) -> JqlError:
        return JqlError(f"Error in the JQL Query: Expecting {what} but got '{token[1]}'.")

    def parse(self) -> Predicate:
        predicate: Predicate = lambda issue: True  # noqa: E731
        if self._peek() and self._peek() != ("kw", "order"):
            predicate = self._or()
        if self._peek() == ("kw", "order"):
            self.pos += 1
            if self._next("'by'") != ("kw", "by"):
                raise self._syntax("'by'", self.tokens[self.pos - 1])
            while True:
                field = self._next("a field name")[1].lower()
                descending = False
                if self._peek() in {("kw", "asc"), ("kw", "desc")}:
                    descending = self._next("a direction")[1] == "desc"
                self.order.append((field, descending))
                if self._peek() != ("punct", ","):
                    break
                self.pos += 1
        if self._peek() is not None:
            raise self._syntax("either 'OR' or 'AND'", self._peek())  # type: ignore[arg-type]
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek() == ("kw", "or"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda issue: any(p(issue) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._peek() == ("kw", "and"):
            self.pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else lambda issue: all(p(issue) for p in parts)

    def _unary(self) -> Predicate:
        token = self._next("a field name")
        if token == ("kw", "not"):
            inner = self._unary()
            return lambda issue: not inner(issue)
        if token == ("punct", "("):
            inner = self._or()
            if self._next("')'") != ("punct", ")"):
                raise self._syntax("')'", self.tokens[self.pos - 1])
            return inner
        if token[0] != "value":
            raise self._syntax("a field name", token)
        return self._clause(token[1])

    def _value(self) -> str:
        token = self._next("a value")
        if token[0] == "kw" and token[1] in {"empty", "null"}:
            return "\0empty"
        if token[0] != "value":
            raise self._syntax("a value", token)
        if self._peek() == ("punct", "("):  # a function such as currentUser()
            self.pos += 1
            if self._next("')'") != ("punct", ")"):
                raise self._syntax("')'", self.tokens[self.pos - 1])
            return f"\0fn:{token[1].lower()}"
        return token[1]

    def _clause(self, raw_field: str) -> Predicate:
        field = raw_field.lower()
        field = {"issuekey": "key", "type": "issuetype"}.get(field, field)
        token = self._next("an operator")
        op = token[1]
        if token == ("kw", "not"):
            if self._next("'IN'") != ("kw", "in"):
                raise self._syntax("'IN'", self.tokens[self.pos - 1])
            op = "not in"
        elif token == ("kw", "is"):
            op = "is"
            if self._peek() == ("kw", "not"):
                self.pos += 1
                op = "is not"
        elif token[0] != "op" and token != ("kw", "in"):
            raise JqlError("Error in the JQL Query: Expecting operator but got "
                           f"'{token[1]}'. The valid operators are '=', '!=', '<', '>', '<=', "
                           "'>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.")
        if op in {"in", "not in"}:
            if self._next("'('") != ("punct", "("):
                raise self._syntax("'('", self.tokens[self.pos - 1])
            values = [self._value()]
            while self._peek() == ("punct", ","):
                self.pos += 1
                values.append(self._value())
            if self._next("')'") != ("punct", ")"):
                raise self._syntax("')'", self.tokens[self.pos - 1])
        else:
            values = [self._value()]
        return self._predicate(field, raw_field, op, values)

    def _predicate(self, field: str, raw: str, op: str, values: list[str]) -> Predicate:
        if field in _TEXT_FIELDS:
            if op not in {"~", "!~"}:
                raise JqlError(f"The operator '{op}' is not supported by the '{raw}' field.")
            needle = values[0].strip("*").lower()
            getter = self.fake._text_of(field)
            if op == "~":
                return lambda issue: needle in getter(issue).lower()
            return lambda issue: needle not in getter(issue).lower()
        getter, normalize = self.fake._jql_field(field, raw)
        if op in {"is", "is not"}:
            if values != ["\0empty"]:
                raise JqlError(f"The operator '{op.upper()}' can only be used with the EMPTY "
                               "or NULL value.")
            if op == "is":
                return lambda issue: not getter(issue)
            return lambda issue: bool(getter(issue))
        if op not in {"=", "!=", "in", "not in"}:
            raise JqlError(f"The operator '{op}' is not supported by the '{raw}' field.")
        wanted = {normalize(v) for v in values if v != "\0empty"}
        with_empty = "\0empty" in values
        if op in {"=", "in"}:
            return lambda issue: (bool(wanted & set(getter(issue)))
                                  or (with_empty and not getter(issue)))
        return lambda issue: (bool(getter(issue)) and not wanted & set(getter(issue))
                              and not (with_empty and not getter(issue)))


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------

class FakeJira:
    """In-memory Jira Cloud with one simplified workflow (To Do / In Progress / Done).

    `issues` maps key -> {"id", "key", "fields": {...compact values...}, "comments": [...]}.
    Compact values: status/issuetype/priority are names, project is the project key,
    assignee/reporter/creator are accountIds, parent is a key, description and comment bodies
    are what was written (a string via v2, an ADF dict via v3).
    """

    def __init__(self, host: str = "acme.atlassian.net", email: str = "agent@acme.test",
                 api_token: str = "jira-api-token-123",
                 bearer_token: str = "jira-oauth-token-123") -> None:
        self.host = host
        self.email = email
        self.log = RequestLog()
        self._credentials = {
            "basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode(),
            f"bearer {bearer_token}",
        }
        self._lock = threading.Lock()
        self._issue_ids = itertools.count(10001)
        self._comment_ids = itertools.count(10000)
        self._worklog_ids = itertools.count(100028)
        self._project_ids = itertools.count(10000)
        self.me = ME_ID
        self.users: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self.seed_user(ME_ID, "Agent Smith", email)
        self.seed_user(TEAMMATE_ID, "Mia Krystof", "mia@acme.test")
        self.seed_project("OPS", "Operations")
        api = "/rest/api/{version}"
        self.app = Starlette(routes=[
            Route(f"{api}/issue", self.create_issue, methods=["POST"]),
            Route(f"{api}/issue/{{issue}}", self.one_issue, methods=["GET", "PUT", "DELETE"]),
            Route(f"{api}/issue/{{issue}}/transitions", self.transitions,
                  methods=["GET", "POST"]),
            Route(f"{api}/issue/{{issue}}/comment", self.comments, methods=["GET", "POST"]),
            Route(f"{api}/issue/{{issue}}/comment/{{comment_id}}", self.one_comment,
                  methods=["GET", "PUT", "DELETE"]),
            Route(f"{api}/issue/{{issue}}/watchers", self.watchers,
                  methods=["GET", "POST", "DELETE"]),
            Route(f"{api}/issue/{{issue}}/worklog", self.worklogs, methods=["GET", "POST"]),
            Route(f"{api}/issue/{{issue}}/worklog/{{worklog_id}}", self.one_worklog,
                  methods=["GET", "PUT", "DELETE"]),
            Route(f"{api}/user/search", self.user_search, methods=["GET"]),
            Route(f"{api}/search", self.search, methods=["GET", "POST"]),
            Route(f"{api}/search/jql", self.search_jql, methods=["GET", "POST"]),
            Route(f"{api}/myself", self.myself, methods=["GET"]),
            Route(f"{api}/serverInfo", self.server_info, methods=["GET"]),
            Route("/{path:path}", self.unknown, methods=ALL_METHODS),
        ])

    # -- seeding and inspection -----------------------------------------------------------------

    def seed_user(self, account_id: str, display_name: str, email: str | None = None) -> str:
        with self._lock:
            self.users[account_id] = {"accountId": account_id, "displayName": display_name,
                                      "emailAddress": email}
        return account_id

    def seed_project(self, key: str, name: str | None = None) -> str:
        with self._lock:
            return self._project(key, name)["id"]

    def _project(self, key: str, name: str | None = None) -> dict[str, Any]:
        if key not in self.projects:
            self.projects[key] = {"id": str(next(self._project_ids)), "key": key,
                                  "name": name or key.title(), "next_number": 1}
        return self.projects[key]

    def seed_issue(self, project_key: str = "OPS", **fields: Any) -> str:
        """Adds an issue with realistic defaults; `fields` take the compact forms (see class)."""
        comments = fields.pop("comments", [])
        watchers = fields.pop("watchers", None)
        worklogs = fields.pop("worklogs", [])
        with self._lock:
            key = self._new_issue(project_key, fields)
            for body in comments:
                self._add_comment(key, body, self.me)
            if watchers is not None:
                self.issues[key]["watchers"] = list(watchers)
            for seconds in worklogs:
                self._add_worklog(self.issues[key], {"timeSpentSeconds": seconds}, self.me)
        return key

    def seed_worklog(self, key: str, seconds: int, comment: Any = None) -> str:
        with self._lock:
            return self._add_worklog(self.issues[key], {"timeSpentSeconds": seconds,
                                                        "comment": comment}, self.me)["id"]

    def seed_comment(self, key: str, body: Any, author: str | None = None) -> str:
        with self._lock:
            return self._add_comment(key, body, author or self.me)["id"]

    def _new_issue(self, project_key: str, fields: dict[str, Any]) -> str:
        project = self._project(project_key)
        key = f"{project_key}-{project['next_number']}"
        project["next_number"] += 1
        now = _now()
        stored = {
            "summary": "Nightly backup job failing", "description": None, "status": "To Do",
            "issuetype": "Task", "project": project_key, "priority": "Medium",
            "assignee": None, "reporter": self.me, "creator": self.me, "labels": [],
            "created": now, "updated": now, "statuscategorychangedate": now,
            "resolution": None, "resolutiondate": None, "duedate": None, "parent": None,
        }
        stored.update(fields)
        stored["project"] = project_key
        if stored["status"] == "Done" and "resolution" not in fields:
            stored["resolution"], stored["resolutiondate"] = "Done", now
        self.issues[key] = {"id": str(next(self._issue_ids)), "key": key, "fields": stored,
                            "comments": [], "watchers": [stored["reporter"]] if stored[
                                "reporter"] else [], "worklogs": []}
        return key

    def _add_comment(self, key: str, body: Any, author: str,
                     visibility: dict[str, Any] | None = None) -> dict[str, Any]:
        now = _now()
        comment = {"id": str(next(self._comment_ids)), "author": author, "updateAuthor": author,
                   "body": body, "created": now, "updated": now, "visibility": visibility}
        self.issues[key]["comments"].append(comment)
        return comment

    def issue(self, key: str) -> dict[str, Any]:
        """A deep copy of one stored issue, for assertions."""
        with self._lock:
            return copy.deepcopy(self.issues[key])

    # -- request plumbing -----------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return f"{scheme.lower()} {value.strip()}" in self._credentials

    async def _begin(self, request: Request,
                     anonymous: bool = False) -> tuple[str, bytes] | Response:
        """Records the request, then checks the version segment and the credentials."""
        body = await self._record(request)
        version = request.path_params.get("version", "")
        if version not in VERSIONS:
            return self._not_found(request)
        if not self._authenticated(request) and not (
                anonymous and "authorization" not in request.headers):
            return PlainTextResponse(UNAUTHORIZED_TEXT, status_code=401)
        return ("3" if version == "3" else "2"), body

    @staticmethod
    def _json(request: Request, body: bytes) -> dict[str, Any] | Response:
        if "json" not in request.headers.get("content-type", ""):
            return Response(status_code=415)
        text = body.decode("utf-8", "replace")
        if not text.strip():
            return _error(400, ["No content to map to Object due to end of input"])
        try:
            parsed = json.loads(text)
        except ValueError:
            char = text.strip()[0]
            return _error(400, [f"Unexpected character ('{char}' (code {ord(char)})): "
                                "expected a valid value (JSON String, Number, Array, Object or "
                                "token 'null', 'true' or 'false')"])
        if not isinstance(parsed, dict):
            return _error(400, ["Can not deserialize instance of object out of START_ARRAY "
                                "token"])
        return parsed

    def _find(self, id_or_key: str) -> dict[str, Any] | None:
        found = self.issues.get(id_or_key.upper())
        if found is None and id_or_key.isdigit():
            found = next((i for i in self.issues.values() if i["id"] == id_or_key), None)
        return found

    @staticmethod
    def _query_list(request: Request, name: str) -> list[str] | None:
        values = request.query_params.getlist(name)
        return [v for value in values for v in value.split(",") if v.strip()] or None

    def _not_found(self, request: Request) -> Response:
        for route in self.app.routes[:-1]:
            match, _ = route.matches(request.scope)
            if match == Match.PARTIAL:
                return Response(status_code=405)
        return _error(404, [f"null for uri: https://{self.host}{request.url.path}"])

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return self._not_found(request)

    # -- rendering ------------------------------------------------------------------------------

    def _url(self, version: str, path: str) -> str:
        return f"https://{self.host}/rest/api/{version}/{path}"

    def _avatars(self, kind: str, ident: str) -> dict[str, str]:
        return {f"{n}x{n}": f"https://{self.host}/secure/{kind}avatar?size={n}&id={ident}"
                for n in (48, 24, 16, 32)}

    def _user(self, account_id: str | None, version: str) -> dict[str, Any] | None:
        if account_id is None:
            return None
        known = self.users.get(account_id, {"displayName": account_id, "emailAddress": None})
        user = {"self": self._url(version, f"user?accountId={quote(account_id)}"),
                "accountId": account_id, "avatarUrls": self._avatars("user", account_id),
                "displayName": known["displayName"], "active": True, "timeZone": "Etc/UTC",
                "accountType": "atlassian"}
        if known.get("emailAddress"):
            user["emailAddress"] = known["emailAddress"]
        return user

    def _status(self, name: str, version: str) -> dict[str, Any]:
        sid, _, cat_id, cat_key, colour, cat_name = next(s for s in STATUSES if s[1] == name)
        return {"self": self._url(version, f"status/{sid}"), "description": "",
                "iconUrl": f"https://{self.host}/", "name": name, "id": sid,
                "statusCategory": {"self": self._url(version, f"statuscategory/{cat_id}"),
                                   "id": cat_id, "key": cat_key, "colorName": colour,
                                   "name": cat_name}}

    def _issuetype(self, name: str, version: str) -> dict[str, Any]:
        tid, subtask, level, description = ISSUE_TYPES[name]
        return {"self": self._url(version, f"issuetype/{tid}"), "id": tid,
                "description": description, "name": name, "subtask": subtask,
                "iconUrl": f"https://{self.host}/rest/api/2/universal_avatar/view/type/"
                           f"issuetype/avatar/{tid}?size=medium",
                "avatarId": int(tid), "hierarchyLevel": level}

    def _priority(self, name: str | None, version: str) -> dict[str, Any] | None:
        if name is None:
            return None
        pid = PRIORITIES[name]
        return {"self": self._url(version, f"priority/{pid}"), "name": name, "id": pid,
                "iconUrl": f"https://{self.host}/images/icons/priorities/{name.lower()}.svg"}

    def _project_json(self, key: str, version: str) -> dict[str, Any]:
        project = self.projects[key]
        return {"self": self._url(version, f"project/{project['id']}"), "id": project["id"],
                "key": key, "name": project["name"], "projectTypeKey": "software",
                "simplified": False, "avatarUrls": self._avatars("project", project["id"])}

    def _resolution(self, name: str | None, version: str) -> dict[str, Any] | None:
        if name is None:
            return None
        return {"self": self._url(version, "resolution/10000"), "id": "10000",
                "description": "Work has been completed on this issue.", "name": name}

    def _comment_json(self, issue: dict[str, Any], comment: dict[str, Any],
                      version: str) -> dict[str, Any]:
        out = {"self": self._url(version, f"issue/{issue['id']}/comment/{comment['id']}"),
               "id": comment["id"], "author": self._user(comment["author"], version),
               "body": _as_version(comment["body"], version),
               "updateAuthor": self._user(comment["updateAuthor"], version),
               "created": comment["created"], "updated": comment["updated"],
               "jsdPublic": True}
        if comment.get("visibility"):
            out["visibility"] = comment["visibility"]
        return out

    def _linked(self, issue: dict[str, Any], version: str) -> dict[str, Any]:
        f = issue["fields"]
        return {"id": issue["id"], "key": issue["key"],
                "self": self._url(version, f"issue/{issue['id']}"),
                "fields": {"summary": f["summary"], "status": self._status(f["status"], version),
                           "priority": self._priority(f["priority"], version),
                           "issuetype": self._issuetype(f["issuetype"], version)}}

    def _field(self, issue: dict[str, Any], name: str, version: str) -> Any:
        f = issue["fields"]
        if name in {"summary", "labels", "created", "updated", "resolutiondate", "duedate",
                    "statuscategorychangedate"}:
            return copy.deepcopy(f[name])
        if name == "description":
            return _as_version(f["description"], version)
        if name == "status":
            return self._status(f["status"], version)
        if name == "issuetype":
            return self._issuetype(f["issuetype"], version)
        if name == "project":
            return self._project_json(f["project"], version)
        if name == "priority":
            return self._priority(f["priority"], version)
        if name in {"assignee", "reporter", "creator"}:
            return self._user(f[name], version)
        if name == "resolution":
            return self._resolution(f["resolution"], version)
        if name == "parent":
            parent = self.issues.get(f["parent"] or "")
            return self._linked(parent, version) if parent else None
        if name == "subtasks":
            return [self._linked(i, version) for i in self.issues.values()
                    if i["fields"]["parent"] == issue["key"]]
        if name == "watches":
            return {"self": self._url(version, f"issue/{issue['key']}/watchers"),
                    "watchCount": len(issue["watchers"]),
                    "isWatching": self.me in issue["watchers"]}
        if name == "worklog":
            worklogs = [self._worklog_json(issue, w, version) for w in issue["worklogs"]]
            return {"startAt": 0, "maxResults": 20, "total": len(worklogs),
                    "worklogs": worklogs[:20]}
        if name == "timespent":
            return sum(w["timeSpentSeconds"] for w in issue["worklogs"]) or None
        if name == "comment":
            comments = [self._comment_json(issue, c, version) for c in issue["comments"]]
            return {"comments": comments,
                    "self": self._url(version, f"issue/{issue['id']}/comment"),
                    "maxResults": len(comments), "total": len(comments), "startAt": 0}
        return []  # issuelinks, attachment

    @staticmethod
    def _field_set(spec: list[str] | None, default: list[str]) -> list[str]:
        """Jira's `fields` syntax: *all, *navigable, names, and -name exclusions."""
        if not spec:
            return list(default)
        chosen: list[str] = []
        excluded: set[str] = set()
        for item in (s.strip() for s in spec):
            if item.startswith("-"):
                excluded.add(item[1:])
            elif item == "*all":
                chosen += ALL_FIELDS
            elif item == "*navigable":
                chosen += NAVIGABLE
            elif item in FIELD_NAMES:
                chosen.append(item)
        if not chosen and excluded:
            chosen = list(default)
        return [f for f in dict.fromkeys(chosen) if f not in excluded]

    def _render(self, issue: dict[str, Any], version: str, fields: list[str],
                expand: set[str], issue_expand: str = ISSUE_EXPAND) -> dict[str, Any]:
        out: dict[str, Any] = {"expand": issue_expand, "id": issue["id"],
                               "self": self._url(version, f"issue/{issue['id']}"),
                               "key": issue["key"]}
        if "renderedFields" in expand:
            out["renderedFields"] = {
                name: (_html(issue["fields"]["description"]) if name == "description" else None)
                for name in fields}
        if "names" in expand:
            out["names"] = {name: FIELD_NAMES[name] for name in fields}
        if "transitions" in expand:
            out["transitions"] = self._transitions_json(issue, version, None, False)
        out["fields"] = {name: self._field(issue, name, version) for name in fields}
        return out

    def _transitions_json(self, issue: dict[str, Any], version: str, only: str | None,
                          with_fields: bool) -> list[dict[str, Any]]:
        out = []
        for tid, name, target in TRANSITIONS:
            if target == issue["fields"]["status"] or (only and only != tid):
                continue
            transition = {"id": tid, "name": name, "to": self._status(target, version),
                          "hasScreen": False, "isGlobal": True, "isInitial": False,
                          "isAvailable": True, "isConditional": False, "isLooped": False}
            if with_fields:
                transition["fields"] = {}
            out.append(transition)
        return out

    # -- validation and edits -------------------------------------------------------------------

    def _check_value(self, name: str, value: Any, version: str,
                     errors: dict[str, str]) -> Any:
        """Validates one field value and returns its compact form (None on error)."""
        if name == "summary":
            if not isinstance(value, str) or not value.strip():
                errors[name] = "You must specify a summary of the issue."
            elif len(value) > 255:
                errors[name] = "Summary must be less than 255 characters."
            elif "\n" in value or "\r" in value:
                errors[name] = "The summary is invalid because it contains newline characters."
            return value
        if name == "description":
            if value is None:
                return None
            if version == "3" and not _is_adf(value):
                errors[name] = ADF_ERROR
            elif version == "2" and not isinstance(value, str):
                errors[name] = "Operation value must be a string"
            return value if value != "" else None
        if name == "labels":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[name] = "data was not an array"
            return value
        if name == "priority":
            if value is None:
                return None
            ref = value if isinstance(value, dict) else {}
            for pname, pid in PRIORITIES.items():
                if ref.get("name") == pname or str(ref.get("id")) == pid:
                    return pname
            errors[name] = ("Specify the Priority (id or name) in the string format"
                            if not ref else f"Priority name '{ref.get('name', ref.get('id'))}' "
                            "is not valid")
            return None
        if name in {"assignee", "reporter"}:
            if value is None or (isinstance(value, dict) and value.get("accountId") is None
                                 and value.get("id") is None and "accountId" in value):
                if name == "reporter":
                    errors[name] = "Reporter is required."
                return None
            account = value.get("accountId", value.get("id")) if isinstance(value, dict) else None
            if not isinstance(account, str) or not account:
                errors[name] = "expected 'accountId' property to be a string"
            return account
        if name == "duedate":
            if value is not None and not (isinstance(value, str)
                                          and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                errors[name] = "Error parsing date string: " + str(value)
            return value
        if name == "resolution":
            ref = value if isinstance(value, dict) else {}
            if value is not None and ref.get("name") != "Done" and str(ref.get("id")) != "10000":
                errors[name] = "Specify a valid resolution"
            return "Done" if value is not None else None
        return value

    def _operations(self, update: Any, version: str,
                    errors: dict[str, str], settable: set[str]) -> list[tuple[str, str, Any]]:
        """Validates `update` ({field: [{verb: value}]}) into a list of (field, verb, value)."""
        ops: list[tuple[str, str, Any]] = []
        if not isinstance(update, dict):
            errors["update"] = "data was not an object"
            return ops
        for name, entries in update.items():
            if name not in settable | {"comment"}:
                errors[name] = (f"Field '{name}' cannot be set. It is not on the appropriate "
                                "screen, or unknown.")
                continue
            if not isinstance(entries, list):
                errors[name] = "data was not an array"
                continue
            for entry in entries:
                if not isinstance(entry, dict) or len(entry) != 1:
                    errors[name] = "data was not an object"
                    break
                verb, value = next(iter(entry.items()))
                if verb not in OPERATIONS.get(name, set()):
                    errors[name] = f"Field '{name}' does not support operation '{verb}'"
                    break
                if name == "comment":
                    body = value.get("body") if isinstance(value, dict) else None
                    if not self._valid_body(body, version):
                        errors["comment"] = "Comment body is not valid!"
                        break
                    ops.append(("comment", "add", value))
                elif name == "labels" and verb in {"add", "remove"}:
                    if not isinstance(value, str):
                        errors[name] = "data was not a string"
                        break
                    ops.append((name, verb, value))
                else:
                    ops.append((name, verb, self._check_value(name, value, version, errors)))
        return ops

    @staticmethod
    def _valid_body(body: Any, version: str) -> bool:
        if version == "3":
            return _is_adf(body) and bool(body["content"])
        return isinstance(body, str) and bool(body.strip())

    def _validate_change(self, body: dict[str, Any], version: str, settable: set[str]
                         ) -> tuple[dict[str, Any], list[tuple[str, str, Any]]] | Response:
        """Checks `fields` and `update` together; nothing is applied unless all of it is valid."""
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict):
            return _error(400, ["Can not deserialize instance of object out of START_ARRAY "
                                "token"])
        both = [name for name in fields if name in (update if isinstance(update, dict) else {})]
        if both:
            return _error(400, [f"Field '{name}' cannot appear in both 'fields' and 'update'"
                                for name in both])
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in settable:
                errors[name] = (f"Field '{name}' cannot be set. It is not on the appropriate "
                                "screen, or unknown.")
                continue
            values[name] = self._check_value(name, value, version, errors)
        ops = self._operations(update, version, errors, settable)
        if errors:
            return _error(400, [], errors)
        return values, ops

    def _apply(self, issue: dict[str, Any], values: dict[str, Any],
               ops: list[tuple[str, str, Any]]) -> None:
        stored = issue["fields"]
        for name, value in values.items():
            stored[name] = list(value) if name == "labels" else value
        for name, verb, value in ops:
            if name == "comment":
                self._add_comment(issue["key"], value["body"], self.me, value.get("visibility"))
            elif name == "labels" and verb == "add":
                if value not in stored["labels"]:
                    stored["labels"].append(value)
            elif name == "labels" and verb == "remove":
                stored["labels"] = [label for label in stored["labels"] if label != value]
            else:
                stored[name] = list(value) if name == "labels" else value
        stored["updated"] = _now()

    # -- endpoints ------------------------------------------------------------------------------

    async def create_issue(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        body = self._json(request, raw)
        if isinstance(body, Response):
            return body
        fields = body.get("fields") if isinstance(body.get("fields"), dict) else {}
        with self._lock:
            project_ref = fields.get("project") if isinstance(fields.get("project"), dict) else {}
            project = next((p for p in self.projects.values()
                            if project_ref and (p["key"] == project_ref.get("key")
                                                or p["id"] == str(project_ref.get("id")))), None)
            if project is None:
                return _error(400, [], {"project": "Specify a valid project ID or key"})
            checked = self._validate_change(body, version, CREATE_FIELDS)
            if isinstance(checked, Response):
                return checked
            values, ops = checked
            errors: dict[str, str] = {}
            type_ref = fields.get("issuetype")
            issuetype = None
            if not isinstance(type_ref, dict) or not (type_ref.get("name") or type_ref.get("id")):
                errors["issuetype"] = "Specify an issue type"
            else:
                issuetype = next((n for n, t in ISSUE_TYPES.items()
                                  if type_ref.get("name") == n or str(type_ref.get("id")) == t[0]),
                                 None)
                if issuetype is None:
                    errors["issuetype"] = "The issue type selected is invalid."
            if "summary" not in values and not any(op[0] == "summary" for op in ops):
                errors["summary"] = "You must specify a summary of the issue."
            parent_key = None
            if "parent" in fields:
                ref = fields["parent"] if isinstance(fields["parent"], dict) else {}
                parent = self._find(str(ref.get("key") or ref.get("id") or ""))
                if parent is None:
                    errors["parent"] = "Could not find issue by id or key."
                else:
                    parent_key = parent["key"]
            if errors:
                return _error(400, [], errors)
            values.pop("project", None)
            values.update(issuetype=issuetype, parent=parent_key,
                          labels=values.get("labels") or [])
            values.setdefault("summary", "")
            key = self._new_issue(project["key"], values)
            issue = self.issues[key]
            self._apply(issue, {}, ops)
            issue_id = issue["id"]
        return JSONResponse({"id": issue_id, "key": key,
                             "self": self._url(version, f"issue/{issue_id}")}, status_code=201)

    async def one_issue(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        ref = request.path_params["issue"]
        if request.method == "GET":
            fields = self._field_set(self._query_list(request, "fields"), ALL_FIELDS)
            expand = set(self._query_list(request, "expand") or [])
            with self._lock:
                issue = self._find(ref)
                if issue is None:
                    return _issue_missing()
                return JSONResponse(self._render(issue, version, fields, expand))
        if request.method == "DELETE":
            with self._lock:
                issue = self._find(ref)
                if issue is None:
                    return _issue_missing()
                subtasks = [k for k, i in self.issues.items()
                            if i["fields"]["parent"] == issue["key"]]
                if subtasks and request.query_params.get("deleteSubtasks", "") != "true":
                    return _error(400, [f"The issue '{issue['key']}' has subtasks.  You must "
                                        "specify the 'deleteSubtasks' parameter to delete this "
                                        "issue with all its subtasks."])
                for key in [*subtasks, issue["key"]]:
                    del self.issues[key]
            return Response(status_code=204)
        body = self._json(request, raw)
        if isinstance(body, Response):
            return body
        with self._lock:
            issue = self._find(ref)
            if issue is None:
                return _issue_missing()
            checked = self._validate_change(body, version, EDIT_FIELDS)
            if isinstance(checked, Response):
                return checked
            self._apply(issue, *checked)
            if request.query_params.get("returnIssue", "") == "true":
                fields = self._field_set(self._query_list(request, "fields"), ALL_FIELDS)
                expand = set(self._query_list(request, "expand") or [])
                return JSONResponse(self._render(issue, version, fields, expand))
        return Response(status_code=204)

    async def transitions(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        ref = request.path_params["issue"]
        if request.method == "GET":
            expand = set(self._query_list(request, "expand") or [])
            with self._lock:
                issue = self._find(ref)
                if issue is None:
                    return _issue_missing()
                listed = self._transitions_json(issue, version,
                                                request.query_params.get("transitionId"),
                                                "transitions.fields" in expand)
            return JSONResponse({"expand": "transitions", "transitions": listed})
        body = self._json(request, raw)
        if isinstance(body, Response):
            return body
        with self._lock:
            issue = self._find(ref)
            if issue is None:
                return _issue_missing()
            transition = body.get("transition")
            tid = transition.get("id") if isinstance(transition, dict) else None
            if tid is None or not str(tid).strip().isdigit():
                return _error(400, ["'transition' identifier must be an integer"])
            tid = str(tid).strip()
            available = self._transitions_json(issue, version, tid, False)
            if not available:
                return _error(400, [f"Transition id '{tid}' is not valid for this issue."])
            checked = self._validate_change(body, version, EDIT_FIELDS | {"resolution"})
            if isinstance(checked, Response):
                return checked
            values, ops = checked
            target = available[0]["to"]["name"]
            now = _now()
            stored = issue["fields"]
            stored["status"], stored["statuscategorychangedate"] = target, now
            if target == "Done":
                stored["resolution"] = values.pop("resolution", None) or "Done"
                stored["resolutiondate"] = now
            else:
                values.pop("resolution", None)
                stored["resolution"] = stored["resolutiondate"] = None
            self._apply(issue, values, ops)
        return Response(status_code=204)

    async def comments(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        ref = request.path_params["issue"]
        if request.method == "GET":
            try:
                start = int(request.query_params.get("startAt", "0"))
                limit = int(request.query_params.get("maxResults", "5000"))
            except ValueError:
                return _error(400, ["The value of startAt and maxResults must be numbers."])
            order = request.query_params.get("orderBy", "created")
            with self._lock:
                issue = self._find(ref)
                if issue is None:
                    return _issue_missing()
                listed = [self._comment_json(issue, c, version) for c in issue["comments"]]
            if order.startswith("-"):
                listed.reverse()
            page = listed[max(start, 0):max(start, 0) + max(limit, 0)]
            return JSONResponse({"startAt": start, "maxResults": limit, "total": len(listed),
                                 "comments": page})
        body = self._json(request, raw)
        if isinstance(body, Response):
            return body
        with self._lock:
            issue = self._find(ref)
            if issue is None:
                return _issue_missing()
            if body.get("body") in (None, "") or (
                    _is_adf(body.get("body")) and not body["body"]["content"]):
                return _error(400, [], {"comment": "Comment body can not be empty!"})
            if not self._valid_body(body.get("body"), version):
                return _error(400, [], {"comment": "Comment body is not valid!"})
            comment = self._add_comment(issue["key"], body["body"], self.me,
                                        body.get("visibility"))
            issue["fields"]["updated"] = comment["created"]
            out = self._comment_json(issue, comment, version)
        return JSONResponse(out, status_code=201)

    async def one_comment(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        ref, comment_id = request.path_params["issue"], request.path_params["comment_id"]
        body: dict[str, Any] = {}
        if request.method == "PUT":
            parsed = self._json(request, raw)
            if isinstance(parsed, Response):
                return parsed
            body = parsed
        with self._lock:
            issue = self._find(ref)
            if issue is None:
                return _issue_missing()
            comment = next((c for c in issue["comments"] if c["id"] == comment_id), None)
            if comment is None:
                return _error(404, [f"Can not find a comment for the id: {comment_id}."])
            if request.method == "GET":
                return JSONResponse(self._comment_json(issue, comment, version))
            if request.method == "DELETE":
                issue["comments"].remove(comment)
                return Response(status_code=204)
            if body.get("body") in (None, ""):
                return _error(400, [], {"comment": "Comment body can not be empty!"})
            if not self._valid_body(body.get("body"), version):
                return _error(400, [], {"comment": "Comment body is not valid!"})
            comment.update(body=body["body"], updateAuthor=self.me, updated=_now())
            if "visibility" in body:
                comment["visibility"] = body["visibility"]
            return JSONResponse(self._comment_json(issue, comment, version))

    # -- watchers -------------------------------------------------------------------------------

    async def watchers(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        with self._lock:
            issue = self._find(request.path_params["issue"])
            if issue is None:
                return _issue_missing()
            if request.method == "GET":
                return JSONResponse({
                    "self": self._url(version, f"issue/{issue['key']}/watchers"),
                    "isWatching": self.me in issue["watchers"],
                    "watchCount": len(issue["watchers"]),
                    "watchers": [self._user(a, version) for a in issue["watchers"]]})
            if request.method == "DELETE":
                account = request.query_params.get("accountId") or request.query_params.get(
                    "username")
                if not account:
                    return _error(400, ["accountId must be provided"])
                if account not in self.users:
                    return _error(404, [f"The user with account ID '{account}' does not exist."])
                if account in issue["watchers"]:
                    issue["watchers"].remove(account)
                return Response(status_code=204)
        # POST: the body is one JSON string, the account id (v2 adds the caller without one)
        if "json" not in request.headers.get("content-type", ""):
            return Response(status_code=415)
        text = raw.decode("utf-8", "replace").strip()
        if not text and version == "2":
            account = self.me
        else:
            try:
                account = json.loads(text) if text else None
            except ValueError:
                return _error(400, ["Unrecognized token: was expecting (JSON String, Number, "
                                    "Array, Object or token 'null', 'true' or 'false')"])
            if not isinstance(account, str) or not account:
                return _error(400, ["Cannot deserialize value of type `java.lang.String` from "
                                    "the request body"])
        with self._lock:
            issue = self._find(request.path_params["issue"])
            if issue is None:
                return _issue_missing()
            if account not in self.users:
                return _error(404, [f"The user with account ID '{account}' does not exist."])
            if account not in issue["watchers"]:
                issue["watchers"].append(account)
        return Response(status_code=204)

    # -- worklogs -------------------------------------------------------------------------------

    @staticmethod
    def _duration(text: Any) -> int | None:
        """Jira's duration syntax ("1w 2d 3h 30m", a bare number is minutes) in seconds."""
        if isinstance(text, int | float) and not isinstance(text, bool):
            return int(text * 60)
        if not isinstance(text, str) or not text.strip():
            return None
        parts = text.strip().lower().split()
        if len(parts) == 1 and re.fullmatch(r"\d+(\.\d+)?", parts[0]):
            return int(float(parts[0]) * 60)
        total = 0
        for part in parts:
            match = re.fullmatch(r"(\d+(?:\.\d+)?)([wdhm])", part)
            if not match:
                return None
            total += int(float(match.group(1)) * TIME_UNITS[match.group(2)])
        return total

    @staticmethod
    def _formatted(seconds: int) -> str:
        out = []
        for unit, size in TIME_UNITS.items():
            if seconds >= size:
                out.append(f"{seconds // size}{unit}")
                seconds %= size
        return " ".join(out) or "0m"

    def _add_worklog(self, issue: dict[str, Any], values: dict[str, Any],
                     author: str) -> dict[str, Any]:
        now = _now()
        worklog = {"id": str(next(self._worklog_ids)), "author": author,
                   "updateAuthor": author, "comment": values.get("comment"), "created": now,
                   "updated": now, "started": values.get("started") or now,
                   "timeSpentSeconds": values["timeSpentSeconds"],
                   "visibility": values.get("visibility")}
        issue["worklogs"].append(worklog)
        issue["fields"]["updated"] = now
        return worklog

    def _worklog_json(self, issue: dict[str, Any], worklog: dict[str, Any],
                      version: str) -> dict[str, Any]:
        out = {"self": self._url(version, f"issue/{issue['id']}/worklog/{worklog['id']}"),
               "author": self._user(worklog["author"], version),
               "updateAuthor": self._user(worklog["updateAuthor"], version),
               "created": worklog["created"], "updated": worklog["updated"],
               "started": worklog["started"],
               "timeSpent": self._formatted(worklog["timeSpentSeconds"]),
               "timeSpentSeconds": worklog["timeSpentSeconds"], "id": worklog["id"],
               "issueId": issue["id"]}
        if worklog["comment"] not in (None, ""):
            out["comment"] = _as_version(worklog["comment"], version)
        if worklog.get("visibility"):
            out["visibility"] = worklog["visibility"]
        return out

    def _worklog_values(self, body: dict[str, Any], version: str,
                        creating: bool) -> dict[str, Any] | Response:
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        if "timeSpentSeconds" in body or "timeSpent" in body:
            seconds = body.get("timeSpentSeconds")
            if seconds is None:
                seconds = self._duration(body.get("timeSpent"))
                if seconds is None:
                    errors["timeLogged"] = "Invalid time duration entered."
            elif not isinstance(seconds, int) or isinstance(seconds, bool):
                errors["timeLogged"] = "Invalid time duration entered."
            if isinstance(seconds, int) and not errors:
                if seconds <= 0:
                    errors["timeLogged"] = "Time Spent must be greater than zero."
                values["timeSpentSeconds"] = seconds
        elif creating:
            errors["timeLogged"] = "You must indicate the time spent working."
        if "comment" in body:
            comment = body["comment"]
            if comment not in (None, "") and not self._valid_body(comment, version):
                errors["comment"] = ADF_ERROR if version == "3" else "Comment is not valid."
            values["comment"] = comment
        if "started" in body:
            started = body["started"]
            if not isinstance(started, str) or not re.fullmatch(
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}", started):
                errors["started"] = ("Invalid date format. Please enter the date in the format "
                                     "\"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".")
            values["started"] = started
        if "visibility" in body:
            values["visibility"] = body["visibility"]
        if errors:
            return _error(400, [], errors)
        return values

    @staticmethod
    def _estimate_error(request: Request, reduce_param: str = "reduceBy") -> Response | None:
        adjust = request.query_params.get("adjustEstimate", "auto")
        if adjust not in ADJUST_ESTIMATE:
            return _error(400, [f"Invalid value for adjustEstimate: {adjust}"])
        if adjust == "new" and FakeJira._duration(request.query_params.get("newEstimate")) is None:
            return _error(400, ["You must supply a valid new estimate."])
        if adjust == "manual" and FakeJira._duration(
                request.query_params.get(reduce_param)) is None:
            return _error(400, ["You must supply a valid amount to reduce the estimate by."])
        return None

    async def worklogs(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        if request.method == "GET":
            try:
                start = int(request.query_params.get("startAt", "0"))
                limit = int(request.query_params.get("maxResults", "5000"))
            except ValueError:
                return _error(400, ["The value of startAt and maxResults must be numbers."])
            with self._lock:
                issue = self._find(request.path_params["issue"])
                if issue is None:
                    return _issue_missing()
                listed = [self._worklog_json(issue, w, version) for w in issue["worklogs"]]
            return JSONResponse({"startAt": start, "maxResults": limit, "total": len(listed),
                                 "worklogs": listed[max(start, 0):max(start, 0) + limit]})
        body = self._json(request, raw)
        if isinstance(body, Response):
            return body
        with self._lock:
            issue = self._find(request.path_params["issue"])
            if issue is None:
                return _issue_missing()
            if (error := self._estimate_error(request)) is not None:
                return error
            values = self._worklog_values(body, version, creating=True)
            if isinstance(values, Response):
                return values
            worklog = self._add_worklog(issue, values, self.me)
            return JSONResponse(self._worklog_json(issue, worklog, version), status_code=201)

    async def one_worklog(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        body: dict[str, Any] = {}
        if request.method == "PUT":
            parsed = self._json(request, raw)
            if isinstance(parsed, Response):
                return parsed
            body = parsed
        worklog_id = request.path_params["worklog_id"]
        with self._lock:
            issue = self._find(request.path_params["issue"])
            if issue is None:
                return _issue_missing()
            worklog = next((w for w in issue["worklogs"] if w["id"] == worklog_id), None)
            if worklog is None:
                return _error(404, [f"Cannot find worklog with id: '{worklog_id}'."])
            if request.method == "GET":
                return JSONResponse(self._worklog_json(issue, worklog, version))
            if (error := self._estimate_error(request, "increaseBy")) is not None:
                return error
            if request.method == "DELETE":
                issue["worklogs"].remove(worklog)
                return Response(status_code=204)
            values = self._worklog_values(body, version, creating=False)
            if isinstance(values, Response):
                return values
            worklog.update(values, updateAuthor=self.me, updated=_now())
            return JSONResponse(self._worklog_json(issue, worklog, version))

    # -- users ----------------------------------------------------------------------------------

    @staticmethod
    def _user_matches(user: dict[str, Any], wanted: str) -> bool:
        """A query matches the start of the display name or email, or of any word in them."""
        texts = [user["displayName"].lower(), (user.get("emailAddress") or "").lower()]
        return any(t.startswith(wanted) or any(w.startswith(wanted) for w in t.split())
                   for t in texts if t)

    async def user_search(self, request: Request) -> Response:
        begun = await self._begin(request, anonymous=True)
        if isinstance(begun, Response):
            return begun
        version, _ = begun
        query = request.query_params.get("query")
        account = request.query_params.get("accountId")
        if query and account:
            return _error(400, ["Provide either 'query' or 'accountId', not both."])
        if not (query or account or request.query_params.get("property")):
            return _error(400, ["One of 'accountId', 'query' or 'property' must be provided."])
        try:
            start = int(request.query_params.get("startAt", "0"))
            limit = int(request.query_params.get("maxResults", "50"))
        except ValueError:
            return _error(400, ["The value of startAt and maxResults must be numbers."])
        wanted = (query or "").lower()
        with self._lock:
            found = [self._user(a, version) for a, u in self.users.items()
                     if (account and a == account) or (wanted and self._user_matches(u, wanted))]
        return JSONResponse(found[max(start, 0):max(start, 0) + max(limit, 0)])

    # -- search ---------------------------------------------------------------------------------

    def _text_of(self, field: str) -> Callable[[dict[str, Any]], str]:
        def text(issue: dict[str, Any]) -> str:
            f = issue["fields"]
            parts = []
            if field in {"summary", "text"}:
                parts.append(f["summary"])
            if field in {"description", "text"}:
                parts.append(_plain(f["description"]))
            if field in {"comment", "text"}:
                parts += [_plain(c["body"]) for c in issue["comments"]]
            return "\n".join(parts)
        return text

    def _jql_field(self, field: str, raw: str
                   ) -> tuple[Callable[[dict[str, Any]], list[str]], Callable[[str], str]]:
        """(issue -> its comparable values, query value -> comparable value) for a JQL field."""
        def lookup(names: dict[str, str], label: str) -> Callable[[str], str]:
            def normalize(value: str) -> str:
                hit = names.get(value.lower())
                if hit is None:
                    raise JqlError(f"The value '{value}' does not exist for the field '{label}'.")
                return hit
            return normalize

        def user(value: str) -> str:
            if value == "\0fn:currentuser":
                return self.me
            if value.startswith("\0fn:"):
                raise JqlError(f"Unable to find JQL function '{value[4:]}()'.")
            matches = [a for a, u in self.users.items()
                       if value in {a, u["displayName"], u.get("emailAddress")}]
            return matches[0] if matches else value

        def key(value: str) -> str:
            found = self._find(value)
            if found is None:
                if field == "key" and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", value):
                    raise JqlError(f"The issue key '{value}' for field 'key' is invalid.")
                if field == "key":
                    raise JqlError(f"An issue with key '{value}' does not exist for field "
                                   "'key'.")
                return "\0none"
            return found["key"]

        if field in {"key", "id", "parent"}:
            name = "parent" if field == "parent" else "key"
            return (lambda i: [i[name]] if name == "key" else
                    ([i["fields"]["parent"]] if i["fields"]["parent"] else [])), key
        if field == "project":
            names = {p["key"].lower(): p["key"] for p in self.projects.values()}
            names |= {p["id"]: p["key"] for p in self.projects.values()}
            names |= {p["name"].lower(): p["key"] for p in self.projects.values()}
            return (lambda i: [i["fields"]["project"]]), lookup(names, "project")
        if field == "status":
            names = {s[1].lower(): s[1] for s in STATUSES} | {s[0]: s[1] for s in STATUSES}
            return (lambda i: [i["fields"]["status"]]), lookup(names, "status")
        if field == "statuscategory":
            names = {}
            for _, _, cat_id, cat_key, _, cat_name in STATUSES:
                names |= {cat_name.lower(): cat_key, cat_key: cat_key, str(cat_id): cat_key}
            category = {s[1]: s[3] for s in STATUSES}
            return (lambda i: [category[i["fields"]["status"]]]), lookup(names, "statusCategory")
        if field == "issuetype":
            names = {n.lower(): n for n in ISSUE_TYPES} | {t[0]: n for n, t in ISSUE_TYPES.items()}
            return (lambda i: [i["fields"]["issuetype"]]), lookup(names, "issuetype")
        if field == "priority":
            names = {n.lower(): n for n in PRIORITIES} | {p: n for n, p in PRIORITIES.items()}
            return ((lambda i: [i["fields"]["priority"]] if i["fields"]["priority"] else []),
                    lookup(names, "priority"))
        if field in {"assignee", "reporter", "creator"}:
            return (lambda i: [i["fields"][field]] if i["fields"][field] else []), user
        if field == "labels":
            return (lambda i: list(i["fields"]["labels"])), (lambda v: v)
        if field in FIELD_NAMES:  # a real field this small JQL does not evaluate
            raise JqlError(f"Error in the JQL Query: this fake does not support '{raw}' in JQL.")
        raise JqlError(f"Field '{raw}' does not exist or you do not have permission to view it.")

    def _sort_key(self, field: str) -> Callable[[dict[str, Any]], Any]:
        if field in {"key", "issuekey"}:
            return lambda i: (i["fields"]["project"], int(i["key"].rsplit("-", 1)[1]))
        if field in {"id", "created"}:
            return lambda i: int(i["id"])
        if field == "updated":
            return lambda i: (i["fields"]["updated"], int(i["id"]))
        if field == "priority":
            return lambda i: -int(PRIORITIES.get(i["fields"]["priority"] or "", "9"))
        if field == "status":
            return lambda i: [s[1] for s in STATUSES].index(i["fields"]["status"])
        if field in FIELD_NAMES or field in {"text"}:
            raise JqlError(f"Not able to sort using field '{field}'.")
        raise JqlError(f"Field '{field}' does not exist or you do not have permission to view "
                       "it.")

    def _query(self, jql: str, bounded: bool = False) -> list[dict[str, Any]]:
        """Matching issues, ordered (default: newest first); raises JqlError (call under lock)."""
        parsed = _Jql(self, jql)
        predicate = parsed.parse()
        if bounded and (not parsed.tokens or parsed.tokens[0] == ("kw", "order")):
            raise JqlError("Unbounded JQL queries are not allowed here. Please add a search "
                           "restriction to your query.")
        found = [i for i in self.issues.values() if predicate(i)]
        found.sort(key=lambda i: -int(i["id"]))
        for field, descending in reversed(parsed.order):
            found.sort(key=self._sort_key(field), reverse=descending)
        return found

    async def _search_params(self, request: Request, raw: bytes) -> dict[str, Any] | Response:
        if request.method == "POST":
            return self._json(request, raw)
        params: dict[str, Any] = {k: v for k, v in request.query_params.items()}
        params["fields"] = self._query_list(request, "fields")
        return params

    @staticmethod
    def _int(params: dict[str, Any], name: str, default: int) -> int | Response:
        value = params.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            return _error(400, [f"The value '{value}' is invalid for the '{name}' parameter."])

    @staticmethod
    def _fields_param(params: dict[str, Any]) -> list[str] | None:
        value = params.get("fields")
        if isinstance(value, str):
            return [v for v in value.split(",") if v.strip()]
        return [str(v) for v in value] if isinstance(value, list) else None

    @staticmethod
    def _expand_param(params: dict[str, Any]) -> set[str]:
        value = params.get("expand") or []
        items = value.split(",") if isinstance(value, str) else value
        return {str(v).strip() for v in items}

    async def search(self, request: Request) -> Response:
        """The classic paged search: startAt / maxResults / total."""
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        params = await self._search_params(request, raw)
        if isinstance(params, Response):
            return params
        start = self._int(params, "startAt", 0)
        limit = self._int(params, "maxResults", 50)
        if isinstance(start, Response):
            return start
        if isinstance(limit, Response):
            return limit
        start, limit = max(start, 0), min(max(limit, 0), 100)
        fields = self._field_set(self._fields_param(params), NAVIGABLE)
        expand = self._expand_param(params)
        with self._lock:
            try:
                found = self._query(str(params.get("jql") or ""))
            except JqlError as exc:
                return _error(400, [str(exc)])
            page = [self._render(i, version, fields, expand, SEARCH_ISSUE_EXPAND)
                    for i in found[start:start + limit]]
        return JSONResponse({"expand": "schema,names", "startAt": start, "maxResults": limit,
                             "total": len(found), "issues": page})

    async def search_jql(self, request: Request) -> Response:
        """The enhanced search: nextPageToken / isLast, and only ids unless `fields` is given."""
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, raw = begun
        params = await self._search_params(request, raw)
        if isinstance(params, Response):
            return params
        limit = self._int(params, "maxResults", 50)
        if isinstance(limit, Response):
            return limit
        limit = min(max(limit, 1), 5000)
        token = params.get("nextPageToken")
        start = 0
        if token:
            try:
                start = int(base64.urlsafe_b64decode(str(token).encode()).decode().split(":")[1])
            except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
                return _error(400, ["The provided next page token is invalid or expired."])
        jql = str(params.get("jql") or "")
        spec = self._fields_param(params)
        ids_only = not spec or [s.strip() for s in spec] == ["id"]
        fields = self._field_set(spec, NAVIGABLE)
        expand = self._expand_param(params)
        with self._lock:
            try:
                found = self._query(jql, bounded=True)
            except JqlError as exc:
                return _error(400, [str(exc)])
            page = found[start:start + limit]
            issues = [{"id": i["id"]} if ids_only else
                      self._render(i, version, fields, expand, SEARCH_ISSUE_EXPAND) for i in page]
        out: dict[str, Any] = {"issues": issues}
        if start + limit < len(found):
            out["nextPageToken"] = base64.urlsafe_b64encode(
                f"page:{start + limit}".encode()).decode()
            out["isLast"] = False
        else:
            out["isLast"] = True
        return JSONResponse(out)

    # -- identity -------------------------------------------------------------------------------

    async def myself(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, Response):
            return begun
        version, _ = begun
        with self._lock:
            user = self._user(self.me, version) or {}
        user |= {"locale": "en_US", "expand": "groups,applicationRoles",
                 "groups": {"size": 1, "items": []},
                 "applicationRoles": {"size": 1, "items": []}}
        return JSONResponse(user)

    async def server_info(self, request: Request) -> Response:
        """Readable anonymously, as on Jira Cloud; wrong credentials still get 401."""
        begun = await self._begin(request, anonymous=True)
        if isinstance(begun, Response):
            return begun
        return JSONResponse({
            "baseUrl": f"https://{self.host}", "displayUrl": f"https://{self.host}",
            "version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud", "buildNumber": 100283,
            "buildDate": "2025-01-01T00:00:00.000+0000", "serverTime": _now(),
            "scmInfo": "0b2f6c8f1c7e4e1f9a3d2b5c6d7e8f9a0b1c2d3e", "serverTitle": "Jira",
            "defaultLocale": {"locale": "en_US"}, "serverTimeZone": "Etc/UTC",
        })
