"""The public API: every name a plugin may import from zengine, in one place.

A third-party plugin imports from here (and, in its tests, from :mod:`zengine.testing`);
everything else under ``zengine`` is internal and may change in any release. The names below
follow the deprecation policy in docs/plugins.md: none is removed or changes meaning without
first being deprecated for at least one minor release. tests/test_api.py checks that each one
is documented and that the example plugin imports nothing else.

To add a name: import it here, add it to ``__all__`` and to the "Public API" table of
docs/plugins.md.
"""

from __future__ import annotations

from zengine import __version__, hookimpl
from zengine.app import create_app
from zengine.errors import (
    AccessDenied,
    AccountDataError,
    BackendUnavailable,
    BadRequest,
    BadVersion,
    ConfigError,
    LoginFailed,
    MissingCredentials,
    NoAccounts,
    Overloaded,
    StoreUnavailable,
    TooManyAttempts,
    ZengineDeprecationWarning,
    ZengineError,
)
from zengine.logline import log_event
from zengine.models import (
    Abstain,
    Account,
    AuditEvent,
    AuthResult,
    ClientInfo,
    Command,
    Credentials,
    Document,
    Element,
    Identity,
    LoginAttempt,
    LoginResult,
    Observation,
    PluginSettingsSpec,
    ProvisionRequest,
    Readiness,
    Rejected,
    RequestSummary,
    ResolvedAccount,
    Transform,
    Version,
)
from zengine.pipeline import check_login
from zengine.render import PREVIEW_PLACEHOLDER, previewing
from zengine.runtime import Runtime, build_runtime
from zengine.settings import (
    Settings,
    format_validation_error,
    load_settings,
    resolve_secret,
    settings_from_mapping,
)
from zengine.store import MemoryStore, SharedStore
from zengine.verifying import announce_verification

__all__ = [
    "PREVIEW_PLACEHOLDER",
    "Abstain",
    "AccessDenied",
    "Account",
    "AccountDataError",
    "AuditEvent",
    "AuthResult",
    "BackendUnavailable",
    "BadRequest",
    "BadVersion",
    "ClientInfo",
    "Command",
    "ConfigError",
    "Credentials",
    "Document",
    "Element",
    "Identity",
    "LoginAttempt",
    "LoginFailed",
    "LoginResult",
    "MemoryStore",
    "MissingCredentials",
    "NoAccounts",
    "Observation",
    "Overloaded",
    "PluginSettingsSpec",
    "ProvisionRequest",
    "Readiness",
    "Rejected",
    "RequestSummary",
    "ResolvedAccount",
    "Runtime",
    "Settings",
    "SharedStore",
    "StoreUnavailable",
    "TooManyAttempts",
    "Transform",
    "Version",
    "ZengineDeprecationWarning",
    "ZengineError",
    "__version__",
    "announce_verification",
    "build_runtime",
    "check_login",
    "create_app",
    "format_validation_error",
    "hookimpl",
    "load_settings",
    "log_event",
    "previewing",
    "resolve_secret",
    "settings_from_mapping",
]
