"""Turn an HTTP request into a :class:`ProvisionRequest`: parameter names from settings,
duplicates and oversized values refused, HTTP Basic credentials understood."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from pydantic import SecretStr

from zengine.errors import BadRequest
from zengine.models import Credentials, ProvisionRequest
from zengine.settings import Settings

MAX_FIELDS = 32


def shown(name: str) -> str:
    """A parameter name as it may appear in a message: ASCII, escaped, at most 40 chars."""
    text = ascii(name)[1:-1]
    return text if len(text) <= 40 else text[:37] + "..."


def parse_params(raw: bytes, settings: Settings, into: dict[str, str]) -> None:
    if not raw:
        return
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("undecodable or too many parameters",
                         public_message="Bad request: parameters must be UTF-8, at most "
                                        f"{MAX_FIELDS} of them.") from None
    limit = settings.server.max_param_length
    for name, value in pairs:
        if name in into:
            raise BadRequest(f"parameter {shown(name)!r} given twice",
                             public_message=f"Bad request: parameter '{shown(name)}' was "
                                            "given twice.")
        if len(value) > limit or len(name) > limit:
            raise BadRequest(f"parameter {shown(name)!r} longer than {limit} characters",
                             public_message=f"Bad request: parameter '{shown(name)}' is too "
                                            "long.")
        into[name] = value


def pick(params: Mapping[str, str], names: Sequence[str]) -> str | None:
    present = [name for name in names if name in params]
    if len(present) > 1:
        raise BadRequest(f"parameters {present} all given",
                         public_message="Bad request: the same value was given under several "
                                        f"parameter names ({', '.join(present)}).")
    return params[present[0]] if present else None


def basic_credentials(header: str, limit: int) -> Credentials:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise BadRequest("unsupported Authorization header",
                         public_message="Bad request: unsupported Authorization header.")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("malformed Basic credentials",
                         public_message="Bad request: malformed Authorization header.") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise BadRequest("Basic credentials without ':'",
                         public_message="Bad request: malformed Authorization header.")
    if len(username) > limit or len(password) > limit:
        raise BadRequest("Basic credentials too long",
                         public_message="Bad request: credentials are too long.")
    return Credentials(username=username, password=SecretStr(password), source="basic")


def build_request(
    *, path: str, query: bytes, body: bytes, headers: Mapping[str, str], client_addr: str,
    settings: Settings,
) -> ProvisionRequest:
    params: dict[str, str] = {}
    parse_params(query, settings, params)
    parse_params(body, settings, params)
    names = settings.request
    username = pick(params, names.username_params)
    password = pick(params, names.password_params)
    version = pick(params, names.version_params)
    credentials: Credentials | None = None
    if username is not None or password is not None:
        credentials = Credentials(username=username or "", password=SecretStr(password or ""))
    else:
        authorization = headers.get("authorization")
        if authorization is not None:
            # Query credentials win; Basic is only used when the URL carries none.
            credentials = basic_credentials(authorization, settings.server.max_param_length)
    return ProvisionRequest(path=path, params=params, headers=headers, client_addr=client_addr,
                            credentials=credentials, version_raw=version)
