import jsonpatch

from connectors_schemas import Operation, UpdateSemantics
from proxy_addon.diff import FieldChange, compute_diff, leaves, same_json

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
