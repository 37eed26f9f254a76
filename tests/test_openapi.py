"""Connectors derived from OpenAPI descriptions: naming, fetches, the POST-read rule, merging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors_schemas import ConnectorFileError, Matcher, Operation, openapi
from connectors_schemas.loader import SCHEMAS_DIR, load_connector
from connectors_schemas.models import Connector
from proxy_addon.cli import main

HOST = "api.shop.test"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Shop", "version": "1"},
    "paths": {
        "/v2/orders": {
            "get": {"summary": "List orders", "responses": _answer(
                {"type": "array", "items": _ref("order")})},
            "post": {"summary": "Create an order", "requestBody": _body(_ref("order")),
                     "responses": _answer(_ref("order"), "201")},
        },
        "/v2/orders/{order_id}": {
            "get": {"summary": "Get an order", "responses": _answer(_ref("order"))},
            "patch": {"summary": "Update an order", "requestBody": _body(_ref("order")),
                      "responses": _answer(_ref("order"))},
            "delete": {"summary": "Cancels an order", "responses": _answer(_ref("order"))},
        },
        "/v2/orders/{order_id}/ship": {
            "post": {"summary": "Ship an order", "responses": _answer(_ref("order"))},
        },
        "/v2/orders/{order_id}/tags": {
            "put": {"summary": "Set the tags of an order",
                    "requestBody": _body({"type": "object", "properties": {
                        "tags": {"type": "array", "items": {"type": "string"}}}}),
                    "responses": _answer({"type": "array", "items": {"type": "string"}})},
            "post": {"summary": "Add tags to an order",
                     "requestBody": _body({"type": "object", "properties": {
                         "tags": {"type": "array", "items": {"type": "string"}}}}),
                     "responses": _answer({"type": "array", "items": {"type": "string"}})},
        },
        "/v2/orders/{order_id}/tags/{tag}": {
            "delete": {"summary": "Remove a tag from an order",
                       "responses": _answer({"type": "array", "items": {"type": "string"}})},
        },
        "/v2/orders/search": {
            "post": {"summary": "Search orders", "requestBody": _body({"type": "object"}),
                     "responses": _answer({"type": "array", "items": _ref("order")})},
        },
        "/v2/orders/lookup": {
            "post": {"summary": "Get orders and update their seen flag",
                     "requestBody": _body({"type": "object"}),
                     "responses": _answer({"type": "array", "items": _ref("order")})},
        },
        "/v2/orders/archive": {
            "put": {"summary": "Archive orders", "requestBody": _body({
                "type": "object", "properties": {"orderIds": {
                    "type": "array", "items": {"type": "string"}}}}),
                "responses": _answer({"type": "object"})},
        },
    },
    "components": {"schemas": {"order": {"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}}}}}},
}


@pytest.fixture(scope="module")
def derived() -> dict[str, Any]:
    return openapi.derive_objects([openapi.Spec("shop.json", DOCUMENT)])


def _route(derived: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    for key, spec in derived["objects"].items():
        for route in spec["routes"]:
            if route["method"] == method and route["path"] == path:
                return key, route
    raise AssertionError(f"no derived route {method} {path}")


@pytest.fixture(scope="module")
def shop(derived: dict[str, Any]) -> Matcher:
    connector = Connector(system="Shop", hosts=[HOST], base_path="/v2", objects={
        "order": {"read_only": ["id"], "risk": {"money": ["status"]}, "routes": [
            {"method": "POST", "path": "/orders/{id}/ship", "operation": "action",
             "action": "ship", "sets": {"status": "shipped"}}]}})
    return Matcher({"shop": openapi.merge(connector, openapi.validate_derived(derived, "t"))})


def test_object_operation_record_and_fetch_of_the_same_path(derived: dict[str, Any]) -> None:
    key, route = _route(derived, "PATCH", "/v2/orders/{id}")
    assert (key, route["operation"], route["fetch"]) == (
        "order", "update", {"path": "/v2/orders/{id}"})
    assert _route(derived, "POST", "/v2/orders")[1]["operation"] == "create"


def test_a_delete_the_vendor_calls_a_cancel_is_that_action(derived: dict[str, Any]) -> None:
    _key, route = _route(derived, "DELETE", "/v2/orders/{id}")
    assert (route["operation"], route["action"]) == ("action", "cancel")


def test_an_action_fetches_its_parent_record(derived: dict[str, Any]) -> None:
    _key, route = _route(derived, "POST", "/v2/orders/{id}/ship")
    assert (route["operation"], route["action"], route["fetch"]) == (
        "action", "ship", {"path": "/v2/orders/{id}"})


def test_a_sub_resource_is_the_parents_field(derived: dict[str, Any]) -> None:
    key, route = _route(derived, "PUT", "/v2/orders/{id}/tags")
    assert (key, route["operation"], route["field"], route["fetch"]["path"]) == (
        "order", "update", {"name": "tags", "value_path": "tags"}, "/v2/orders/{id}")
    assert _route(derived, "POST", "/v2/orders/{id}/tags")[1]["field"]["mode"] == "add"
    removal = _route(derived, "DELETE", "/v2/orders/{id}/tags/{tag}")[1]["field"]
    assert removal == {"name": "tags", "value_param": "tag", "mode": "remove"}


def test_post_reads_only_by_the_vendors_own_read_words(derived: dict[str, Any]) -> None:
    assert _route(derived, "POST", "/v2/orders/search")[1]["operation"] == "read"
    # "Get ... and update": a read verb first, but a change named too: held as a write
    assert _route(derived, "POST", "/v2/orders/lookup")[1]["operation"] != "read"


def test_the_parent_field_shows_old_and_new_and_is_fetched(shop: Matcher) -> None:
    found = shop.classify("PUT", HOST, "/v2/orders/o1/tags", [], b'{"tags": ["gift"]}',
                          "application/json")
    assert found is not None and not found.read
    [record] = found.records
    assert (found.object_type, record.operation, record.record_id, record.values) == (
        "order", Operation.update, "o1", {"tags": ["gift"]})
    assert [r.path for r in found.fetch_requests([])] == ["/v2/orders/o1"]
    removal = shop.classify("DELETE", HOST, "/v2/orders/o1/tags/old", [], b"", None)
    assert removal is not None and removal.records[0].ops == {"tags": [{"remove": "old"}]}


def test_hand_written_routes_win_and_derived_ones_inherit(shop: Matcher) -> None:
    ship = shop.classify("POST", HOST, "/v2/orders/o1/ship", [], b"", None)
    assert ship is not None and ship.route.sets == {"status": "shipped"}  # the YAML's route
    update = shop.classify("PATCH", HOST, "/v2/orders/o1", [], b'{"status": "x"}',
                           "application/json")
    assert update is not None and update.spec.risk.money == ["status"]  # inherited
    assert update.spec.read_only == ["id"]
    assert [r.path for r in update.fetch_requests([])] == ["/v2/orders/o1"]


def test_ids_in_the_body_are_the_records(shop: Matcher) -> None:
    found = shop.classify("PUT", HOST, "/v2/orders/archive", [], b'{"orderIds": ["a", "b"]}',
                          "application/json")
    assert found is not None
    assert [(r.operation, r.action, r.record_id) for r in found.records] == [
        (Operation.action, "archive", "a"), (Operation.action, "archive", "b")]
    assert [r.path for r in found.fetch_requests([])] == ["/v2/orders/a", "/v2/orders/b"]


def test_derived_paths_serve_every_version_the_base_path_allows() -> None:
    connector = Connector(system="J", hosts=[HOST], base_path="/rest/api/{api_version}",
                          objects={"issue": {"routes": [
                              {"method": "PUT", "path": "/issue/{id}", "operation": "update"}]}})
    worklog = {"method": "PUT", "path": "/rest/api/3/worklog/{id}", "operation": "update",
               "fetch": {"path": "/rest/api/3/worklog/{id}"}}
    other = {"method": "POST", "path": "/other/things", "operation": "create"}
    derived = openapi.validate_derived({"objects": {
        "Worklog": {"object_type": "Worklog", "routes": [worklog]},
        "Other": {"routes": [other]}}}, "t")
    matcher = Matcher({"j": openapi.merge(connector, derived)})
    for version in ("2", "3", "latest"):
        found = matcher.classify("PUT", HOST, f"/rest/api/{version}/worklog/7", [], b"{}",
                                 "application/json")
        assert found is not None and found.object_type == "Worklog"
        assert [r.path for r in found.fetch_requests([])] == [f"/rest/api/{version}/worklog/7"]
    outside = matcher.classify("POST", HOST, "/other/things", [], b"{}", "application/json")
    assert outside is not None and outside.route.from_root


def test_a_site_config_connector_from_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "billing.json").write_text(json.dumps(DOCUMENT))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"connectors": {"billing": {
        "openapi": "./billing.json", "hosts": ["billing.internal.example"],
        "system": "Billing"}, "zendesk": ["support.example.com"]}}))
    from proxy_addon.cli import RunSettings, load_setup

    settings = RunSettings(tmp_path / "config.yaml", "127.0.0.1", 1, "127.0.0.1", 2,
                           tmp_path, tmp_path, "regular", None, {}, 5.0)
    _config, connectors = load_setup(settings)
    assert "support.example.com" in connectors["zendesk"].hosts
    found = Matcher(connectors).classify("PATCH", "billing.internal.example",
                                         "/v2/orders/o9", [], b'{"status": "paid"}',
                                         "application/json")
    assert found is not None and (found.system, found.object_type) == ("Billing", "order")
    assert [r.path for r in found.fetch_requests([])] == ["/v2/orders/o9"]


def test_a_site_file_that_is_wrong_names_file_and_field(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    (tmp_path / "billing.yaml").write_text("openapi: 2.0\npaths: {}\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"connectors": {"billing": {
        "openapi": "./billing.yaml", "hosts": ["billing.internal.example"]}}}))
    assert main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert str(config) in error and "connectors.billing.openapi" in error
    assert "billing.yaml" in error and "not OpenAPI 3" in error


def test_a_connector_without_a_derived_file_is_derived_at_load(tmp_path: Path) -> None:
    (tmp_path / "shop.json").write_text(json.dumps(DOCUMENT))
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({
        "system": "Shop", "hosts": [HOST], "description": {"openapi": "shop.json"},
        "objects": {"order": {"routes": [
            {"method": "POST", "path": "/v2/orders", "operation": "create"}]}}}))
    connector = load_connector(tmp_path / "shop.yaml")
    assert any(route.path == "/v2/orders/{id}" for spec in connector.objects.values()
               for route in spec.routes)


def test_a_broken_derived_file_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "shop.json").write_text(json.dumps(DOCUMENT))
    (tmp_path / "derived.json").write_text(json.dumps({"objects": {"x": {"routes": [
        {"method": "GET", "path": "/x", "operation": "read"}]}}}))
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({
        "system": "Shop", "hosts": [HOST],
        "description": {"openapi": "shop.json", "derived": "derived.json"},
        "objects": {"order": {"routes": [
            {"method": "POST", "path": "/v2/orders", "operation": "create"}]}}}))
    with pytest.raises(ConnectorFileError, match=r"shop.yaml: field description.derived: .*"
                                                 r"derived.json: field x.routes.0.method"):
        load_connector(tmp_path / "shop.yaml")


@pytest.mark.parametrize("name", ["stripe", "github", "hubspot", "jira"])
def test_each_shipped_derived_file_is_a_fresh_derivation(name: str, tmp_path: Path) -> None:
    """No drift: the shipped file is what `hitl-proxy connectors derive` writes today."""
    shipped = (SCHEMAS_DIR / "derived" / f"{name}.json").read_text(encoding="utf-8")
    raw = yaml.safe_load((SCHEMAS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    files = raw["description"]["openapi"]
    files = [files] if isinstance(files, str) else files
    fresh = openapi.render(openapi.derive_objects(openapi.read_documents(
        [str(SCHEMAS_DIR / file) for file in files])))
    assert shipped == fresh, f"run: hitl-proxy connectors derive {name}"


def test_start_up_reads_the_derived_file_not_the_description(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(paths: list[str]) -> list[openapi.Spec]:
        raise AssertionError(f"start-up read a description: {paths}")

    monkeypatch.setattr(openapi, "read_documents", refuse)
    from connectors_schemas import load_connectors

    assert "Stripe" in {c.system for c in load_connectors().values()}


@pytest.mark.parametrize(("summary", "description", "read"), [
    ("Search invoices", "", True),
    ("Retrieve funding instructions", "If they do not yet exist, new funding instructions will "
     "be created.", False),  # Stripe: a read that creates is a write
    ("Get the report", "Generates the report on first call.", False),
    ("Get the report", "<p>Returns the report.</p>", True),
    ("Get and update the report", "", False),
])
def test_a_post_read_says_it_reads_and_nothing_in_its_text_says_it_changes(
        summary: str, description: str, read: bool) -> None:
    spec = openapi.Spec("t", {"openapi": "3.0.0", "paths": {}})
    op = openapi.Op("POST", "/v1/reports/{id}/fetch", {"summary": summary,
                                                       "description": description}, spec)
    assert openapi.is_documented_read(op) is read


@pytest.mark.parametrize(("path", "summary", "read"), [
    ("/v1/alerts/search", "Create a saved search", False),
    ("/v1/alerts/search", "Delete the saved search", False),
    ("/v1/index/search", "Reindex and search", False),
    ("/v1/contacts/batch/read", "Mark contacts as read", False),
    ("/v1/contacts/search", "", True),  # HubSpot's shape with no summary: a search
    ("/v1/contacts/search", "Search for contacts", True),
    ("/v1/contacts/batch/read", "Retrieve a batch of contacts", True),
])
def test_a_read_shaped_path_is_no_read_when_its_summary_names_a_change(
        path: str, summary: str, read: bool) -> None:
    """`.../search` and `.../batch/read` in a site's own description are reads only when its
    summary names no change: `POST /alerts/search` "Create a saved search" stores one."""
    spec = openapi.Spec("t", {"openapi": "3.0.0", "paths": {}})
    op = openapi.Op("POST", path, {"summary": summary}, spec)
    assert openapi.is_documented_read(op) is read


def test_a_derived_fetch_names_the_fields_sent_when_the_get_returns_only_those_asked_for() -> None:
    """HubSpot's GET answers default properties only: a clear of a property it left out would
    read as "no value" under empty_is_absent and be hidden, so the fetch asks for the fields."""
    connectors = {"hubspot": load_connector(SCHEMAS_DIR / "hubspot.yaml")}
    found = Matcher(connectors).classify(
        "PATCH", "api.hubapi.com", "/crm/objects/2026-03/contacts/101", [],
        b'{"properties": {"phone": "", "firstname": "Ada"}}', "application/json")
    assert found is not None and found.spec.empty_is_absent
    [fetch] = found.fetch_requests([])
    assert fetch.path == "/crm/objects/2026-03/contacts/101"
    assert fetch.query == [("properties", "firstname,phone")]
