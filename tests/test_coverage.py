"""The coverage report: how requests are instantiated from a description, and the floors the
shipped connectors must keep against the vendors' own descriptions (`connectors coverage`)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import graphql
import pytest
import yaml

from connectors_schemas import Connector, Matcher, Operation, load_connectors
from connectors_schemas.bodies import parse_form
from connectors_schemas.coverage import (
    Api,
    CoverageError,
    Report,
    builtin_apis,
    endpoints,
    graphql_expected,
    measure,
    mutation_probe,
    openapi_probe,
    read_description,
    read_graphql_schema,
    run,
    server_prefix,
    spec_api,
)
from proxy_addon.cli import main

# Today's numbers (percent, rounded down); the baseline at commit 71c784f is written down in
# docs/connector-coverage-before.md. Raise them as the connectors cover more; never lower them.
FLOOR: dict[str, dict[str, int]] = {
    "Stripe": {"named": 100, "right_operation": 96, "record_id": 100, "fetched": 98},
    "GitHub REST": {"named": 95, "right_operation": 91, "record_id": 94, "fetched": 92},
    "HubSpot": {"named": 97, "right_operation": 97, "record_id": 94, "fetched": 91},
    "HubSpot date-versioned": {"named": 98, "right_operation": 97, "record_id": 97,
                               "fetched": 92},
    "Jira Cloud": {"named": 98, "right_operation": 94, "record_id": 97, "fetched": 90},
    "Linear": {"named": 100, "right_operation": 91, "record_id": 100, "fetched": 90},
    "Shopify": {"named": 99, "right_operation": 86, "record_id": 98, "fetched": 93},
}

HOST = "api.widgets.test"
JSON_BODY = "application/json"


def _body(schema: dict[str, Any], media: str = JSON_BODY) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


WIDGET_ID = {"$ref": "#/components/parameters/WidgetId"}
TINY: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Widgets", "version": "1"},
    "servers": [{"url": "https://api.widgets.test/v2"}],
    "paths": {
        "/widgets": {
            "post": {"summary": "Create a widget",
                     "requestBody": _body({"$ref": "#/components/schemas/WidgetInput"})},
        },
        "/widgets/{widget_id}": {
            "parameters": [WIDGET_ID],
            "get": {"summary": "Get a widget"},
            "patch": {"summary": "Update a widget", "requestBody": _body({
                "type": "object", "properties": {"colour": {"type": "string"},
                                                 "size": {"type": "integer"}}})},
            "delete": {"summary": "Delete a widget"},
        },
        "/widgets/search": {
            "post": {"summary": "Search widgets", "requestBody": _body({
                "type": "object", "required": ["query"],
                "properties": {"query": {"type": "string"}}})},
        },
        "/widgets/{widget_id}/publish": {
            "parameters": [WIDGET_ID],
            "post": {"summary": "Publish a widget"},
        },
        "/shelves/{shelf}/widgets/{position}": {
            "put": {"summary": "Place a widget on a shelf", "parameters": [
                {"name": "shelf", "in": "path", "required": True,
                 "schema": {"type": "string", "example": "top"}},
                {"name": "position", "in": "path", "required": True,
                 "schema": {"type": "integer"}},
                {"name": "notify", "in": "query", "required": True,
                 "schema": {"type": "boolean"}},
                {"name": "trace", "in": "query", "schema": {"type": "string"}}]},
        },
        "/charges": {
            "post": {"summary": "Creates a charge", "requestBody": _body({
                "type": "object", "required": ["amount", "metadata", "items"],
                "properties": {
                    "amount": {"type": "integer"},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {
                        "type": "object", "required": ["price"],
                        "properties": {"price": {"type": "string", "example": "price_1"}}}},
                    "description": {"type": "string"}}},
                "application/x-www-form-urlencoded")},
        },
    },
    "components": {
        "parameters": {"WidgetId": {"name": "widget_id", "in": "path", "required": True,
                                    "schema": {"type": "string", "example": "wid_7"}}},
        "schemas": {
            "Named": {"type": "object", "required": ["name"],
                      "properties": {"name": {"type": "string"}}},
            "WidgetInput": {"allOf": [
                {"$ref": "#/components/schemas/Named"},
                {"type": "object", "required": ["size"],
                 "properties": {"size": {"type": "integer", "minimum": 3},
                                "colour": {"type": "string"}}}]},
        },
    },
}

WIDGETS = Connector.model_validate({
    "system": "Widgets", "hosts": [HOST], "base_path": "/v2",
    "objects": {"widget": {
        "fetch": {"path": "/widgets/{id}"},
        "routes": [
            {"method": "POST", "path": "/widgets/search", "operation": "read"},
            # A mistake on purpose: publishing changes the widget, yet this calls it a read.
            {"method": "POST", "path": "/widgets/{id}/publish", "operation": "read"},
            {"method": "POST", "path": "/widgets", "operation": "create"},
            {"method": "PATCH", "path": "/widgets/{id}", "operation": "update"},
            {"method": "DELETE", "path": "/widgets/{id}", "operation": "delete",
             "fetch": {"path": "/widget-archive/{id}"}},  # a fetch the API does not document
        ]},
        "charge": {"body": "form", "routes": [
            {"method": "POST", "path": "/charges", "operation": "create"}]}},
})


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "widgets.json"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return path


def _probes() -> dict[str, Any]:
    documents = (TINY,)
    return {e.label: openapi_probe(e, HOST, server_prefix(documents))
            for e in endpoints(documents)}


def _report(spec: Path) -> tuple[Report, dict[str, Any]]:
    report = measure(spec_api(spec, HOST), Matcher({"widgets": WIDGETS}))
    return report, report.numbers()


def test_path_parameters_are_filled_with_documented_or_distinct_values() -> None:
    probes = _probes()
    placed = probes["PUT /shelves/{shelf}/widgets/{position}"]
    assert placed.path == "/v2/shelves/top/widgets/101"  # the example, then a distinct integer
    assert placed.query == (("notify", "true"),)  # required query parameters only
    assert placed.record_id == "101" and placed.existing
    assert placed.expected == {Operation.update, Operation.upsert}
    patch = probes["PATCH /widgets/{widget_id}"]
    assert patch.path == "/v2/widgets/wid_7" and patch.record_id == "wid_7"  # from a $ref


def test_the_body_holds_the_required_fields_resolved_through_refs() -> None:
    probes = _probes()
    create = probes["POST /widgets"]
    assert create.content_type == JSON_BODY
    assert json.loads(create.body) == {"name": "example", "size": 3}  # allOf of a $ref, minimum
    assert create.expected == {Operation.create} and not create.existing
    assert create.record_id is None
    # Nothing required: one field is still sent, as an agent's update would.
    assert json.loads(probes["PATCH /widgets/{widget_id}"].body) == {"colour": "example"}
    publish = probes["POST /widgets/{widget_id}/publish"]
    assert publish.expected == {Operation.update, Operation.action} and publish.existing


def test_a_form_body_uses_bracketed_keys() -> None:
    charge = _probes()["POST /charges"]
    assert charge.content_type == "application/x-www-form-urlencoded"
    assert parse_qsl(charge.body.decode()) == [
        ("amount", "1"), ("metadata[example]", "example"), ("items[0][price]", "price_1")]
    assert parse_form(charge.body.decode()) == {
        "amount": "1", "metadata": {"example": "example"}, "items": [{"price": "price_1"}]}


def test_a_post_search_is_a_read_and_not_counted_as_a_write(tiny_spec: Path) -> None:
    probes = _probes()
    assert probes["POST /widgets/search"].documented_read
    assert not probes["POST /widgets"].documented_read
    _, numbers = _report(tiny_spec)
    assert numbers["post_reads"] == 1 and numbers["post_reads_held"] == []
    assert numbers["writes"] == len(probes) - 1 == 6


def test_writes_classified_as_reads_are_counted(tiny_spec: Path) -> None:
    _, numbers = _report(tiny_spec)
    assert numbers["writes_as_reads"] == ["POST /widgets/{widget_id}/publish"]


def test_named_record_id_and_documented_fetches(tiny_spec: Path) -> None:
    report, numbers = _report(tiny_spec)
    by_label = {outcome.probe.label: outcome for outcome in report.outcomes}
    patch = by_label["PATCH /widgets/{widget_id}"]
    assert patch.named and patch.right and patch.id_right and patch.fetched
    assert patch.fetch is not None and patch.fetch.path == "/v2/widgets/wid_7"
    delete = by_label["DELETE /widgets/{widget_id}"]
    assert delete.named and delete.fetch is not None and not delete.fetched  # undocumented
    assert by_label["POST /charges"].named
    unknown = by_label["PUT /shelves/{shelf}/widgets/{position}"]
    assert not unknown.named and not unknown.right and unknown.object_type is None
    # existing records: PATCH, DELETE, publish and the shelf; named right: PATCH and DELETE
    assert numbers["record_id"] == {"count": 2, "of": 4, "percent": 50.0}
    assert numbers["fetched"] == {"count": 1, "of": 4, "percent": 25.0}
    assert numbers["named"]["count"] == 4  # POST /widgets, PATCH, DELETE, POST /charges


def test_yaml_gzip_descriptions_are_read(tmp_path: Path) -> None:
    path = tmp_path / "widgets.yaml.gz"
    path.write_bytes(gzip.compress(yaml.safe_dump(TINY).encode()))
    (document,) = read_description(path)
    assert document["paths"].keys() == TINY["paths"].keys()


def test_a_hand_picked_call_missing_from_the_description_fails_loudly(tiny_spec: Path) -> None:
    api = Api("Widgets", "openapi", tiny_spec, HOST, common=("POST /widgets/{widget_id}/sell",))
    with pytest.raises(CoverageError, match="sell"):
        measure(api, Matcher({"widgets": WIDGETS}))


SDL = """
type Query { widget(id: ID!): Widget }
type Widget { id: ID! name: String }
input WidgetCreateInput { name: String! colour: String }
input WidgetUpdateInput { name: String }
type WidgetPayload { widget: Widget }
type WidgetDeletePayload { deletedWidgetId: ID }
type Mutation {
  widgetCreate(input: WidgetCreateInput!): WidgetPayload
  widgetUpdate(id: ID!, input: WidgetUpdateInput!): WidgetPayload
  widgetDelete(id: ID!): WidgetDeletePayload
  widgetsRecount: Boolean
}
"""


def test_a_mutation_is_a_valid_document_with_its_variables() -> None:
    schema = graphql.build_schema(SDL)
    fields = schema.mutation_type.fields  # type: ignore[union-attr]
    update = mutation_probe("widgetUpdate", fields["widgetUpdate"], HOST, "/graphql")
    body = json.loads(update.body)
    assert body["variables"]["input"] == {"name": "example"}
    assert update.record_id == body["variables"]["id"] and update.existing
    assert not graphql.validate(schema, graphql.parse(body["query"]))
    expected = {name: graphql_expected(field)[0] for name, field in fields.items()}
    assert expected == {"widgetCreate": {Operation.create},
                        "widgetUpdate": {Operation.update, Operation.upsert, Operation.action},
                        "widgetDelete": {Operation.delete},
                        "widgetsRecount": {Operation.action}}
    recount = json.loads(mutation_probe("widgetsRecount", fields["widgetsRecount"], HOST,
                                        "/graphql").body)
    assert recount["query"] == "mutation Coverage { widgetsRecount }"


def test_the_command_reports_a_sites_own_description(tiny_spec: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "coverage", "--spec", str(tiny_spec), "--host", HOST,
                 "--json"]) == 0
    (api,) = json.loads(capsys.readouterr().out)["apis"]
    assert api["api"] == "widgets" and api["writes"] == 6 and api["writes_as_reads"] == []
    assert main(["connectors", "coverage", "--spec", str(tiny_spec), "--host", HOST]) == 0
    assert capsys.readouterr().out.startswith("| API | writes | named |")
    assert main(["connectors", "coverage", "--spec", str(tiny_spec)]) == 2
    assert "--host" in capsys.readouterr().err
    assert main(["connectors", "coverage", "--spec", str(tiny_spec), "--host", HOST,
                 "--connector", "nope"]) == 2


# --- the shipped descriptions, parsed and classified once for the module --------------------


@pytest.fixture(scope="module")
def connectors() -> dict[str, Connector]:
    return load_connectors()


@pytest.fixture(scope="module")
def shipped(connectors: dict[str, Connector]) -> dict[str, dict[str, Any]]:
    return {report.name: report.numbers()
            for report in run(builtin_apis(connectors), Matcher(connectors))}


def test_every_shipped_api_is_reported(shipped: dict[str, dict[str, Any]]) -> None:
    assert list(shipped) == list(FLOOR)
    for numbers in shipped.values():
        assert numbers["writes"] > 100 and numbers["errors"] == []
        assert numbers["common_calls"], "each API shows its most common calls"


@pytest.mark.parametrize("name", list(FLOOR))
def test_no_documented_write_is_classified_as_a_read(
        shipped: dict[str, dict[str, Any]], name: str) -> None:
    assert shipped[name]["writes_as_reads"] == []


@pytest.mark.parametrize("name", list(FLOOR))
def test_coverage_keeps_its_floor(shipped: dict[str, dict[str, Any]], name: str) -> None:
    for measure_name, floor in FLOOR[name].items():
        share = shipped[name][measure_name]
        measured = math.floor(100 * share["count"] / share["of"]) if share["of"] else 0
        assert measured >= floor, f"{name} {measure_name}: {measured}% < floor {floor}%"


# Issue 14's targets, per REST API: named >= 95 %, old values fetched for >= 90 % of writes to
# an existing record, no write taken for a read, >= 95 % of documented POST reads passing.
REST_APIS = ("Stripe", "GitHub REST", "HubSpot", "HubSpot date-versioned", "Jira Cloud")


@pytest.mark.parametrize("name", REST_APIS)
def test_the_rest_apis_meet_the_issue_targets(shipped: dict[str, dict[str, Any]],
                                             name: str) -> None:
    numbers = shipped[name]
    assert numbers["named"]["percent"] >= 95, numbers["named"]
    assert numbers["fetched"]["percent"] >= 90, numbers["fetched"]
    assert numbers["writes_as_reads"] == []
    reads, held = numbers["post_reads"], len(numbers["post_reads_held"])
    assert reads == 0 or 100 * (reads - held) / reads >= 95, numbers["post_reads_held"]


@pytest.mark.parametrize("name", ["Linear", "Shopify"])
def test_the_graphql_apis_meet_the_issue_targets(shipped: dict[str, dict[str, Any]],
                                                name: str) -> None:
    """Named with object, operation and record id >= 95 %; a generated query that validates
    against the schema reads >= 90 % of writes to an existing record; no write is a read."""
    numbers = shipped[name]
    assert numbers["named"]["percent"] >= 95, numbers["named"]
    assert numbers["record_id"]["percent"] >= 95, numbers["record_id"]
    assert numbers["fetched"]["percent"] >= 90, numbers["fetched"]
    assert numbers["writes_as_reads"] == []


def test_a_state_changing_post_the_verb_calls_a_read_is_a_write() -> None:
    """Stripe's POST .../validate activates the domain's payment methods: held, and no read."""
    from connectors_schemas.coverage import STATE_CHANGING, documented_read

    label = "POST /v1/payment_method_domains/{payment_method_domain}/validate"
    assert "activate" in STATE_CHANGING[label]
    assert not documented_read("POST", label.split(" ", 1)[1], {"summary": "Validate"})
    assert documented_read("POST", "/v1/widgets/{id}/validate", {"summary": "Validate"})


@pytest.mark.parametrize("stem", ["linear", "shopify"])
def test_every_shipped_mutation_is_instantiated_as_a_valid_request(
        connectors: dict[str, Connector], stem: str) -> None:
    api = next(a for a in builtin_apis(connectors) if a.kind == "graphql"
               and a.description.name.startswith(stem))
    schema = read_graphql_schema(api.description)
    assert schema.mutation_type is not None
    for name, field in schema.mutation_type.fields.items():
        body = json.loads(mutation_probe(name, field, api.host, api.graphql_path).body)
        document = graphql.parse(body["query"])
        assert not graphql.validate(schema, document), name
        operation = document.definitions[0]
        assert isinstance(operation, graphql.OperationDefinitionNode)
        coerced = graphql.execution.values.get_variable_values(
            schema, operation.variable_definitions or [], body["variables"])
        assert not isinstance(coerced, list), (name, coerced)
