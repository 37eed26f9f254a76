"""Connectors as data: one YAML file per SaaS system, the models that validate them, one matcher."""

from connectors_schemas.loader import ConnectorFileError, load_connectors
from connectors_schemas.matcher import BodyShapeError, Match, Matcher
from connectors_schemas.models import Connector, ObjectSpec, Operation, RiskHints, UpdateSemantics

__all__ = [
    "BodyShapeError",
    "Connector",
    "ConnectorFileError",
    "Match",
    "Matcher",
    "ObjectSpec",
    "Operation",
    "RiskHints",
    "UpdateSemantics",
    "load_connectors",
]
