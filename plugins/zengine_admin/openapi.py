"""The OpenAPI 3.1 document of ``/api/v1``, generated from the operation table and the
pydantic models (JSON Schema 2020-12, which OpenAPI 3.1 uses as it is)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter

from zengine import __version__
from zengine_admin.models import ProblemView
from zengine_admin.settings import PREFIX

if TYPE_CHECKING:
    from zengine_admin.api import Op

REF = "#/components/schemas/{model}"
REASONS = {400: "Bad request", 401: "Missing or invalid API key",
           403: "The key's scope or tenant does not allow this", 404: "Not found",
           405: "Method not allowed", 408: "The body did not arrive whole in time",
           409: "Conflict (exists already, or read-only backend)",
           413: "Body too large", 415: "Body is not application/json",
           422: "Invalid input; `errors` names each field", 429: "Too many failed attempts",
           500: "Internal error", 503: "A backend is unavailable"}
#: Path parameters: one segment, no control characters.
SEGMENT = {"type": "string", "minLength": 1, "maxLength": 255,
           "pattern": "^[^/\\u0000-\\u001f\\u007f]+$"}


TENANT = {"name": "tenant", "in": "query", "required": False,
          "description": "The tenant to work on (a key bound to a tenant: only its own).",
          "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}


def _schema(kind: Any, mode: str, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(kind).json_schema(mode=mode, ref_template=REF)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    if "title" in schema and "$ref" not in schema and isinstance(kind, type) \
            and issubclass(kind, BaseModel):
        # A model at the top level becomes a component too, referenced by name.
        name = kind.__name__
        components[name] = schema
        return {"$ref": REF.format(model=name)}
    return schema


def _problem(status: int) -> dict[str, Any]:
    return {"description": REASONS[status],
            "content": {"application/problem+json": {
                "schema": {"$ref": REF.format(model="ProblemView")}}}}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[Any]:
    schema = model.model_json_schema(mode="validation", ref_template=REF)
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        params.append({"name": name, "in": "query", "required": name in required,
                       "schema": prop})
    return params


def document(ops: Sequence[Op], common: Sequence[int]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(ProblemView, "serialization", components)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                                 "tags": [op.tag], "security": [{"apiKey": []}],
                                 "x-zengine-scope": op.scope}
        description = op.description
        description += ("\n\n" if description else "") + f"Needs an API key with scope " \
                                                          f"`{op.scope}` or wider."
        entry["description"] = description
        parameters = [{"name": name, "in": "path", "required": True, "schema": SEGMENT}
                      for name in re.findall(r"{(\w+)}", op.path)]
        parameters.append(TENANT)
        if op.query is not None:
            parameters.extend(_query_parameters(op.query, components))
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(op.body, "validation", components)}}}
        responses: dict[str, Any] = {}
        if op.response is None:
            responses[str(op.status)] = {"description": "Done"}
        else:
            responses[str(op.status)] = {"description": "OK", "content": {
                "application/json": {"schema": _schema(op.response, "serialization",
                                                       components)}}}
        statuses = set(common) | set(op.errors)
        if op.body is not None:
            statuses |= {400, 408, 413, 415}
        for status in sorted(statuses):
            responses[str(status)] = _problem(status)
        entry["responses"] = responses
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "zengine admin API", "version": __version__,
                 "description": "Manage users, SIP accounts, tokens and lockouts of a "
                                "zengine provisioning server. See docs/api.md."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())),
                       "securitySchemes": {"apiKey": {
                           "type": "http", "scheme": "bearer", "bearerFormat": "zk_<id>_<secret>",
                           "description": "An API key from `zengine apikeys create`."}}},
    }


def main() -> None:
    """Print the document (``python -m zengine_admin.openapi > docs/api/openapi.json``)."""
    import json
    import sys

    from zengine_admin.api import COMMON_ERRORS, OPS

    sys.stdout.write(json.dumps(document(OPS, COMMON_ERRORS), indent=2) + "\n")


if __name__ == "__main__":
    main()
