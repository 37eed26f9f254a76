"""The YAML config file, parsed at the edge into typed values; unknown keys are errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from review_api.auth import Reviewer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and problem."""


def parse_duration(value: object) -> float:
    """Seconds from 90, "90s", "15m", "72h" or "7d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '15m', '72h' or '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if not found:
            raise ValueError(f"expected a duration such as 90, '15m', '72h' or '7d', got {value!r}")
        seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMatch(_Strict):
    """Every key given must match; a missing key matches anything."""

    system: str | None = None
    object: str | None = None
    operation: Literal["create", "update", "delete"] | None = None
    host: str | None = None  # glob, e.g. "*.example.com"
    fields: list[str] | None = None  # the write touches only these fields (or fields below them)


class Rule(_Strict):
    match: RuleMatch = RuleMatch()
    action: Literal["allow", "hold", "deny"]
    reviewers: list[str] = []  # groups who may decide; empty: any reviewer
    expire_after: Duration | None = None
    name: str | None = None


class ConnectorOverride(_Strict):
    hosts: list[str] = []


class Defaults(_Strict):
    expire_after: Duration = 72 * 3600.0  # a pending write nobody decided is never sent after this


class HitlConfig(_Strict):
    reviewers: list[Reviewer] = []
    policy: list[Rule] = []
    connectors: dict[str, ConnectorOverride] = {}
    connectors_dir: Path | None = None  # more connector files, next to the built-in ones
    defaults: Defaults = Defaults()
    fetch_timeout: Duration = Field(default=10.0)

    def reviewer_names_unique(self) -> None:
        names = [reviewer.name for reviewer in self.reviewers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"reviewer name(s) used twice: {duplicates}")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def load_config(path: Path | None) -> HitlConfig:
    if path is None:
        return HitlConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    try:
        config = HitlConfig.model_validate(raw)
        config.reviewer_names_unique()
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {_describe(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"config file {path}: reviewers: {exc}") from exc
    return config
