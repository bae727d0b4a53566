"""The HTTP Basic challenge: which error answers become ``401`` with ``WWW-Authenticate``.

Zoiper5's ``authentication_type = basic`` is "basic access authentication" (public-docs Desktop
provisioning.md); whether the client sends credentials at once or waits for a challenge is not
documented, so zengine challenges: a client that waits never logs in without it, and one that
sends at once never sees it. Mobile apps show the ``<error>`` text of a 200 and keep their
configuration on a 4xx, so a mobile request without credentials is not challenged unless the
operator asks for it (``[clients] basic_challenge = "everywhere"``).
"""

from __future__ import annotations

from zengine.errors import LoginFailed, MissingCredentials, ZengineError
from zengine.models import ProvisionRequest
from zengine.settings import Settings

UNAUTHORIZED = 401


def challenge_header(settings: Settings) -> str:
    # RFC 7617: the realm is a quoted string (validated in the settings: no quote, backslash
    # or control character), and charset="UTF-8" asks the client to encode in UTF-8.
    return f'Basic realm="{settings.clients.basic_realm}", charset="UTF-8"'


def wants_challenge(error: ZengineError, request: ProvisionRequest | None,
                    settings: Settings) -> bool:
    """A request without credentials on a challenged path, or a failed Basic login anywhere
    (Basic is accepted on every path)."""
    mode = settings.clients.basic_challenge
    if mode == "off" or request is None:
        return False
    if isinstance(error, MissingCredentials):
        return mode == "everywhere" or request.path in settings.clients.desktop_paths
    if isinstance(error, LoginFailed):
        return request.credentials is not None and request.credentials.source == "basic"
    return False


def error_answer(error: ZengineError, request: ProvisionRequest | None, settings: Settings,
                 status: int) -> tuple[int, tuple[tuple[str, str], ...]]:
    """The status and extra headers of an error document; ``status`` is the configured one."""
    if wants_challenge(error, request, settings):
        return UNAUTHORIZED, (("WWW-Authenticate", challenge_header(settings)),)
    return status, ()
