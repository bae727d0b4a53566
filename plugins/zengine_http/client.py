"""The HTTP client: one pooled ``httpx2.Client`` per app, timeouts, retries, a size cap and the
circuit breaker around every lookup.

``httpx2`` is the maintained fork of httpx (the same API; httpx itself has had no release since
0.28.1 and Starlette's TestClient already prefers httpx2), so the server and the test suite
share one HTTP client library.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from zengine import __version__
from zengine.errors import BackendUnavailable, ConfigError, ZengineError
from zengine.settings import Settings, resolve_secret
from zengine_http.breaker import Breaker, BreakerOpen
from zengine_http.settings import IDEMPOTENT, HttpSettings, RequestSettings
from zengine_http.template import expand_json, expand_text, expand_url

if TYPE_CHECKING:
    import httpx2

# httpx2 (~5 MB per worker) is imported where a configured Service uses it, not with the
# plugin: a server without [plugins.http] base_url never loads it.

T = TypeVar("T")
log = structlog.get_logger("zengine.http")
#: Statuses worth one more try of an idempotent request: the service said "not now".
_RETRY_STATUSES = frozenset({502, 503, 504})


class Outage(Exception):
    """The service did not answer usefully; counts against the circuit breaker."""


class Malformed(Outage):
    """The answer is not the JSON the configuration describes."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            # json.loads' message quotes the document: it may hold SIP passwords.
            raise Malformed(f"answer ({self.status}) is not valid JSON") from None


def tls_context(config: HttpSettings, settings: Settings) -> ssl.SSLContext:
    cafile = str(settings.resolve_path(config.ca_file)) if config.ca_file else None
    try:
        # TLS 1.2+, CERT_REQUIRED and host name checking, as the standard library defaults.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[plugins.http] ca_file {cafile}: cannot load ({exc})") from None
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Service:
    """The configured service. Thread-safe: hooks run in the endpoint's worker threads."""

    def __init__(self, config: HttpSettings, settings: Settings) -> None:
        import httpx2

        self.config = config
        headers = {"Accept": "application/json", "User-Agent": f"zengine/{__version__}",
                   **config.headers}
        auth: httpx2.BasicAuth | None = None
        token = resolve_secret(config.bearer_token, config.bearer_token_file, settings,
                               "[plugins.http] bearer_token")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        password = resolve_secret(config.basic_password, config.basic_password_file, settings,
                                  "[plugins.http] basic_password")
        if password is not None and config.basic_username is not None:
            auth = httpx2.BasicAuth(config.basic_username, password.get_secret_value())
        self.client = httpx2.Client(
            verify=tls_context(config, settings), auth=auth, headers=headers,
            timeout=self._timeout(config.deadline),
            limits=httpx2.Limits(max_connections=config.pool_size,
                                 max_keepalive_connections=config.pool_size),
            # A redirect could carry the login to another host; the environment's proxies
            # must not see it either unless the operator routes it there on purpose.
            follow_redirects=False, trust_env=False)
        self.breaker = Breaker(config.breaker_failures, config.breaker_reset)

    def close(self) -> None:
        self.client.close()

    def _timeout(self, remaining: float) -> httpx2.Timeout:
        import httpx2

        c = self.config
        return httpx2.Timeout(connect=min(c.connect_timeout, remaining),
                              read=min(c.read_timeout, remaining),
                              write=min(c.read_timeout, remaining),
                              pool=min(c.pool_timeout, remaining))

    def build(self, request: RequestSettings, values: Mapping[str, str | None]) -> httpx2.Request:
        """The request with every value encoded by the layer it lands in."""
        params = {name: expand_text(value, values) for name, value in request.query.items()}
        kwargs: dict[str, Any] = {"params": params or None}
        if request.json_body is not None:
            kwargs["json"] = expand_json(request.json_body, values)
        elif request.form is not None:
            kwargs["data"] = {name: expand_text(value, values)
                              for name, value in request.form.items()}
        return self.client.build_request(request.method, expand_url(request.url, values),
                                         **kwargs)

    def call(self, what: str, request: RequestSettings, values: Mapping[str, str | None],
             handle: Callable[[Answer], T]) -> T:
        """Send ``request`` and give the answer to ``handle``, inside the circuit breaker.

        ``handle`` raises :class:`Malformed` for an answer that does not parse (counted as a
        failure) or a :class:`ZengineError` for data that cannot be provisioned (the service
        itself is healthy).
        """
        built = self.build(request, values)
        try:
            trial = self.breaker.before()
        except BreakerOpen:
            raise BackendUnavailable(f"http {what}: circuit breaker open after repeated "
                                     "failures; not asking the service") from None
        try:
            result = handle(self._send(what, built))
        except Outage as exc:
            if self.breaker.failed(trial):
                log.error("http.breaker_open", request=what, seconds=self.config.breaker_reset)
            raise BackendUnavailable(f"http {what}: {exc}") from None
        except PoolFull as exc:
            self.breaker.released(trial)
            raise BackendUnavailable(f"http {what}: {exc}") from None
        except ZengineError:
            self.breaker.succeeded(trial)
            raise
        except BaseException:
            self.breaker.released(trial)
            raise
        self.breaker.succeeded(trial)
        return result

    def _send(self, what: str, request: httpx2.Request) -> Answer:
        import httpx2

        config = self.config
        started = time.monotonic()
        idempotent = request.method in IDEMPOTENT
        attempt = 0
        while True:
            attempt += 1
            remaining = config.deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise Outage(f"no answer within deadline {config.deadline}s")
            request.extensions["timeout"] = self._timeout(remaining).as_dict()
            retry_safe = True
            try:
                answer = self._exchange(request, started)
                if answer.status not in _RETRY_STATUSES and answer.status < 500 \
                        and answer.status != 429:
                    return answer
                problem: Exception = Outage(f"service answered {answer.status}")
                retry_safe = idempotent and answer.status in _RETRY_STATUSES
            except httpx2.PoolTimeout:
                raise PoolFull(f"all {config.pool_size} connections busy for "
                               f"{config.pool_timeout}s") from None
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                # Nothing was sent: repeating any request is safe.
                problem = Outage(f"cannot connect: {_reason(exc)}")
            except (httpx2.TimeoutException, httpx2.NetworkError,
                    httpx2.RemoteProtocolError) as exc:
                # The service may have acted on it: only an idempotent request is repeated.
                problem = Outage(f"{type(exc).__name__}: {_reason(exc)}")
                retry_safe = idempotent
            except httpx2.HTTPError as exc:
                raise Outage(f"{type(exc).__name__}: {_reason(exc)}") from None
            log.warning("http.attempt_failed", request=what, attempt=attempt,
                        reason=str(problem))
            if not retry_safe or attempt > config.retries:
                raise problem
            time.sleep(min(config.retry_backoff * attempt,
                           max(0.0, config.deadline - (time.monotonic() - started))))

    def _exchange(self, request: httpx2.Request, started: float) -> Answer:
        limit = self.config.max_response_bytes
        response = self.client.send(request, stream=True)
        try:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise Outage(f"answer of {length} bytes is over max_response_bytes = {limit}")
            body = bytearray()
            # Decoded bytes are counted, so a small compressed answer cannot expand past it.
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise Outage(f"answer is over max_response_bytes = {limit}")
                if time.monotonic() - started > self.config.deadline:
                    raise Outage(f"answer still arriving after deadline {self.config.deadline}s")
            return Answer(response.status_code, bytes(body))
        finally:
            response.close()


class PoolFull(Exception):
    """Every pooled connection is busy: local overload, not a sign the service is down."""


def _reason(exc: Exception) -> str:
    # httpx messages name the host and the OS or TLS error, never headers or bodies.
    return str(exc)[:200] or type(exc).__name__
