"""Turn an HTTP request into a :class:`ProvisionRequest`: parameter names from settings,
duplicates and oversized values refused, unsubstituted placeholders treated as absent, HTTP
Basic credentials understood (UTF-8, else ISO-8859-1)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from pydantic import SecretStr

from zengine.errors import BadRequest
from zengine.models import Credentials, ProvisionRequest
from zengine.settings import Settings
from zengine.values import xml_invalid_char

MAX_FIELDS = 32

# A placeholder the client did not substitute: ``[user]`` and ``[pass]`` (Zoiper5, the example
# server), ``[username]``/``[password]``/``[version]`` (mobile docs), ``{username}`` (iOS),
# ``$USERNAME``/``${USERNAME}`` (the example server before 2019). Only these names: a password
# that merely looks bracketed (``[x7]``) is still a password.
_PLACEHOLDER = re.compile(
    r"\s*(?:\[\s*(?P<a>\w+)\s*\]|\{\s*(?P<b>\w+)\s*\}|\$\{(?P<c>\w+)\}|\$(?P<d>\w+))\s*",
    re.ASCII)
_PLACEHOLDER_NAMES = frozenset({"user", "username", "pass", "password", "version", "v"})


def is_placeholder(value: str) -> bool:
    """``True`` for a placeholder the client left in the URL instead of a value."""
    match = _PLACEHOLDER.fullmatch(value)
    if match is None:
        return False
    name = next(group for group in match.groups() if group is not None)
    return name.lower() in _PLACEHOLDER_NAMES


def given(value: str | None) -> str | None:
    """A parameter value, or ``None`` when it is absent, empty or an unsubstituted placeholder."""
    if value is None or value == "" or is_placeholder(value):
        return None
    return value


def shown(name: str) -> str:
    """A parameter name as it may appear in a message: ASCII, escaped, at most 40 chars."""
    text = ascii(name)[1:-1]
    return text if len(text) <= 40 else text[:37] + "..."


def parse_params(raw: bytes, settings: Settings, into: dict[str, str], *,
                 plus_is_space: bool = True) -> None:
    if not raw:
        return
    if not plus_is_space:
        # Some apps put a raw "+" in the query (a password "a+b"): keep it a plus, not a space.
        raw = raw.replace(b"+", b"%2B")
    try:
        text = raw.decode("utf-8")
        pairs = _plain_pairs(text) if "%" not in text and "+" not in text else parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict",
            max_num_fields=MAX_FIELDS)
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


def _plain_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)`` for a query
    with no ``%`` and no ``+`` (a phone's usual one): with nothing to unquote, its pairs
    are the plain split, without its per-field unquoting (tests/clients/test_request.py)."""
    if text.count("&") >= MAX_FIELDS:  # parse_qsl's count: one more field than separators
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for field in text.split("&"):
        if field:  # "a&&b": parse_qsl skips the empty field
            name, _, value = field.partition("=")  # no "=": a blank value, as it keeps
            pairs.append((name, value))
    return pairs


def pick(params: Mapping[str, str], names: Sequence[str]) -> str | None:
    present = [name for name in names if name in params]
    if len(present) > 1:
        raise BadRequest(f"parameters {present} all given",
                         public_message="Bad request: the same value was given under several "
                                        f"parameter names ({', '.join(present)}).")
    return params[present[0]] if present else None


def basic_credentials(header: str, limit: int) -> Credentials:
    """Decode an ``Authorization: Basic`` header. Any input either decodes or raises
    :class:`BadRequest`; nothing else escapes (the header text is whatever the client sent)."""
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "basic":
        raise BadRequest("unsupported Authorization header",
                         public_message="Bad request: unsupported Authorization header.")
    try:
        raw = base64.b64decode(parts[1].strip().encode("ascii"), validate=True)
    except ValueError:  # binascii.Error, and UnicodeEncodeError for non-ASCII text
        raise BadRequest("malformed Basic credentials",
                         public_message="Bad request: malformed Authorization header.") from None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 7617 2.1: the challenge asks for UTF-8, but clients that predate it send
        # ISO-8859-1, which decodes any byte string.
        decoded = raw.decode("iso-8859-1")
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
    settings: Settings, path_key: str | None = None,
) -> ProvisionRequest:
    params: dict[str, str] = {}
    names = settings.request
    parse_params(query, settings, params, plus_is_space=names.plus_is_space)
    parse_params(body, settings, params)
    # A value the client did not substitute is no value: a Basic header then wins.
    username = given(pick(params, names.username_params))
    password = given(pick(params, names.password_params))
    version = pick(params, names.version_params)
    credentials: Credentials | None = None
    if username is not None or password is not None:
        credentials = Credentials(username=username or "", password=SecretStr(password or ""))
    else:
        authorization = headers.get("authorization")
        if authorization is not None:
            # Query credentials win; Basic is only used when the URL carries none.
            credentials = basic_credentials(authorization, settings.server.max_param_length)
    if credentials is not None:
        refuse_unstorable(credentials)
    return ProvisionRequest(path=path, params=params, headers=headers, client_addr=client_addr,
                            credentials=credentials, version_raw=version,
                            path_key=SecretStr(path_key) if path_key is not None else None)


def refuse_unstorable(credentials: Credentials) -> None:
    """A username or password with a character no backend can store or compare (NUL, which
    PostgreSQL refuses; lone surrogates; control characters XML cannot carry) is a bad request
    before any backend sees it, for every backend alike."""
    for field, text in (("username", credentials.username),
                        ("password", credentials.password.get_secret_value())):
        if xml_invalid_char(text) is not None:
            raise BadRequest(f"{field} holds a control character",
                             public_message=f"Bad request: the {field} contains a character "
                                            "that is not allowed.")
