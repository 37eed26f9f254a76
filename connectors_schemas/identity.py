"""Which record a write is about, in the words a person knows it by (subject, name, number).

A reviewer judges "close ticket 4812" by the ticket: its subject and requester, not its id.
Each connector object names those fields (`identify:`); an object that names none (every
derived one) gets the first present of DEFAULT_NAMES. Values are found raw here; masking
them is the proxy's job (proxy_addon.proposals), as for every other value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from connectors_schemas.models import Identify, ObjectSpec

# What most APIs call a record's human name, most telling first.
DEFAULT_NAMES = ("name", "title", "subject", "display_name", "email", "number", "key", "summary")
MAX_VALUE_CHARS = 200
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-]+")


@dataclass(frozen=True, slots=True)
class Found:
    field: str
    label: str
    value: Any  # as in the record: a string, number, or (rarely) an object or a list


def label_of(field: str) -> str:
    """`CustomerRef.name` -> "Name", `display_name` -> "Display name", `DocNumber` ->
    "Doc number": the last name, spaced, as a person reads it."""
    words = [word for word in _WORD_BREAK.split(field.rsplit(".", 1)[-1]) if word]
    text = " ".join(words).lower() or field
    return text[:1].upper() + text[1:]


def _get(record: Any, name: str) -> Any:
    """A key exactly, else case-insensitively (vendors differ in case between answer and body)."""
    if not isinstance(record, dict):
        return None
    if name in record:
        return record[name]
    folded = name.casefold()
    return next((value for key, value in record.items()
                 if isinstance(key, str) and key.casefold() == folded), None)


def value_at(record: Any, path: str) -> Any:
    for name in path.split("."):
        record = _get(record, name)
        if record is None:
            return None
    return record


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _named(spec: Identify, record: dict[str, Any]) -> Found:
    value = value_at(record, spec.field)
    if not _present(value) and spec.or_joined:
        parts = [value_at(record, name) for name in spec.or_joined]
        value = " ".join(str(part) for part in parts if _present(part)) or None
    return Found(spec.field, spec.label or label_of(spec.field),
                 value if _present(value) else None)


def _default(record: dict[str, Any]) -> list[Found]:
    """The first present of DEFAULT_NAMES at the top level, else one level into a wrapper
    (HubSpot's `properties`, Jira's `fields`, a JSON:API `attributes`)."""
    levels = [("", record)] + [(f"{key}.", value) for key, value in record.items()
                               if isinstance(value, dict)]
    for prefix, level in levels:
        # Spelled as each vendor does: `displayName`, `DisplayName` and `display_name` alike.
        by_name = {_folded(key): key for key in level if isinstance(key, str)}
        for name in DEFAULT_NAMES:
            key = by_name.get(_folded(name))
            value = level.get(key) if key is not None else None
            if _present(value) and not isinstance(value, dict | list):
                return [Found(prefix + str(key), label_of(name), value)]
    return []


def _folded(name: str) -> str:
    return name.replace("_", "").casefold()


def identity_of(spec: ObjectSpec, object_type: str | None,
                record: dict[str, Any] | None) -> list[Found]:
    """The identifying fields of `record`: the object's own list (a field it lacks shown as
    None, so a reviewer sees it is missing), or the defaults when it names none."""
    if not isinstance(record, dict):
        return []
    named = spec.identify_for(object_type)
    if named is None:
        return _default(record)
    return [_named(item, record) for item in named]


def shown_text(value: Any) -> str | None:
    """A value as one short line: an object by its name or id, a list's items by commas,
    and nothing longer than MAX_VALUE_CHARS."""
    if value is None:
        return None
    if isinstance(value, dict):
        inner = next((value[key] for key in ("name", "display_name", "title", "id")
                      if _present(value.get(key)) and not isinstance(value[key], dict | list)),
                     None)
        text = str(inner) if inner is not None else json.dumps(value, ensure_ascii=False,
                                                              default=str)
    elif isinstance(value, list):
        text = ", ".join(shown_text(item) or "" for item in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"
