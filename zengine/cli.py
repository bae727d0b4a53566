"""The ``zengine`` command."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zengine import __version__, catalog
from zengine.errors import ConfigError, ZengineError
from zengine.pidfile import PidFileError, cmd_reload
from zengine.runtime import Runtime, build_runtime
from zengine.settings import Settings, load_settings


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="config file (default: $ZENGINE_CONFIG; serve then tries "
                             f"{SYSTEM_CONFIG})")


def _runtime(args: argparse.Namespace) -> Runtime:
    return build_runtime(load_settings(args.config))


#: Where ``zengine serve`` looks when neither ``--config`` nor ``$ZENGINE_CONFIG`` names a file.
SYSTEM_CONFIG = "/etc/zengine/zengine.toml"


def serve_config_path(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The config ``serve`` uses: never the built-in defaults, which serve nobody."""
    env = os.environ if environ is None else environ
    chosen = given or env.get("ZENGINE_CONFIG") or (
        SYSTEM_CONFIG if os.path.exists(SYSTEM_CONFIG) else None)
    if not chosen:
        raise ConfigError(f"no config file: pass --config FILE, set ZENGINE_CONFIG, or create "
                          f"{SYSTEM_CONFIG} (`zengine init DIR` writes a starter config)")
    return chosen


def cmd_serve(args: argparse.Namespace) -> int:
    from zengine.runtime import check_servable
    from zengine.server import serve

    config_path = serve_config_path(args.config)
    settings = load_settings(config_path)
    # Plugins load and validate here, once, so a config that cannot serve stops before binding.
    check_servable(build_runtime(settings))
    return serve(settings, config_path=config_path, host=args.host, port=args.port,
                 workers=args.workers, pid_file=args.pid_file)


def cmd_check_config(args: argparse.Namespace) -> int:
    from zengine.runtime import check_servable
    from zengine.server import check_tls

    runtime = _runtime(args)
    check_servable(runtime)
    check_tls(runtime.settings)  # what ``serve`` would refuse, refused here too
    runtime.start()
    failed = False
    try:
        print(f"{runtime.settings.source}: OK")
        print(f"plugins: {', '.join(runtime.hooks.plugin_names())}")
        chain = runtime.settings.auth.chain or tuple(reversed(runtime.hooks.auth_backends()))
        print(f"authentication chain: {', '.join(chain)}")
        print(f"profiles: {', '.join(sorted(runtime.settings.profiles)) or 'none'}")
        for warning in config_warnings(runtime.settings):
            print(f"warning: {warning}")
        for warning in secret_file_warnings(runtime):
            print(f"warning: {warning}")
        if runtime.tenants:
            print(f"tenants resolved by: {', '.join(runtime.resolver.order)}; default: "
                  f"{runtime.resolver.default or 'none (refused)'}")
        for name, tenant in runtime.tenants.items():
            chain = tenant.settings.auth.chain or chain
            print(f"tenant {name}: OK; chain: {', '.join(chain)}; profiles: "
                  f"{', '.join(sorted(tenant.settings.profiles)) or 'none'}")
            for warning in [*config_warnings(tenant.settings), *secret_file_warnings(tenant)]:
                print(f"warning: tenant {name}: {warning}")
        if args.probe:
            from zengine.health import probe_all  # starlette: only when probing

            for tenant_name, item in probe_all(runtime):
                failed = failed or not item.ready
                state = "ready" if item.ready else f"NOT READY: {item.reason}"
                where = f" (tenant {tenant_name})" if tenant_name else ""
                print(f"probe {item.backend}{where}: {state}"
                      + (f" ({item.detail})" if item.detail else ""))
    finally:
        runtime.stop()
    return 1 if failed else 0


def config_warnings(settings: Settings) -> list[str]:
    """What is valid but probably wrong: the operator is told, the config still loads."""
    found = catalog.url_warnings(settings.defaults, f"{settings.source} [defaults]")
    for name, profile in sorted(settings.profiles.items()):
        found += catalog.url_warnings(profile, f"{settings.source} [profiles.{name}]")
    return found


def secret_file_warnings(runtime: Runtime) -> list[str]:
    """Users, key and secret files that other users on this machine can read."""
    from zengine.settings import secret_files

    found = []
    for name, config in sorted(runtime.plugin_configs.items()):
        for key, value in secret_files(config):
            path = runtime.settings.resolve_path(value)
            mode = path.stat().st_mode if path.exists() else 0
            if mode & 0o044:
                found.append(f"[plugins.{name}] {key} {path} is readable by other users "
                             f"(mode {mode & 0o777:o}); run: chmod 600 {path}")
    return found


def cmd_plugins(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    for info in runtime.hooks.plugin_info():
        dist = f"{info.distribution} {info.version}" if info.distribution else "(registered)"
        print(f"{info.name:10} {dist}")
        for hook in info.hooks:
            print(f"    {hook}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from zengine.render import render_document

    runtime = _runtime(args)
    served = runtime.for_tenant(args.tenant or "")
    if served is None:
        raise ConfigError(f"no tenant {args.tenant!r}; configured: "
                          f"{', '.join(sorted(runtime.tenants)) or 'none'}")
    runtime.start()
    try:
        body = render_document(served, args.username, version=args.version, family=args.family)
    finally:
        runtime.stop()
    sys.stdout.buffer.write(body)
    return 0


def read_password(prompt: str = "Password: ") -> str | None:
    """Twice from the terminal, else one line of stdin; ``None`` (and a message) when the
    reader gave none: Ctrl-D, empty, or the two entries differ."""
    try:
        if sys.stdin.isatty():
            password = getpass.getpass(prompt)
            if getpass.getpass("Repeat: ") != password:
                print("zengine: passwords do not match", file=sys.stderr)
                return None
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    except EOFError:
        print("\nzengine: no password given (end of input)", file=sys.stderr)
        return None
    if not password:
        print("zengine: empty password refused", file=sys.stderr)
        return None
    return password


def cmd_hash_password(args: argparse.Namespace) -> int:
    from zengine.passwords import Passwords

    passwords = Passwords(load_settings(args.config).passwords)
    password = read_password()
    if password is None:
        return 1
    print(passwords.hash(password))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from zengine.passwords import Passwords
    from zengine.starter import Starter, init

    directory = Path(args.directory).expanduser().absolute()
    password = read_password(f"Password for {args.username}: ")
    if password is None:
        return 1
    starter = Starter(directory, args.username, password, args.sip_domain, args.port)
    for path in init(starter, Passwords()):
        print(f"wrote {path} (mode 600)")
    print(f"next: zengine serve --config {starter.config}")
    return 0


def cmd_make_secret(args: argparse.Namespace) -> int:
    import secrets

    secret = secrets.token_urlsafe(32)  # 256 random bits
    if args.output is None:
        print(secret)
        return 0
    try:
        # Readable by the owner only, created fresh: an existing file is never overwritten.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"zengine: cannot create {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    print(f"wrote a new secret to {args.output}", file=sys.stderr)
    return 0


def cmd_tenant_key(args: argparse.Namespace) -> int:
    from zengine.tenancy import key_digest, load_key_secret, new_path_key

    settings = load_settings(args.config)
    secret = load_key_secret(settings)
    if secret is None:
        raise ConfigError(f"{settings.source}: set [tenants] path_key_secret (or "
                          "path_key_secret_file) first; make one with `zengine make-secret`")
    key = new_path_key()
    # The key on stdout, once (for the phones' URL); the digest, which is all the config
    # keeps, on stderr with where it goes.
    print(key)
    print(f"add to [tenants.<name>] path_keys: \"{key_digest(secret, key)}\" (then reload); "
          "phones use /t/<key>/id.php", file=sys.stderr)
    return 0


def build_parser(runtime_commands: Sequence[Any] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zengine", description="Provisioning server for the Zoiper softphone.")
    parser.add_argument("--version", action="version", version=f"zengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (hypercorn, granian or uvicorn)",
                           description="Run the provisioning server on [server] engine.")
    _add_config(serve)
    serve.add_argument("--host", help="address to bind (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to bind (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    serve.add_argument("--pid-file", type=Path, metavar="FILE",
                       help="write the process id here, for zengine reload (default: [server] "
                            "pid_file; removed at exit)")
    serve.set_defaults(func=cmd_serve)

    reload = sub.add_parser(
        "reload", help="make the running server re-read its config and users file (SIGHUP)",
        description="Check the config as the server would load it (a broken one is refused "
                    "here), then send SIGHUP to the zengine serve named by the pid file; every "
                    "worker builds a new app from the config and swaps it in without dropping a "
                    "request. A pid file left by a killed server is refused as stale.")
    _add_config(reload)
    reload.add_argument("--pid-file", type=Path, metavar="FILE",
                        help="the server's pid file (default: [server] pid_file of the config)")
    reload.set_defaults(func=cmd_reload)

    check = sub.add_parser("check-config", help="validate the config and every plugin's settings",
                           description="Load the config, validate it and start every plugin.")
    _add_config(check)
    check.add_argument("--probe", action="store_true",
                       help="also connect to every backend (database and schema revision, "
                            "LDAP service bind, Redis), as /readyz does; exit 1 if one fails")
    check.set_defaults(func=cmd_check_config)

    render = sub.add_parser(
        "render", help="print the document a user would get (no password needed)",
        description="Print exactly the document the server would send to USERNAME.")
    _add_config(render)
    render.add_argument("--username", "-u", required=True, help="the user whose document to print")
    render.add_argument("--version", "-V", dest="version", help="client version (default: none)")
    render.add_argument("--family", choices=("mobile", "legacy", "desktop"),
                        help="document family (default: detected as for a request)")
    render.add_argument("--tenant", "-t", help="render as this tenant's user (default: the "
                        "global settings)")
    render.set_defaults(func=cmd_render)

    plugins = sub.add_parser("plugins", help="list loaded plugins and the hooks they implement",
                             description="List loaded plugins, versions and hooks.")
    _add_config(plugins)
    plugins.set_defaults(func=cmd_plugins)

    starter = sub.add_parser(
        "init", help="write a starter config, users file and secrets into DIR",
        description="Write DIR/zengine.toml (absolute paths), DIR/users.toml with one user "
                    "whose password is read from the prompt (or one line of stdin), and a "
                    "generated portal session key; every file 0600. Nothing is overwritten.")
    starter.add_argument("directory", metavar="DIR", help="where to write (created 0700)")
    starter.add_argument("--username", "-u", default="alice",
                         help="the first user's login name (default: alice)")
    starter.add_argument("--sip-domain", default="sip.example.com",
                         help="SIP domain of the user's account (default: sip.example.com)")
    starter.add_argument("--port", type=int, default=8080,
                         help="[server] port to write (default: 8080)")
    starter.set_defaults(func=cmd_init)

    hashpw = sub.add_parser(
        "hash-password", help="make an argon2id hash for a users file",
        description="Read a password from the prompt (or one line of stdin) and print its "
                    "argon2id hash, with the [passwords] parameters of --config if given. The "
                    "password is never taken from the command line.")
    _add_config(hashpw)
    hashpw.set_defaults(func=cmd_hash_password)

    secret = sub.add_parser(
        "make-secret", help="make a random per-deployment secret ([login_cache] secret)",
        description="Print 256 random bits (URL-safe base64), or write them to a new file "
                    "readable by its owner only. Use it for [login_cache] secret or "
                    "secret_file; every worker and instance of one deployment needs the same.")
    secret.add_argument("--output", "-o", metavar="FILE",
                        help="create FILE (mode 0600) instead of printing; never overwrites")
    secret.set_defaults(func=cmd_make_secret)

    tkey = sub.add_parser(
        "tenant-key", help="make a path key for /t/<key>/id.php and print its digest",
        description="Print a new 256-bit path key (give it to the tenant's phones as "
                    "/t/<key>/id.php) and, on stderr, the keyed digest to add to "
                    "[tenants.<name>] path_keys; the config never holds the key itself. "
                    "Needs [tenants] path_key_secret.")
    _add_config(tkey)
    tkey.set_defaults(func=cmd_tenant_key)

    for command in runtime_commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        _add_config(child)
        command.configure(child)
        child.set_defaults(func=None, plugin_command=command)
    return parser


def _plugin_commands(argv: Sequence[str]) -> list[Any]:
    """Plugins add commands; find them with the config named on the command line, if any."""
    from zengine.plugins import Hooks, create_plugin_manager

    pre = argparse.ArgumentParser(add_help=False)
    _add_config(pre)
    known, _ = pre.parse_known_args(argv)
    try:
        disabled = load_settings(known.config).disabled_plugins
    except ConfigError:
        disabled = ()
    return Hooks(create_plugin_manager(disabled=disabled)).cli_commands()


def operator_message(exc: ZengineError) -> str:
    """The cause, said once: an operator needs the real reason, not only the text written for
    a phone's user ("temporarily unavailable"), and not the same sentence twice."""
    public, detail = exc.public_message, exc.detail
    if not detail or exc.kind in ("backend_unavailable", "account_data", "internal"):
        return detail or public
    if public.lower().rstrip(".") in detail.lower():
        return detail
    if detail.lower() in public.lower():
        return public
    return f"{public} ({detail})"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_plugin_commands(args_list))
    args = parser.parse_args(args_list)
    if args.command != "serve":
        # Commands print documents and exports on stdout: logs go to stderr, warnings only.
        from zengine.log import configure_logging
        from zengine.settings import LoggingSettings

        configure_logging(LoggingSettings(format="console", level="warning"))
    try:
        if args.func is None:
            runtime = _runtime(args)
            runtime.start()
            try:
                return int(args.plugin_command.run(args, runtime))
            finally:
                runtime.stop()
        return int(args.func(args))
    except ConfigError as exc:
        print(f"zengine: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except ZengineError as exc:
        print(f"zengine: {operator_message(exc)}", file=sys.stderr)
        return 1
    except PidFileError as exc:
        print(f"zengine: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `zengine users export | head`: the reader left; exit quietly, as a pipe tool should.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
