"""The metrics themselves, fed by the hooks, in one process or in prometheus-client's
multiprocess mode.

Every label value comes from code, never from a client, and is bounded on top of that
(:class:`Labels`): a value that does not look like a short identifier, or a label's 33rd
distinct value, is counted as ``other``. No label carries a username, an address or a token.
``path`` is a provisioning path or a plugin route's template (the core reports templates,
never the path asked), bounded at 96 values.

Tenants: requests and logins carry a ``tenant`` label (``""`` without ``[tenants]``, the
configured names, ``unknown`` for a request no tenant claims), bounded by the configuration.
The other metrics are the deployment's: verification pool, caches and backends are shared or
per plugin, not per tenant; a metric that gains a tenant later adds the label the same way.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from zengine.models import AuditEvent, Observation, RequestSummary
from zengine_metrics.settings import MetricsSettings

log = structlog.get_logger("zengine.metrics")

#: Distinct values one label may take in one process; beyond that, ``other``.
MAX_VALUES = 32
_VALUE = re.compile(r"[a-z][a-z0-9_.-]{0,39}")
#: A ``path`` label value: a provisioning path or a plugin route's template, never the path
#: asked (the core reports templates); more distinct values than other labels (the admin
#: API alone has a score of routes).
_PATH = re.compile(r"/[A-Za-z0-9_.{}~:/-]{0,79}")
MAX_PATHS = 96
#: Seconds: from a cached login (well under a millisecond) to a backend at its deadline.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: ``token.*`` audit outcomes counted (anything else a plugin audits is ``other``).
TOKEN_EVENTS = frozenset({"issued", "used", "replayed", "revoked", "refused"})
#: ``login`` results that are refusals before any password was checked, or by the pool.
REFUSING_LOGINS = {"denied": "denied", "overloaded": "overloaded"}


class Labels:
    """Bounded label values, per label name."""

    def __init__(self, pattern: re.Pattern[str] = _VALUE, limit: int = MAX_VALUES) -> None:
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._pattern = pattern
        self._limit = limit

    def __call__(self, label: str, value: str | None) -> str:
        if value is None:
            return "none"
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        if self._pattern.fullmatch(value) is None:
            return "other"
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if len(seen) >= self._limit:
                return "other"
            seen.add(value)
        return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_dir(config: MetricsSettings) -> Path:
    """This server's directory of per-process files, made fresh; those of servers no longer
    running are removed. Keyed by the serving process (the workers' parent), so the workers
    of one ``zengine serve`` share it, and a worker the engine restarts keeps adding to it."""
    base = config.multiprocess_dir or Path(tempfile.gettempdir()) / f"zengine-metrics-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in base.glob("run-*"):
        pid = old.name.removeprefix("run-")
        if pid.isdigit() and int(pid) != os.getppid() and not _alive(int(pid)):
            # Two workers may clean at once: whoever is second finds less to remove.
            shutil.rmtree(old, ignore_errors=True)
    run = base / f"run-{os.getppid()}"
    run.mkdir(mode=0o700, exist_ok=True)
    return run


class Metrics:
    """One runtime's metrics (``runtime.state["metrics"]``)."""

    def __init__(self, config: MetricsSettings, workers: int,
                 tenants: Iterable[str] = ()) -> None:
        self.config = config
        self.label = Labels()
        self.path = Labels(_PATH, MAX_PATHS)
        #: Each labelled child, found once: ``labels()`` validates and locks on every call,
        #: and costs more than the increment. Bounded as the label values are.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.tenants = frozenset({"", *tenants})
        self.directory: Path | None = None
        registry: CollectorRegistry | None
        if workers > 1:
            self.directory = multiprocess_dir(config)
            # prometheus-client reads the directory from the environment for every value it
            # creates, and picks its value class at import: both are set before any metric.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.directory)
            if not getattr(values.ValueClass, "_multiprocess", False):
                values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
                # An engine may end a worker without the app's shutdown: close the files then.
                atexit.register(self.close)
            registry = None
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        else:
            registry = self.registry = CollectorRegistry()

        def counter(name: str, text: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, text, labels, registry=registry)

        def histogram(name: str, text: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, text, labels, registry=registry, buckets=BUCKETS)

        self.requests = counter(
            "zengine_requests",
            "Requests answered: provisioning paths, and plugin routes by their template.",
            ("path", "tenant", "outcome", "family", "status"))
        self.request_duration = histogram(
            "zengine_request_duration_seconds",
            "Seconds a request took to answer, a login's failure floor included.",
            ("path", "outcome"))
        self.logins = histogram(
            "zengine_login_duration_seconds",
            "Seconds a login's check took (guard, backends, password), by result.",
            ("tenant", "result"))
        self.backend_duration = histogram(
            "zengine_backend_duration_seconds", "Seconds one backend call took.",
            ("backend", "operation"))
        self.backend_errors = counter(
            "zengine_backend_errors", "Backend calls that raised, by error kind.",
            ("backend", "operation", "kind"))
        self.password_verifications = counter(
            "zengine_password_verifications",
            "Slow password checks actually spent (argon2 hashes, LDAP binds).",
            ("method", "kind"))
        self.login_cache = counter("zengine_login_cache",
                                   "Verified-login cache lookups.", ("backend", "result"))
        self.document_cache = counter("zengine_document_cache",
                                      "Rendered-document cache lookups.", ("result",))
        self.refusals = counter(
            "zengine_refusals",
            "Logins and requests refused before or instead of an answer: guard lockouts and "
            "limits (429), denied addresses (403), a full verification pool (503 overloaded), "
            "the backend deadline (503).", ("reason",))
        self.token_events = counter("zengine_token_events",
                                    "Provisioning token events.", ("event",))
        self.store_errors = counter("zengine_store_errors",
                                    "Shared-store (Redis) errors, by who met them.",
                                    ("store", "component"))
        # Also makes every worker's file exist from its start, so a scrape always shows all.
        counter("zengine_worker_starts",
                "Worker processes started (rising while serving: workers restart).", ()).inc()

    # -- fed by the hooks (cheap: a few dictionary lookups and an increment) ---------------

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request(self, summary: RequestSummary) -> None:
        if summary.path == self.config.path:
            return  # a scrape is not the service's traffic: scraping changes no count
        label = self.label
        path, outcome = self.path("path", summary.path), label("outcome", summary.outcome)
        status = str(summary.status) if 100 <= summary.status <= 599 else "other"
        self._child(self.requests, path, self.tenant(summary.tenant), outcome,
                    label("family", summary.family), status).inc()
        self._child(self.request_duration, path, outcome).observe(summary.seconds)
        if summary.outcome == "deadline":
            self._child(self.refusals, "deadline").inc()

    def tenant(self, name: str) -> str:
        """A configured tenant's name, ``""`` for none, ``unknown`` for anything else."""
        return name if name in self.tenants else "unknown"

    def observe(self, item: Observation, tenant: str = "") -> None:
        name, label = item.name, self.label
        if name == "login":
            result = label("result", item.result)
            self._child(self.logins, self.tenant(tenant), result).observe(item.seconds or 0.0)
            refusal = REFUSING_LOGINS.get(item.result or "")
            if refusal is not None:
                self._child(self.refusals, refusal).inc()
        elif name.startswith("backend."):
            backend, operation = label("backend", item.backend), label("operation", name[8:])
            self._child(self.backend_duration, backend, operation).observe(item.seconds or 0.0)
            if item.result != "ok":
                kind = label("kind", item.result)
                self._child(self.backend_errors, backend, operation, kind).inc()
        elif name == "password.argon2":
            self._child(self.password_verifications, "argon2", label("kind", item.result)).inc()
        elif name == "password.bind":
            self._child(self.password_verifications, "ldap_bind", label("kind", item.result)).inc()
        elif name == "login_cache":
            self._child(self.login_cache, label("backend", item.backend),
                                    label("result", item.result)).inc()
        elif name == "document_cache":
            self._child(self.document_cache, label("result", item.result)).inc()
        elif name == "store.error":
            self._child(self.store_errors, label("store", item.backend),
                                     label("component", item.result)).inc()

    def audit(self, event: AuditEvent) -> None:
        if event.event in ("login.locked", "login.limited"):
            self._child(self.refusals, event.event[6:]).inc()
        elif event.event.startswith("token."):
            outcome = event.outcome if event.outcome in TOKEN_EVENTS else "other"
            self._child(self.token_events, outcome).inc()

    def close(self) -> None:
        """Close this process's multiprocess files (the worker is stopping)."""
        if self.directory is not None:
            close_all = getattr(values.ValueClass, "close_all_files", None)
            if close_all is not None:
                close_all()

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's counts summed in multiprocess mode."""
        return generate_latest(self.registry)

