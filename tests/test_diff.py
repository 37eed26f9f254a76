from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch
import pytest

from connectors_schemas import (
    Classification,
    Matcher,
    ObjectSpec,
    Operation,
    RecordWrite,
    Route,
    UpdateSemantics,
    load_connectors,
)
from proxy_addon.diff import Diff, FieldChange, compute_diff, diff_record, leaves, same_json
from proxy_addon.edits import EditError, rewrite
from proxy_addon.revert import RevertError, inverse
from proxy_addon.sealing import HeldRequest
from review_api.models import Approval, Change, Status

CURRENT = {
    "id": 1,
    "status": "open",
    "tags": ["printer", "urgent"],
    "address": {"city": "Berlin", "zip": "10115", "geo": {"lat": 52.5}},
    "priority": None,
}


def test_update_merge_reports_only_sent_fields_that_change() -> None:
    proposed = {"status": "solved", "address": {"city": "Hamburg"}, "priority": None}
    diff = compute_diff(Operation.update, CURRENT, proposed)
    assert diff.changes == [
        FieldChange("status", "open", "solved"),
        FieldChange("address.city", "Berlin", "Hamburg"),
    ]
    assert jsonpatch.apply_patch(CURRENT, diff.patch) == {
        **CURRENT, "status": "solved", "address": {**CURRENT["address"], "city": "Hamburg"},
    }


def test_nested_paths_are_dotted_and_new_nested_fields_have_old_none() -> None:
    diff = compute_diff(Operation.update, CURRENT, {"address": {"geo": {"lng": 13.4}}})
    assert diff.changes == [FieldChange("address.geo.lng", None, 13.4)]


def test_arrays_are_replaced_whole() -> None:
    diff = compute_diff(Operation.update, CURRENT, {"tags": ["printer"]})
    assert diff.changes == [FieldChange("tags", ["printer", "urgent"], ["printer"])]
    assert jsonpatch.apply_patch(CURRENT, diff.patch)["tags"] == ["printer"]
    assert compute_diff(Operation.update, CURRENT, {"tags": ["printer", "urgent"]}).changes == []


def test_type_changes_are_changes() -> None:
    current = {"flag": 1, "count": 1, "ratio": 1}
    diff = compute_diff(Operation.update, current, {"flag": True, "count": "1", "ratio": 1.0})
    assert [change.field for change in diff.changes] == ["flag", "count"]
    assert same_json(1, 1.0) and not same_json(True, 1) and not same_json([1], (1,))


def test_replace_semantics_show_omitted_fields_going_to_null() -> None:
    diff = compute_diff(Operation.update, {"id": 1, "name": "A", "memo": "x"},
                        {"id": 1, "name": "B"}, UpdateSemantics.replace)
    assert diff.changes == [FieldChange("name", "A", "B"), FieldChange("memo", "x", None)]


def test_create_has_old_none_for_every_field() -> None:
    diff = compute_diff(Operation.create, None, {"subject": "Hi", "via": {"channel": "api"}})
    assert diff.changes == [FieldChange("subject", None, "Hi"),
                            FieldChange("via.channel", None, "api")]
    assert jsonpatch.apply_patch({}, diff.patch) == {"subject": "Hi", "via": {"channel": "api"}}


def test_delete_has_new_none_for_every_field() -> None:
    diff = compute_diff(Operation.delete, CURRENT, None)
    assert {change.field for change in diff.changes} == set(leaves(CURRENT))
    assert all(change.new is None for change in diff.changes)
    assert diff.patch == [{"op": "remove", "path": ""}]


def test_unknown_current_record_shows_old_none_and_no_patch() -> None:
    diff = compute_diff(Operation.update, None, {"status": "solved"})
    assert diff.changes == [FieldChange("status", None, "solved")]
    assert diff.patch == []


def test_leaves_keep_empty_objects_and_lists_as_values() -> None:
    assert leaves({"a": {}, "b": [], "c": {"d": {}}}) == {"a": {}, "b": [], "c.d": {}}


# --- empty_is_absent: a vendor that stores null, "", {} and [] as nothing (QuickBooks) -----

def _empty_is_absent(current: dict[str, Any], proposed: dict[str, Any],
                     semantics: UpdateSemantics = UpdateSemantics.replace) -> Diff:
    """The diff under the flag, checked: each patch operation is for a shown change, and the
    patch turns current into the shown new values."""
    diff = compute_diff(Operation.update, current, proposed, semantics, empty_is_absent=True)
    shown = ["/" + change.field.replace(".", "/") for change in diff.changes]
    for op in diff.patch:
        assert any(field == op["path"] or field.startswith(op["path"] + "/")
                   for field in shown), (op, diff.changes)
    patched = jsonpatch.apply_patch(current, diff.patch)
    for change in diff.changes:
        node: Any = patched
        for part in change.field.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        assert same_json(node, change.new), (change, patched)
    return diff


def _spec(**fields: Any) -> ObjectSpec:
    return ObjectSpec(routes=[Route(method="POST", path="/customer", operation=Operation.update,
                                    id_from_body="Id")], id_field="Id", **fields)


SDK_FULL_UPDATE = {  # python-quickbooks' Customer.save(): every field, unset ones as ""
    "Id": "58", "DisplayName": "Tern", "CompanyName": "Tern & Sons", "Title": "", "Notes": "",
    "MiddleName": "", "Suffix": "", "PrimaryPhone": {"FreeFormNumber": "(650) 555-0100"},
    "BillAddr": {"Line1": "12 Harbour Rd", "Line2": "", "City": "Bayshore", "Lat": ""},
    "CurrencyRef": {"value": "USD", "name": "United States Dollar", "type": ""},
}
STORED = {
    "Id": "58", "DisplayName": "Tern", "CompanyName": "Tern",
    "PrimaryPhone": {"FreeFormNumber": "(650) 555-0100"},
    "BillAddr": {"Line1": "12 Harbour Rd", "City": "Bayshore"},
    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
}


def test_empty_values_for_fields_the_record_lacks_are_no_change() -> None:
    diff = _empty_is_absent(STORED, SDK_FULL_UPDATE)
    assert diff.changes == [FieldChange("CompanyName", "Tern", "Tern & Sons")]
    assert diff.patch == [{"op": "replace", "path": "/CompanyName", "value": "Tern & Sons"}]


def test_null_empty_string_empty_object_and_empty_list_are_all_nothing() -> None:
    current = {"a": None, "b": "", "c": {}, "d": [], "e": {"f": ""}}
    proposed = {"a": "", "b": None, "c": [], "d": {}, "e": None, "g": {"h": {"i": ""}}, "j": []}
    diff = _empty_is_absent(current, proposed)
    assert diff == Diff([], [])
    assert _empty_is_absent(current, {}) == Diff([], [])
    assert _empty_is_absent(current, proposed, UpdateSemantics.merge) == Diff([], [])


def test_clearing_a_value_the_record_has_is_still_a_change() -> None:
    current = {"Notes": "VIP", "Memo": "call first", "Qty": 0, "Active": False, "Tags": ["a"]}
    diff = _empty_is_absent(current, {"Notes": "", "Qty": "", "Tags": []})
    assert diff.changes == [FieldChange("Notes", "VIP", ""),
                            FieldChange("Memo", "call first", None), FieldChange("Qty", 0, ""),
                            FieldChange("Active", False, None), FieldChange("Tags", ["a"], [])]
    assert [op["op"] for op in diff.patch] == ["replace", "remove", "replace", "remove", "replace"]
    sparse = _empty_is_absent(current, {"Notes": "", "Title": ""}, UpdateSemantics.merge)
    assert sparse.changes == [FieldChange("Notes", "VIP", "")]
    assert sparse.patch == [{"op": "replace", "path": "/Notes", "value": ""}]


def test_nested_objects_collapse_the_same_way() -> None:
    current = {"BillAddr": {"Line1": "1 Main", "City": "Bay"}, "ShipAddr": {}}
    diff = _empty_is_absent(current, {
        "BillAddr": {"Line1": "1 Main", "City": "", "Line2": "", "Lat": ""},
        "ShipAddr": {"Line1": ""}, "Fax": {}})
    assert diff.changes == [FieldChange("BillAddr.City", "Bay", "")]
    assert diff.patch == [{"op": "replace", "path": "/BillAddr/City", "value": ""}]
    gone = _empty_is_absent(current, {"BillAddr": None})  # a full update without the address
    assert gone.changes == [FieldChange("BillAddr.Line1", "1 Main", None),
                            FieldChange("BillAddr.City", "Bay", None)]
    assert jsonpatch.apply_patch(current, gone.patch)["BillAddr"] == {}


def test_a_new_object_is_shown_and_added_without_its_empty_fields() -> None:
    added = _empty_is_absent({}, {"BillAddr": {"Line1": "5 Elm", "Line2": "", "Geo": {}}})
    assert added.changes == [FieldChange("BillAddr.Line1", None, "5 Elm")]
    assert added.patch == [{"op": "add", "path": "/BillAddr", "value": {"Line1": "5 Elm"}}]
    over_null = _empty_is_absent({"BillAddr": None}, {"BillAddr": {"Line1": "5 Elm", "City": ""}})
    assert over_null.changes == [FieldChange("BillAddr.Line1", None, "5 Elm")]
    assert over_null.patch == [{"op": "replace", "path": "/BillAddr", "value": {"Line1": "5 Elm"}}]


def test_list_items_are_compared_without_their_empty_fields() -> None:
    current = {"Line": [{"Amount": 100.0, "DetailType": "SubTotalLineDetail"}]}
    same = {"Line": [{"Amount": 100.0, "DetailType": "SubTotalLineDetail", "LinkedTxn": [],
                      "SubTotalLineDetail": {}, "Description": ""}], "CustomField": []}
    assert _empty_is_absent(current, same) == Diff([], [])
    more = {"Line": [{"Amount": 120.0, "DetailType": "SubTotalLineDetail", "LinkedTxn": []}]}
    diff = _empty_is_absent(current, more)
    new_line = [{"Amount": 120.0, "DetailType": "SubTotalLineDetail"}]
    assert diff.changes == [FieldChange("Line", current["Line"], new_line)]
    assert diff.patch == [{"op": "replace", "path": "/Line", "value": new_line}]


def test_creates_and_deletes_leave_out_empty_fields_and_unknown_old_values_do_not() -> None:
    create = compute_diff(Operation.create, None, {"Name": "A", "Notes": "", "Addr": {"L": ""},
                                                   "Tags": [], "Lines": [{"x": 1, "y": ""}]},
                          empty_is_absent=True)
    assert create.changes == [FieldChange("Name", None, "A"),
                              FieldChange("Lines", None, [{"x": 1}])]
    assert jsonpatch.apply_patch({}, create.patch) == {"Name": "A", "Lines": [{"x": 1}]}
    delete = compute_diff(Operation.delete, {"Name": "A", "Notes": "", "Addr": {}}, None,
                          empty_is_absent=True)
    assert delete.changes == [FieldChange("Name", "A", None)]
    unknown = compute_diff(Operation.update, None, {"Notes": ""}, empty_is_absent=True)
    assert unknown.changes == [FieldChange("Notes", None, "")]  # "" may be clearing a value


def test_without_the_flag_empty_values_are_changes_as_before() -> None:
    diff = compute_diff(Operation.update, STORED, SDK_FULL_UPDATE, UpdateSemantics.replace)
    assert len(diff.changes) == 8
    assert FieldChange("Title", None, "") in diff.changes
    assert FieldChange("BillAddr.Lat", None, "") in diff.changes
    assert {"op": "add", "path": "/Title", "value": ""} in diff.patch
    plain = _spec(update=UpdateSemantics.replace)
    record = RecordWrite("customer", Operation.update, "58", SDK_FULL_UPDATE)
    assert diff_record(plain, record, STORED, Operation.update, {}, SDK_FULL_UPDATE) == diff
    flagged = _spec(update=UpdateSemantics.replace, empty_is_absent=True)
    assert diff_record(flagged, record, STORED, Operation.update, {}, SDK_FULL_UPDATE).changes == [
        FieldChange("CompanyName", "Tern", "Tern & Sons")]


def test_shipped_quickbooks_full_update_shows_only_the_real_change() -> None:
    spec = load_connectors()["quickbooks"].objects["entity"]
    assert spec.empty_is_absent
    body = {**SDK_FULL_UPDATE, "SyncToken": "0", "sparse": False, "IsProject": False,
            "Level": 0, "BalanceWithJobs": 0, "OpenBalanceDate": ""}
    record = RecordWrite("customer", Operation.update, "58", body)
    diff = diff_record(spec, record, {**STORED, "SyncToken": "0"}, Operation.update, {}, body)
    assert diff.changes == [FieldChange("CompanyName", "Tern", "Tern & Sons")]
    assert diff.patch == [{"op": "replace", "path": "/CompanyName", "value": "Tern & Sons"}]


def test_stripe_form_empty_value_still_unsets() -> None:
    spec = load_connectors()["stripe"].objects["customer"]
    assert not spec.empty_is_absent  # Stripe's form "" already unsets (read as null)
    record = RecordWrite("customer", Operation.update, "cus_1", {"description": ""})
    cleared = diff_record(spec, record, {"description": "VIP"}, Operation.update, {}, None)
    assert cleared.changes == [FieldChange("description", "VIP", None)]
    unset = diff_record(spec, record, {"description": None}, Operation.update, {}, None)
    assert unset.changes == []


# --- Stripe: keyed list items, expandable references, request parameters, DELETE query ----

STRIPE = Matcher({"stripe": load_connectors()["stripe"]})
PRICE_A = {"id": "price_A", "object": "price", "unit_amount": 1000, "currency": "usd"}
SUBSCRIPTION = {
    "id": "sub_1", "object": "subscription", "status": "active", "description": "Starter",
    "customer": "cus_1", "default_payment_method": {"id": "pm_1", "object": "payment_method"},
    "default_tax_rates": [{"id": "txr_1", "percentage": 19.0}],
    "cancel_at_period_end": False, "metadata": {"seats": "5"},
    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
    "items": {"object": "list", "has_more": False, "data": [
        {"id": "si_1", "object": "subscription_item", "price": PRICE_A, "quantity": 1,
         "metadata": {}},
        {"id": "si_2", "object": "subscription_item", "price": {"id": "price_C"},
         "quantity": 3, "metadata": {}}]},
}


def _stripe(method: str, path: str, form: str = "", query: str = "",
            current: dict[str, Any] | None = SUBSCRIPTION) -> tuple[Classification, Diff]:
    """The shipped Stripe connector's classification of a request and its record's diff."""
    found = STRIPE.classify(method, "api.stripe.com", path, parse_qsl(query),
                            form.encode(), "application/x-www-form-urlencoded")
    assert found is not None and found.body_problem is None, found
    [record] = found.records
    return found, diff_record(found.spec, record, current, record.operation, found.route.sets,
                              found.body, route=found.route)


def test_subscription_items_are_changed_field_by_field_typed_like_the_record() -> None:
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                      "items[0][id]=si_1&items[0][price]=price_B&items[0][quantity]=2"
                      "&description=Team")
    assert diff.changes == [FieldChange("description", "Starter", "Team"),
                            FieldChange("items[si_1].price", "price_A", "price_B"),
                            FieldChange("items[si_1].quantity", 1, 2)]
    patched = jsonpatch.apply_patch(SUBSCRIPTION, diff.patch)
    assert patched["items"]["data"][0] == {**SUBSCRIPTION["items"]["data"][0],
                                           "price": "price_B", "quantity": 2}
    assert patched["items"]["data"][1] == SUBSCRIPTION["items"]["data"][1]  # not sent: kept
    same = _stripe("POST", "/v1/subscriptions/sub_1",
                   "items[0][id]=si_1&items[0][price]=price_A&items[0][quantity]=1")[1]
    assert same == Diff([], [])


def test_an_item_without_its_key_is_added_and_a_deleted_one_removed() -> None:
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                      "items[0][price]=price_D&items[0][quantity]=4"
                      "&items[1][id]=si_1&items[1][deleted]=true")
    assert diff.changes == [
        FieldChange("items", None, {"price": "price_D", "quantity": 4}, "add"),
        FieldChange("items[si_1]", SUBSCRIPTION["items"]["data"][0], None, "remove")]
    patched = jsonpatch.apply_patch(SUBSCRIPTION, diff.patch)
    assert [item.get("id") for item in patched["items"]["data"]] == ["si_2", None]
    unknown = _stripe("POST", "/v1/subscriptions/sub_1", "items[0][id]=si_9&items[0][quantity]=2",
                      current=None)[1]
    assert unknown == Diff([FieldChange("items[si_9].quantity", None, "2")], [])


def test_a_reference_sent_by_id_compares_with_the_expanded_object() -> None:
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                      "customer=cus_1&default_payment_method=pm_1&default_tax_rates[0]=txr_1")
    assert diff == Diff([], [])
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                      "default_payment_method=pm_2&default_tax_rates[0]=txr_2")
    assert diff.changes == [FieldChange("default_payment_method", "pm_1", "pm_2"),
                            FieldChange("default_tax_rates", ["txr_1"], ["txr_2"])]
    cleared = _stripe("POST", "/v1/subscriptions/sub_1", "default_payment_method=")[1]
    assert cleared.changes == [FieldChange("default_payment_method",
                                           SUBSCRIPTION["default_payment_method"], None)]
    # an unset is no reference: what is cleared is shown whole, not as its id
    held = {**SUBSCRIPTION, "metadata": {"id": "x", "k": "v"}}
    unset = _stripe("POST", "/v1/subscriptions/sub_1", "metadata=", current=held)[1]
    assert unset.changes == [FieldChange("metadata", {"id": "x", "k": "v"}, None)]
    json_spec = ObjectSpec(routes=[Route(method="POST", path="/x/{id}",
                                         operation=Operation.update)])
    record = RecordWrite("x", Operation.update, "1", {"owner": "u_1"})
    assert diff_record(json_spec, record, {"owner": {"id": "u_1"}}, Operation.update, {},
                       None).changes == [FieldChange("owner", {"id": "u_1"}, "u_1")]


def test_request_options_are_parameters_not_field_changes() -> None:
    found, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                          "proration_behavior=always_invoice&expand[]=latest_invoice"
                          "&payment_behavior=error_if_incomplete&metadata[seats]=6")
    assert diff.changes == [FieldChange("metadata.seats", "5", "6")]
    assert diff.parameters == {"proration_behavior": "always_invoice",
                               "expand": ["latest_invoice"],
                               "payment_behavior": "error_if_incomplete"}
    partial = rewrite(found, b"proration_behavior=always_invoice&expand[]=latest_invoice"
                      b"&metadata[seats]=6&description=x", "application/x-www-form-urlencoded",
                      [], ["metadata.seats"])
    assert parse_qsl(partial.decode()) == [("proration_behavior", "always_invoice"),
                                           ("expand[0]", "latest_invoice"),
                                           ("metadata[seats]", "6")]


def test_subscription_cancel_reads_its_parameters_from_the_query() -> None:
    found, diff = _stripe("DELETE", "/v1/subscriptions/sub_1",
                          query="cancellation_details[comment]=too+expensive&invoice_now=true"
                                "&prorate=false&expand[0]=latest_invoice")
    assert (found.operation, found.records[0].action) == (Operation.action, "cancel")
    assert diff.changes == [FieldChange("status", "active", "canceled"),
                            FieldChange("cancellation_details.comment", None, "too expensive")]
    assert diff.parameters == {"expand": ["latest_invoice"], "invoice_now": "true",
                               "prorate": "false"}
    unknown = _stripe("DELETE", "/v1/subscriptions/sub_1",
                      query="cancellation_details[comment]=x", current=None)[1]
    assert unknown.changes == [FieldChange("status", None, "canceled")]
    assert unknown.parameters == {"cancellation_details": {"comment": "x"}}
    twice = STRIPE.classify("DELETE", "api.stripe.com", "/v1/subscriptions/sub_1",
                            [("prorate", "true")], b"prorate=false",
                            "application/x-www-form-urlencoded")
    assert twice is not None and "repeats" in (twice.body_problem or "")


def test_a_delete_shows_what_it_is_sent_as_parameters() -> None:
    spec = load_connectors()["stripe"].objects["customer"]
    record = RecordWrite("customer", Operation.delete, "cus_1", {"expand": ["x"], "id": "cus_1"})
    diff = diff_record(spec, record, {"id": "cus_1", "email": "a@b"}, Operation.delete, {}, None)
    assert diff.changes == [FieldChange("email", "a@b", None)]
    assert diff.parameters == {"expand": ["x"]}


def test_a_reviewer_edits_one_field_of_a_sent_item() -> None:
    content = b"items[0][id]=si_1&items[0][price]=price_B&items[0][quantity]=2"
    found, _ = _stripe("POST", "/v1/subscriptions/sub_1", content.decode())
    edited = rewrite(found, content, "application/x-www-form-urlencoded",
                     [{"field": "items[si_1].quantity", "new": 3}], ["items[si_1].quantity"])
    # the price change was shown apart and not approved: it is left out
    assert parse_qsl(edited.decode()) == [("items[0][id]", "si_1"),
                                          ("items[0][quantity]", "3")]
    whole = rewrite(found, content, "application/x-www-form-urlencoded",
                    [{"field": "items[si_1].quantity", "new": 3}], None)
    assert parse_qsl(whole.decode()) == [("items[0][id]", "si_1"),
                                         ("items[0][price]", "price_B"),
                                         ("items[0][quantity]", "3")]
    with pytest.raises(EditError):
        rewrite(found, content, "application/x-www-form-urlencoded",
                [{"field": "items[si_9].quantity", "new": 3}], None)


def test_reverting_an_item_change_restores_the_item_by_its_key() -> None:
    content = b"items[0][id]=si_1&items[0][price]=price_B&items[0][quantity]=2&description=T"
    found, diff = _stripe("POST", "/v1/subscriptions/sub_1", content.decode())
    url = "https://api.stripe.com/v1/subscriptions/sub_1"
    approval = Approval(
        id="a1", status=Status.executed, created_at=datetime.now(UTC), method="POST", url=url,
        fingerprint="f", changes=[Change(field=c.field, old=c.old, new=c.new, kind=c.kind)
                                  for c in diff.changes])
    undo = inverse(approval, found, HeldRequest("POST", url, [], content),
                   {"sub_1": SUBSCRIPTION})
    assert parse_qsl(undo.content.decode()) == [("description", "Starter"),
                                                ("items[0][id]", "si_1"),
                                                ("items[0][price]", "price_A"),
                                                ("items[0][quantity]", "1")]
    added = approval.model_copy(update={"changes": [
        Change(field="items", new={"price": "price_D"}, kind="add")]})
    with pytest.raises(RevertError):
        inverse(added, found, HeldRequest("POST", url, [], content), {"sub_1": SUBSCRIPTION})


# --- red team: what the reviewer is shown of keyed items is all that changes ----------------


def test_approving_one_item_field_sends_no_other_item_change() -> None:
    content = (b"items[0][id]=si_1&items[0][price]=price_B&items[0][quantity]=2"
               b"&items[1][id]=si_2&items[1][quantity]=9&items[2][price]=price_D")
    found, diff = _stripe("POST", "/v1/subscriptions/sub_1", content.decode())
    assert {c.field for c in diff.changes} >= {"items[si_1].price", "items[si_1].quantity",
                                               "items[si_2].quantity"}
    partial = rewrite(found, content, "application/x-www-form-urlencoded", [],
                      ["items[si_1].quantity"])
    assert parse_qsl(partial.decode()) == [("items[0][id]", "si_1"),
                                           ("items[0][quantity]", "2")]
    _, sent = _stripe("POST", "/v1/subscriptions/sub_1", partial.decode())
    assert sent.changes == [FieldChange("items[si_1].quantity", 1, 2)]


def test_a_remove_flag_that_is_not_plainly_true_or_false_is_shown() -> None:
    for value in ("1", "True", "yes"):
        _, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                          f"items[0][id]=si_1&items[0][deleted]={value}")
        assert diff.changes == [FieldChange("items[si_1].deleted", None, value)], value
    _, kept = _stripe("POST", "/v1/subscriptions/sub_1",
                      "items[0][id]=si_1&items[0][deleted]=false")
    assert kept.changes == []


def test_keys_holding_a_dot_still_show_their_change() -> None:
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1", "items[0][id]=si.1&items[0][quantity]=9")
    assert diff.changes == [FieldChange("items[si.1]", None, {"quantity": "9"})]
    _, diff = _stripe("POST", "/v1/subscriptions/sub_1", "metadata[a.b]=x")
    assert diff.changes == [FieldChange("metadata", {"seats": "5"}, {"seats": "5", "a.b": "x"})]
    flat = compute_diff(Operation.update, {"a.b": 1}, {"a.b": 2})
    assert flat.changes == [FieldChange("a.b", 1, 2)]


@pytest.mark.parametrize("semantics", [UpdateSemantics.merge, UpdateSemantics.replace])
def test_a_key_holding_a_dot_is_a_field_of_its_own_whatever_empty_means(
        semantics: UpdateSemantics) -> None:
    for current, proposed in [({"m": {"a.b": "v"}}, {"m": {"a.b": "x"}}), ({}, {"m": {"a.b": "x"}}),
                              ({"m": ""}, {"m": {"a.b": "x"}}), ({}, {"a.b": {"c": "x"}}),
                              ({"a.b": 1}, {"a.b": 2}), ({"a": {"b": 1}}, {"a.b": 2})]:
        for flag in (False, True):
            diff = compute_diff(Operation.update, current, proposed, semantics, flag)
            after = proposed if semantics is UpdateSemantics.replace else {**current, **proposed}
            assert diff.changes, (current, proposed, flag)
            assert jsonpatch.apply_patch(current, diff.patch) == after, (current, proposed)
    cleared = compute_diff(Operation.update, {"m": {"a.b": "v"}}, {}, UpdateSemantics.replace,
                           empty_is_absent=True)
    assert cleared.changes == [FieldChange("m", {"a.b": "v"}, None)]


def test_an_item_sent_twice_is_approved_and_reverted_only_as_shown() -> None:
    content = (b"items[0][id]=si_1&items[0][quantity]=2"
               b"&items[1][id]=si_1&items[1][quantity]=7")
    found, diff = _stripe("POST", "/v1/subscriptions/sub_1", content.decode())
    assert [c.field for c in diff.changes] == ["items[si_1].quantity", "items[si_1]"]
    partial = rewrite(found, content, "application/x-www-form-urlencoded", [],
                      ["items[si_1].quantity"])  # the second item, shown whole, not approved
    assert parse_qsl(partial.decode()) == [("items[0][id]", "si_1"),
                                           ("items[0][quantity]", "2")]
    url = "https://api.stripe.com/v1/subscriptions/sub_1"
    approval = Approval(
        id="a1", status=Status.executed, created_at=datetime.now(UTC), method="POST", url=url,
        fingerprint="f", changes=[Change(field=c.field, old=c.old, new=c.new, kind=c.kind)
                                  for c in diff.changes])
    with pytest.raises(RevertError):
        inverse(approval, found, HeldRequest("POST", url, [], content), {"sub_1": SUBSCRIPTION})


def test_removing_a_label_the_issue_holds_in_another_case_is_shown() -> None:
    """GitHub's label names are case-insensitive: DELETE .../labels/Bug removes `bug`. Only an
    item the list lacks in every spelling is provably no change."""
    github = Matcher({"github": load_connectors()["github"]})
    current = {"number": 1, "labels": [{"name": "bug"}]}

    def changes(method: str, path: str, body: bytes = b"") -> list[FieldChange]:
        found = github.classify(method, "api.github.com", path, [], body,
                                "application/json" if body else None)
        assert found is not None
        [record] = found.records
        return diff_record(found.spec, record, current, record.operation, found.route.sets,
                           found.body, route=found.route).changes

    assert changes("DELETE", "/repos/o/r/issues/1/labels/Bug") == [
        FieldChange("labels", "Bug", None, "remove")]
    assert changes("DELETE", "/repos/o/r/issues/1/labels/nope") == []
    assert changes("POST", "/repos/o/r/issues/1/labels", b'{"labels": ["bug"]}') == []


def test_an_item_key_holding_a_bracket_is_shown_whole_and_never_edited_elsewhere() -> None:
    content = b"items[0][id]=si%5D1&items[0][quantity]=9"
    found, diff = _stripe("POST", "/v1/subscriptions/sub_1",
                          "items[0][id]=si]1&items[0][quantity]=9")
    assert diff.changes == [FieldChange("items[si]1]", None, {"quantity": "9"})]
    for name in ("items[si]1]", "items[si]1].quantity"):
        with pytest.raises(EditError):
            rewrite(found, content, "application/x-www-form-urlencoded",
                    [{"field": name, "new": 3}], None)
    url = "https://api.stripe.com/v1/subscriptions/sub_1"
    approval = Approval(
        id="a1", status=Status.executed, created_at=datetime.now(UTC), method="POST", url=url,
        fingerprint="f", changes=[Change(field="items[si]1].quantity", old=1, new=9)])
    with pytest.raises(RevertError):
        inverse(approval, found, HeldRequest("POST", url, [], content), {"sub_1": SUBSCRIPTION})
