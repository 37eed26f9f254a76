"""Connectors as data: one YAML file per SaaS system, the models that validate them, one matcher."""

from connectors_schemas.bodies import AmbiguousBodyError, BodyError, at_path, parse_body
from connectors_schemas.graphql_request import (
    GraphQLRequest,
    graphql_in_body,
    graphql_in_query,
    parse_graphql,
)
from connectors_schemas.loader import ConnectorFileError, load_connectors
from connectors_schemas.matcher import (
    BodyShapeError,
    Classification,
    FetchRequest,
    Matcher,
    RecordWrite,
    non_canonical,
)
from connectors_schemas.models import (
    READ_METHODS,
    WRITE_METHODS,
    Connector,
    ObjectSpec,
    Operation,
    RiskHints,
    RiskKind,
    Route,
    UpdateSemantics,
)

__all__ = [
    "READ_METHODS",
    "WRITE_METHODS",
    "AmbiguousBodyError",
    "BodyError",
    "BodyShapeError",
    "Classification",
    "Connector",
    "ConnectorFileError",
    "FetchRequest",
    "GraphQLRequest",
    "Matcher",
    "ObjectSpec",
    "Operation",
    "RecordWrite",
    "RiskHints",
    "RiskKind",
    "Route",
    "UpdateSemantics",
    "at_path",
    "graphql_in_body",
    "graphql_in_query",
    "load_connectors",
    "non_canonical",
    "parse_body",
    "parse_graphql",
]
