"""Reads every connector file once at start-up and names the file and field of any mistake."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from connectors_schemas import graphql_schema, openapi
from connectors_schemas.models import Connector

SCHEMAS_DIR = Path(__file__).parent
_DERIVED_FROM = {"openapi": "derived", "graphql": "graphql_derived"}  # description -> derived


class ConnectorFileError(ValueError):
    """A connector file that cannot be used; the message names file, field and problem."""


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"field {where}: {first['msg']}{more}"


def load_connector(path: Path) -> Connector:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConnectorFileError(f"connector file {path}: cannot read it: {exc}") from exc
    try:
        connector = Connector.model_validate(raw)
    except ValidationError as exc:
        raise ConnectorFileError(f"connector file {path}: {_describe(exc)}") from exc
    return with_derived(_with_absolute_description(connector, path), str(path))


def with_derived(connector: Connector, where: str) -> Connector:
    """The connector with the routes its OpenAPI description documents, merged under its own.

    Start-up reads the small derived file when one is named; a description without one (a
    site's own API) is derived here, once.
    """
    description = connector.description
    if description is None or (description.openapi is None and description.derived is None):
        return connector
    if description.derived is not None:
        field, source = "description.derived", description.derived
    else:
        assert description.openapi is not None
        field = "description.openapi"
        source = ", ".join([description.openapi] if isinstance(description.openapi, str)
                           else description.openapi)
    try:
        if description.derived is not None:
            data = json.loads(Path(description.derived).read_text(encoding="utf-8"))
        else:
            files = [description.openapi] if isinstance(description.openapi, str) else list(
                description.openapi)
            data = openapi.derive_objects(openapi.read_documents(files))
        derived = openapi.validate_derived(data, source)
        return openapi.merge(connector, derived)
    except (OSError, ValueError) as exc:
        raise ConnectorFileError(f"connector file {where}: field {field}: {exc}") from exc


def _with_absolute_description(connector: Connector, path: Path) -> Connector:
    """Description paths are relative to the connector file; everything later gets them whole,
    and a named file that is missing stops the start naming the field."""
    description = connector.description
    if description is None:
        return connector
    resolved: dict[str, str | list[str] | None] = {}
    for name in ("derived", "graphql_derived", "openapi", "graphql"):
        value = getattr(description, name)
        if value is None:
            continue
        paths = [value] if isinstance(value, str) else value
        absolute = [str((path.parent / item).resolve()) for item in paths]
        missing = [given for item, given in zip(absolute, paths, strict=True)
                   if not Path(item).is_file()]
        if missing and resolved.get(_DERIVED_FROM.get(name, "")):
            # Only the derived file is needed to run: a description the package may not
            # redistribute (HubSpot's) stays in the repository for `connectors derive` and
            # `connectors coverage`, and is absent from an installed wheel.
            resolved[name] = None
            continue
        if missing:
            raise ConnectorFileError(
                f"connector file {path}: field description.{name}: no such file "
                f"{missing[0]!r}")
        resolved[name] = absolute[0] if isinstance(value, str) else absolute
    description = description.model_copy(update=resolved)
    try:  # read (or derived) now, so the first write waits for nothing and a bad file stops us
        graphql_schema.derived_for(description)
    except ValueError as exc:
        raise ConnectorFileError(f"connector file {path}: {exc}") from exc
    return connector.model_copy(update={"description": description})


def load_connectors(
    directory: Path = SCHEMAS_DIR, extra_hosts: dict[str, list[str]] | None = None,
    extra_directory: Path | None = None, site_connectors: dict[str, Connector] | None = None,
) -> dict[str, Connector]:
    """Connectors by file stem (`zendesk` for zendesk.yaml), with configured extra hosts added.

    Files in `extra_directory` add systems, or replace a built-in one of the same file name.
    """
    paths = sorted(directory.glob("*.yaml"))
    if extra_directory is not None:
        if not extra_directory.is_dir():
            raise ConnectorFileError(f"connectors_dir {extra_directory} is not a directory")
        paths += sorted(extra_directory.glob("*.yaml"))
    connectors = {path.stem: load_connector(path) for path in paths}
    connectors.update(site_connectors or {})  # a site's own API, from its OpenAPI file
    for name, hosts in (extra_hosts or {}).items():
        if name not in connectors:
            known = ", ".join(sorted(connectors)) or "none"
            raise ConnectorFileError(
                f"config connectors.{name}: no such connector (known: {known})"
            )
        connector = connectors[name]
        merged = connector.hosts + [host.lower() for host in hosts]
        connectors[name] = connector.model_copy(update={"hosts": merged})
    return connectors
