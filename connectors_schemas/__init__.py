"""Connectors as data: one YAML file per SaaS system, the models that validate them, one matcher."""

from connectors_schemas.bodies import BodyError, at_path, parse_body
from connectors_schemas.loader import ConnectorFileError, load_connectors
from connectors_schemas.matcher import (
    BodyShapeError,
    Classification,
    FetchRequest,
    Matcher,
    RecordWrite,
)
from connectors_schemas.models import (
    Connector,
    ObjectSpec,
    Operation,
    RiskHints,
    RiskKind,
    Route,
    UpdateSemantics,
)

__all__ = [
    "BodyError",
    "BodyShapeError",
    "Classification",
    "Connector",
    "ConnectorFileError",
    "FetchRequest",
    "Matcher",
    "ObjectSpec",
    "Operation",
    "RecordWrite",
    "RiskHints",
    "RiskKind",
    "Route",
    "UpdateSemantics",
    "at_path",
    "load_connectors",
    "parse_body",
]
