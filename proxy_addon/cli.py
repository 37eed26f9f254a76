"""`hitl-proxy`: the command line. Everything is checked before anything listens (exit 2)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import fnmatch
import io
import ipaddress
import json
import os
import secrets
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from connectors_schemas import Connector, ConnectorFileError, load_connectors
from proxy_addon.config import ConfigError, HitlConfig, load_config
from proxy_addon.settings import (
    DB_FILE,
    DEFAULT_HOLD_TIMEOUT,
    TRAFFIC_FILE,
    RunSettings,
    check_store_url,
    store_problem,
)
from review_api.auth import Reviewer

if TYPE_CHECKING:
    import httpx

    from review_api.simulate import Simulation
    from review_api.store import ApprovalStore, AuditRow

__all__ = ["RunSettings", "load_setup", "main"]  # RunSettings lives in settings; kept here too

EXIT_USAGE = 2
TOKEN_FILE = "reviewer-token"
FORBIDDEN_SETS = {
    "stream_large_bodies": "streamed request bodies reach upstream before any review",
}


class UsageError(Exception):
    """A bad flag, file or environment; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    numeric = port_text.isascii() and port_text.isdigit()
    if not sep or not host or not numeric or not 0 < int(port_text) < 65536:
        raise UsageError(f"{what}: expected ADDR:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


def parse_resolve(entries: list[str]) -> dict[str, tuple[str, int]]:
    resolve: dict[str, tuple[str, int]] = {}
    for entry in entries:
        host, sep, target = entry.partition("=")
        if not sep or not host.strip():
            raise UsageError(f"--resolve: expected HOST=ADDR:PORT, got {entry!r}")
        address = parse_address(target, f"--resolve {host}")
        try:
            ipaddress.ip_address(address[0])
        except ValueError:
            if address[0] != "localhost":
                raise UsageError(
                    f"--resolve {host}: {address[0]!r} is not an IP address") from None
        resolve[host.strip().lower()] = address
    return resolve


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text}")
    return value


def _store_flag(text: str) -> str:
    try:
        return check_store_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_data_flags(parser: argparse.ArgumentParser, data_dir: str = "./data",
                    config: str = "YAML config (same as run)") -> None:
    """--config, --data-dir and --store: the same meaning and defaults on every subcommand."""
    parser.add_argument("--config", type=Path, help=config)
    parser.add_argument("--data-dir", type=Path, default=Path(data_dir))
    parser.add_argument("--store", type=_store_flag, metavar="URL",
                        help="where approvals, audit and traffic live: postgresql://... for "
                             "replicas (default: the config's store, else SQLite in --data-dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hitl-proxy", description="Approval gate for AI agents' writes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run the proxy and the review API")
    _add_data_flags(run, config="YAML config (reviewers, policy, connectors)")
    run.add_argument("--listen-host", default="127.0.0.1")
    run.add_argument("--listen-port", type=_port, default=8080)
    run.add_argument("--review-host", default="127.0.0.1")
    run.add_argument("--review-port", type=_port, default=8081)
    run.add_argument("--certs-dir", type=Path, default=Path("./certs"))
    run.add_argument("--mode", default="regular",
                     help="mitmproxy mode, e.g. reverse:https://acme.zendesk.com")
    run.add_argument("--upstream-ca", type=Path,
                     help="extra CA bundle trusted for upstream TLS (added to the public roots)")
    run.add_argument("--resolve", action="append", default=[], metavar="HOST=ADDR:PORT",
                     help="connect to ADDR:PORT when the agent asks for HOST (repeatable)")
    run.add_argument("--hold-timeout", type=_seconds, default=DEFAULT_HOLD_TIMEOUT,
                     metavar="SECONDS", help="how long an agent's write is held before 202")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                     help="any mitmproxy option (repeatable)")
    demo = commands.add_parser("demo", help="a local fake SaaS, the proxy and a sample agent")
    demo.add_argument("--listen-port", type=_port, default=8080)
    demo.add_argument("--review-port", type=_port, default=8081)
    demo.add_argument("--data-dir", type=Path, default=Path("./demo-data"))
    demo.add_argument("--store", type=_store_flag, metavar="URL",
                      help="where the demo's approvals live (default: SQLite in --data-dir)")
    demo.add_argument("--certs-dir", type=Path, default=Path("./certs"))
    audit = commands.add_parser("audit", help="verify or export the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True,
                                          parser_class=_Parser)
    for name, text in (("verify", "check the hash chain; exit 1 naming the first bad entry"),
                       ("export", "write the audit log as JSON lines or CSV to stdout")):
        sub = audit_commands.add_parser(name, help=text)
        _add_data_flags(sub)
        if name == "verify":
            sub.add_argument("--head", action="append", default=[], metavar="SEQ:HASH",
                             help="a head witnessed earlier (the 'audit head seq=SEQ hash=HASH' "
                                  "log line, /metrics or a webhook): the log must still hold "
                                  "entry SEQ with exactly this hash (repeatable)")
        if name == "export":
            sub.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
            sub.add_argument("--since", help="ISO 8601 time (2026-11-01, 2026-11-01T09:00Z) or "
                                             "an age such as 24h or 7d")
    traffic = commands.add_parser("traffic", help="the record of every request (security teams)")
    traffic_commands = traffic.add_subparsers(dest="traffic_command", required=True,
                                              parser_class=_Parser)
    export = traffic_commands.add_parser(
        "export", help="write the traffic record as JSON lines, CSV or HAR 1.2 to stdout")
    _add_data_flags(export)
    export.add_argument("--format", choices=["jsonl", "csv", "har"], default="jsonl")
    export.add_argument("--since", help="ISO 8601 time (2026-11-24, 2026-11-24T09:00Z) or an "
                                        "age such as 24h or 7d")
    export.add_argument("--until", help="ISO 8601 time or an age, exclusive")
    for name, text in (("agent", "only this agent"), ("host", "only this host"),
                       ("system", "only this system, e.g. Stripe"),
                       ("decision", "passed, held, allowed, denied, refused or proxy")):
        export.add_argument(f"--{name}", action="append", default=[],
                            help=f"{text} (repeatable: any of them)")
    export.add_argument("--status", help="a status code (403) or class (4xx)")
    stats = commands.add_parser("stats", help="decisions so far and where approvals could loosen")
    _add_data_flags(stats, config="YAML config (loosening criteria)")
    stats.add_argument("--format", choices=["json", "table"], default="table")
    _add_policy_parser(commands)
    for name in ("approve", "reject"):
        _add_decide_parser(commands, name)
    connectors = commands.add_parser("connectors", help="connectors and their descriptions")
    connectors_commands = connectors.add_subparsers(dest="connectors_command", required=True,
                                                    parser_class=_Parser)
    _add_coverage_parser(connectors_commands)
    derive = connectors_commands.add_parser(
        "derive", help="write derived/<name>.json from each connector's OpenAPI description "
        "(derived/<name>.graphql.json from a GraphQL schema)")
    derive.add_argument("names", nargs="*", metavar="NAME",
                        help="connector file stems (default: every one with a description)")
    return parser


def _add_policy_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    policy = commands.add_parser("policy", help="try policy rules on the recorded history")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True,
                                            parser_class=_Parser)
    simulate = policy_commands.add_parser(
        "simulate", help="how many of the last decided writes a rule would have let through, "
                         "and how many of those a person rejected, edited or reverted later")
    _add_data_flags(simulate)
    simulate.add_argument("--rule", required=True, metavar="YAML",
                          help="one policy rule as under `policy:`, e.g. '{match: {system: "
                               "Zendesk, fields: [tags]}}' (action: allow)")
    simulate.add_argument("--last", type=_count, default=500, metavar="N",
                          help="the last N decided writes (default 500)")
    simulate.add_argument("--json", action="store_true", help="machine-readable numbers")


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above zero, got {text!r}")
    return int(text)


TOKEN_ENV = "HITL_REVIEW_TOKEN"


def _add_decide_parser(commands: argparse._SubParsersAction[_Parser], name: str) -> None:
    decide = commands.add_parser(
        name, help=f"{name} pending writes through the review API, each checked on its own "
                   "(exit 1 if any failed)")
    decide.add_argument("ids", nargs="+", metavar="ID", help="approval ids")
    decide.add_argument("--note", help="the note every decision carries")
    decide.add_argument("--review-url", default="http://127.0.0.1:8081",
                        help="the review API (default http://127.0.0.1:8081)")
    decide.add_argument("--token-file", type=Path,
                        help=f"a file holding the reviewer's token (default: ${TOKEN_ENV}, "
                             f"else --data-dir's {TOKEN_FILE})")
    decide.add_argument("--data-dir", type=Path, default=Path("./data"))


def _review_token(args: argparse.Namespace) -> str:
    """--token-file, else the environment, else the token `run` keeps in the data dir."""
    path = args.token_file
    if path is None:
        if token := os.environ.get(TOKEN_ENV, "").strip():
            return token
        path = args.data_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"no reviewer token: cannot read {path} ({exc}); give --token-file "
                         f"or set {TOKEN_ENV}") from None
    if not token:
        raise UsageError(f"no reviewer token: {path} is empty")
    return token


def decide_command(args: argparse.Namespace) -> int:
    """POST /api/approvals/decide: one line per id; 0 when every one went through."""
    import httpx

    token = _review_token(args)
    url = args.review_url.rstrip("/") + "/api/approvals/decide"
    body = {"ids": args.ids, "decision": args.command, "note": args.note}
    try:
        answer = httpx.post(url, json=body, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        for approval_id in args.ids:
            print(f"{approval_id}: failed: cannot reach {url}: {exc}")
        return 1
    if answer.status_code == 401:
        raise UsageError(f"{url}: the review API refused the token (401)")
    try:
        results = answer.json()["results"] if answer.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        results = None
    if not isinstance(results, list):
        error = _answer_error(answer)
        for approval_id in args.ids:
            print(f"{approval_id}: failed: {error}")
        return 1
    failed = False
    for result in results:
        if result.get("ok"):
            print(f"{result.get('id')}: ok, {result.get('status')}")
        else:
            failed = True
            print(f"{result.get('id')}: failed: {result.get('error')}")
    return 1 if failed or len(results) != len(args.ids) else 0


def _answer_error(answer: httpx.Response) -> str:
    try:
        message = answer.json().get("error")
    except (ValueError, AttributeError):
        message = None
    return f"the review API answered {answer.status_code}" + (f": {message}" if message else "")


def policy_command(args: argparse.Namespace) -> int:
    """Reads the store directly, so it works on a stopped proxy's data too."""
    from proxy_addon.simulate import RuleError, parse_rule, simulate_rule
    from review_api.store import StoreError

    try:
        rule = parse_rule(args.rule)
    except RuleError as exc:
        raise UsageError(f"--rule: {exc}") from None
    config = _subcommand_config(args)
    url = _store_url(args, config)
    _require_default_database(url, args.data_dir)

    async def read() -> Simulation:
        store = await open_store(url, args.data_dir, config)
        try:
            return await simulate_rule(store, rule, args.last)
        finally:
            await store.close()

    try:
        result = asyncio.run(read())
    except StoreError as exc:
        raise UsageError(store_problem(url, args.data_dir, exc)) from None
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return 0
    print(f"of the last {result.considered} decided writes (asked for {args.last}), this rule "
          f"would have let {result.would_allow} through without review:")
    print(f"  {result.rejected} a person rejected, {result.edited} a person edited, "
          f"{result.reverted} reverted later; {result.as_sent} approved as sent")
    for example in result.examples:
        what = "/".join(part for part in (example.system, example.object_type,
                                          example.record_id) if part)
        note = f": {example.note}" if example.note else ""
        print(f"  {example.id} {what or '-'}: {example.outcome} "
              f"(by {example.decided_by or '-'}){note}")
    return 0


def connectors_command(args: argparse.Namespace) -> int:
    if args.connectors_command == "coverage":
        return coverage_command(args)
    if args.connectors_command == "derive":
        return derive_command(args.names)
    raise UsageError(f"unknown connectors command {args.connectors_command!r}")


def derive_command(names: list[str]) -> int:
    """Regenerate the shipped derived files (after a description is updated)."""
    from connectors_schemas import graphql_schema, openapi
    from connectors_schemas.loader import SCHEMAS_DIR, load_connector

    described = sorted(path.stem for path in SCHEMAS_DIR.glob("*.yaml")
                       if (found := load_connector(path).description) is not None
                       and found.openapi is not None)
    schemas = graphql_schema.described(SCHEMAS_DIR)  # GraphQL: derived/<name>.graphql.json
    for name in names or described + schemas:
        if name in schemas:
            target = graphql_schema.derive_connector(SCHEMAS_DIR / f"{name}.yaml")
            assert target is not None
            print(f"{name}: {target} ({graphql_schema.summary(target)})")
            continue
        if name not in described:
            raise UsageError(f"connectors derive: {name!r} has no OpenAPI description "
                             f"(known: {', '.join(described)})")
        try:
            target = openapi.derive(name)
        except openapi.DescriptionError as exc:
            raise UsageError(str(exc)) from None
        data = json.loads(target.read_text(encoding="utf-8"))
        summary = ", ".join(f"{count} {op}" for op, count in sorted(
            openapi.counts(data).items()))
        print(f"{name}: {target} ({summary})")
    return 0


def _add_coverage_parser(group: argparse._SubParsersAction[_Parser]) -> None:
    coverage = group.add_parser(
        "coverage", help="classify every documented write of the vendors' descriptions (or of "
                         "--spec) with the loaded connectors; report what they name right")
    coverage.add_argument("--spec", type=Path, metavar="FILE",
                          help="an OpenAPI 3 file (JSON or YAML, may be .gz) instead of the "
                               "shipped descriptions")
    coverage.add_argument("--host", help="with --spec: the host its requests go to")
    coverage.add_argument("--connector", metavar="NAME",
                          help="with --spec: classify with this connector (file stem) only")
    coverage.add_argument("--config", type=Path, help="YAML config: the connectors `run` loads")
    coverage.add_argument("--json", action="store_true", help="machine-readable numbers")


def coverage_command(args: argparse.Namespace) -> int:
    """Every documented write instantiated and classified by the real matcher."""
    import time

    from connectors_schemas import Matcher
    from connectors_schemas.coverage import (
        CoverageError,
        as_json,
        builtin_apis,
        run,
        spec_api,
        table,
    )

    if args.spec is None and (args.host or args.connector):
        raise UsageError("--host and --connector go with --spec FILE")
    if args.spec is not None and not args.host:
        raise UsageError("--spec needs --host HOST (where its requests go)")
    run_args = ["run", *(["--config", str(args.config)] if args.config else [])]
    _, connectors = load_setup(settings_from_args(build_parser().parse_args(run_args)))
    if args.connector is not None and args.connector not in connectors:
        raise UsageError(f"--connector {args.connector}: no such connector (known: "
                         f"{', '.join(sorted(connectors))})")
    started = time.perf_counter()
    try:
        if args.spec is None:
            apis = builtin_apis(connectors)
        else:
            chosen = connectors.get(args.connector or "")
            apis = [spec_api(args.spec, args.host, chosen.system if chosen else None)]
            connectors = {args.connector: chosen} if chosen else connectors
        reports = run(apis, Matcher(connectors))
    except CoverageError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(as_json(reports) + "\n" if args.json else table(reports))
    print(f"coverage: {len(reports)} API(s) in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """The demo SaaS and agent come from `hitl_demo`, imported only here, when the demo runs."""
    from hitl_demo import agent as demo_agent
    from hitl_demo import saas as demo_saas
    from proxy_addon.runner import StartupError, serve

    token = demo_agent.new_token()
    config = HitlConfig.model_validate({"reviewers": [{"name": "demo-reviewer",
                                                       "token": token}]})
    connectors = load_connectors()
    ca, cert, key = demo_saas.demo_tls(args.data_dir / "demo-saas")
    probe = bind_socket("127.0.0.1", args.listen_port, "--listen-port")
    probe.close()
    review_socket = bind_socket("127.0.0.1", args.review_port, "--review-port")
    review_url = f"http://127.0.0.1:{args.review_port}"

    async def main() -> int:
        saas = demo_saas.DemoSaaS()
        server, port = await demo_saas.start_saas(saas, cert, key)
        settings = RunSettings(
            config_path=None, listen_host="127.0.0.1", listen_port=args.listen_port,
            review_host="127.0.0.1", review_port=args.review_port, data_dir=args.data_dir,
            certs_dir=args.certs_dir, mode="regular", upstream_ca=ca,
            resolve={host: ("127.0.0.1", port) for host in demo_saas.HOSTS},
            hold_timeout=300.0, store_url=args.store)
        print(f"hitl-proxy demo: open {review_url} and sign in with the reviewer token\n"
              f"  {token}\n"
              f"A sample agent is proposing {len(demo_agent.SAMPLE_WRITES)} changes (ticket "
              "triage, lead routing, an invoice amount); approve or reject them. Ctrl-C stops.",
              flush=True)
        agent = asyncio.ensure_future(demo_agent.run_agent(
            f"http://127.0.0.1:{args.listen_port}", args.certs_dir / "mitmproxy-ca-cert.pem",
            review_url, demo_agent.print_answer))
        try:
            return await serve(settings, config, connectors, review_socket, "")
        finally:
            agent.cancel()
            server.should_exit = True
            await asyncio.gather(agent, return_exceptions=True)

    try:
        return asyncio.run(main())
    except StartupError as exc:
        raise UsageError(str(exc)) from None


def _subcommand_config(args: argparse.Namespace) -> HitlConfig:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _store_url(args: argparse.Namespace, config: HitlConfig) -> str | None:
    """--store wins over the config's `store:`; None is SQLite in the data dir."""
    return args.store or config.store


def _require_default_database(url: str | None, data_dir: Path) -> None:
    """A stopped proxy's SQLite data must exist: reading must not create an empty store."""
    if url is None and not (data_dir / DB_FILE).exists():
        raise UsageError(f"--data-dir {data_dir}: no {DB_FILE} there")


def _store_for(url: str | None, data_dir: Path, config: HitlConfig,
               audit_key: bytes | None = None) -> ApprovalStore:
    """The store a subcommand reads, not opened (SQLite in the data dir unless a URL says
    otherwise)."""
    from review_api.store import StoreError, store_from_url

    try:
        return store_from_url(url, data_dir, audit_key=audit_key,
                              busy_timeout=config.limits.store_timeout,
                              lease=config.limits.replica_lease)
    except (StoreError, ValueError) as exc:
        raise UsageError(store_problem(url, data_dir, exc)) from None


async def open_store(url: str | None, data_dir: Path, config: HitlConfig,
                     audit_key: bytes | None = None) -> ApprovalStore:
    from review_api.store import StoreError

    store = _store_for(url, data_dir, config, audit_key)
    try:
        await store.open()
    except (StoreError, OSError) as exc:
        raise UsageError(store_problem(url, data_dir, exc)) from None
    return store


def audit_command(args: argparse.Namespace) -> int:
    from proxy_addon.sealing import SealError, audit_key, load_key
    from review_api import audit
    from review_api.models import parse_moment

    config = _subcommand_config(args)
    url = _store_url(args, config)
    _require_default_database(url, args.data_dir)
    try:
        heads = [audit.parse_head(text) for text in getattr(args, "head", [])]
    except ValueError as exc:
        raise UsageError(f"--head: {exc}") from None
    rows, anchor_file = asyncio.run(_audit_rows(url, args.data_dir, config))
    if args.audit_command == "export":
        try:
            since = parse_moment(args.since) if args.since else None
        except ValueError as exc:
            raise UsageError(f"--since {exc}") from None
        for chunk in audit.export(rows, args.format, since):
            sys.stdout.write(chunk)
        return 0
    try:
        key = audit_key(load_key(args.data_dir))
    except SealError as exc:
        raise UsageError(str(exc)) from None
    problem = audit.check_log(rows, key, anchor_file=anchor_file, heads=heads)
    if problem is not None:
        print(f"audit log NOT intact: {problem}", file=sys.stderr)
        return 1
    witnessed = f", matching {len(heads)} witnessed head(s)" if heads else ""
    print(f"audit log intact: {len(rows)} entries{witnessed}")
    return 0


async def _audit_rows(url: str | None, data_dir: Path, config: HitlConfig
                      ) -> tuple[list[AuditRow], Path | None]:
    """The chain's rows and the anchor file to check its tail against (SQLite's, beside the
    database; PostgreSQL has none). A SQLite file is read as stored, in row order, so a
    reordering shows, and never opened as a store (which would write to it); any other store
    through its interface."""
    import sqlite3

    from review_api import audit
    from review_api.store import SqliteStore

    chosen = _store_for(url, data_dir, config)
    if isinstance(chosen, SqliteStore):
        try:
            return audit.read_rows(chosen.path), chosen.anchor
        except sqlite3.Error as exc:
            raise UsageError(store_problem(url, data_dir, f"{chosen.path}: {exc}")) from None
    store = await open_store(url, data_dir, config)
    try:
        try:
            return await audit.store_rows(store), None
        except audit.AuditUnreadable as exc:
            raise UsageError(str(exc)) from None
    finally:
        await store.close()


def traffic_command(args: argparse.Namespace) -> int:
    """Reads the traffic record directly, so it works on a stopped proxy's data too."""
    from review_api.models import parse_moment
    from review_api.traffic import TrafficError, TrafficFilter
    from review_api.traffic_export import export

    config = _subcommand_config(args)
    url = _store_url(args, config)
    if url is None:
        database = args.data_dir / TRAFFIC_FILE
        try:
            if not database.is_file():
                raise UsageError(f"--data-dir {args.data_dir}: no {TRAFFIC_FILE} there")
        except OSError as exc:
            raise UsageError(f"--data-dir {args.data_dir}: {exc.strerror}") from None
    try:
        where = TrafficFilter(
            agent=tuple(args.agent), host=tuple(args.host), system=tuple(args.system),
            decision=tuple(args.decision), status=args.status,
            since=parse_moment(args.since) if args.since else None,
            until=parse_moment(args.until) if args.until else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if problems := where.problems():
        raise UsageError("; ".join(problems))

    from proxy_addon.runner import open_traffic_store

    async def write() -> None:
        store = open_traffic_store(url, args.data_dir, config)
        await store.open(read_only=True)
        try:
            async for chunk in export(args.format, store.iterate(where), _version()):
                sys.stdout.write(chunk)
        finally:
            await store.close()

    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8")  # JSON, CSV and HAR are UTF-8 by their specs
    try:
        asyncio.run(write())
        sys.stdout.flush()
    except (TrafficError, ValueError) as exc:
        raise UsageError(store_problem(url, args.data_dir, exc)) from None
    except BrokenPipeError:
        # `| head` closed the pipe: the reader has what it wanted. Point stdout at nothing so
        # the interpreter's last flush has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hitl-proxy")
    except PackageNotFoundError:
        return "unknown"


def stats_command(args: argparse.Namespace) -> int:
    """Reads the store directly, so it works on a stopped proxy's data too."""
    from proxy_addon.config import loosening_criteria
    from review_api.stats import compute_stats
    from review_api.store import StoreError

    config = _subcommand_config(args)
    url = _store_url(args, config)
    _require_default_database(url, args.data_dir)

    async def read() -> dict[str, object]:
        store = await open_store(url, args.data_dir, config)
        try:
            return compute_stats(await store.list(limit=10_000_000), loosening_criteria(config))
        finally:
            await store.close()

    try:
        stats = asyncio.run(read())
    except StoreError as exc:
        raise UsageError(store_problem(url, args.data_dir, exc)) from None
    if args.format == "json":
        print(json.dumps(stats, indent=2))
        return 0
    for section in ("by_task", "by_system", "by_object", "by_rule"):
        print(f"{section.removeprefix('by_')}:")
        for row in stats[section]:  # type: ignore[union-attr]
            rate, edits, reverts = (_percent(row[name]) for name in (
                "rejection_rate", "edit_rate", "revert_rate"))
            median = row["median_seconds_to_decision"]
            print(f"  {row['key']:32} approved {row['approved']:4}  rejected "
                  f"{row['rejected']:4}  expired {row['expired']:4}  rejection {rate:>4}  "
                  f"edited {edits:>4}  reverted {reverts:>4}  "
                  f"median {'-' if median is None else f'{median:.0f}s':>6}  "
                  f"{'READY' if row['ready_to_loosen'] else 'keep'}: "
                  f"{'; '.join(row['reasons'])}")
    return 0


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _check_mode(mode: str) -> None:
    from mitmproxy.proxy.mode_specs import ProxyMode

    try:
        ProxyMode.parse(mode)
    except ValueError as exc:
        raise UsageError(f"--mode {mode!r}: {exc}") from None


def _check_upstream_ca(path: Path | None) -> None:
    if path is None:
        return
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--upstream-ca {path}: not a readable PEM CA bundle ({exc})") from None


def _check_sets(sets: list[str]) -> None:
    for entry in sets:
        name, sep, _ = entry.partition("=")
        if not sep or not name:
            raise UsageError(f"--set: expected NAME=VALUE, got {entry!r}")
        if name in FORBIDDEN_SETS:
            raise UsageError(f"--set {name}: refused, {FORBIDDEN_SETS[name]}")


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: small JSON answers must not wait on Nagle's algorithm.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UsageError(f"{what} {host}:{port}: cannot listen there: {reason}") from None
    return sock


def _default_reviewer(data_dir: Path) -> tuple[Reviewer, Path]:
    """Without configured reviewers, one `admin` with a token kept in the data dir."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    # The only reviewer sees everything, the traffic record and rule-allowed writes included.
    return Reviewer(name="admin", token=path.read_text().strip(), groups=["auditor"]), path


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    _check_mode(args.mode)
    _check_upstream_ca(args.upstream_ca)
    _check_sets(args.sets)
    return RunSettings(
        config_path=args.config, listen_host=args.listen_host, listen_port=args.listen_port,
        review_host=args.review_host, review_port=args.review_port, data_dir=args.data_dir,
        certs_dir=args.certs_dir, mode=args.mode, upstream_ca=args.upstream_ca,
        resolve=parse_resolve(args.resolve), hold_timeout=args.hold_timeout, sets=args.sets,
        store_url=args.store,
    )


def _site_connectors(config: HitlConfig, settings: RunSettings) -> dict[str, Connector]:
    """Connectors a site gives by its own API's OpenAPI file (paths relative to the config)."""
    from connectors_schemas.openapi import site_connector

    base = settings.config_path.parent if settings.config_path is not None else Path(".")
    where = settings.config_path or "the config"
    return {name: site_connector(
                override.system or name, override.hosts,
                [str(base / file) for file in override.openapi or []], override.base_path,
                f"config file {where}: field connectors.{name}.openapi")
            for name, override in config.connectors.items() if override.openapi is not None}


def load_setup(settings: RunSettings) -> tuple[HitlConfig, dict[str, Connector]]:
    try:
        config = load_config(settings.config_path)
        extra = {name: override.hosts for name, override in config.connectors.items()
                 if override.openapi is None}
        connectors_dir = config.connectors_dir
        if connectors_dir is not None and settings.config_path is not None:
            connectors_dir = settings.config_path.parent / connectors_dir
        connectors = load_connectors(extra_hosts=extra, extra_directory=connectors_dir,
                                     site_connectors=_site_connectors(config, settings))
    except (ConfigError, ConnectorFileError) as exc:
        raise UsageError(str(exc)) from None
    for glob in config.passthrough_hosts:
        for connector in connectors.values():
            for host in connector.hosts:
                if fnmatch.fnmatchcase(host.replace("*", "x"), glob.lower()):
                    raise UsageError(f"passthrough_hosts: {glob!r} would let writes to "
                                     f"{connector.system} ({host}) through without review")
    return config, connectors


SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": stats_command, "audit": audit_command, "traffic": traffic_command,
    "demo": demo_command, "connectors": connectors_command, "policy": policy_command,
    "approve": decide_command, "reject": decide_command,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if (command := SUBCOMMANDS.get(args.command)) is not None:
            return command(args)
        settings = settings_from_args(args)
        config, connectors = load_setup(settings)
        settings = replace(settings, store_url=_store_url(args, config))
        token_note = ""
        if not config.reviewers:
            reviewer, token_path = _default_reviewer(settings.data_dir)
            config = config.model_copy(update={"reviewers": [reviewer]})
            token_note = f" (reviewer 'admin', token in {token_path})"
        proxy_probe = bind_socket(settings.listen_host, settings.listen_port, "--listen-port")
        proxy_probe.close()
        review_socket = bind_socket(settings.review_host, settings.review_port, "--review-port")
    except UsageError as exc:
        print(f"hitl-proxy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from proxy_addon.runner import StartupError, serve

    try:
        return asyncio.run(serve(settings, config, connectors, review_socket, token_note))
    except StartupError as exc:
        print(f"hitl-proxy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
