"""Bad flags and config: exit 2 and one clear line, before anything listens."""

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import hitl_proxy_command
from tests.fakes.server import free_port


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ports = ["--listen-port", str(free_port()), "--review-port", str(free_port())]
    return subprocess.run([*hitl_proxy_command(), "run", *ports, "--data-dir",
                           str(tmp_path / "data"), "--certs-dir", str(tmp_path / "certs"), *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("args", "config", "message"), [
    (["--bogus"], None, "unrecognized arguments: --bogus"),
    (["--listen-port", "0"], None, "not a TCP port"),
    (["--hold-timeout", "soon"], None, "not a number of seconds"),
    (["--mode", "sideways"], None, "--mode 'sideways'"),
    (["--resolve", "acme.zendesk.com"], None, "expected HOST=ADDR:PORT"),
    (["--resolve", "acme.zendesk.com=example.org:443"], None, "is not an IP address"),
    (["--upstream-ca", "missing.pem"], None, "--upstream-ca missing.pem"),
    (["--set", "stream_large_bodies=1m"], None, "stream_large_bodies: refused"),
    (["--set", "no_such_option=1"], None, "Unknown option(s): no_such_option"),
    (["--config", "missing.yaml"], None, "config file missing.yaml does not exist"),
    ([], "reviewers: [{name: a}]\n", "reviewers.0: Value error, give exactly one of token"),
    ([], "reviewer: []\n", "reviewer: unknown key"),
    ([], "policy: [{action: maybe}]\n", "policy.0.action"),
    ([], "connectors: {nosuch: {hosts: [a.test]}}\n", "connectors.nosuch: no such connector"),
    ([], "reviewers: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, groups: [support]}]\n"
         "policy: [{match: {system: QuickBooks}, action: hold, reviewers: [finance]}]\n",
     "policy: policy[0] needs 1 distinct approval(s) from ['finance'] but only 0"),
    ([], "reviewers: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, groups: [s]}]\n"
         "policy: [{match: {}, action: hold, reviewers: [s], quorum: 2, name: two}]\n",
     "policy: two needs 2 distinct approval(s)"),
    ([], "reviewers: [{name: a, token: aaaaaaaaaaaaaaaaaaaa}]\n"
         "agents: [{name: bot, secret: aaaaaaaaaaaaaaaaaaaa}]\n",
     "agents: bot's secret is also a reviewer's token"),
    ([], "agents: [{name: bot, secret: short}]\n", "agents.0.secret"),
    ([], "policy: [{match: {changes: [{field: x, over: 1}]}, action: deny}]\n",
     "policy.0.match.changes.0.over: unknown key"),
    ([], "passthrough_hosts: ['*.zendesk.com']\n",
     "passthrough_hosts: '*.zendesk.com' would let writes to Zendesk"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], config: str | None,
                                         message: str) -> None:
    if config is not None:
        (tmp_path / "hitl.yaml").write_text(config)
        args = [*args, "--config", "hitl.yaml"]
    result = run(tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hitl-proxy: error: ")
    assert message in lines[0]
    assert not (tmp_path / "certs").exists() or args[:2] == ["--set", "no_such_option=1"]


def test_busy_port_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(tmp_path, "--review-port", str(port))
    assert result.returncode == 2
    assert f"--review-port 127.0.0.1:{port}: cannot listen there: the port is in use" in (
        result.stderr)


def test_a_bad_connector_file_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "acme.yaml").write_text(
        "system: Acme\nhosts: [a.test]\nobjects:\n  t:\n    routes:\n"
        "      - {method: PUT, path: /t, operation: update}\n")
    (tmp_path / "hitl.yaml").write_text("connectors_dir: mine\n")
    result = run(tmp_path, "--config", "hitl.yaml")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "mine/acme.yaml" in line and "objects" in line and "needs '{id}'" in line


def test_stats_command_reads_a_stopped_proxys_data(tmp_path: Path) -> None:
    missing = subprocess.run([*hitl_proxy_command(), "stats", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no hitl.sqlite3" in missing.stderr


def test_audit_verify_head_fails_on_a_chain_re_signed_with_a_new_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from cryptography.fernet import Fernet

    from proxy_addon.cli import main
    from proxy_addon.sealing import KEY_ENV, audit_key
    from review_api import Decision, Proposal
    from review_api.store import SqliteStore
    from tests.test_audit import resign_chain

    monkeypatch.delenv(KEY_ENV, raising=False)
    seal = Fernet.generate_key()
    (tmp_path / "seal.key").write_bytes(seal)

    async def write() -> tuple[int, str] | None:
        store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=audit_key(seal))
        await store.open()
        for index in range(3):
            approval = await store.create(Proposal(method="PUT", url=f"https://x.test/{index}",
                                                   fingerprint="f" * 64))
            await store.decide(approval.id, Decision.approve, "sam", None)
        head = store.head
        await store.close()
        return head

    seq, digest = asyncio.run(write()) or (0, "")
    verify = ["audit", "verify", "--data-dir", str(tmp_path)]
    assert main([*verify, "--head", f"{seq}:{digest}", "--head", f"2:{'0' * 64}"]) == 1
    assert "entry 2: its hash is" in capsys.readouterr().err
    assert main([*verify, "--head", f"{seq}:{digest.upper()}"]) == 0
    assert "intact: 6 entries, matching 1 witnessed head(s)" in capsys.readouterr().out
    assert main([*verify, "--head", "six"]) == 2
    assert "--head: expected SEQ:HASH" in capsys.readouterr().err

    new_seal = Fernet.generate_key()
    (tmp_path / "seal.key").write_bytes(new_seal)
    resign_chain(tmp_path / "hitl.sqlite3", audit_key(new_seal))
    assert main(verify) == 0  # re-signed with the new key, the chain alone looks whole
    capsys.readouterr()
    assert main([*verify, "--head", f"{seq}:{digest}"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"audit log NOT intact: entry {seq}: its hash is ")
    assert f"but the witnessed head says {digest}" in error
    assert main([*verify, "--head", f"{seq + 5}:{digest}"]) == 1
    assert f"entry {seq + 5}: missing; the log ends at entry {seq}" in capsys.readouterr().err


# -- --store and store: ---------------------------------------------------------------------------

READING_COMMANDS = [["run"], ["demo"], ["audit", "verify"], ["audit", "export"],
                    ["traffic", "export"], ["stats"]]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hitl-proxy: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", READING_COMMANDS, ids=" ".join)
def test_every_subcommand_that_reads_data_takes_store(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_addon.cli import build_parser, main

    args = build_parser().parse_args([*command, "--store", "postgresql://db.example/hitl"])
    assert args.store == "postgresql://db.example/hitl"
    assert build_parser().parse_args(command).store is None  # default: the config's, or SQLite
    assert main([*command, "--store", " "]) == 2
    assert "argument --store: expected a store URL" in one_error_line(capsys)


@pytest.mark.parametrize("command", READING_COMMANDS[2:], ids=" ".join)
def test_an_unknown_store_scheme_exits_2_naming_it(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_addon.cli import main

    code = main([*command, "--data-dir", str(tmp_path), "--store",
                 "mysql://hitl:s3cret@db.example/hitl"])
    line = one_error_line(capsys)
    assert code == 2 and "store mysql://hitl:***@db.example/hitl: " in line, line
    assert "unknown store scheme 'mysql'" in line and "s3cret" not in line
    assert list(tmp_path.iterdir()) == []  # nothing created in the data dir


def test_run_with_a_bad_store_exits_2_before_anything_listens(tmp_path: Path) -> None:
    for url, named in (("mysql://db.example/hitl", "store mysql://db.example/hitl: "),
                       ("postgresql://hitl:s3cret@127.0.0.1:1/hitl",
                        "store postgresql://hitl:***@127.0.0.1:1/hitl: ")):
        result = run(tmp_path, "--store", url)
        assert result.returncode == 2, result.stdout + result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"hitl-proxy: error: {named}"), line
        assert "s3cret" not in result.stdout + result.stderr
        assert not (tmp_path / "certs").exists()  # start-up stopped before the CA


def test_the_config_store_is_used_and_the_flag_wins(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_addon.cli import main

    config = tmp_path / "hitl.yaml"
    config.write_text("store: mysql://from-config.example/hitl\n")
    assert main(["stats", "--config", str(config), "--data-dir", str(tmp_path)]) == 2
    assert "store mysql://from-config.example/hitl: " in one_error_line(capsys)
    assert main(["audit", "export", "--config", str(config), "--data-dir", str(tmp_path),
                 "--store", "mysql://from-flag.example/hitl"]) == 2
    line = one_error_line(capsys)
    assert "store mysql://from-flag.example/hitl: " in line and "from-config" not in line


@pytest.mark.parametrize(("config", "message"), [
    ("store: ''\n", "store: Value error, expected a store URL"),
    ("store: [postgresql://a/b]\n", "store: Input should be a valid string"),
    ("limits: {replica_lease: 1}\n", "limits.replica_lease: Input should be greater than or "
                                      "equal to 3"),
    ("limits: {replica_lease: soon}\n", "limits.replica_lease: Value error, expected a "
                                         "duration"),
])
def test_bad_store_config_exits_2_naming_the_key(tmp_path: Path, config: str,
                                                 message: str) -> None:
    (tmp_path / "hitl.yaml").write_text(config)
    result = run(tmp_path, "--config", "hitl.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("hitl-proxy: error: config file hitl.yaml: ") and message in line, line


def test_subcommands_read_a_postgresql_store(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """stats, audit verify/export and traffic export on data a replica left in PostgreSQL."""
    import asyncio

    from cryptography.fernet import Fernet

    from proxy_addon.cli import main
    from proxy_addon.sealing import KEY_ENV, audit_key
    from review_api import Decision, Proposal
    from review_api.store import store_from_url

    monkeypatch.delenv(KEY_ENV, raising=False)
    seal = Fernet.generate_key()
    (tmp_path / "seal.key").write_bytes(seal)

    async def write() -> None:
        store = store_from_url(postgres_url, tmp_path, audit_key=audit_key(seal))
        await store.open()
        try:
            for index, decision in enumerate((Decision.approve, Decision.reject)):
                approval = await store.create(Proposal(
                    method="PUT", url=f"https://x.test/{index}", fingerprint="f" * 64))
                await store.decide(approval.id, decision, "sam", None)
        finally:
            await store.close()

    asyncio.run(write())
    where = ["--data-dir", str(tmp_path), "--store", postgres_url]
    assert main(["stats", "--format", "json", *where]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert sum(row["approved"] + row["rejected"] for row in stats["by_system"]) == 2
    assert main(["audit", "verify", *where]) == 0
    assert "audit log intact: 4 entries" in capsys.readouterr().out
    assert main(["audit", "export", *where]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [entry["seq"] for entry in exported] == [1, 2, 3, 4]
    assert main(["traffic", "export", *where]) == 2  # no proxy recorded traffic there yet
    assert "no traffic record" in one_error_line(capsys)
    assert not (tmp_path / "hitl.sqlite3").exists()  # PostgreSQL, not the data dir's SQLite
    (tmp_path / "seal.key").write_bytes(Fernet.generate_key())  # another replica's key
    assert main(["audit", "verify", *where]) == 1
    assert "audit log NOT intact: entry 1: its content does not match" in (
        capsys.readouterr().err)


def _ready_line(proxy: Any) -> str:
    """The ready line, once the log has it: the review port answers a moment before the
    line is flushed to the log file."""
    deadline = time.monotonic() + 15
    while True:
        found = [line for line in proxy.log().splitlines() if "hitl-proxy ready:" in line]
        if found or time.monotonic() > deadline:
            [ready] = found
            return ready
        time.sleep(0.1)


def test_the_ready_line_names_the_store_and_the_replica(tmp_path: Path,
                                                        postgres_url: str) -> None:
    from tests.e2e.harness import ProxyProcess

    scheme, rest = postgres_url.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0] or "postgres"
    # The test server trusts local connections, so any password is accepted (and masked).
    url = f"{scheme}://{user}:s3cret-pw@{location}"
    proxy = ProxyProcess(tmp_path, [], token="", store=url).start()
    try:
        ready = _ready_line(proxy)
    finally:
        assert proxy.stop() == 0, proxy.log()
    assert f"store {scheme}://{user}:***@{location}, replica " in ready, ready
    assert "s3cret-pw" not in proxy.log()
    (tmp_path / "b").mkdir()
    sqlite = ProxyProcess(tmp_path / "b", [], token="").start()
    try:
        ready = _ready_line(sqlite)
    finally:
        assert sqlite.stop() == 0, sqlite.log()
    assert f"store {tmp_path / 'b' / 'data' / 'hitl.sqlite3'}, replica " in ready, ready


def test_audit_verify_and_export_leave_a_sqlite_store_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Read as stored, never opened as a store (which would migrate it and register a replica)."""
    import asyncio
    import hashlib

    from cryptography.fernet import Fernet

    from proxy_addon.cli import main
    from proxy_addon.sealing import KEY_ENV, audit_key
    from review_api import Proposal
    from review_api.store import SqliteStore

    monkeypatch.delenv(KEY_ENV, raising=False)
    seal = Fernet.generate_key()
    (tmp_path / "seal.key").write_bytes(seal)
    database = tmp_path / "elsewhere.sqlite3"

    async def write() -> None:
        store = SqliteStore(database, audit_key=audit_key(seal))
        await store.open()
        await store.create(Proposal(method="PUT", url="https://x.test/1", fingerprint="f" * 64))
        await store.close()

    asyncio.run(write())
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    where = ["--data-dir", str(tmp_path), "--store", str(database)]
    assert main(["audit", "verify", *where]) == 0
    assert "audit log intact: 1 entries" in capsys.readouterr().out
    assert main(["audit", "export", "--format", "csv", *where]) == 0
    assert capsys.readouterr().out.startswith("seq,at,event")
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert not (tmp_path / "hitl.sqlite3").exists()


def test_stats_table_shows_edit_and_revert_rates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from proxy_addon.cli import main
    from review_api.store import SqliteStore
    from tests.test_simulate import seed

    async def write() -> None:
        store = SqliteStore(tmp_path / "hitl.sqlite3")
        await store.open()
        try:
            await seed(store)
        finally:
            await store.close()

    asyncio.run(write())
    assert main(["stats", "--data-dir", str(tmp_path)]) == 0
    [line] = [row for row in capsys.readouterr().out.splitlines()
              if row.strip().startswith("ticket-triage")]
    # Seven approved: two edited (values, only some fields), one reverted later.
    assert "approved    7  rejected    3" in line and "edited  29%  reverted  14%" in line, line
    assert "keep: " in line and "reviewers edited 2 of 7 approved writes (29%" in line, line
    assert main(["stats", "--data-dir", str(tmp_path), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["by_task"]
    assert (row["edited"], row["reverted"], row["edit_rate"], row["revert_rate"]) == (
        2, 1, round(2 / 7, 4), round(1 / 7, 4))
