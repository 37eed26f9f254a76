"""A fake GitHub API (REST v3 + GraphQL v4), following the documented request and response shapes.

https://docs.github.com/en/rest (issues, issue comments, issue labels, pulls, merge, pull
request reviews, repository contents); issue labels and reviews answer as the shipped description
(connectors_schemas/descriptions/github-rest-api.github.com.json.gz) documents them
https://docs.github.com/en/graphql (repository.issue, updateIssue, addComment, closeIssue)
- every REST path is also served under the Enterprise prefix `/api/v3`; GraphQL under `/graphql`
  and the Enterprise `/api/graphql`
- auth is `Authorization: Bearer <token>` or `token <token>`; a missing header gives 401
  "Requires authentication", a wrong one 401 "Bad credentials"; a missing User-Agent gives 403
- errors: {"message", "documentation_url", "status"}; 422 adds "errors": [{resource, field, code}]
- pull requests share the issue number space, as on GitHub (a PR is also an issue)
- URLs in responses use `host` (a public attribute, read at response time), so a test that talks
  to the fake directly can point them at 127.0.0.1:PORT
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

DOCS = "https://docs.github.com/rest"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
STATE_REASONS = {None, "completed", "not_planned", "reopened", "duplicate"}
MERGE_METHODS = {"merge", "squash", "rebase"}

RepoKey = tuple[str, str]
IssueKey = tuple[str, str, int]

SCHEMA_SDL = """
scalar DateTime
scalar URI

interface Node { id: ID! }
interface Actor { login: String! avatarUrl: URI! url: URI! }
interface RepositoryOwner { id: ID! login: String! url: URI! }

enum IssueState { OPEN CLOSED }
enum IssueStateReason { COMPLETED NOT_PLANNED REOPENED DUPLICATE }
enum IssueClosedStateReason { COMPLETED NOT_PLANNED DUPLICATE }
enum PullRequestState { OPEN CLOSED MERGED }

type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}

type User implements Node & Actor & RepositoryOwner {
  id: ID! databaseId: Int login: String! name: String avatarUrl: URI! url: URI!
}

type Label implements Node {
  id: ID! name: String! color: String! description: String isDefault: Boolean! url: URI!
}
type LabelEdge { cursor: String! node: Label }
type LabelConnection {
  nodes: [Label] edges: [LabelEdge] pageInfo: PageInfo! totalCount: Int!
}

type UserEdge { cursor: String! node: User }
type UserConnection { nodes: [User] edges: [UserEdge] pageInfo: PageInfo! totalCount: Int! }

type Milestone implements Node { id: ID! number: Int! title: String! state: String! url: URI! }

type IssueComment implements Node {
  id: ID! databaseId: Int body: String! author: Actor createdAt: DateTime!
  updatedAt: DateTime! url: URI! issue: Issue!
}
type IssueCommentEdge { cursor: String! node: IssueComment }
type IssueCommentConnection {
  nodes: [IssueComment] edges: [IssueCommentEdge] pageInfo: PageInfo! totalCount: Int!
}

type Issue implements Node {
  id: ID! databaseId: Int number: Int! title: String! body: String! state: IssueState!
  stateReason: IssueStateReason closed: Boolean! closedAt: DateTime createdAt: DateTime!
  updatedAt: DateTime! url: URI! author: Actor locked: Boolean! milestone: Milestone
  repository: Repository!
  labels(first: Int, last: Int, after: String, before: String): LabelConnection
  assignees(first: Int, last: Int, after: String, before: String): UserConnection!
  comments(first: Int, last: Int, after: String, before: String): IssueCommentConnection!
}

type PullRequest implements Node {
  id: ID! databaseId: Int number: Int! title: String! body: String! state: PullRequestState!
  merged: Boolean! mergedAt: DateTime closed: Boolean! url: URI! headRefName: String!
  baseRefName: String! headRefOid: String! author: Actor repository: Repository!
  labels(first: Int, last: Int, after: String, before: String): LabelConnection
  comments(first: Int, last: Int, after: String, before: String): IssueCommentConnection!
}

type Repository implements Node {
  id: ID! databaseId: Int name: String! nameWithOwner: String! url: URI! isPrivate: Boolean!
  owner: RepositoryOwner!
  issue(number: Int!): Issue
  pullRequest(number: Int!): PullRequest
  label(name: String!): Label
}

type Query {
  repository(owner: String!, name: String!, followRenames: Boolean): Repository
  node(id: ID!): Node
  viewer: User!
}

input UpdateIssueInput {
  id: ID! title: String body: String state: IssueState assigneeIds: [ID!] labelIds: [ID!]
  milestoneId: ID clientMutationId: String
}
input AddCommentInput { subjectId: ID! body: String! clientMutationId: String }
input CloseIssueInput {
  issueId: ID! stateReason: IssueClosedStateReason duplicateIssueId: ID clientMutationId: String
}
input ReopenIssueInput { issueId: ID! clientMutationId: String }

type UpdateIssuePayload { actor: Actor clientMutationId: String issue: Issue }
type AddCommentPayload {
  clientMutationId: String commentEdge: IssueCommentEdge subject: Node
  timelineEdge: IssueCommentEdge
}
type CloseIssuePayload { actor: Actor clientMutationId: String issue: Issue }
type ReopenIssuePayload { actor: Actor clientMutationId: String issue: Issue }

type Mutation {
  updateIssue(input: UpdateIssueInput!): UpdateIssuePayload
  addComment(input: AddCommentInput!): AddCommentPayload
  closeIssue(input: CloseIssueInput!): CloseIssuePayload
  reopenIssue(input: ReopenIssueInput!): ReopenIssuePayload
}
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(prefix: str, number: int) -> str:
    """Opaque, deterministic global ids in the shape of GitHub's new-style ids."""
    return prefix + base64.b64encode(f"{number:08d}".encode()).decode().rstrip("=")


def blob_sha(data: bytes) -> str:
    """The git blob sha GitHub reports for file contents."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _wrapped_b64(data: bytes) -> str:
    """GitHub returns file content base64-encoded with a newline every 60 characters."""
    text = base64.b64encode(data).decode()
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def _error(status: int, message: str, docs: str = DOCS) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": docs, "status": str(status)},
                        status_code=status)


def _not_found() -> JSONResponse:
    return _error(404, "Not Found")


def _invalid(errors: list[dict[str, Any]], docs: str = DOCS) -> JSONResponse:
    return JSONResponse({"message": "Validation Failed", "errors": errors,
                         "documentation_url": docs, "status": "422"}, status_code=422)


class _GQLError(Exception):
    """A resolver failure that GitHub reports with a `type` (NOT_FOUND, UNPROCESSABLE, ...)."""

    def __init__(self, message: str, type_: str) -> None:
        super().__init__(message)
        self.type = type_


class FakeGitHub:
    """In-memory GitHub: repos, users, labels, milestones, issues, comments, pulls, files."""

    def __init__(self, host: str = "api.github.com", token: str = "ghp_fake_token_123",
                 login: str = "octocat", api_prefix: str | None = None) -> None:
        self.host = host
        self.api_prefix = api_prefix
        self.token = token
        self.login = login
        self.log = RequestLog()
        self._lock = threading.RLock()
        self._repo_ids = itertools.count(1296269)
        self._user_ids = itertools.count(583231)
        self._issue_ids = itertools.count(1000001)
        self._comment_ids = itertools.count(5000001)
        self._label_ids = itertools.count(208045946)
        self._commit_counter = itertools.count(1)
        self.users: dict[str, dict[str, Any]] = {}
        self.repos: dict[RepoKey, dict[str, Any]] = {}
        self.labels: dict[RepoKey, dict[str, dict[str, Any]]] = {}
        self.milestones: dict[RepoKey, dict[int, dict[str, Any]]] = {}
        self.issues: dict[IssueKey, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.pulls: dict[IssueKey, dict[str, Any]] = {}
        # review id -> {"id", "node_id", "pull": IssueKey, "user", "body", "state", "commit_id",
        #               "submitted_at", "comments": [...]}
        self.pull_reviews: dict[int, dict[str, Any]] = {}
        self._review_ids = itertools.count(80000001)
        self.branches: dict[RepoKey, dict[str, str]] = {}
        self.files: dict[tuple[str, str, str, str], bytes] = {}
        self.commits: list[dict[str, Any]] = []
        self._next_number: dict[RepoKey, int] = {}
        self._nodes: dict[str, tuple[str, Any]] = {}
        for name in (login, "hubot", "monalisa"):
            self.seed_user(name)
        self.schema = graphql.build_schema(SCHEMA_SDL)
        self.app = Starlette(routes=self._routes())

    # ----------------------------------------------------------------- urls
    @property
    def api_root(self) -> str:
        prefix = self.api_prefix
        if prefix is None:
            prefix = "" if self.host == "api.github.com" else "/api/v3"
        return f"https://{self.host}{prefix}"

    @property
    def html_root(self) -> str:
        return "https://github.com" if self.host == "api.github.com" else f"https://{self.host}"

    def _routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request], Any], list[str]]] = [
            ("/user", self.get_user, ["GET"]),
            ("/repos/{owner}/{repo}", self.get_repo, ["GET"]),
            ("/repos/{owner}/{repo}/issues", self.create_issue, ["POST"]),
            ("/repos/{owner}/{repo}/issues/comments/{comment_id:int}", self.comment,
             ["GET", "PATCH", "DELETE"]),
            ("/repos/{owner}/{repo}/issues/{number:int}", self.issue, ["GET", "PATCH"]),
            ("/repos/{owner}/{repo}/issues/{number:int}/comments", self.issue_comments,
             ["GET", "POST"]),
            ("/repos/{owner}/{repo}/pulls/{number:int}", self.pull, ["GET", "PATCH"]),
            ("/repos/{owner}/{repo}/pulls/{number:int}/merge", self.merge, ["GET", "PUT"]),
            ("/repos/{owner}/{repo}/issues/{number:int}/labels", self.issue_labels,
             ["GET", "POST", "PUT", "DELETE"]),
            ("/repos/{owner}/{repo}/issues/{number:int}/labels/{name}", self.issue_label,
             ["DELETE"]),
            ("/repos/{owner}/{repo}/pulls/{number:int}/reviews", self.reviews, ["GET", "POST"]),
            ("/repos/{owner}/{repo}/pulls/{number:int}/reviews/{review_id:int}", self.review,
             ["GET"]),
            ("/repos/{owner}/{repo}/contents", self.contents, ["GET"]),
            ("/repos/{owner}/{repo}/contents/{path:path}", self.contents,
             ["GET", "PUT", "DELETE"]),
        ]
        routes = []
        for path, endpoint, methods in table:
            routes.append(Route(path, endpoint, methods=methods))
            routes.append(Route("/api/v3" + path, endpoint, methods=methods))
        routes.append(Route("/graphql", self.graphql, methods=["POST"]))
        routes.append(Route("/api/graphql", self.graphql, methods=["POST"]))
        routes.append(Route("/{path:path}", self.unknown, methods=ALL_METHODS))
        return routes

    # ----------------------------------------------------------------- seeding
    def seed_user(self, login: str, **fields: Any) -> dict[str, Any]:
        user_id = next(self._user_ids)
        user = {"login": login, "id": user_id, "node_id": _node_id("U_kgDO", user_id),
                "name": login.capitalize(), "email": f"{login}@users.noreply.github.com",
                "type": "User", "site_admin": False}
        user.update(fields)
        with self._lock:
            self.users[login.lower()] = user
            self._nodes[user["node_id"]] = ("user", login.lower())
        return copy.deepcopy(user)

    def seed_repo(self, owner: str, repo: str, default_branch: str = "main",
                  **fields: Any) -> dict[str, Any]:
        key = (owner.lower(), repo.lower())
        with self._lock:
            if key in self.repos:
                return copy.deepcopy(self.repos[key])
            if owner.lower() not in self.users:
                self.seed_user(owner, type="Organization")
            repo_id = next(self._repo_ids)
            now = _now()
            record = {"id": repo_id, "node_id": _node_id("R_kgDO", repo_id), "owner": owner,
                      "name": repo, "private": False, "description": f"The {repo} repository",
                      "default_branch": default_branch, "created_at": now, "updated_at": now,
                      "pushed_at": now, "archived": False}
            record.update(fields)
            self.repos[key] = record
            self._nodes[record["node_id"]] = ("repo", key)
            self.labels[key] = {}
            self.milestones[key] = {}
            self.branches[key] = {default_branch: self._commit_sha("initial commit")}
            self._next_number[key] = 1
            for name, color in (("bug", "d73a4a"), ("enhancement", "a2eeef")):
                self._ensure_label(key, name, color=color, default=True)
            return copy.deepcopy(record)

    def seed_label(self, owner: str, repo: str, name: str, color: str = "ededed",
                   description: str | None = None) -> dict[str, Any]:
        self.seed_repo(owner, repo)
        with self._lock:
            label = self._ensure_label((owner.lower(), repo.lower()), name, color=color)
            label["description"] = description
            return copy.deepcopy(label)

    def seed_milestone(self, owner: str, repo: str, number: int,
                       title: str | None = None) -> dict[str, Any]:
        self.seed_repo(owner, repo)
        milestone = {"number": number, "id": 1002604 + number,
                     "node_id": _node_id("MI_kwDO", 1002604 + number),
                     "title": title or f"v{number}.0", "description": None, "state": "open",
                     "open_issues": 0, "closed_issues": 0, "created_at": _now(),
                     "updated_at": _now(), "closed_at": None, "due_on": None}
        with self._lock:
            self.milestones[(owner.lower(), repo.lower())][number] = milestone
            self._nodes[milestone["node_id"]] = ("milestone", (owner.lower(), repo.lower(),
                                                               number))
        return copy.deepcopy(milestone)

    def seed_branch(self, owner: str, repo: str, branch: str) -> str:
        self.seed_repo(owner, repo)
        with self._lock:
            heads = self.branches[(owner.lower(), repo.lower())]
            return heads.setdefault(branch, self._commit_sha(f"branch {branch}"))

    def seed_issue(self, owner: str, repo: str, number: int | None = None,
                   **fields: Any) -> int:
        """Fields use the REST names; `labels` are names and `assignees` logins."""
        self.seed_repo(owner, repo)
        key = (owner.lower(), repo.lower())
        with self._lock:
            if number is None:
                number = self._next_number[key]
            self._next_number[key] = max(self._next_number[key], number + 1)
            issue_id = next(self._issue_ids)
            now = _now()
            record: dict[str, Any] = {
                "id": issue_id, "node_id": _node_id("I_kwDO", issue_id), "number": number,
                "title": "Found a bug", "body": "I'm having a problem with this.",
                "state": "open", "state_reason": None, "labels": ["bug"], "assignees": [],
                "milestone": None, "user": self.login, "locked": False, "comments": 0,
                "created_at": now, "updated_at": now, "closed_at": None, "closed_by": None,
                "is_pull": False,
            }
            record.update(fields)
            for name in record["labels"]:
                self._ensure_label(key, name)
            for login in record["assignees"]:
                if login.lower() not in self.users:
                    self.seed_user(login)
            if record["state"] == "closed" and record["closed_at"] is None:
                record["closed_at"] = now
                record["state_reason"] = record["state_reason"] or "completed"
            self.issues[(*key, number)] = record
            self._nodes[record["node_id"]] = ("issue", (*key, number))
        return number

    def seed_pull(self, owner: str, repo: str, number: int | None = None,
                  head: str = "feature", base: str | None = None, mergeable: bool = True,
                  draft: bool = False, **fields: Any) -> int:
        """A PR is an issue plus head/base refs; `fields` go to the issue part (title, ...)."""
        self.seed_repo(owner, repo)
        key = (owner.lower(), repo.lower())
        base = base or self.repos[key]["default_branch"]
        fields.setdefault("title", "Amazing new feature")
        fields.setdefault("body", "Please pull these awesome changes in!")
        fields.setdefault("labels", [])
        number = self.seed_issue(owner, repo, number, is_pull=True, **fields)
        head_sha = self.seed_branch(owner, repo, head)
        base_sha = self.seed_branch(owner, repo, base)
        with self._lock:
            issue = self.issues[(*key, number)]
            pr_id = issue["id"] + 70000000
            issue["node_id"] = _node_id("PR_kwDO", pr_id)
            self._nodes[issue["node_id"]] = ("pull", (*key, number))
            self.pulls[(*key, number)] = {
                "id": pr_id, "head": head, "head_sha": head_sha, "base": base,
                "base_sha": base_sha, "mergeable": mergeable, "draft": draft, "merged": False,
                "merged_at": None, "merged_by": None, "merge_commit_sha": None,
                "maintainer_can_modify": False,
            }
        return number

    def seed_file(self, owner: str, repo: str, path: str, text: str | bytes,
                  branch: str | None = None) -> str:
        self.seed_repo(owner, repo)
        key = (owner.lower(), repo.lower())
        branch = branch or self.repos[key]["default_branch"]
        self.seed_branch(owner, repo, branch)
        data = text.encode() if isinstance(text, str) else text
        with self._lock:
            self.files[(*key, branch, path.strip("/"))] = data
        return blob_sha(data)

    def file_text(self, owner: str, repo: str, path: str, branch: str | None = None) -> str | None:
        key = (owner.lower(), repo.lower())
        with self._lock:
            branch = branch or self.repos[key]["default_branch"]
            data = self.files.get((*key, branch, path.strip("/")))
        return None if data is None else data.decode()

    def issue_record(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.issues[(owner.lower(), repo.lower(), number)])

    def reviews_of(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        key = (owner.lower(), repo.lower(), number)
        with self._lock:
            return [copy.deepcopy(r) for r in self.pull_reviews.values() if r["pull"] == key]

    def comments_of(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        key = (owner.lower(), repo.lower(), number)
        with self._lock:
            return [copy.deepcopy(c) for c in self.comments.values() if c["issue"] == key]

    # ----------------------------------------------------------------- internals
    def _commit_sha(self, message: str) -> str:
        return hashlib.sha1(f"commit {next(self._commit_counter)} {message}".encode()).hexdigest()

    def _ensure_label(self, key: RepoKey, name: str, color: str = "ededed",
                      default: bool = False) -> dict[str, Any]:
        labels = self.labels[key]
        found = labels.get(name.lower())
        if found is None:
            label_id = next(self._label_ids)
            found = {"id": label_id, "node_id": _node_id("LA_kwDO", label_id), "name": name,
                     "color": color, "default": default, "description": None}
            labels[name.lower()] = found
            self._nodes[found["node_id"]] = ("label", (*key, name.lower()))
        return found

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _auth_error(self, request: Request, docs: str = DOCS) -> JSONResponse | None:
        if not request.headers.get("user-agent"):
            return JSONResponse(
                {"message": "Request forbidden by administrative rules. Please make sure your "
                            "request has a User-Agent header (https://docs.github.com/en/rest/"
                            "overview/resources-in-the-rest-api#user-agent-required)."},
                status_code=403)
        header = request.headers.get("authorization", "")
        if not header:
            return _error(401, "Requires authentication", docs)
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in {"bearer", "token"} or value.strip() != self.token:
            return _error(401, "Bad credentials", docs)
        return None

    async def _begin(self, request: Request) -> tuple[bytes, JSONResponse | None]:
        body = await self._record(request)
        return body, self._auth_error(request)

    @staticmethod
    def _json(body: bytes) -> dict[str, Any] | JSONResponse:
        if not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if not isinstance(parsed, dict):
            return _error(400, "Problems parsing JSON")
        return parsed

    def _repo_key(self, request: Request) -> RepoKey | None:
        key = (request.path_params["owner"].lower(), request.path_params["repo"].lower())
        return key if key in self.repos else None

    # ----------------------------------------------------------------- rendering
    def _user_json(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        user = self.users[login.lower()]
        name = user["login"]
        return {"login": name, "id": user["id"], "node_id": user["node_id"],
                "avatar_url": f"https://avatars.githubusercontent.com/u/{user['id']}?v=4",
                "gravatar_id": "", "url": f"{self.api_root}/users/{name}",
                "html_url": f"{self.html_root}/{name}",
                "followers_url": f"{self.api_root}/users/{name}/followers",
                "following_url": f"{self.api_root}/users/{name}/following{{/other_user}}",
                "gists_url": f"{self.api_root}/users/{name}/gists{{/gist_id}}",
                "starred_url": f"{self.api_root}/users/{name}/starred{{/owner}}{{/repo}}",
                "subscriptions_url": f"{self.api_root}/users/{name}/subscriptions",
                "organizations_url": f"{self.api_root}/users/{name}/orgs",
                "repos_url": f"{self.api_root}/users/{name}/repos",
                "events_url": f"{self.api_root}/users/{name}/events{{/privacy}}",
                "received_events_url": f"{self.api_root}/users/{name}/received_events",
                "type": user["type"], "site_admin": user["site_admin"]}

    def _repo_base(self, key: RepoKey) -> tuple[str, str, str]:
        repo = self.repos[key]
        full = f"{repo['owner']}/{repo['name']}"
        return full, f"{self.api_root}/repos/{full}", f"{self.html_root}/{full}"

    def _repo_json(self, key: RepoKey) -> dict[str, Any]:
        repo = self.repos[key]
        full, api, html = self._repo_base(key)
        open_count = sum(1 for k, i in self.issues.items()
                         if k[:2] == key and i["state"] == "open")
        return {
            "id": repo["id"], "node_id": repo["node_id"], "name": repo["name"],
            "full_name": full, "private": repo["private"],
            "owner": self._user_json(repo["owner"]), "html_url": html,
            "description": repo["description"], "fork": False, "url": api,
            "issues_url": f"{api}/issues{{/number}}", "pulls_url": f"{api}/pulls{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "labels_url": f"{api}/labels{{/name}}",
            "git_url": f"git://{self.html_root.removeprefix('https://')}/{full}.git",
            "clone_url": f"{html}.git", "created_at": repo["created_at"],
            "updated_at": repo["updated_at"], "pushed_at": repo["pushed_at"],
            "default_branch": repo["default_branch"], "archived": repo["archived"],
            "disabled": False, "visibility": "private" if repo["private"] else "public",
            "has_issues": True, "has_projects": True, "has_wiki": True,
            "open_issues_count": open_count, "open_issues": open_count,
            "allow_merge_commit": True, "allow_squash_merge": True, "allow_rebase_merge": True,
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True,
                            "pull": True},
        }

    def _label_json(self, key: RepoKey, name: str) -> dict[str, Any]:
        label = self.labels[key][name.lower()]
        _, api, _ = self._repo_base(key)
        return {"id": label["id"], "node_id": label["node_id"],
                "url": f"{api}/labels/{label['name']}", "name": label["name"],
                "description": label["description"], "color": label["color"],
                "default": label["default"]}

    def _milestone_json(self, key: RepoKey, number: int | None) -> dict[str, Any] | None:
        if number is None:
            return None
        milestone = dict(self.milestones[key][number])
        _, api, html = self._repo_base(key)
        milestone.update({"url": f"{api}/milestones/{number}",
                          "html_url": f"{html}/milestone/{number}",
                          "labels_url": f"{api}/milestones/{number}/labels",
                          "creator": self._user_json(self.login)})
        return milestone

    def _issue_json(self, key: IssueKey) -> dict[str, Any]:
        rec = self.issues[key]
        repo_key = (key[0], key[1])
        _, api, html = self._repo_base(repo_key)
        number = rec["number"]
        kind = "pull" if rec["is_pull"] else "issues"
        url = f"{api}/issues/{number}"
        assignees = [self._user_json(login) for login in rec["assignees"]]
        out: dict[str, Any] = {
            "url": url, "repository_url": api, "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": f"{html}/{kind}/{number}", "id": rec["id"], "node_id": rec["node_id"],
            "number": number, "title": rec["title"], "user": self._user_json(rec["user"]),
            "labels": [self._label_json(repo_key, name) for name in rec["labels"]],
            "state": rec["state"], "locked": rec["locked"],
            "assignee": assignees[0] if assignees else None, "assignees": assignees,
            "milestone": self._milestone_json(repo_key, rec["milestone"]),
            "comments": rec["comments"], "created_at": rec["created_at"],
            "updated_at": rec["updated_at"], "closed_at": rec["closed_at"],
            "author_association": "OWNER", "active_lock_reason": None, "body": rec["body"],
            "closed_by": self._user_json(rec["closed_by"]), "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None, "state_reason": rec["state_reason"],
        }
        if rec["is_pull"]:
            pull = self.pulls[key]
            out["pull_request"] = {"url": f"{api}/pulls/{number}",
                                   "html_url": f"{html}/pull/{number}",
                                   "diff_url": f"{html}/pull/{number}.diff",
                                   "patch_url": f"{html}/pull/{number}.patch",
                                   "merged_at": pull["merged_at"]}
            out["draft"] = pull["draft"]
        return out

    def _pull_json(self, key: IssueKey) -> dict[str, Any]:
        issue = self._issue_json(key)
        pull = self.pulls[key]
        repo_key = (key[0], key[1])
        repo = self.repos[repo_key]
        _, api, html = self._repo_base(repo_key)
        number = key[2]
        url = f"{api}/pulls/{number}"

        def part(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo['owner']}:{ref}", "ref": ref, "sha": sha,
                    "user": self._user_json(repo["owner"]), "repo": self._repo_json(repo_key)}

        mergeable = pull["mergeable"] if not pull["merged"] else None
        state = "clean" if pull["mergeable"] else "dirty"
        return {
            "url": url, "id": pull["id"], "node_id": issue["node_id"],
            "html_url": f"{html}/pull/{number}", "diff_url": f"{html}/pull/{number}.diff",
            "patch_url": f"{html}/pull/{number}.patch", "issue_url": f"{api}/issues/{number}",
            "commits_url": f"{url}/commits", "review_comments_url": f"{url}/comments",
            "comments_url": f"{api}/issues/{number}/comments",
            "statuses_url": f"{api}/statuses/{pull['head_sha']}", "number": number,
            "state": issue["state"], "locked": issue["locked"], "title": issue["title"],
            "user": issue["user"], "body": issue["body"], "labels": issue["labels"],
            "milestone": issue["milestone"], "active_lock_reason": None,
            "created_at": issue["created_at"], "updated_at": issue["updated_at"],
            "closed_at": issue["closed_at"], "merged_at": pull["merged_at"],
            "merge_commit_sha": pull["merge_commit_sha"], "assignee": issue["assignee"],
            "assignees": issue["assignees"], "requested_reviewers": [], "requested_teams": [],
            "head": part(pull["head"], pull["head_sha"]),
            "base": part(pull["base"], pull["base_sha"]),
            "_links": {"self": {"href": url}, "html": {"href": f"{html}/pull/{number}"},
                       "issue": {"href": f"{api}/issues/{number}"},
                       "comments": {"href": f"{api}/issues/{number}/comments"}},
            "author_association": "OWNER", "auto_merge": None, "draft": pull["draft"],
            "merged": pull["merged"], "mergeable": mergeable, "rebaseable": mergeable,
            "mergeable_state": "unknown" if pull["merged"] else state,
            "merged_by": self._user_json(pull["merged_by"]), "comments": issue["comments"],
            "review_comments": 0, "maintainer_can_modify": pull["maintainer_can_modify"],
            "commits": 1, "additions": 10, "deletions": 2, "changed_files": 1,
        }

    def _comment_json(self, comment_id: int) -> dict[str, Any]:
        rec = self.comments[comment_id]
        repo_key = (rec["issue"][0], rec["issue"][1])
        _, api, html = self._repo_base(repo_key)
        number = rec["issue"][2]
        kind = "pull" if self.issues[rec["issue"]]["is_pull"] else "issues"
        return {"id": rec["id"], "node_id": rec["node_id"],
                "url": f"{api}/issues/comments/{rec['id']}",
                "html_url": f"{html}/{kind}/{number}#issuecomment-{rec['id']}",
                "body": rec["body"], "user": self._user_json(rec["user"]),
                "created_at": rec["created_at"], "updated_at": rec["updated_at"],
                "issue_url": f"{api}/issues/{number}", "author_association": "OWNER",
                "performed_via_github_app": None}

    def _content_json(self, key: RepoKey, branch: str, path: str) -> dict[str, Any]:
        data = self.files[(*key, branch, path)]
        _, api, html = self._repo_base(key)
        sha = blob_sha(data)
        full = f"{self.repos[key]['owner']}/{self.repos[key]['name']}"
        raw_host = ("https://raw.githubusercontent.com" if self.host == "api.github.com"
                    else f"{self.html_root}/raw")
        url = f"{api}/contents/{path}?ref={branch}"
        return {"type": "file", "encoding": "base64", "size": len(data),
                "name": path.rsplit("/", 1)[-1], "path": path, "content": _wrapped_b64(data),
                "sha": sha, "url": url, "git_url": f"{api}/git/blobs/{sha}",
                "html_url": f"{html}/blob/{branch}/{path}",
                "download_url": f"{raw_host}/{full}/{branch}/{path}",
                "_links": {"self": url, "git": f"{api}/git/blobs/{sha}",
                           "html": f"{html}/blob/{branch}/{path}"}}

    def _dir_json(self, key: RepoKey, branch: str, path: str) -> list[dict[str, Any]]:
        _, api, html = self._repo_base(key)
        prefix = f"{path}/" if path else ""
        entries: dict[str, dict[str, Any]] = {}
        for (o, r, b, file_path), _data in sorted(self.files.items()):
            if (o, r, b) != (*key, branch) or not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):]
            name = rest.split("/", 1)[0]
            if "/" in rest:
                sub = prefix + name
                url = f"{api}/contents/{sub}?ref={branch}"
                entries.setdefault(name, {
                    "type": "dir", "size": 0, "name": name, "path": sub,
                    "sha": hashlib.sha1(f"tree {sub}".encode()).hexdigest(), "url": url,
                    "git_url": None, "html_url": f"{html}/tree/{branch}/{sub}",
                    "download_url": None, "_links": {"self": url, "git": None,
                                                     "html": f"{html}/tree/{branch}/{sub}"}})
            else:
                entry = self._content_json(key, branch, file_path)
                entry.pop("content")
                entry.pop("encoding")
                entries[name] = entry
        return list(entries.values())

    def _commit_json(self, key: RepoKey, sha: str, parent: str, message: str,
                     committer: dict[str, Any] | None, author: dict[str, Any] | None
                     ) -> dict[str, Any]:
        _, api, html = self._repo_base(key)
        user = self.users[self.login.lower()]
        now = _now()
        who = {"name": user["name"], "email": user["email"], "date": now}
        if isinstance(committer, dict):
            who = {"name": committer.get("name", who["name"]),
                   "email": committer.get("email", who["email"]),
                   "date": committer.get("date", now)}
        by = who
        if isinstance(author, dict):
            by = {"name": author.get("name", who["name"]),
                  "email": author.get("email", who["email"]), "date": author.get("date", now)}
        tree = hashlib.sha1(f"tree {sha}".encode()).hexdigest()
        return {"sha": sha, "node_id": "C_kwDO" + sha[:20], "url": f"{api}/git/commits/{sha}",
                "html_url": f"{html}/commit/{sha}", "author": by, "committer": who,
                "message": message, "tree": {"url": f"{api}/git/trees/{tree}", "sha": tree},
                "parents": [{"url": f"{api}/git/commits/{parent}",
                             "html_url": f"{html}/commit/{parent}", "sha": parent}],
                "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                 "payload": None, "verified_at": None}}

    # ----------------------------------------------------------------- REST handlers
    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return _not_found()

    async def get_user(self, request: Request) -> Response:
        _, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            user = self._user_json(self.login) or {}
            stored = self.users[self.login.lower()]
            user.update({"name": stored["name"], "email": stored["email"], "company": None,
                         "blog": "", "location": None, "bio": None, "public_repos": 2,
                         "followers": 20, "following": 0, "created_at": "2008-01-14T04:33:35Z",
                         "updated_at": "2008-01-14T04:33:35Z"})
        return JSONResponse(user)

    async def get_repo(self, request: Request) -> Response:
        _, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            key = self._repo_key(request)
            if key is None:
                return _not_found()
            return JSONResponse(self._repo_json(key))

    def _validate_issue_fields(self, key: RepoKey, fields: dict[str, Any],
                               creating: bool) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if creating and fields.get("title") in (None, ""):
            errors.append({"resource": "Issue", "code": "missing_field", "field": "title"})
        if "title" in fields and not isinstance(fields["title"], str | int):
            errors.append({"resource": "Issue", "code": "invalid", "field": "title"})
        if "body" in fields and not isinstance(fields["body"], str | None):
            errors.append({"resource": "Issue", "code": "invalid", "field": "body"})
        if "state" in fields and fields["state"] not in {"open", "closed"}:
            errors.append({"resource": "Issue", "code": "invalid", "field": "state"})
        if "state_reason" in fields and fields["state_reason"] not in STATE_REASONS:
            errors.append({"resource": "Issue", "code": "invalid", "field": "state_reason"})
        if "labels" in fields:
            labels = fields["labels"]
            if not isinstance(labels, list) or not all(
                    isinstance(x, str) or (isinstance(x, dict) and isinstance(x.get("name"), str))
                    for x in labels):
                errors.append({"resource": "Issue", "code": "invalid", "field": "labels"})
        assignees = list(fields.get("assignees") or [])
        if "assignees" in fields and not isinstance(fields["assignees"], list | None):
            errors.append({"resource": "Issue", "code": "invalid", "field": "assignees"})
            assignees = []
        if isinstance(fields.get("assignee"), str):
            assignees.append(fields["assignee"])
        for login in assignees:
            if not isinstance(login, str) or login.lower() not in self.users:
                errors.append({"resource": "Issue", "code": "invalid", "field": "assignees",
                               "value": login})
        milestone = fields.get("milestone")
        if milestone not in (None, ""):
            if not isinstance(milestone, int) or milestone not in self.milestones[key]:
                errors.append({"resource": "Issue", "code": "invalid", "field": "milestone",
                               "value": milestone})
        return errors

    def _apply_issue(self, key: IssueKey, fields: dict[str, Any]) -> None:
        rec = self.issues[key]
        repo_key = (key[0], key[1])
        if "title" in fields:
            rec["title"] = str(fields["title"])
        if "body" in fields:
            rec["body"] = fields["body"]
        if "labels" in fields:
            names = [x if isinstance(x, str) else x["name"] for x in fields["labels"]]
            rec["labels"] = [self._ensure_label(repo_key, n)["name"] for n in dict.fromkeys(names)]
        if "assignees" in fields:
            rec["assignees"] = [self.users[x.lower()]["login"]
                                for x in dict.fromkeys(fields["assignees"] or [])]
        elif "assignee" in fields:
            assignee = fields["assignee"]
            rec["assignees"] = [self.users[assignee.lower()]["login"]] if assignee else []
        if "milestone" in fields:
            rec["milestone"] = fields["milestone"] or None
        if "state_reason" in fields and fields.get("state", rec["state"]) == rec["state"]:
            rec["state_reason"] = fields["state_reason"]
        if "state" in fields and fields["state"] != rec["state"]:
            self._set_state(rec, fields["state"], fields.get("state_reason"))
        rec["updated_at"] = _now()

    def _set_state(self, rec: dict[str, Any], state: str, reason: str | None) -> None:
        rec["state"] = state
        if state == "closed":
            rec["closed_at"] = _now()
            rec["closed_by"] = self.login
            rec["state_reason"] = reason or "completed"
        else:
            rec["closed_at"] = None
            rec["closed_by"] = None
            rec["state_reason"] = reason or "reopened"

    async def create_issue(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        with self._lock:
            key = self._repo_key(request)
            if key is None:
                return _not_found()
            if errors := self._validate_issue_fields(key, fields, creating=True):
                return _invalid(errors, "https://docs.github.com/rest/issues/issues#create-an-issue")
            repo = self.repos[key]
            number = self.seed_issue(repo["owner"], repo["name"], title=str(fields["title"]),
                                     body=fields.get("body"), labels=[], assignees=[])
            self._apply_issue((*key, number), {k: v for k, v in fields.items()
                                               if k not in {"title", "state"}})
            out = self._issue_json((*key, number))
        return JSONResponse(out, status_code=201, headers={"Location": out["url"]})

    async def issue(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            repo_key = self._repo_key(request)
            key = (*repo_key, request.path_params["number"]) if repo_key else None
            if key is None or key not in self.issues:
                return _not_found()
            if request.method == "GET":
                return JSONResponse(self._issue_json(key))
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        with self._lock:
            if errors := self._validate_issue_fields(repo_key, fields, creating=False):
                return _invalid(errors, "https://docs.github.com/rest/issues/issues#update-an-issue")
            if "title" in fields and fields["title"] in (None, ""):
                return _invalid([{"resource": "Issue", "code": "missing_field",
                                  "field": "title"}])
            self._apply_issue(key, fields)
            return JSONResponse(self._issue_json(key))

    def _new_comment(self, key: IssueKey, text: str) -> int:
        comment_id = next(self._comment_ids)
        now = _now()
        node_id = _node_id("IC_kwDO", comment_id)
        self.comments[comment_id] = {"id": comment_id, "node_id": node_id, "issue": key,
                                     "body": text, "user": self.login, "created_at": now,
                                     "updated_at": now}
        self._nodes[node_id] = ("comment", comment_id)
        self.issues[key]["comments"] += 1
        self.issues[key]["updated_at"] = now
        return comment_id

    async def issue_comments(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            repo_key = self._repo_key(request)
            key = (*repo_key, request.path_params["number"]) if repo_key else None
            if key is None or key not in self.issues:
                return _not_found()
            if request.method == "GET":
                return JSONResponse([self._comment_json(c) for c, rec in self.comments.items()
                                     if rec["issue"] == key])
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        if not isinstance(fields.get("body"), str) or not fields["body"]:
            return _invalid([{"resource": "IssueComment", "code": "missing_field",
                              "field": "body"}])
        with self._lock:
            out = self._comment_json(self._new_comment(key, fields["body"]))
        return JSONResponse(out, status_code=201, headers={"Location": out["url"]})

    async def comment(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        comment_id = request.path_params["comment_id"]
        with self._lock:
            repo_key = self._repo_key(request)
            rec = self.comments.get(comment_id)
            if repo_key is None or rec is None or rec["issue"][:2] != repo_key:
                return _not_found()
            if request.method == "GET":
                return JSONResponse(self._comment_json(comment_id))
            if request.method == "DELETE":
                del self.comments[comment_id]
                self._nodes.pop(rec["node_id"], None)
                self.issues[rec["issue"]]["comments"] -= 1
                return Response(status_code=204)
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        if not isinstance(fields.get("body"), str) or not fields["body"]:
            return _invalid([{"resource": "IssueComment", "code": "missing_field",
                              "field": "body"}])
        with self._lock:
            rec["body"] = fields["body"]
            rec["updated_at"] = _now()
            return JSONResponse(self._comment_json(comment_id))

    async def pull(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            repo_key = self._repo_key(request)
            key = (*repo_key, request.path_params["number"]) if repo_key else None
            if key is None or key not in self.pulls:
                return _not_found()
            if request.method == "GET":
                return JSONResponse(self._pull_json(key))
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        with self._lock:
            pull = self.pulls[key]
            errors = []
            if "state" in fields and fields["state"] not in {"open", "closed"}:
                errors.append({"resource": "PullRequest", "code": "invalid", "field": "state"})
            if "base" in fields and fields["base"] not in self.branches[repo_key]:
                errors.append({"resource": "PullRequest", "code": "invalid", "field": "base"})
            if "title" in fields and not isinstance(fields["title"], str):
                errors.append({"resource": "PullRequest", "code": "invalid", "field": "title"})
            if pull["merged"] and fields.get("state") == "open":
                errors.append({"resource": "PullRequest", "code": "custom", "field": "state",
                               "message": "state cannot be changed. The pull request cannot be "
                                          "reopened because it has been merged."})
            if errors:
                return _invalid(errors, "https://docs.github.com/rest/pulls/pulls"
                                        "#update-a-pull-request")
            self._apply_issue(key, {k: fields[k] for k in ("title", "body", "state")
                                    if k in fields})
            if "base" in fields:
                pull["base"] = fields["base"]
                pull["base_sha"] = self.branches[repo_key][fields["base"]]
            if "maintainer_can_modify" in fields:
                pull["maintainer_can_modify"] = bool(fields["maintainer_can_modify"])
            return JSONResponse(self._pull_json(key))

    async def merge(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        docs = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"
        with self._lock:
            repo_key = self._repo_key(request)
            key = (*repo_key, request.path_params["number"]) if repo_key else None
            if key is None or key not in self.pulls:
                return _not_found()
            pull = self.pulls[key]
            if request.method == "GET":
                if pull["merged"]:
                    return Response(status_code=204)
                return _error(404, "Not Found",
                              "https://docs.github.com/rest/pulls/pulls"
                              "#check-if-a-pull-request-has-been-merged")
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        with self._lock:
            issue = self.issues[key]
            method = fields.get("merge_method", "merge")
            if method not in MERGE_METHODS:
                return _invalid([{"resource": "PullRequest", "code": "invalid",
                                  "field": "merge_method"}], docs)
            if pull["merged"] or issue["state"] != "open" or not pull["mergeable"] \
                    or pull["draft"]:
                return _error(405, "Pull Request is not mergeable", docs)
            if "sha" in fields and fields["sha"] != pull["head_sha"]:
                return _error(409, "Head branch was modified. Review and try the merge again.",
                              docs)
            repo = self.repos[repo_key]
            title = fields.get("commit_title") or (
                f"Merge pull request #{key[2]} from {repo['owner']}/{pull['head']}")
            message = title + ("\n\n" + fields["commit_message"]
                               if fields.get("commit_message") else "")
            sha = self._commit_sha(message)
            pull.update({"merged": True, "merged_at": _now(), "merged_by": self.login,
                         "merge_commit_sha": sha, "merge_method": method})
            self._set_state(issue, "closed", "completed")
            self.branches[repo_key][pull["base"]] = sha
            self.commits.append({"sha": sha, "message": message, "branch": pull["base"],
                                 "repo": repo_key, "pull": key[2]})
        return JSONResponse({"sha": sha, "merged": True,
                             "message": "Pull Request successfully merged"})

    # ----------------------------------------------------------------- issue labels
    def _issue_key(self, request: Request) -> IssueKey | None:
        repo_key = self._repo_key(request)
        key = (*repo_key, request.path_params["number"]) if repo_key else None
        return key if key in self.issues else None

    @staticmethod
    def _label_names(body: bytes, *, adding: bool) -> list[str] | JSONResponse:
        """`{"labels": [...]}`, a bare array, or (set only) a single string, as documented;
        each label a name or `{"name": ...}`."""
        docs = ("https://docs.github.com/rest/issues/labels#"
                + ("add-labels-to-an-issue" if adding else "set-labels-for-an-issue"))
        if not body.strip():
            return [] if not adding else _invalid(
                [{"resource": "Label", "code": "missing_field", "field": "labels"}], docs)
        try:
            parsed = json.loads(body)
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if isinstance(parsed, dict):
            parsed = parsed.get("labels")
        elif isinstance(parsed, str) and not adding:
            parsed = [parsed]
        if not isinstance(parsed, list) or (adding and not parsed):
            return _invalid([{"resource": "Label", "code": "invalid", "field": "labels"}], docs)
        names = []
        for item in parsed:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                return _invalid([{"resource": "Label", "code": "invalid", "field": "name",
                                  "value": name}], docs)
            names.append(name)
        return names

    async def issue_labels(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            key = self._issue_key(request)
            if key is None:
                return _not_found()
            repo_key = (key[0], key[1])
            rec = self.issues[key]
            if request.method in ("POST", "PUT"):
                names = self._label_names(body, adding=request.method == "POST")
                if isinstance(names, JSONResponse):
                    return names
                current = rec["labels"] if request.method == "POST" else []
                known = {n.lower() for n in current}
                merged = list(current)
                for name in names:
                    if name.lower() not in known:
                        known.add(name.lower())
                        merged.append(self._ensure_label(repo_key, name)["name"])
                rec["labels"] = merged
                rec["updated_at"] = _now()
            elif request.method == "DELETE":
                rec["labels"] = []
                rec["updated_at"] = _now()
                return Response(status_code=204)
            return JSONResponse([self._label_json(repo_key, n) for n in rec["labels"]])

    async def issue_label(self, request: Request) -> Response:
        _, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            key = self._issue_key(request)
            name = request.path_params["name"]
            if key is None:
                return _not_found()
            rec = self.issues[key]
            if name.lower() not in {n.lower() for n in rec["labels"]}:
                return _error(404, "Label does not exist",
                              "https://docs.github.com/rest/issues/labels"
                              "#remove-a-label-from-an-issue")
            rec["labels"] = [n for n in rec["labels"] if n.lower() != name.lower()]
            rec["updated_at"] = _now()
            return JSONResponse([self._label_json((key[0], key[1]), n) for n in rec["labels"]])

    # ----------------------------------------------------------------- pull request reviews
    def _review_json(self, review_id: int) -> dict[str, Any]:
        rec = self.pull_reviews[review_id]
        key = rec["pull"]
        _, api, html = self._repo_base((key[0], key[1]))
        html_url = f"{html}/pull/{key[2]}#pullrequestreview-{review_id}"
        out = {"id": review_id, "node_id": rec["node_id"], "user": self._user_json(rec["user"]),
               "body": rec["body"], "state": rec["state"], "html_url": html_url,
               "pull_request_url": f"{api}/pulls/{key[2]}",
               "_links": {"html": {"href": html_url},
                          "pull_request": {"href": f"{api}/pulls/{key[2]}"}},
               "commit_id": rec["commit_id"], "author_association": "CONTRIBUTOR"}
        if rec["submitted_at"] is not None:
            out["submitted_at"] = rec["submitted_at"]
        return out

    async def reviews(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        docs = "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request"
        with self._lock:
            key = self._issue_key(request)
            if key is None or key not in self.pulls:
                return _not_found()
            if request.method == "GET":
                return JSONResponse([self._review_json(i) for i, r in self.pull_reviews.items()
                                     if r["pull"] == key])
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields

        def unprocessable(message: str) -> JSONResponse:
            return JSONResponse({"message": "Unprocessable Entity", "errors": [message],
                                 "documentation_url": docs}, status_code=422)

        event = fields.get("event")
        text = fields.get("body")
        comments = fields.get("comments") or []
        if event not in (None, "APPROVE", "REQUEST_CHANGES", "COMMENT"):
            return unprocessable(f"Event {event} is not one of APPROVE, REQUEST_CHANGES, "
                                 "COMMENT")
        if not isinstance(text, str | None) or not isinstance(comments, list) or not all(
                isinstance(c, dict) and isinstance(c.get("path"), str)
                and isinstance(c.get("body"), str) for c in comments):
            return unprocessable("Invalid request.")
        if event in ("REQUEST_CHANGES", "COMMENT") and not text:
            return unprocessable(f"Review body is required when using {event}")
        with self._lock:
            pull = self.pulls[key]
            author = self.issues[key]["user"]
            if event in ("APPROVE", "REQUEST_CHANGES") and author.lower() == self.login.lower():
                verb = "approve" if event == "APPROVE" else "request changes on"
                return unprocessable(f"Review Can not {verb} your own pull request")
            if event is None and any(r["pull"] == key and r["state"] == "PENDING"
                                     and r["user"] == self.login
                                     for r in self.pull_reviews.values()):
                return unprocessable("User can only have one pending review per pull request")
            commit = fields.get("commit_id") or pull["head_sha"]
            if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}", commit):
                return unprocessable("Commit SHA is not valid")
            review_id = next(self._review_ids)
            state = {None: "PENDING", "APPROVE": "APPROVED",
                     "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}[event]
            node_id = _node_id("PRR_kwDO", review_id)
            self.pull_reviews[review_id] = {
                "id": review_id, "node_id": node_id, "pull": key, "user": self.login,
                "body": text or "", "state": state, "commit_id": commit,
                "submitted_at": None if state == "PENDING" else _now(),
                "comments": copy.deepcopy(comments)}
            self._nodes[node_id] = ("review", review_id)
            return JSONResponse(self._review_json(review_id))

    async def review(self, request: Request) -> Response:
        _, denied = await self._begin(request)
        if denied:
            return denied
        with self._lock:
            key = self._issue_key(request)
            rec = self.pull_reviews.get(request.path_params["review_id"])
            if key is None or rec is None or rec["pull"] != key:
                return _not_found()
            return JSONResponse(self._review_json(rec["id"]))

    async def contents(self, request: Request) -> Response:
        body, denied = await self._begin(request)
        if denied:
            return denied
        path = request.path_params.get("path", "").strip("/")
        docs = "https://docs.github.com/rest/repos/contents"
        with self._lock:
            key = self._repo_key(request)
            if key is None:
                return _not_found()
            if request.method == "GET":
                ref = request.query_params.get("ref") or self.repos[key]["default_branch"]
                if ref not in self.branches[key]:
                    return _error(404, f"No commit found for the ref {ref}", docs)
                if (*key, ref, path) in self.files:
                    return JSONResponse(self._content_json(key, ref, path))
                listing = self._dir_json(key, ref, path)
                if listing or not path:
                    return JSONResponse(listing)
                return _error(404, "Not Found", docs)
        fields = self._json(body)
        if isinstance(fields, JSONResponse):
            return fields
        with self._lock:
            if request.method == "PUT":
                return self._put_file(key, path, fields)
            return self._delete_file(key, path, fields)

    def _put_file(self, key: RepoKey, path: str, fields: dict[str, Any]) -> Response:
        docs = "https://docs.github.com/rest/repos/contents#create-or-update-file-contents"
        for name in ("message", "content"):
            if not isinstance(fields.get(name), str):
                return _error(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.', docs)
        if not path:
            return _invalid([{"resource": "Commit", "field": "path", "code": "invalid"}], docs)
        try:
            data = base64.b64decode(fields["content"], validate=True)
        except (binascii.Error, ValueError):
            return _error(422, "content is not valid Base64", docs)
        branch = fields.get("branch") or self.repos[key]["default_branch"]
        if branch not in self.branches[key]:
            return _error(404, f"Branch {branch} not found", docs)
        current = self.files.get((*key, branch, path))
        if current is not None:
            if not fields.get("sha"):
                return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', docs)
            if fields["sha"] != blob_sha(current):
                return _error(409, f"is at {blob_sha(current)} but expected {fields['sha']}",
                              docs)
        parent = self.branches[key][branch]
        sha = self._commit_sha(fields["message"])
        self.branches[key][branch] = sha
        self.files[(*key, branch, path)] = data
        commit = self._commit_json(key, sha, parent, fields["message"], fields.get("committer"),
                                   fields.get("author"))
        self.commits.append({"sha": sha, "message": fields["message"], "branch": branch,
                             "repo": key, "path": path,
                             "action": "update" if current is not None else "create"})
        content = self._content_json(key, branch, path)
        content.pop("encoding")
        content.pop("content")
        return JSONResponse({"content": content, "commit": commit},
                            status_code=200 if current is not None else 201)

    def _delete_file(self, key: RepoKey, path: str, fields: dict[str, Any]) -> Response:
        docs = "https://docs.github.com/rest/repos/contents#delete-a-file"
        for name in ("message", "sha"):
            if not isinstance(fields.get(name), str):
                return _error(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.', docs)
        branch = fields.get("branch") or self.repos[key]["default_branch"]
        if branch not in self.branches[key]:
            return _error(404, f"Branch {branch} not found", docs)
        current = self.files.get((*key, branch, path))
        if current is None:
            return _error(404, "Not Found", docs)
        if fields["sha"] != blob_sha(current):
            return _error(409, f"{path} does not match {fields['sha']}", docs)
        parent = self.branches[key][branch]
        sha = self._commit_sha(fields["message"])
        self.branches[key][branch] = sha
        del self.files[(*key, branch, path)]
        self.commits.append({"sha": sha, "message": fields["message"], "branch": branch,
                             "repo": key, "path": path, "action": "delete"})
        commit = self._commit_json(key, sha, parent, fields["message"], fields.get("committer"),
                                   fields.get("author"))
        return JSONResponse({"content": None, "commit": commit})

    # ----------------------------------------------------------------- GraphQL
    async def graphql(self, request: Request) -> Response:
        body = await self._record(request)
        denied = self._auth_error(request, "https://docs.github.com/graphql")
        if denied is not None:
            if denied.status_code == 401 and not request.headers.get("authorization"):
                return JSONResponse(
                    {"message": "This endpoint requires you to be authenticated.",
                     "documentation_url": "https://docs.github.com/graphql/guides/"
                                          "forming-calls-with-graphql#authenticating-with-graphql"},
                    status_code=401)
            return denied
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "Problems parsing JSON", "https://docs.github.com/graphql")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return JSONResponse({"errors": [
                {"message": "A query attribute must be specified and must be a string."}]})
        try:
            document = graphql.parse(payload["query"])
        except graphql.GraphQLError as exc:
            return JSONResponse({"errors": [{"message": f"Parse error: {exc.message}",
                                             "locations": _locations(exc)}]})
        if errors := graphql.validate(self.schema, document):
            return JSONResponse({"errors": [_validation_error(e) for e in errors]})
        with self._lock:
            result = graphql.execute(self.schema, document, root_value=_Root(self),
                                     variable_values=payload.get("variables") or None,
                                     operation_name=payload.get("operationName"))
        assert not hasattr(result, "__await__")
        out: dict[str, Any] = {"data": result.data}  # type: ignore[union-attr]
        if result.errors:  # type: ignore[union-attr]
            out["errors"] = [_gql_error(e) for e in result.errors]  # type: ignore[union-attr]
            if result.data is None:  # type: ignore[union-attr]
                del out["data"]
        return JSONResponse(out)

    def _gql_user(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        user = self.users[login.lower()]
        return {"__typename": "User", "id": user["node_id"], "databaseId": user["id"],
                "login": user["login"], "name": user["name"],
                "avatarUrl": f"https://avatars.githubusercontent.com/u/{user['id']}?v=4",
                "url": f"{self.html_root}/{user['login']}"}

    def _gql_repo(self, key: RepoKey) -> dict[str, Any]:
        repo = self.repos[key]
        full, _, html = self._repo_base(key)

        def issue(_info: Any, number: int) -> dict[str, Any]:
            found = self.issues.get((*key, number))
            if found is None or found["is_pull"]:
                raise _GQLError(f"Could not resolve to an Issue with the number of {number}.",
                                "NOT_FOUND")
            return self._gql_issue((*key, number))

        def pull_request(_info: Any, number: int) -> dict[str, Any]:
            if (*key, number) not in self.pulls:
                raise _GQLError(
                    f"Could not resolve to a PullRequest with the number of {number}.",
                    "NOT_FOUND")
            return self._gql_pull((*key, number))

        def label(_info: Any, name: str) -> dict[str, Any] | None:
            return self._gql_label(key, name) if name.lower() in self.labels[key] else None

        return {"__typename": "Repository", "id": repo["node_id"], "databaseId": repo["id"],
                "name": repo["name"], "nameWithOwner": full, "url": html,
                "isPrivate": repo["private"], "owner": self._gql_user(repo["owner"]),
                "issue": issue, "pullRequest": pull_request, "label": label}

    def _gql_label(self, key: RepoKey, name: str) -> dict[str, Any]:
        label = self.labels[key][name.lower()]
        _, _, html = self._repo_base(key)
        return {"__typename": "Label", "id": label["node_id"], "name": label["name"],
                "color": label["color"], "description": label["description"],
                "isDefault": label["default"], "url": f"{html}/labels/{label['name']}"}

    def _gql_comment(self, comment_id: int) -> dict[str, Any]:
        rec = self.comments[comment_id]
        return {"__typename": "IssueComment", "id": rec["node_id"], "databaseId": rec["id"],
                "body": rec["body"], "author": self._gql_user(rec["user"]),
                "createdAt": rec["created_at"], "updatedAt": rec["updated_at"],
                "url": self._comment_json(comment_id)["html_url"],
                "issue": lambda _info: self._gql_issue(rec["issue"])}

    def _gql_common(self, key: IssueKey) -> dict[str, Any]:
        rec = self.issues[key]
        repo_key = (key[0], key[1])
        labels = [self._gql_label(repo_key, n) for n in rec["labels"]]
        comments = [c for c, r in self.comments.items() if r["issue"] == key]
        return {
            "databaseId": rec["id"], "id": rec["node_id"], "number": rec["number"],
            "title": rec["title"], "body": rec["body"] or "", "closed": rec["state"] == "closed",
            "createdAt": rec["created_at"], "updatedAt": rec["updated_at"],
            "author": self._gql_user(rec["user"]), "repository": self._gql_repo(repo_key),
            "labels": _connection("labels", labels),
            "comments": _connection("comments", comments, self._gql_comment),
        }

    def _gql_issue(self, key: IssueKey) -> dict[str, Any]:
        rec = self.issues[key]
        repo_key = (key[0], key[1])
        out = self._gql_common(key)
        milestone = None
        if rec["milestone"] is not None:
            m = self.milestones[repo_key][rec["milestone"]]
            milestone = {"id": m["node_id"], "number": m["number"], "title": m["title"],
                         "state": m["state"].upper(),
                         "url": f"{self._repo_base(repo_key)[2]}/milestone/{m['number']}"}
        out.update({
            "__typename": "Issue", "state": rec["state"].upper(),
            "stateReason": rec["state_reason"].upper() if rec["state_reason"] else None,
            "closedAt": rec["closed_at"], "locked": rec["locked"], "milestone": milestone,
            "url": f"{self._repo_base(repo_key)[2]}/issues/{rec['number']}",
            "assignees": _connection("assignees", [self._gql_user(a) for a in rec["assignees"]]),
        })
        return out

    def _gql_pull(self, key: IssueKey) -> dict[str, Any]:
        rec = self.issues[key]
        pull = self.pulls[key]
        out = self._gql_common(key)
        state = "MERGED" if pull["merged"] else rec["state"].upper()
        out.update({"__typename": "PullRequest", "state": state, "merged": pull["merged"],
                    "mergedAt": pull["merged_at"], "headRefName": pull["head"],
                    "baseRefName": pull["base"], "headRefOid": pull["head_sha"],
                    "url": f"{self._repo_base((key[0], key[1]))[2]}/pull/{rec['number']}"})
        return out

    def _gql_node(self, node_id: str) -> dict[str, Any] | None:
        kind, ref = self._nodes.get(node_id, ("", None))
        if kind == "issue":
            return self._gql_issue(ref)
        if kind == "pull":
            return self._gql_pull(ref)
        if kind == "comment":
            return self._gql_comment(ref)
        if kind == "repo":
            return self._gql_repo(ref)
        if kind == "user":
            return self._gql_user(ref)
        if kind == "label":
            return self._gql_label((ref[0], ref[1]), ref[2])
        return None

    def _issue_by_node(self, node_id: str, allow_pull: bool = False) -> IssueKey:
        kind, ref = self._nodes.get(node_id, ("", None))
        if kind == "issue" or (allow_pull and kind == "pull"):
            return ref
        raise _GQLError(f"Could not resolve to a node with the global id of '{node_id}'",
                        "NOT_FOUND")


class _Root:
    """Root value for graphql-core: query and mutation fields resolve to these methods."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake

    def repository(self, _info: Any, owner: str, name: str, **_: Any) -> dict[str, Any]:
        key = (owner.lower(), name.lower())
        if key not in self.fake.repos:
            raise _GQLError(f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                            "NOT_FOUND")
        return self.fake._gql_repo(key)

    def node(self, _info: Any, id: str) -> dict[str, Any] | None:
        found = self.fake._gql_node(id)
        if found is None:
            raise _GQLError(f"Could not resolve to a node with the global id of '{id}'",
                            "NOT_FOUND")
        return found

    def viewer(self, _info: Any) -> dict[str, Any] | None:
        return self.fake._gql_user(self.fake.login)

    def updateIssue(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        key = fake._issue_by_node(input["id"])
        repo_key = (key[0], key[1])
        fields: dict[str, Any] = {}
        for name in ("title", "body"):
            if input.get(name) is not None:
                fields[name] = input[name]
        if input.get("state"):
            fields["state"] = input["state"].lower()
        if input.get("labelIds") is not None:
            names = []
            for label_id in input["labelIds"]:
                kind, ref = fake._nodes.get(label_id, ("", None))
                if kind != "label" or ref[:2] != repo_key:
                    raise _GQLError(
                        f"Could not resolve to a node with the global id of '{label_id}'",
                        "NOT_FOUND")
                names.append(fake.labels[repo_key][ref[2]]["name"])
            fields["labels"] = names
        if input.get("assigneeIds") is not None:
            logins = []
            for user_id in input["assigneeIds"]:
                kind, ref = fake._nodes.get(user_id, ("", None))
                if kind != "user":
                    raise _GQLError(
                        f"Could not resolve to a node with the global id of '{user_id}'",
                        "NOT_FOUND")
                logins.append(fake.users[ref]["login"])
            fields["assignees"] = logins
        if "milestoneId" in input:
            if input["milestoneId"] is None:
                fields["milestone"] = None
            else:
                kind, ref = fake._nodes.get(input["milestoneId"], ("", None))
                if kind != "milestone" or ref[:2] != repo_key:
                    raise _GQLError("Could not resolve to a node with the global id of "
                                    f"'{input['milestoneId']}'", "NOT_FOUND")
                fields["milestone"] = ref[2]
        if fields.get("title") == "":
            raise _GQLError("Title can't be blank", "UNPROCESSABLE")
        fake._apply_issue(key, fields)
        return {"clientMutationId": input.get("clientMutationId"),
                "actor": fake._gql_user(fake.login), "issue": fake._gql_issue(key)}

    def addComment(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        key = fake._issue_by_node(input["subjectId"], allow_pull=True)
        if not input["body"].strip():
            raise _GQLError("Body can't be blank", "UNPROCESSABLE")
        comment_id = fake._new_comment(key, input["body"])
        edge = {"cursor": _cursor(fake.issues[key]["comments"]),
                "node": fake._gql_comment(comment_id)}
        subject = fake._gql_pull(key) if key in fake.pulls else fake._gql_issue(key)
        return {"clientMutationId": input.get("clientMutationId"), "commentEdge": edge,
                "subject": subject, "timelineEdge": edge}

    def closeIssue(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        key = fake._issue_by_node(input["issueId"])
        rec = fake.issues[key]
        reason = (input.get("stateReason") or "COMPLETED").lower()
        if rec["state"] != "closed":
            fake._set_state(rec, "closed", reason)
            rec["updated_at"] = _now()
        return {"clientMutationId": input.get("clientMutationId"),
                "actor": fake._gql_user(fake.login), "issue": fake._gql_issue(key)}

    def reopenIssue(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        key = fake._issue_by_node(input["issueId"])
        rec = fake.issues[key]
        if rec["state"] != "open":
            fake._set_state(rec, "open", "reopened")
            rec["updated_at"] = _now()
        return {"clientMutationId": input.get("clientMutationId"),
                "actor": fake._gql_user(fake.login), "issue": fake._gql_issue(key)}


def _cursor(position: int) -> str:
    return base64.b64encode(f"cursor:v2:{position}".encode()).decode()


def _connection(name: str, items: list[Any],
                render: Callable[[Any], Any] | None = None) -> Callable[..., dict[str, Any]]:
    """A lazily-resolved connection; GitHub requires `first` or `last` on every connection."""

    def resolve(_info: Any, first: int | None = None, last: int | None = None,
                after: str | None = None, before: str | None = None) -> dict[str, Any]:
        if first is None and last is None:
            raise _GQLError(f"You must provide a `first` or `last` value to properly paginate "
                            f"the `{name}` connection.", "MISSING_PAGINATION_BOUNDARIES")
        positions = list(range(len(items)))
        if after is not None:
            positions = [p for p in positions if p > _pos(after)]
        if before is not None:
            positions = [p for p in positions if p < _pos(before)]
        window = positions[:first] if first is not None else positions
        window = window[-last:] if last is not None and last > 0 else window
        nodes = [render(items[p]) if render else items[p] for p in window]
        edges = [{"cursor": _cursor(p), "node": n} for p, n in zip(window, nodes, strict=True)]
        return {"nodes": nodes, "edges": edges, "totalCount": len(items),
                "pageInfo": {"hasNextPage": bool(window) and window[-1] < positions[-1],
                             "hasPreviousPage": bool(window) and window[0] > positions[0],
                             "startCursor": edges[0]["cursor"] if edges else None,
                             "endCursor": edges[-1]["cursor"] if edges else None}}

    return resolve


def _pos(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor).decode().rsplit(":", 1)[-1])
    except (ValueError, binascii.Error):
        return -1


def _locations(error: graphql.GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or []]


def _validation_error(error: graphql.GraphQLError) -> dict[str, Any]:
    """Rephrase graphql-core's most common message the way GitHub's (graphql-ruby) words it."""
    found = re.match(r"Cannot query field '(\w+)' on type '(\w+)'", error.message)
    if found:
        field, type_name = found.groups()
        return {"extensions": {"code": "undefinedField", "typeName": type_name,
                               "fieldName": field},
                "locations": _locations(error),
                "message": f"Field '{field}' doesn't exist on type '{type_name}'"}
    return {"locations": _locations(error), "message": error.message}


def _gql_error(error: graphql.GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    original = error.original_error
    if isinstance(original, _GQLError):
        out["type"] = original.type
    if error.path:
        out["path"] = list(error.path)
    out["locations"] = _locations(error)
    out["message"] = error.message
    return out
