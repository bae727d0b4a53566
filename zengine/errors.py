"""One exception hierarchy; each error knows its HTTP status and the text a user may see.

Plugins raise these; only the app's error handler turns them into Zoiper ``<error>`` documents.
The ``kind`` is what operators map to an HTTP status in ``[errors.status]``.
"""

from __future__ import annotations


class ZengineError(Exception):
    """Base of every error zengine turns into an ``<error>`` document."""

    kind = "internal"
    default_status = 500
    public_message = "Provisioning failed. Please try again later."
    #: Seconds for the ``Retry-After`` header; ``None`` sends none.
    retry_after: int | None = None

    def __init__(self, detail: str = "", *, public_message: str | None = None,
                 retry_after: int | None = None) -> None:
        # ``detail`` goes to the log only; it must never carry a secret.
        super().__init__(detail or self.public_message)
        self.detail = detail
        if public_message is not None:
            self.public_message = public_message
        if retry_after is not None:
            self.retry_after = max(1, int(retry_after))


class BadRequest(ZengineError):
    """The request itself is malformed (duplicated or oversized parameter, bad header)."""

    kind = "bad_request"
    default_status = 400
    public_message = "Bad request: malformed provisioning request."


class MissingCredentials(ZengineError):
    kind = "missing_credentials"
    default_status = 200
    public_message = "Please enter your username and password."


class MissingUsername(MissingCredentials):
    public_message = "No username given. Please enter your username."


class MissingPassword(MissingCredentials):
    public_message = "No password given. Please enter your password."


class LoginFailed(ZengineError):
    """Unknown user and wrong password must look identical from outside."""

    kind = "wrong_login"
    default_status = 200
    public_message = "Wrong username or password."


class BadVersion(ZengineError):
    kind = "bad_version"
    default_status = 200
    public_message = "Unknown provisioning version. Please update your Zoiper app."


class NoAccounts(ZengineError):
    kind = "no_accounts"
    default_status = 200
    public_message = "No SIP account is set up for this login. Please contact your provider."


class BackendUnavailable(ZengineError):
    """A backend cannot be reached; the client then keeps its existing configuration."""

    kind = "backend_unavailable"
    default_status = 503
    public_message = "The provisioning service is temporarily unavailable. Please try again later."


class AccountDataError(ZengineError):
    """A backend returned data that cannot be provisioned (duplicate ident, bad value)."""

    kind = "account_data"
    default_status = 500
    public_message = "Your account data could not be provisioned. Please contact your provider."


class TooManyAttempts(ZengineError):
    """A login refused before any password check: locked out, rate-limited or a denied address.

    Raised by :func:`~zengine.hookspecs.zengine_login_check`; the answer is the same whether
    or not the user exists. Give ``retry_after`` and a ``public_message`` the user can act on.
    """

    kind = "too_many_attempts"
    default_status = 429
    public_message = "Too many login attempts. Please try again later."
    retry_after = 60


class AccessDenied(ZengineError):
    """The client's address may not log in on this path (an allow or deny list)."""

    kind = "access_denied"
    default_status = 403
    public_message = "Logins from your network are not allowed here. Please contact your provider."


class Overloaded(ZengineError):
    """The password-verification pool and its queue are full: answer at once, do not queue.

    A Zoiper client keeps its existing configuration on a 5xx and retries later.
    """

    kind = "overloaded"
    default_status = 503
    public_message = "The provisioning service is busy. Please try again in a moment."
    retry_after = 2


class StoreUnavailable(Exception):
    """A :class:`~zengine.store.SharedStore` cannot be reached (e.g. Redis is down).

    Not a :class:`ZengineError`: each user of the store decides whether that fails open or
    closed, and says so in its documentation.
    """


class ConfigError(Exception):
    """Raised at load time; the message names the file, the key, the value and what is allowed."""


class ZengineDeprecationWarning(DeprecationWarning):
    """A plugin uses a hook, hook parameter or model field that is being retired.

    The message names the successor and the release that removes the old name (see the
    deprecation policy in docs/plugins.md).
    """


ERROR_KINDS: tuple[type[ZengineError], ...] = (
    ZengineError,
    BadRequest,
    MissingCredentials,
    LoginFailed,
    BadVersion,
    NoAccounts,
    BackendUnavailable,
    AccountDataError,
    TooManyAttempts,
    AccessDenied,
    Overloaded,
)
