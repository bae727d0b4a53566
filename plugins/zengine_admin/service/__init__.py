"""The admin service: typed operations the REST API and the web console both call.

**For the console** (and any other in-process caller): build an :class:`Actor` for whoever
signed in (``Actor.from_key`` for an API key the console checked with
:func:`zengine_admin.auth.check_key`; ``Actor(name=..., scope="write", tenant=None,
client_addr=...)`` for a member of the configured LDAP admin group), then call the functions
below with ``(runtime, actor, ...)``. Every function is synchronous and may block on a
database or directory: call it from a worker thread (``anyio.to_thread.run_sync``). Each one
enforces the actor's scope and tenant itself, validates its input with the same rules as the
CLI (``zengine_sql.admin``), audits what it changes (who = ``actor.name``, from where =
``actor.client_addr``), and raises a :class:`zengine_admin.problems.Problem` subclass on
refusal (``problem.status``, ``problem.detail``, ``problem.errors`` naming the fields): show
``detail``, never a traceback.

* users: :func:`find_users`, :func:`user_detail`, :func:`create_user`, :func:`update_user`,
  :func:`set_password`, :func:`delete_user`, :func:`add_account`, :func:`set_sip_password`,
  :func:`delete_account`
* :func:`preview` (the document a user's phone gets, passwords masked)
* :func:`lockouts`, :func:`clear_lockouts`
* :func:`issue_token` (the token, its link and the QR as SVG, once), :func:`list_tokens`,
  :func:`revoke_token`, :func:`revoke_user_tokens`
* :func:`audit_events` (stored audit events, paged by cursor)
* :func:`tenants`, :func:`profiles`, :func:`plugins`, :func:`status`

Answers are the pydantic models of :mod:`zengine_admin.models`.

One module per resource (:mod:`.users`, :mod:`.preview`, :mod:`.lockouts`, :mod:`.tokens`,
:mod:`.auditlog`, :mod:`.info`) over :mod:`.base` (the actor, tenant scoping, audit and
backend helpers); this package re-exports them, so callers import ``zengine_admin.service``
and never a submodule.
"""

from __future__ import annotations

from zengine_admin.service.auditlog import audit_events
from zengine_admin.service.base import MASK, Actor, audit, scoped
from zengine_admin.service.info import plugins, profiles, status, tenants
from zengine_admin.service.lockouts import clear_lockouts, lockouts
from zengine_admin.service.preview import preview
from zengine_admin.service.tokens import issue_token, list_tokens, revoke_token, revoke_user_tokens
from zengine_admin.service.users import (
    add_account,
    create_user,
    delete_account,
    delete_user,
    find_users,
    set_password,
    set_sip_password,
    update_user,
    user_detail,
)

__all__ = [
    "MASK", "Actor", "add_account", "audit", "audit_events", "clear_lockouts", "create_user",
    "delete_account", "delete_user", "find_users", "issue_token", "list_tokens", "lockouts",
    "plugins", "preview", "profiles", "revoke_token", "revoke_user_tokens", "scoped",
    "set_password", "set_sip_password", "status", "tenants", "update_user", "user_detail",
]
