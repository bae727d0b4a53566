"""The SQL backend: zengine's own schema, or the tables a PBX already has (mapping mode).

Works on SQLite, PostgreSQL (psycopg 3) and MariaDB/MySQL (PyMySQL). Without ``url`` the plugin
is inert: it abstains from every login and holds no accounts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from zengine import hookimpl
from zengine.models import (
    Abstain,
    Account,
    Command,
    Credentials,
    Identity,
    PluginSettingsSpec,
    Readiness,
    Rejected,
)
from zengine_sql.settings import PLUGIN_NAME, SqlSettings

# SQLAlchemy, Alembic and the drivers load only when a SQL backend is configured (or a
# ``zengine users``/``db`` command runs): an installation that does not use SQL does not pay
# their memory in every worker.
if TYPE_CHECKING:
    from zengine.runtime import Runtime
    from zengine_sql.state import SqlState

def get_state(runtime: Runtime) -> SqlState | None:
    state = runtime.state.get(PLUGIN_NAME)
    if state is None:
        return None
    from zengine_sql.state import SqlState

    return state if isinstance(state, SqlState) else None


def open_state(runtime: Runtime) -> SqlState | None:
    """Build the engine from the settings; nothing connects until the first query."""
    config = runtime.config(PLUGIN_NAME, SqlSettings)
    if not config.configured:
        return None
    from zengine_sql import engine as sql_engine
    from zengine_sql.crypto import load_keys
    from zengine_sql.deadline import Watchdog
    from zengine_sql.state import SqlState

    url = sql_engine.resolve_url(config, runtime.settings)
    box = load_keys(config, runtime.settings)
    engine = sql_engine.create(url, config)
    # Bounded capacity and time for request-path queries (see zengine_sql.deadline).
    watchdog = Watchdog(engine, capacity=config.pool_size + config.max_overflow,
                        wait=config.pool_timeout, deadline=float(config.statement_timeout))
    return SqlState(config=config, url=url, engine=engine, box=box,
                    mapping=config.mapping if config.mode == "mapping" else None,
                    passwords=runtime.passwords, logins=runtime.logins, watchdog=watchdog,
                    tenant=runtime.tenant or None)


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(name=PLUGIN_NAME, model=SqlSettings)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    state = open_state(runtime)
    if state is None:
        return
    runtime.state[PLUGIN_NAME] = state
    if state.watchdog is not None:
        state.watchdog.start()
    if state.config.create_schema_on_start and state.mapping is None:
        from zengine_sql import engine as sql_engine
        from zengine_sql import migrate

        with sql_engine.unavailable_on_error(state.url):
            migrate.upgrade(state.engine)


@hookimpl
def zengine_shutdown(runtime: Runtime) -> None:
    state = runtime.state.pop(PLUGIN_NAME, None)
    if state is None:
        return
    from zengine_sql.state import SqlState

    if isinstance(state, SqlState):
        if state.watchdog is not None:
            state.watchdog.stop()
        state.engine.dispose()


@hookimpl
def zengine_authenticate(credentials: Credentials,
                         runtime: Runtime) -> Identity | Rejected | Abstain | None:
    state = get_state(runtime)
    if state is None:
        return None
    from zengine_sql import mapping, own

    if state.mapping is not None:
        return mapping.authenticate(state, credentials)
    return own.authenticate(state, credentials)


@hookimpl
def zengine_find_identity(username: str, runtime: Runtime) -> Identity | None:
    state = get_state(runtime)
    if state is None:
        return None
    from zengine_sql import mapping, own

    if state.mapping is not None:
        return mapping.find_identity(state, username)
    return own.find_identity(state, username)


@hookimpl
def zengine_load_accounts(identity: Identity, runtime: Runtime) -> Iterable[Account] | None:
    state = get_state(runtime)
    if state is None:
        return None
    from zengine_sql import mapping, own

    if state.mapping is not None:
        return mapping.load_accounts(state, identity)
    return own.load_accounts(state, identity)


@hookimpl
def zengine_readiness(runtime: Runtime) -> list[Readiness] | None:
    state = get_state(runtime)
    if state is None:
        return None
    from zengine_sql.ready import probe

    return [probe(state)]


@hookimpl
def zengine_cli_commands() -> Iterable[Command]:
    from zengine_sql.cli import commands

    return commands()


@hookimpl
def zengine_data_generation(runtime: Runtime) -> str | None:
    # Rows change under other processes (the CLI, the PBX): no cheap generation yet, so a
    # configured SQL backend's documents are built on every request.
    return None if get_state(runtime) is not None else "inert"


@hookimpl
def zengine_inline_safe() -> bool:
    # Configured, this backend reports no data generation, so its answers are never reused
    # and its authenticate always runs in the worker thread; inert, it answers nothing.
    return True
