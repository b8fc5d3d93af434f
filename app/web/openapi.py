"""OpenAPI operations for the plain-ASGI routes, generated from their msgspec types.

Litestar documents its typed handlers itself but cannot see inside an ASGI
handler. For those, `add_operation` writes the operation into the app's
document with the request and answer schemas taken from the very structs the
route decodes and encodes (`msgspec.json.schema_components`), so the
document cannot drift from the code; only the prose is written by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)

_COMPONENTS = "#/components/schemas/{name}"
# JSON Schema keywords whose values are schemas, by shape; other values are JSON data.
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_ONE = frozenset(
    {"not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
# Each keyword → its `Schema` field: the inverse of how Litestar names the fields it writes.
_FIELDS = {
    re.sub(r"_(\w)", lambda m: m[1].upper(), field.name.removeprefix("schema_")): field.name
    for field in fields(Schema)
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented answer: what it means, and the struct of its JSON body if any."""

    description: str
    body: type[msgspec.Struct] | None = None
    headers: dict[str, OpenAPIHeader | Reference] | None = None


def add_operation(
    openapi: OpenAPI,
    path: str,
    *,
    operation_id: str,
    summary: str,
    tags: list[str],
    request: type[msgspec.Struct],
    answers: dict[int, Answer],
) -> None:
    """Document `POST path`, adding the components its structs need that are not there yet
    (those Litestar made for the typed routes stay as they are)."""
    structs = [request, *(answer.body for answer in answers.values() if answer.body)]
    references, components = msgspec.json.schema_components(structs, ref_template=_COMPONENTS)
    reference = {s: str(r["$ref"]) for s, r in zip(structs, references, strict=True)}
    schemas = openapi.components.schemas if openapi.components.schemas is not None else {}
    for name, component in components.items():
        schemas.setdefault(name, as_schema(component))
    openapi.components.schemas = schemas
    responses: dict[str, OpenAPIResponse | Reference] = {
        str(status): OpenAPIResponse(
            description=answer.description,
            content=_json(reference[answer.body]) if answer.body else None,
            headers=answer.headers,
        )
        for status, answer in answers.items()
    }
    operation = Operation(
        tags=tags,
        summary=summary,
        operation_id=operation_id,
        request_body=RequestBody(content=_json(reference[request]), required=True),
        responses=responses,
    )
    paths = openapi.paths if openapi.paths is not None else {}
    paths[path] = PathItem(post=operation)
    openapi.paths = paths


def _json(reference: str) -> dict[str, OpenAPIMediaType]:
    return {"application/json": OpenAPIMediaType(schema=Reference(ref=reference))}


def as_schema(json_schema: dict[str, Any]) -> Schema:
    """A JSON Schema (as msgspec writes it) as Litestar's spec objects."""
    values: dict[str, Any] = {}
    for keyword, value in json_schema.items():
        if keyword in _SCHEMA_LISTS:
            value = [_subschema(item) for item in value]
        elif keyword in _SCHEMA_MAPS:
            value = {key: _subschema(item) for key, item in value.items()}
        elif keyword in _SCHEMA_ONE and isinstance(value, dict):
            value = _subschema(value)
        elif keyword == "type":
            value = (
                [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
            )
        values[_FIELDS[keyword]] = value
    return Schema(**values)


def _subschema(json_schema: dict[str, Any]) -> Schema | Reference:
    if "$ref" in json_schema:
        return Reference(ref=json_schema["$ref"])
    return as_schema(json_schema)
