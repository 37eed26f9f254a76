"""MCP tool mappings as data: which write tools of a vendor's MCP server change which record, and
how the proxy reads that record's current values (connectors_schemas/mcp/*.yaml).

One file per server. Each write tool names its object type and operation, the arguments that
name the record, those that are options (neither id nor field), and how to read the record as it
stands: a read tool of the same server called with mapped arguments (the primary way), or the
vendor's REST API with the agent's own Authorization. Read at start-up; a mistake stops the start
naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors_schemas.loader import ConnectorFileError, _describe
from connectors_schemas.models import Operation

MCP_DIR = Path(__file__).parent / "mcp"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadTool(_Strict):
    """Call `tool` (a read of the same server) with `arguments`: literals, or "{name}" for the
    write call's own argument of that name."""

    tool: Name
    arguments: dict[str, Any] = {}
    record_path: str | None = None  # dotted path to the record inside the parsed result
    text_as: Name | None = None  # a result that is not JSON: its text is this one field


class ReadRest(_Strict):
    """GET this URL ("{name}" placeholders from the call's arguments) with the agent's
    Authorization header; only when the MCP server's credentials work on the vendor's API."""

    url: Annotated[str, Field(pattern=r"^https://[^/?#{}]+/")]
    record_path: str | None = None


class ReadSpec(_Strict):
    tool: ReadTool | None = None
    rest: ReadRest | None = None

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.tool is None and self.rest is None:
            raise ValueError("a read names a tool or a rest URL")
        return self


class ToolMapping(_Strict):
    when: dict[str, str] = {}  # this mapping applies when these arguments have these values
    object: Name
    operation: Operation
    record: list[Name] = []  # the arguments that name the record (owner, repo, issue_number)
    parameters: list[Name] = []  # options: neither the record's id nor its fields
    # argument -> record field (dotted); None: every other argument, under its own name
    fields: dict[Name, str] | None = None
    read: ReadSpec | None = None

    @field_validator("operation")
    @classmethod
    def _write(cls, value: Operation) -> Operation:
        if value not in (Operation.create, Operation.update, Operation.delete, Operation.action):
            raise ValueError("operation is create, update, delete or action")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        named = set(self.record) | set(self.when)
        if self.read is not None:
            templates = [*(self.read.tool.arguments.values() if self.read.tool else []),
                         *([self.read.rest.url] if self.read.rest else [])]
            for template in templates:
                for used in _PLACEHOLDER.findall(template) if isinstance(template, str) else []:
                    if used not in named:
                        raise ValueError(f"the read uses {{{used}}}, which is not one of the "
                                         "record's arguments (record) nor a `when` argument")
        if self.fields is not None and (both := set(self.fields) & set(self.record)):
            raise ValueError(f"{sorted(both)[0]} is both a record argument and a field")
        return self

    def applies(self, arguments: dict[str, Any]) -> bool:
        return all(arguments.get(name) == value for name, value in self.when.items())

    def record_id(self, arguments: dict[str, Any]) -> str | None:
        parts = [str(arguments[name]) for name in self.record if name in arguments]
        return "/".join(parts) if parts else None

    def proposed(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The field values the call sends, under the record's field names."""
        if self.fields is not None:
            return {self.fields[name]: value for name, value in arguments.items()
                    if name in self.fields}
        skip = set(self.record) | set(self.parameters) | set(self.when)
        return {name: value for name, value in arguments.items() if name not in skip}

    def options(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {name: arguments[name] for name in self.parameters if name in arguments}


class McpToolMap(_Strict):
    server: str  # the name reviewers see when config does not name it
    urls: list[Annotated[str, Field(pattern=r"^https://[^/?#]+(/[^?#]*)?$")]]
    tools: dict[Name, ToolMapping | list[ToolMapping]]

    @model_validator(mode="after")
    def _reads_are_not_writes(self) -> Self:
        for name, mappings in self.tools.items():
            for mapping in mappings if isinstance(mappings, list) else [mappings]:
                read = mapping.read.tool.tool if mapping.read and mapping.read.tool else None
                if read is not None and read in self.tools:
                    raise ValueError(f"tools.{name}: its read tool {read} is mapped as a write")
        return self

    def where(self) -> set[tuple[str, str]]:
        found = set()
        for url in self.urls:
            parts = urlsplit(url)
            found.add(((parts.hostname or "").lower(), (parts.path or "/").rstrip("/") or "/"))
        return found

    def mapping(self, tool: str, arguments: dict[str, Any]) -> ToolMapping | None:
        found = self.tools.get(tool)
        for mapping in found if isinstance(found, list) else [found] if found else []:
            if mapping.applies(arguments):
                return mapping
        return None


def fill(template: Any, arguments: dict[str, Any]) -> Any:
    """A read argument: "{name}" alone keeps the argument's type; inside text, its text."""
    if not isinstance(template, str):
        return template
    if (whole := _PLACEHOLDER.fullmatch(template)) is not None:
        return arguments.get(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(arguments.get(m.group(1), "")), template)


class McpMappings:
    """Every mapping file, found by the server's URL (host and path, trailing slash ignored)."""

    def __init__(self, maps: dict[str, McpToolMap]) -> None:
        self.maps = maps
        self._by_where = {where: found for found in maps.values() for where in found.where()}

    def for_server(self, host: str, path: str) -> McpToolMap | None:
        return self._by_where.get((host.lower(), path.split("?", 1)[0].rstrip("/") or "/"))


def load_mcp_map(path: Path) -> McpToolMap:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConnectorFileError(f"MCP mapping file {path}: cannot read it: {exc}") from exc
    try:
        return McpToolMap.model_validate(raw)
    except ValidationError as exc:
        raise ConnectorFileError(f"MCP mapping file {path}: {_describe(exc)}") from exc


def load_mcp_mappings(directory: Path = MCP_DIR) -> McpMappings:
    return McpMappings({path.stem: load_mcp_map(path)
                        for path in sorted(directory.glob("*.yaml"))})
