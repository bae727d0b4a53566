"""The ``[plugins.http]`` table: the service, its credentials, and the requests to make.

Templates are checked here, at load time: a placeholder the request cannot fill, the password
anywhere but a login body, or a placeholder before the URL's path is a configuration error
that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from zengine_http.template import TemplateError, fields_in

NAME = "http"
#: Account fields a field map may fill (``zengine.models.Account``), plus ``overrides``.
ACCOUNT_TARGETS = ("ident", "sip_username", "sip_password", "domain", "name", "auth_username",
                   "caller_id", "outbound_proxy", "transport", "profile", "token", "overrides")
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Answers = tuple[int | str, ...]


class RequestSettings(_Model):
    """One request: method, URL template and at most one kind of body."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    #: ``https://host/path/{username}``: placeholders only after the host, URL-encoded.
    url: str = ""
    #: Query parameters (URL-encoded); values are templates.
    query: dict[str, str] = Field(default_factory=dict)
    #: A JSON body: any TOML value; each string in it is a template, and the result is
    #: encoded by the JSON encoder (``"{username}"`` becomes a JSON string, never pasted text).
    json_body: dict[str, Any] | None = Field(None, alias="json")
    #: A form-encoded body (``application/x-www-form-urlencoded``); values are templates.
    form: dict[str, str] | None = None
    #: JSON path (``data.result``) of a string the service answers with; matched against the
    #: string entries of the answer lists below before the status code is.
    result: str = ""


class LoginSettings(RequestSettings):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    accept: Answers = (200,)
    wrong_password: Answers = (401,)
    unknown_user: Answers = (404,)
    disabled: Answers = (403,)


class LookupSettings(RequestSettings):
    """``zengine render``'s lookup of a user without a password (optional)."""

    found: Answers = (200,)
    unknown_user: Answers = (404,)


class AccountsSettings(RequestSettings):
    found: Answers = (200,)
    #: Answers that mean "this user has no accounts here".
    none: Answers = (404,)
    #: JSON path of the list of accounts in the answer; empty: the answer is the list.
    items: str = ""
    #: Account field -> JSON path inside one list item.
    fields: dict[str, str] = Field(default_factory=lambda: {
        "ident": "id", "sip_username": "sip_username", "sip_password": "sip_password",
        "domain": "domain"})
    #: SIP domain for items without one.
    domain: str | None = None


class IdentityMap(_Model):
    """JSON paths in the login (or lookup) answer that fill the :class:`Identity`."""

    #: The service's own spelling of the username (default: the login name as typed).
    username: str = ""
    display_name: str = ""
    profile: str = ""
    tenant: str = ""
    #: A list of strings.
    groups: str = ""
    #: Extra attributes (name -> JSON path); an accounts URL can use them as ``{name}``.
    attributes: dict[str, str] = Field(default_factory=dict)


class HttpSettings(_Model):
    #: Nothing is configured: the plugin abstains from every login and has no accounts.
    login: LoginSettings | None = None
    lookup: LookupSettings | None = None
    accounts: AccountsSettings | None = None
    identity: IdentityMap = IdentityMap()

    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    #: Extra request headers (not secrets: use the token or Basic keys for those).
    headers: dict[str, str] = Field(default_factory=dict)

    #: CA bundle (PEM) that signed the service's certificate; default: the system CAs.
    ca_file: Path | None = None
    #: Verify the certificate and host name. Turn off only for testing.
    verify: bool = True
    #: Allow ``http://`` URLs, which send passwords and the token in clear text.
    allow_plaintext: bool = False
    connect_timeout: float = Field(2.0, gt=0, le=60)
    #: Seconds between two reads of the answer.
    read_timeout: float = Field(5.0, gt=0, le=120)
    #: Seconds one lookup may take in all, retries and a slowly dripping answer included.
    deadline: float = Field(4.0, gt=0, le=300)
    #: Open connections to the service at most; more concurrent requests wait for one.
    pool_size: int = Field(16, ge=1, le=512)
    #: Seconds a request waits for a free connection before answering 503.
    pool_timeout: float = Field(2.0, gt=0, le=60)
    #: Extra attempts after a failure that is safe to repeat (see docs/backends/http.md).
    retries: int = Field(1, ge=0, le=5)
    retry_backoff: float = Field(0.1, ge=0, le=10)
    #: Largest answer accepted, in bytes after decompression.
    max_response_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    #: Consecutive failed lookups that open the circuit breaker ...
    breaker_failures: int = Field(5, ge=1, le=1000)
    #: ... and seconds it stays open (answering 503 at once) before one trial request.
    breaker_reset: float = Field(30.0, gt=0, le=3600)

    @property
    def enabled(self) -> bool:
        return self.login is not None or self.accounts is not None

    @model_validator(mode="after")
    def _consistent(self) -> HttpSettings:
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise _invalid("bearer_token", "<secret>", "set it or bearer_token_file, not both")
        if self.basic_password is not None and self.basic_password_file is not None:
            raise _invalid("basic_password", "<secret>",
                           "set it or basic_password_file, not both")
        has_basic = self.basic_password is not None or self.basic_password_file is not None
        if has_basic != (self.basic_username is not None):
            raise _invalid("basic_username", self.basic_username,
                           "basic_username and basic_password (or its file) go together")
        has_bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if has_basic and has_bearer:
            raise _invalid("bearer_token", "<secret>", "use a bearer token or Basic, not both")
        for name in self.headers:
            if name.lower() in ("authorization", "proxy-authorization", "cookie"):
                raise _invalid(f"headers.{name}", "<secret>",
                               "credentials go in bearer_token or basic_* (read from a file "
                               "or the environment), never in headers")
        attributes = set(self.identity.attributes)
        clash = attributes & {"username", "password"}
        if clash:
            raise _invalid("identity.attributes", sorted(clash), "these names are reserved")
        if self.login is not None:
            self._check_request("login", self.login, {"username", "password"})
        if self.lookup is not None:
            self._check_request("lookup", self.lookup, {"username"})
        if self.accounts is not None:
            self._check_request("accounts", self.accounts, {"username", *attributes})
            unknown = set(self.accounts.fields) - set(ACCOUNT_TARGETS)
            if unknown:
                raise _invalid("accounts.fields", sorted(unknown),
                               f"not account fields; allowed: {', '.join(ACCOUNT_TARGETS)}")
            for required in ("sip_username", "sip_password"):
                if required not in self.accounts.fields:
                    raise _invalid("accounts.fields", sorted(self.accounts.fields),
                                   f"must map {required}")
            if "domain" not in self.accounts.fields and not self.accounts.domain:
                raise _invalid("accounts.domain", None,
                               "required when accounts.fields maps no domain")
        return self

    def _check_request(self, key: str, request: RequestSettings, allowed: set[str]) -> None:
        url = request.url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(f"{key}.url", url, "expected an http:// or https:// URL")
        if parts.username or parts.password:
            raise _invalid(f"{key}.url", "<secret>", "credentials go in bearer_token or "
                           "basic_*, never in the URL")
        if parts.scheme == "http" and not self.allow_plaintext:
            raise _invalid(f"{key}.url", url, "would send passwords in clear text: use "
                           "https://, or set allow_plaintext = true")
        authority_end = len(f"{parts.scheme}://{parts.netloc}")
        _fields(f"{key}.url", url[:authority_end], set())
        _fields(f"{key}.url", url[authority_end:], allowed - {"password"})
        for name, value in request.query.items():
            _fields(f"{key}.query.{name}", value, allowed - {"password"})
        if request.json_body is not None and request.form is not None:
            raise _invalid(f"{key}.form", None, "a request has a json body or a form, not both")
        if request.method in ("GET", "HEAD") and (request.json_body or request.form):
            raise _invalid(f"{key}.method", request.method, "a GET request carries no body")
        for name, value in (request.form or {}).items():
            _fields(f"{key}.form.{name}", value, allowed)
        for where, value in _strings(request.json_body or {}, f"{key}.json"):
            _fields(where, value, allowed)
        if key == "login" and "password" not in _all_fields(request):
            raise _invalid(f"{key}.json", None, "the login request must send {password} "
                           "in its json or form body")


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, f"{where}[{i}]")]
    return []


def _all_fields(request: RequestSettings) -> set[str]:
    texts = [text for _, text in _strings(request.json_body or {}, "")]
    texts.extend((request.form or {}).values())
    return {name for text in texts for name in fields_in(text)}


def _fields(where: str, template: str, allowed: set[str]) -> None:
    try:
        names = fields_in(template)
    except TemplateError as exc:
        raise _invalid(where, template, str(exc)) from None
    unknown = names - allowed
    if unknown:
        if "password" in unknown:
            message = ("{password} may only be sent in the login request's json or form "
                       "body, never in a URL")
        elif not allowed:
            message = "no placeholder may come before the URL's path"
        else:
            message = (f"unknown placeholder(s) {sorted(unknown)}; available here: "
                       f"{sorted(allowed)}")
        raise _invalid(where, template, message)


def _invalid(key: str, value: object, message: str) -> ValidationError:
    """An error naming ``key`` that shows only ``value``, never the whole table's secrets."""
    return ValidationError.from_exception_data("HttpSettings", [InitErrorDetails(
        type=PydanticCustomError("http_config", "{message}", {"message": message}),
        loc=tuple(key.split(".")), input=value)])
