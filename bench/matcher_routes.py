"""What matching a request against connector routes costs per call, as connectors grow.

    .venv/bin/python bench/matcher_routes.py [--number 500] [--repeat 5]

Plain timeit of `Matcher.classify` (writes), `Matcher.identify` (asked on every read for the
traffic record) and `Matcher.is_graphql_endpoint`, with the shipped connectors and with a
synthetic connector of 5,000 routes (derived-looking: literal resources, `{id}` records,
actions, a few greedy paths, `.json` suffixes, a base path with a placeholder). identify is
timed on one repeated path (what a cache sees when an agent polls one record) and on more
distinct paths than any cache keeps.

Two columns, measured in turns in one process so a noisy moment hits both: "scan" tries every
route's regex in precedence order with nothing remembered (how the matcher worked before its
index), "index" is the matcher as it is. Prints the best of --repeat runs in µs per call.
Run by hand; never in the test suite.
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors_schemas import Matcher, load_connectors  # noqa: E402
from connectors_schemas.models import Connector  # noqa: E402

SYNTHETIC_HOST = "api.synthetic.test"
RESOURCES = 500  # x 10 routes each = 5,000
DISTINCT = 10_000  # more paths than a bounded identify cache keeps


def synthetic_connector(resources: int = RESOURCES) -> Connector:
    """5,000 routes in one connector, the shapes an OpenAPI derivation writes."""
    objects: dict[str, Any] = {}
    for i in range(resources):
        name = f"res{i:04d}"
        objects[name] = {"routes": [
            {"method": "POST", "path": f"/{name}", "operation": "create"},
            {"method": "POST", "path": f"/{name}/search", "operation": "read"},
            {"method": "POST", "path": f"/{name}/batch/update", "operation": "update",
             "bulk": {"records_path": "inputs", "id_field": "id"}},
            {"method": "PATCH", "path": f"/{name}/{{id}}", "operation": "update"},
            {"method": "PUT", "path": f"/{name}/{{id}}", "operation": "update"},
            {"method": "DELETE", "path": f"/{name}/{{id}}", "operation": "delete"},
            {"method": "POST", "path": f"/{name}/{{id}}/cancel", "operation": "action",
             "action": "cancel"},
            {"method": "POST", "path": f"/{name}/{{id}}/notes/{{note}}.json",
             "operation": "action", "action": "note", "no_fetch": True},
            {"method": "PUT", "path": f"/{name}/{{owner}}/files/{{id+}}",
             "operation": "update"},
            {"method": "DELETE", "path": f"/{name}/{{owner}}/files/{{id+}}",
             "operation": "delete"},
        ]}
    return Connector.model_validate({
        "system": "Synthetic", "hosts": [SYNTHETIC_HOST], "base_path": "/api/{version}",
        "path_suffixes": ["", ".json"], "objects": objects})


# (method, host, path, query, body, content type): one per shape, across the shipped systems.
SHIPPED_WRITES: list[tuple[str, str, str, list[tuple[str, str]], bytes, str]] = [
    ("PUT", "acme.zendesk.com", "/api/v2/tickets/42.json", [], b'{"ticket": {"status": "open"}}',
     "application/json"),
    ("PUT", "acme.zendesk.com", "/api/v2/tickets/update_many.json", [("ids", "1,2")],
     b'{"ticket": {"status": "open"}}', "application/json"),
    ("POST", "api.stripe.com", "/v1/invoices/in_1/void", [], b"",
     "application/x-www-form-urlencoded"),
    ("POST", "api.stripe.com", "/v1/customers/cus_1", [], b"email=a%40b.c",
     "application/x-www-form-urlencoded"),
    ("PUT", "acme.atlassian.net", "/rest/api/3/issue/PROJ-1", [],
     b'{"fields": {"summary": "x"}}', "application/json"),
    ("PATCH", "api.hubapi.com", "/crm/v3/objects/contacts/51", [],
     b'{"properties": {"email": "a@b.c"}}', "application/json"),
    ("PATCH", "acme.my.salesforce.com", "/services/data/v59.0/sobjects/Account/001", [],
     b'{"Name": "x"}', "application/json"),
    ("PATCH", "api.github.com", "/api/v3/repos/o/r/issues/7", [], b'{"title": "x"}',
     "application/json"),
    ("PUT", "api.github.com", "/repos/o/r/contents/docs/a/b.md", [],
     b'{"message": "m", "content": "eA=="}', "application/json"),
    ("POST", "quickbooks.api.intuit.com", "/v3/company/1/invoice", [("operation", "void")],
     b'{"Id": "5", "SyncToken": "0"}', "application/json"),
]
SHIPPED_READS: list[tuple[str, str]] = [
    ("acme.zendesk.com", "/api/v2/tickets/{n}.json"),
    ("api.stripe.com", "/v1/customers/cus_{n}"),
    ("acme.atlassian.net", "/rest/api/3/issue/PROJ-{n}"),
    ("api.hubapi.com", "/crm/v3/objects/contacts/{n}"),
    ("acme.my.salesforce.com", "/services/data/v59.0/sobjects/Account/{n}"),
    ("api.github.com", "/repos/o/r/issues/{n}"),
    ("api.github.com", "/repos/o/r/git/trees/{n}"),  # matches no route
    ("acme.zendesk.com", "/api/v2/search.json"),  # matches no route
]
SYNTHETIC_WRITES = [
    ("PATCH", SYNTHETIC_HOST, "/api/2024-01/res0000/7", [], b"{}", "application/json"),
    ("PATCH", SYNTHETIC_HOST, "/api/2024-01/res0499/7.json", [], b"{}", "application/json"),
    ("POST", SYNTHETIC_HOST, "/api/2024-01/res0250/7/cancel", [], b"", "application/json"),
    ("DELETE", SYNTHETIC_HOST, "/api/2024-01/res0499/me/files/a/b/c.txt", [], b"",
     "application/json"),
    ("PATCH", SYNTHETIC_HOST, "/api/2024-01/nosuch/7", [], b"{}", "application/json"),
]
SYNTHETIC_READS = [
    (SYNTHETIC_HOST, "/api/2024-01/res0000/{n}"),
    (SYNTHETIC_HOST, "/api/2024-01/res0499/{n}.json"),
    (SYNTHETIC_HOST, "/api/2024-01/res0250/{n}/notes/x.json"),
    (SYNTHETIC_HOST, "/api/2024-01/nosuch/{n}"),
]


class _Forgetful(dict[Any, Any]):
    """An identify cache that keeps nothing."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def scanning(matcher: Matcher) -> Matcher:
    """The matcher without its index or cache: every route tried, in precedence order."""
    for index in matcher._routes.values():
        index.candidates = (  # type: ignore[method-assign]
            lambda path, among, index=index: index.scan(among))
    matcher._identified = _Forgetful()
    return matcher


def best_us(calls: list[Callable[[], object]], number: int, repeat: int) -> list[float]:
    """Each call's best time, the calls timed in turns."""
    best = [float("inf")] * len(calls)
    for _ in range(repeat):
        for at, call in enumerate(calls):
            best[at] = min(best[at], timeit.timeit(call, number=number) / number * 1e6)
    return best


def cycling(items: list[Any]) -> Callable[[], Any]:
    """Each call takes the next item, so no cache sees the same one twice in a row."""
    state = {"at": 0}

    def take() -> Any:
        state["at"] = (state["at"] + 1) % len(items)
        return items[state["at"]]

    return take


def measure(matchers: list[Matcher], writes: list[Any], reads: list[tuple[str, str]],
            number: int, repeat: int) -> dict[str, list[float]]:
    """µs per call of each matcher, less what cycling through the requests costs."""
    for write in writes:  # both must agree, and a bench of requests matching nothing is idle
        assert len({repr(matcher.classify(*write)) for matcher in matchers}) == 1, write
    same = [(host, path.format(n=1)) for host, path in reads]
    distinct = [(host, path.format(n=n)) for n in range(DISTINCT // len(reads))
                for host, path in reads]
    graphql = [*same, ("api.github.com", "/graphql"),
               ("acme.myshopify.com", "/admin/api/2024-01/GraphQL.json")]
    [overhead] = best_us([cycling(same)], number, repeat)
    asked: dict[str, tuple[str, list[Any]]] = {
        "classify": ("classify", writes), "identify, one path again": ("identify", same),
        "identify, distinct paths": ("identify", distinct),
        "is_graphql_endpoint": ("is_graphql_endpoint", graphql)}
    results = {}
    for title, (name, requests) in asked.items():
        calls = []
        for matcher in matchers:
            method, take = getattr(matcher, name), cycling(requests)
            calls.append(lambda method=method, take=take: method(*take()))
        results[title] = [us - overhead for us in best_us(calls, number, repeat)]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shipped = load_connectors()
    routes = sum(1 if route.from_root else len(c.base_paths) for c in shipped.values()
                 for spec in c.objects.values() for route in spec.routes)
    synthetic = synthetic_connector()
    print(f"python {platform.python_version()}, {platform.machine()}; best of {args.repeat} "
          f"x {args.number} calls")
    cases = [(f"shipped ({len(shipped)} connectors, {routes} routes)", shipped,
              SHIPPED_WRITES, SHIPPED_READS),
             ("synthetic (1 connector, 5,000 routes)", {**shipped, "synthetic": synthetic},
              SYNTHETIC_WRITES, SYNTHETIC_READS)]
    for title, connectors, writes, reads in cases:
        print(f"\n{title:44} {'scan':>9} {'index':>9}  µs/call")
        matchers = [scanning(Matcher(connectors)), Matcher(connectors)]
        for name, (scan, index) in measure(matchers, writes, reads, args.number,
                                           args.repeat).items():
            print(f"  {name:42} {scan:9.2f} {index:9.2f}")


if __name__ == "__main__":
    main()
