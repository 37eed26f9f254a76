"""The vendors' own API descriptions (connectors_schemas/descriptions), read for the fakes' tests.

`check(api, method, path, status, body)` validates an answer of a fake against the response
schema the vendor's OpenAPI description documents for that operation and status (OpenAPI 3.0
`nullable` read as JSON Schema's null type, `$ref`s resolved within the description).
`operation(api, method, path)` is the description's operation object itself, so a fake's test
can take status codes and required request fields from it.
"""

from __future__ import annotations

import functools
import gzip
import json
import tarfile
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

DESCRIPTIONS = Path(__file__).resolve().parents[2] / "connectors_schemas" / "descriptions"
HUBSPOT_FILES = {
    "hubspot-associations-v4":
        "PublicApiSpecs__CRM__Associations__Rollouts__130902__v4__associations.json",
    "hubspot-contacts-v3": "PublicApiSpecs__CRM__Contacts__Rollouts__424__v3__contacts.json",
}


@functools.cache
def description(api: str) -> dict[str, Any]:
    """One description: stripe, github, jira, or a HubSpot file named in HUBSPOT_FILES."""
    if api == "stripe":
        with gzip.open(DESCRIPTIONS / "stripe-openapi-spec3.yaml.gz") as raw:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            return yaml.load(raw, Loader=loader)
    if api == "github":
        with gzip.open(DESCRIPTIONS / "github-rest-api.github.com.json.gz") as raw:
            return json.load(raw)
    if api == "jira":
        with gzip.open(DESCRIPTIONS / "jira-cloud-swagger-v3.json.gz") as raw:
            return json.load(raw)
    with tarfile.open(DESCRIPTIONS / "hubspot-public-api-specs.tar.gz") as archive:
        member = archive.extractfile("./" + HUBSPOT_FILES[api])
        assert member is not None, api
        return json.load(member)


def operation(api: str, method: str, path: str) -> dict[str, Any]:
    """The operation object documented for METHOD PATH (PATH as the description spells it)."""
    return description(api)["paths"][path][method.lower()]


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable: true` also admits null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items()
                 if not key.startswith("x-") and key not in ("example", "examples")}
    if converted.pop("nullable", False) is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _components(api: str) -> dict[str, Any]:
    return _nullable(description(api).get("components", {}))


def _resolve(api: str, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = description(api)
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@functools.cache
def _validator(api: str, method: str, path: str, status: str) -> Any:
    responses = operation(api, method, path)["responses"]
    response = _resolve(api, responses[status])
    schema = response["content"]["application/json"]["schema"]
    root = {"allOf": [_nullable(schema)], "components": _components(api)}
    # formats stay unchecked: the vendors' own examples break them (Jira's "+0000" offsets)
    return jsonschema_rs.Draft4Validator(root, validate_formats=False)


def _documented_schema(api: str, method: str, path: str, status: str) -> dict[str, Any]:
    response = _resolve(api, operation(api, method, path)["responses"][status])
    return _resolve(api, response["content"]["application/json"]["schema"])


def _undocumented(api: str, schema: dict[str, Any], body: Any, where: str) -> list[str]:
    """Keys an answer carries that its documented object does not name, two levels deep (a
    description rarely closes its objects, so the validator alone would let them through)."""
    if where.count("/") > 2:
        return []
    schema = _resolve(api, schema)
    if isinstance(body, list) and "items" in schema:
        return [e for i, item in enumerate(body)
                for e in _undocumented(api, schema["items"], item, f"{where}/{i}")]
    if not isinstance(body, dict) or "properties" not in schema or schema.get(
            "additionalProperties") not in (None, False):
        return []
    found = [f"{where}/{key}: not in the description" for key in body
             if key not in schema["properties"]]
    for key, value in body.items():
        if key in schema["properties"]:
            child = _resolve(api, schema["properties"][key])
            for option in [child, *child.get("anyOf", []), *child.get("allOf", [])]:
                option = _resolve(api, option)
                if "properties" in option or "items" in option:
                    found += _undocumented(api, option, value, f"{where}/{key}")
                    break
    return found


def check(api: str, method: str, path: str, status: int, body: Any) -> None:
    """Raises unless BODY is what the description documents for this operation and status."""
    documented = operation(api, method, path)["responses"]
    assert str(status) in documented, (
        f"{method} {path}: status {status} is not documented ({sorted(documented)})")
    errors = [f"{'/'.join(map(str, error.instance_path))}: {error.message}"
              for error in _validator(api, method, path, str(status)).iter_errors(body)]
    errors += _undocumented(api, _documented_schema(api, method, path, str(status)), body, "")
    assert not errors, f"{method} {path} {status} differs from the description:\n" + "\n".join(
        errors[:20])


def required_request_fields(api: str, method: str, path: str) -> set[str]:
    """The request body's required top-level fields, as documented (form or JSON)."""
    body = operation(api, method, path).get("requestBody")
    if body is None:
        return set()
    found: set[str] = set()
    for content in _resolve(api, body)["content"].values():
        schema = _resolve(api, content.get("schema", {}))
        found |= set(schema.get("required", []))
    return found
