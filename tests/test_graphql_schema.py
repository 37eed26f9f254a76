"""GraphQL writes read from the vendors' shipped schemas (Linear SDL, Shopify introspection):
object, operation, record id, values and the generated query reading the record now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import graphql
import pytest

from connectors_schemas import Classification, Matcher, Operation
from connectors_schemas.graphql_schema import (
    DerivedGraphQL,
    GraphQLRead,
    derive_connector,
    derive_graphql,
    derived_for,
    load_schema,
    write_derived,
)
from connectors_schemas.loader import SCHEMAS_DIR, ConnectorFileError, load_connector

LINEAR_CONNECTOR = load_connector(SCHEMAS_DIR / "linear.yaml")
SHOPIFY_CONNECTOR = load_connector(SCHEMAS_DIR / "shopify.yaml")
GITHUB_CONNECTOR = load_connector(SCHEMAS_DIR / "github.yaml") if (
    SCHEMAS_DIR / "github.yaml").is_file() else None
MATCHER = Matcher({"linear": LINEAR_CONNECTOR, "shopify": SHOPIFY_CONNECTOR}
                  | ({"github": GITHUB_CONNECTOR} if GITHUB_CONNECTOR else {}))
LINEAR = ("api.linear.app", "/graphql")
SHOPIFY = ("acme.myshopify.com", "/admin/api/2026-07/graphql.json")
GITHUB = ("api.github.com", "/graphql")
PRODUCT = "gid://shopify/Product/8123456001"
ISSUE = "6f1c8c1e-2f4e-4c1a-9a43-8d1f3f7f3c11"


def classify(where: tuple[str, str], query: str, variables: dict[str, Any] | None = None,
             ) -> Classification:
    host, path = where
    body = {"query": query} | ({"variables": variables} if variables is not None else {})
    found = MATCHER.classify("POST", host, path, [], json.dumps(body).encode(),
                             "application/json")
    assert found is not None and not found.read
    assert found.body_problem is None, found.body_problem
    return found


def only(found: Classification) -> Any:
    [record] = found.records
    return record


def selected(read: GraphQLRead | None) -> set[str]:
    """The fields the generated query selects on the record, as `a` or `a.b`."""
    assert read is not None
    document = graphql.parse(read.query)
    [operation] = document.definitions
    [root] = operation.selection_set.selections  # type: ignore[attr-defined]
    found: set[str] = set()

    def walk(selection_set: Any, prefix: str) -> None:
        for node in selection_set.selections:
            if isinstance(node, graphql.InlineFragmentNode):
                walk(node.selection_set, prefix)
                continue
            name = prefix + node.name.value
            if node.selection_set is None:
                found.add(name)
            else:
                walk(node.selection_set, name + ".")

    walk(root.selection_set, "")
    return found


# -- the derived files ---------------------------------------------------------------------

@pytest.mark.parametrize("connector", [LINEAR_CONNECTOR, SHOPIFY_CONNECTOR],
                         ids=["linear", "shopify"])
def test_the_shipped_derived_file_is_what_the_schema_derives_today(connector: Any) -> None:
    description = connector.description
    assert description.graphql and description.graphql_derived
    shipped = json.loads(Path(description.graphql_derived).read_text(encoding="utf-8"))
    assert shipped == derive_graphql(description.graphql), (
        "run `hitl-proxy connectors derive` (or graphql_schema.derive_connector)")


@pytest.mark.parametrize(("connector", "floors"), [
    # mutations: named with an object / with a record id / with a generated read
    (LINEAR_CONNECTOR, (330, 255, 230)),
    (SHOPIFY_CONNECTOR, (470, 300, 295)),
], ids=["linear", "shopify"])
def test_how_much_of_each_schema_is_understood(connector: Any,
                                               floors: tuple[int, int, int]) -> None:
    derived = json.loads(Path(connector.description.graphql_derived).read_text())
    mutations, objects = derived["mutations"], derived["objects"]
    named = [name for name, entry in mutations.items() if "object" in entry]
    with_id = [name for name in named if mutations[name].get("ids")]
    with_read = [name for name in with_id if "read" in objects.get(mutations[name]["object"], {})]
    counts = (len(named), len(with_id), len(with_read))
    assert all(count >= floor for count, floor in zip(counts, floors, strict=True)), counts


@pytest.mark.parametrize("connector", [LINEAR_CONNECTOR, SHOPIFY_CONNECTOR],
                         ids=["linear", "shopify"])
def test_every_generated_read_is_valid_against_the_vendors_schema(connector: Any) -> None:
    """Each object's read, selecting every field its inputs map to, validates on the real
    schema: the fetch never fails because the proxy wrote a query the vendor rejects."""
    schema = load_schema(connector.description.graphql)
    derived = derived_for(connector.description)
    assert derived is not None

    def sample(fields: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, how in fields.items():
            if isinstance(how, dict) and "t" in how:
                nested = derived.objects.get(how["t"], {}).get("fields", {})
                if depth < 2 and nested:
                    values[name] = sample(nested, depth + 1)
            else:
                values[name] = "x"
        return values

    checked = 0
    for object_type, entry in derived.objects.items():
        if "read" not in entry:
            continue
        for operation in (Operation.update, Operation.delete):
            read, why = derived._read(object_type, "an-id", sample(entry.get("fields", {})),
                                      operation)
            assert read is not None, why
            errors = graphql.validate(schema, graphql.parse(read.query))
            assert not errors, (read.query, errors[0].message)
            checked += 1
    assert checked >= 100  # every object with a read, as an update and as a delete


def test_a_connector_with_a_schema_and_no_derived_file_derives_at_start_up(
        tmp_path: Path) -> None:
    sdl = tmp_path / "api.graphql"
    sdl.write_text("""
        type Ticket { id: ID! status: String assignee: User }
        type User { id: ID! }
        type TicketPayload { ticket: Ticket }
        input TicketUpdateInput { status: String assigneeId: ID }
        type Query { ticket(id: ID!): Ticket }
        type Mutation { ticketUpdate(id: ID!, input: TicketUpdateInput!): TicketPayload }
    """)
    (tmp_path / "desk.yaml").write_text(
        "system: Desk\nhosts: [desk.test]\ndescription: {graphql: api.graphql}\n"
        "objects:\n  graphql:\n    body: graphql\n"
        "    routes: [{method: POST, path: /graphql, operation: update}]\n")
    connector = load_connector(tmp_path / "desk.yaml")
    derived = derived_for(connector.description)
    assert derived is not None
    [write] = derived.writes("ticketUpdate", {"id": "T1", "input": {"status": "done",
                                                                      "assigneeId": "U2"}})
    assert (write.object_type, write.operation, write.record_id) == (
        "Ticket", Operation.update, "T1")
    assert write.read is not None and selected(write.read) == {"id", "status", "assignee.id"}
    # `hitl-proxy connectors derive` writes it where the connector's file says, or beside it
    target = derive_connector(tmp_path / "desk.yaml")
    assert target == tmp_path / "derived" / "desk.graphql.json"
    assert json.loads(target.read_text()) == derive_graphql(sdl)


def test_a_stale_derived_file_is_derived_again_and_a_broken_one_stops_the_start(
        tmp_path: Path) -> None:
    sdl = tmp_path / "api.graphql"
    sdl.write_text("type T { id: ID! n: Int } type TPayload { t: T } input TInput { n: Int }"
                   " type Query { t(id: ID!): T } type Mutation { tUpdate(id: ID!, input:"
                   " TInput): TPayload }")
    derived = tmp_path / "derived.json"
    write_derived({**derive_graphql(sdl), "mutations": {}}, derived)
    sdl.write_text(sdl.read_text() + " extend type Mutation { tCreate(input: TInput): TPayload }")
    (tmp_path / "t.yaml").write_text(
        "system: T\nhosts: [t.test]\n"
        "description: {graphql: api.graphql, graphql_derived: derived.json}\n"
        "objects:\n  graphql:\n    body: graphql\n"
        "    routes: [{method: POST, path: /graphql, operation: update}]\n")
    found = derived_for(load_connector(tmp_path / "t.yaml").description)
    assert found is not None and found.knows("tUpdate") and found.knows("tCreate")
    derived.write_text("{not json")
    shutil.copy(sdl, tmp_path / "other.graphql")  # a new path: not the cached one
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace(
        "api.graphql", "other.graphql"))
    with pytest.raises(ConnectorFileError, match=r"description\.graphql_derived"):
        load_connector(tmp_path / "t.yaml")


# -- Linear --------------------------------------------------------------------------------

def test_linear_issue_create_is_a_create_with_nothing_to_fetch() -> None:
    found = classify(LINEAR, 'mutation { issueCreate(input: {teamId: "T", title: "Crash"}) '
                             "{ success issue { id } } }")
    record = only(found)
    assert (record.object_type, record.operation, record.record_id, record.values) == (
        "Issue", Operation.create, None, {"teamId": "T", "title": "Crash"})
    assert record.read is None and found.fetch_requests([]) == []


def test_linear_issue_update_reads_exactly_the_fields_it_changes() -> None:
    found = classify(LINEAR, "mutation($id: String!, $state: String) { issueUpdate(id: $id, "
                             'input: {stateId: $state, title: "Crash on cold start"}) '
                             "{ success } }", {"id": ISSUE, "state": "S-done"})
    record = only(found)
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "Issue", Operation.update, ISSUE, None)
    assert record.values == {"stateId": "S-done", "title": "Crash on cold start"}
    assert selected(record.read) == {"id", "title", "state.id"}
    [fetch] = found.fetch_requests([("query", "mutation { x }")])  # the agent's URL is not kept
    assert (fetch.method, fetch.path, fetch.query, fetch.record_ids) == (
        "POST", "/graphql", [], [ISSUE])
    assert fetch.json_body["variables"] == {"id": ISSUE}
    assert "issue(id: $id)" in fetch.json_body["query"]
    answer = {"data": {"record": {"id": ISSUE, "title": "Crash", "state": {"id": "S-todo"}}}}
    # shown under the input's own names, so the reviewer sees `stateId: S-todo -> S-done`
    assert found.records_from(fetch, answer) == {
        ISSUE: {"id": ISSUE, "title": "Crash", "stateId": "S-todo"}}


def test_linear_label_and_subscriber_ids_read_back_as_lists_of_ids() -> None:
    found = classify(LINEAR, 'mutation { issueUpdate(id: "I", input: {labelIds: ["a"], '
                             'subscriberIds: ["u"], assigneeId: null}) { success } }')
    read = only(found).read
    assert selected(read) == {"id", "labelIds", "subscribers.nodes.id", "assignee.id"}
    assert "subscribers(first: 250)" in read.query
    record, why = read.record({"data": {"record": {
        "id": "I", "labelIds": ["b"], "subscribers": {"nodes": [{"id": "u1"}, {"id": "u2"}]},
        "assignee": None}}})
    assert why is None
    assert record == {"id": "I", "labelIds": ["b"], "subscriberIds": ["u1", "u2"],
                      "assigneeId": None}


@pytest.mark.parametrize("mutation", ["issueArchive", "issueUnarchive", "issueDelete"])
def test_linear_archive_unarchive_and_trash_are_named_actions_not_guessed(mutation: str) -> None:
    """All three answer `IssueArchivePayload { entity: Issue }`: the schema shows no deletion,
    so each is the action it is named, on the issue, and its current state is read: what names
    the issue to a person and the timestamps its state sets, so the reviewer sees what it acts
    on."""
    found = classify(LINEAR, f'mutation {{ {mutation}(id: "{ISSUE}") {{ success }} }}')
    record = only(found)
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "Issue", Operation.action, ISSUE, mutation)
    assert selected(record.read) == {"id", "identifier", "title", "archivedAt", "canceledAt",
                                     "completedAt", "startedAt", "triagedAt"}


def test_a_generic_delete_payload_is_a_delete_that_reads_what_is_lost() -> None:
    found = classify(LINEAR, 'mutation { issueLabelDelete(id: "L1") { success entityId } }')
    record = only(found)
    assert (record.object_type, record.operation, record.record_id) == (
        "IssueLabel", Operation.delete, "L1")
    assert {"id", "name", "color"} <= selected(record.read)


def test_linear_issue_add_label_is_an_action_on_the_issue_naming_the_label() -> None:
    found = classify(LINEAR, f'mutation {{ issueAddLabel(id: "{ISSUE}", labelId: "L-bug") '
                             "{ success } }")
    record = only(found)
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "Issue", Operation.action, ISSUE, "issueAddLabel")
    assert record.values == {"labelId": "L-bug"}


def test_linear_comment_create_is_a_create_of_a_comment() -> None:
    found = classify(LINEAR, 'mutation { commentCreate(input: {issueId: "I", body: "On it"}) '
                             "{ success } }")
    record = only(found)
    assert (record.object_type, record.operation, record.record_id, record.values) == (
        "Comment", Operation.create, None, {"issueId": "I", "body": "On it"})


def test_a_client_chosen_id_on_a_create_is_an_upsert_the_fetch_decides() -> None:
    found = classify(LINEAR, f'mutation {{ issueCreate(input: {{id: "{ISSUE}", teamId: "T", '
                             'title: "x"}) { success } }')
    record = only(found)
    assert (record.operation, record.record_id, record.values) == (
        Operation.upsert, ISSUE, {"teamId": "T", "title": "x"})
    assert selected(record.read) == {"id", "title", "team.id"}


def test_linear_batch_update_is_one_record_per_id() -> None:
    found = classify(LINEAR, 'mutation { issueBatchUpdate(ids: ["a", "b"], input: '
                             "{priority: 1}) { success } }")
    assert [(r.object_type, r.operation, r.record_id, r.values) for r in found.records] == [
        ("Issue", Operation.update, "a", {"priority": 1}),
        ("Issue", Operation.update, "b", {"priority": 1})]
    assert [fetch.record_ids for fetch in found.fetch_requests([])] == [["a"], ["b"]]


# -- Shopify -------------------------------------------------------------------------------

def test_shopify_product_update_finds_the_id_inside_the_product_input() -> None:
    found = classify(SHOPIFY, "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) "
                              "{ product { id } userErrors { message } } }",
                     {"p": {"id": PRODUCT, "title": "Snowboard Pro", "seo": {"title": "S"}}})
    record = only(found)
    # the schema makes `product.id` optional (a handle may name the product instead), so the
    # fetched record decides between update and create
    assert (record.object_type, record.operation, record.record_id) == (
        "Product", Operation.upsert, PRODUCT)
    assert record.values == {"title": "Snowboard Pro", "seo": {"title": "S"}}
    assert selected(record.read) == {"id", "title", "seo.title"}
    assert "product(id: $id)" in record.read.query
    [fetch] = found.fetch_requests([])
    assert fetch.path == "/admin/api/2026-07/graphql.json"


def test_shopify_product_update_with_the_older_input_argument() -> None:
    found = classify(SHOPIFY, f'mutation {{ productUpdate(input: {{id: "{PRODUCT}", '
                              'status: DRAFT, tags: ["sale"]}) { product { id } } }')
    record = only(found)
    assert (record.object_type, record.record_id, record.values) == (
        "Product", PRODUCT, {"status": "DRAFT", "tags": ["sale"]})
    assert selected(record.read) == {"id", "status", "tags"}


def test_shopify_product_create_and_delete() -> None:
    created = only(classify(SHOPIFY, 'mutation { productCreate(product: {title: "Board"}) '
                                     "{ product { id } } }"))
    assert (created.object_type, created.operation, created.record_id, created.read) == (
        "Product", Operation.create, None, None)
    deleted = only(classify(SHOPIFY, f'mutation {{ productDelete(input: {{id: "{PRODUCT}"}}) '
                                     "{ deletedProductId } }"))
    assert (deleted.object_type, deleted.operation, deleted.record_id, deleted.values) == (
        "Product", Operation.delete, PRODUCT, None)
    assert {"id", "title", "status", "vendor", "handle"} <= selected(deleted.read)


def test_shopify_order_and_customer_updates() -> None:
    order = only(classify(SHOPIFY, "mutation($input: OrderInput!) { orderUpdate(input: $input) "
                                   "{ order { id } } }",
                          {"input": {"id": "gid://shopify/Order/1", "note": "gift",
                                     "shippingAddress": {"city": "Lyon"}}}))
    assert (order.object_type, order.operation, order.record_id) == (
        "Order", Operation.update, "gid://shopify/Order/1")  # OrderInput.id is required
    assert selected(order.read) == {"id", "note", "shippingAddress.city"}
    customer = only(classify(SHOPIFY, 'mutation { customerUpdate(input: {id: '
                                      '"gid://shopify/Customer/7", firstName: "Ada", '
                                      'tags: ["vip"]}) { customer { id } } }'))
    assert (customer.object_type, customer.record_id, customer.values) == (
        "Customer", "gid://shopify/Customer/7", {"firstName": "Ada", "tags": ["vip"]})
    assert customer.operation is Operation.upsert  # CustomerInput serves customerCreate too
    assert selected(customer.read) == {"id", "firstName", "tags"}


def test_shopify_inventory_adjustment_creates_an_adjustment_group() -> None:
    record = only(classify(SHOPIFY, "mutation($input: InventoryAdjustQuantitiesInput!) { "
                                    "inventoryAdjustQuantities(input: $input) { userErrors "
                                    "{ message } } }",
                           {"input": {"name": "available", "reason": "correction", "changes": [
                               {"delta": -1, "inventoryItemId": "gid://shopify/InventoryItem/3",
                                "locationId": "gid://shopify/Location/4"}]}}))
    assert (record.object_type, record.operation, record.record_id) == (
        "InventoryAdjustmentGroup", Operation.create, None)
    assert record.values["changes"][0]["delta"] == -1


def test_shopify_tags_add_names_a_node_and_reads_it_through_node() -> None:
    record = only(classify(SHOPIFY, f'mutation {{ tagsAdd(id: "{PRODUCT}", tags: ["x"]) '
                                    "{ node { id } } }"))
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "Node", Operation.action, PRODUCT, "tagsAdd")
    assert "node(id: $id)" in record.read.query


def test_shopify_order_cancel_is_an_action_on_the_order_its_order_id_names() -> None:
    record = only(classify(SHOPIFY, 'mutation { orderCancel(orderId: "gid://shopify/Order/1", '
                                    "reason: CUSTOMER, restock: true) { job { id } } }"))
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "Order", Operation.action, "gid://shopify/Order/1", "orderCancel")


def test_shopify_bulk_variant_update_is_one_record_per_variant() -> None:
    found = classify(SHOPIFY, 'mutation { productVariantsBulkUpdate(productId: "P", variants: '
                              '[{id: "V1", price: "10.00"}, {id: "V2", price: "12.00"}]) '
                              "{ productVariants { id } } }")
    assert [(r.object_type, r.record_id, r.values) for r in found.records] == [
        ("ProductVariant", "V1", {"price": "10.00"}), ("ProductVariant", "V2", {"price": "12.00"})]
    assert all(selected(r.read) == {"id", "price"} for r in found.records)


# -- documents -----------------------------------------------------------------------------

def test_variables_and_inline_literals_read_the_same() -> None:
    inline = only(classify(LINEAR, f'mutation {{ issueUpdate(id: "{ISSUE}", input: '
                                   '{title: "T", priority: 2}) { success } }'))
    whole = only(classify(LINEAR, "mutation($id: String!, $input: IssueUpdateInput!) { "
                                  "issueUpdate(id: $id, input: $input) { success } }",
                          {"id": ISSUE, "input": {"title": "T", "priority": 2}}))
    nested = only(classify(LINEAR, "mutation($id: String!, $t: String, $p: Int) { "
                                   "issueUpdate(id: $id, input: {title: $t, priority: $p}) "
                                   "{ success } }", {"id": ISSUE, "t": "T", "p": 2}))
    assert inline == whole == nested


def test_a_variable_the_request_does_not_send_is_absent() -> None:
    record = only(classify(LINEAR, "mutation($id: String!, $t: String) { issueUpdate(id: $id, "
                                   'input: {title: $t, priority: 1}) { success } }', {}))
    assert (record.operation, record.record_id, record.values) == (
        Operation.update, None, {"priority": 1})
    assert record.read is None


def test_aliases_and_two_mutations_in_one_document() -> None:
    found = classify(SHOPIFY, f'mutation {{ first: productUpdate(product: {{id: "{PRODUCT}", '
                              'title: "A"}) { product { id } } second: productDelete(input: '
                              '{id: "gid://shopify/Product/2"}) { deletedProductId } }')
    assert [(r.object_type, r.operation, r.record_id) for r in found.records] == [
        ("Product", Operation.upsert, PRODUCT),
        ("Product", Operation.delete, "gid://shopify/Product/2")]
    fetches = found.fetch_requests([])
    assert [fetch.record_ids for fetch in fetches] == [[PRODUCT], ["gid://shopify/Product/2"]]
    assert found.object_type == "Product"


def test_a_field_the_schema_lacks_is_held_as_the_action_it_is_named() -> None:
    record = only(classify(LINEAR, 'mutation { issueTeleport(id: "I-1") { ok } }'))
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        "issueTeleport", Operation.action, "I-1", "issueTeleport")
    assert record.read is None


def test_a_subscription_is_held_as_an_action() -> None:
    found = classify(LINEAR, "subscription { issueChanged { id } }")
    assert [(r.operation, r.action, r.read) for r in found.records] == [
        (Operation.action, "issueChanged", None)]
    assert found.unfetchable == "a subscription changes no record to read"


@pytest.mark.skipif(GITHUB_CONNECTOR is None, reason="no GitHub connector")
@pytest.mark.parametrize("mutation", ["addLabelsToLabelable", "deleteIssue", "updateIssue",
                                      "createIssue"])
def test_github_graphql_without_a_schema_names_actions_and_guesses_nothing(
        mutation: str) -> None:
    record = only(classify(GITHUB, f'mutation {{ {mutation}(input: {{id: "I_1", x: 1}}) '
                                   "{ clientMutationId } }"))
    assert (record.object_type, record.operation, record.record_id, record.action) == (
        mutation, Operation.action, "I_1", mutation)
    assert record.read is None


# -- answers -------------------------------------------------------------------------------

def read_of(found: Classification) -> GraphQLRead:
    read = only(found).read
    assert read is not None
    return read


@pytest.mark.parametrize(("answer", "expected"), [
    ({"data": {"record": None}}, (None, None)),  # null without an error: no such record
    ({"errors": [{"message": "Entity not found: Issue canary-secret-title",
                  "extensions": {"code": "INPUT_ERROR"}}], "data": None},
     (None, "the upstream answered the generated GraphQL read with 1 error (INPUT_ERROR)")),
    ({"errors": [{"message": "canary"}, {"message": "x", "extensions": {"code": "a b!"}}]},
     (None, "the upstream answered the generated GraphQL read with 2 errors")),
    ("not json object", (None, "the upstream's answer to the generated GraphQL read is not an "
                               "object")),
    ({"data": {"record": ["x"]}}, (None, "the upstream's answer to the generated GraphQL read "
                                         "holds no record")),
    ({"data": None}, (None, "the upstream's answer to the generated GraphQL read holds no "
                            "record")),  # no data and no error is no proof of absence
])
def test_an_error_or_a_null_record_leaves_old_values_unknown_and_quotes_nothing(
        answer: Any, expected: tuple[Any, Any]) -> None:
    read = read_of(classify(LINEAR, f'mutation {{ issueUpdate(id: "{ISSUE}", input: '
                                    '{title: "t"}) { success } }'))
    assert read.record(answer) == expected


def test_a_node_read_that_names_another_type_is_unknown() -> None:
    derived = derived_for(SHOPIFY_CONNECTOR.description)
    assert derived is not None
    via_node = [name for name, entry in derived.objects.items()
                if entry.get("read", {}).get("fragment")]
    assert via_node, "some Shopify objects are read only through node(id:)"
    read, _ = derived._read(via_node[0], "gid://shopify/Product/1", {}, Operation.action)
    assert read is not None and f"... on {via_node[0]}" in read.query
    assert read.record({"data": {"record": {"__typename": "Product"}}}) == (
        None, f"the id names a Product, not a {via_node[0]}")


def test_derived_lookups_need_no_schema_at_run_time() -> None:
    derived = DerivedGraphQL({"mutations": {"thingUpdate": {
        "object": "Thing", "ids": [{"path": "id", "required": True}],
        "values": [{"arg": "input", "id": False}]}},
        "objects": {"Thing": {"read": {"field": "thing", "type": "ID!"},
                              "fields": {"name": "name"}}}})
    [write] = derived.writes("thingUpdate", {"id": 7, "input": {"name": "n", "other": 1}})
    assert (write.operation, write.record_id) == (Operation.update, "7")
    assert write.read is not None
    assert write.read.query == ("query HitlProxyRead($id: ID!) { record: thing(id: $id) "
                                "{ id name } }")


def test_a_record_named_only_by_its_id_arguments_description_is_read() -> None:
    """`oauthApplicationArchive(id:)` answers only `success`: "The identifier of the OAuth
    application to archive" names the type, read by `oauthApplication(id:)`; Shopify's
    `themeDelete(id:)` ("The ID of the theme") deletes the one `...Theme` type, as its payload's
    `deletedThemeId` says; "The identifier of the team key" names no type: not a Team."""
    record = only(classify(LINEAR, 'mutation { oauthApplicationArchive(id: "A1") { success } }'))
    assert (record.object_type, record.operation, record.record_id) == (
        "OAuthApplication", Operation.action, "A1")
    assert "oauthApplication(id: $id)" in record.read.query and "name" in selected(record.read)
    record = only(classify(SHOPIFY, 'mutation { themeDelete(id: "gid://shopify/OnlineStoreTheme/1")'
                                    " { deletedThemeId } }"))
    assert (record.object_type, record.operation) == ("OnlineStoreTheme", Operation.delete)
    record = only(classify(LINEAR, 'mutation { teamKeyDelete(id: "K1") { success } }'))
    assert record.object_type == "teamKeyDelete" and record.read is None


def test_an_interface_of_nodes_and_a_root_field_without_id_are_read() -> None:
    found = classify(SHOPIFY, f'mutation {{ publishablePublishToCurrentChannel(id: "{PRODUCT}")'
                              " { userErrors { message } } }")
    read = only(found).read
    assert read is not None and "... on Publishable { ... on Node { id }" in read.query
    record, why = read.record({"data": {"record": {"__typename": "Product", "id": PRODUCT}}})
    assert why is None and record == {"id": PRODUCT}
    read = only(classify(LINEAR, 'mutation { userSettingsUpdate(id: "S1", input: '
                                 '{subscribedToChangelog: true}) { success } }')).read
    assert read is not None and read.variables == {} and "record: userSettings {" in read.query
    assert read.record({"data": {"record": {"id": "S1", "subscribedToChangelog": False}}}) == (
        {"id": "S1", "subscribedToChangelog": False}, None)
    record, why = read.record({"data": {"record": {"id": "S2"}}})
    assert record is None and "caller's own UserSettings" in (why or "")


def test_an_id_under_its_own_name_is_the_record_the_payload_answers() -> None:
    draft = "gid://shopify/SubscriptionDraft/7"
    record = only(classify(SHOPIFY, f'mutation {{ subscriptionDraftLineRemove(draftId: "{draft}",'
                                    ' lineId: "L") { userErrors { message } } }'))
    assert (record.object_type, record.record_id) == ("SubscriptionDraft", draft)
    assert record.read is not None and record.read.variables == {"id": draft}


def test_shopify_customer_address_update_is_the_address_not_the_customer() -> None:
    """customerAddressUpdate(customerId, addressId, address) changes the address: shown as the
    customer's own firstName and phone (read from the customer) it misled the reviewer."""
    address = "gid://shopify/MailingAddress/9?model_name=CustomerAddress"
    record = only(classify(SHOPIFY, 'mutation { customerAddressUpdate(customerId: '
                           '"gid://shopify/Customer/1", addressId: "' + address + '", '
                           'address: {firstName: "Bob", phone: "+15550100"}) '
                           '{ userErrors { message } } }'))
    assert (record.object_type, record.operation, record.record_id) == (
        "MailingAddress", Operation.update, address)
    assert record.values == {"firstName": "Bob", "phone": "+15550100"}
    assert record.read is not None and record.read.record_id == address
    assert "... on MailingAddress" in record.read.query
    assert selected(record.read) >= {"firstName", "phone"}


def test_shopify_customer_address_create_is_a_create_of_an_address() -> None:
    record = only(classify(SHOPIFY, 'mutation { customerAddressCreate(customerId: '
                           '"gid://shopify/Customer/1", address: {city: "Oslo"}) '
                           '{ userErrors { message } } }'))
    assert (record.object_type, record.operation, record.record_id) == (
        "MailingAddress", Operation.create, None)


@pytest.mark.parametrize(("where", "document"), [
    (SHOPIFY, 'mutation { collectionUpdate(collection: {id: "gid://shopify/Collection/1", '
              'title: "A"}, input: {id: "gid://shopify/Collection/2", title: "A"}) '
              '{ userErrors { message } } }'),
    (LINEAR, 'mutation { customerNeedUpdate(id: "N-1", input: {id: "N-2", body: "x"}) '
             '{ success } }'),
    (SHOPIFY, 'mutation { draftOrderBulkDelete(savedSearchId: "gid://shopify/SavedSearch/1", '
              'ids: ["gid://shopify/DraftOrder/7"]) { job { id } } }'),
])
def test_a_record_named_in_two_places_as_two_records_is_a_problem(
        where: tuple[str, str], document: str) -> None:
    """The reviewer saw the first place's record while the vendor may act on the other."""
    host, path = where
    found = MATCHER.classify("POST", host, path, [], json.dumps({"query": document}).encode(),
                             "application/json")
    assert found is not None and not found.read
    assert found.body_problem is not None and "may act on either" in found.body_problem


def test_the_same_record_named_in_both_places_is_no_problem() -> None:
    found = classify(LINEAR, 'mutation { customerNeedUpdate(id: "N-1", input: {id: "N-1", '
                     'body: "x"}) { success } }')
    assert only(found).record_id == "N-1"
