"""Errors of the admin service and their ``application/problem+json`` answers (RFC 9457).

The service raises :class:`Problem` subclasses; the API turns each into one problem document
(``type``, ``title``, ``status``, ``detail``, and ``errors``: one item per field, each naming
the field as a JSON pointer into the request). The console shows ``detail`` and the fields.
No problem ever carries a secret: details name fields and values an operator typed, never a
password, token or key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://zengine.invalid/problems/"


@dataclass(frozen=True)
class FieldError:
    """One refused field: ``field`` is its name as the request spells it (``accounts/0/ident``
    for a nested one), ``detail`` what is wrong with it."""

    field: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "pointer": "#/" + self.field, "detail": self.detail}


class Problem(Exception):
    """A refused operation; ``detail`` is safe to show to the operator who asked."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = (),
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    def as_json(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title,
                                "status": self.status, "detail": self.detail}
        if instance is not None:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_json() for e in self.errors]
        return body


class Invalid(Problem):
    status = 422
    slug = "invalid"
    title = "Invalid request"

    def __init__(self, field_name: str, detail: str, *, whole: str | None = None) -> None:
        """``whole``: the full message when ``detail`` already names the field."""
        super().__init__(whole or f"{field_name}: {detail}",
                         errors=[FieldError(field_name, detail)])


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Not allowed for this API key"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(Problem):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict"


class ReadOnly(Problem):
    """The user lives in a backend zengine cannot write (static file, LDAP, mapped SQL)."""

    status = 409
    slug = "read-only"
    title = "Read-only backend"


class TooMany(Problem):
    status = 429
    slug = "too-many-attempts"
    title = "Too many attempts"


class Unavailable(Problem):
    status = 503
    slug = "unavailable"
    title = "Backend unavailable"


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(problem.as_json(instance), status_code=problem.status,
                        media_type=MEDIA_TYPE, headers=problem.headers)
