"""The ``zengine`` command."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from zengine import __version__, catalog
from zengine.errors import ConfigError, ZengineError
from zengine.runtime import Runtime, build_runtime
from zengine.settings import Settings, load_settings


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="config file (default: $ZENGINE_CONFIG, else built-in defaults)")


def _runtime(args: argparse.Namespace) -> Runtime:
    return build_runtime(load_settings(args.config))


def cmd_serve(args: argparse.Namespace) -> int:
    from zengine.server import serve

    settings = load_settings(args.config)
    return serve(settings, config_path=args.config, host=args.host, port=args.port,
                 workers=args.workers)


def cmd_check_config(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    runtime.start()
    try:
        print(f"{runtime.settings.source}: OK")
        print(f"plugins: {', '.join(runtime.hooks.plugin_names())}")
        chain = runtime.settings.auth.chain or tuple(reversed(runtime.hooks.auth_backends()))
        print(f"authentication chain: {', '.join(chain)}")
        print(f"profiles: {', '.join(sorted(runtime.settings.profiles)) or 'none'}")
        for warning in config_warnings(runtime.settings):
            print(f"warning: {warning}")
    finally:
        runtime.stop()
    return 0


def config_warnings(settings: Settings) -> list[str]:
    """What is valid but probably wrong: the operator is told, the config still loads."""
    found = catalog.url_warnings(settings.defaults, f"{settings.source} [defaults]")
    for name, profile in sorted(settings.profiles.items()):
        found += catalog.url_warnings(profile, f"{settings.source} [profiles.{name}]")
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
    runtime.start()
    try:
        body = render_document(runtime, args.username, version=args.version, family=args.family)
    finally:
        runtime.stop()
    sys.stdout.buffer.write(body)
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from zengine.passwords import Passwords

    passwords = Passwords(load_settings(args.config).passwords)
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            print("zengine: passwords do not match", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("zengine: empty password refused", file=sys.stderr)
        return 1
    print(passwords.hash(password))
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


def build_parser(runtime_commands: Sequence[Any] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zengine", description="Provisioning server for the Zoiper softphone.")
    parser.add_argument("--version", action="version", version=f"zengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (hypercorn)",
                           description="Run the provisioning server.")
    _add_config(serve)
    serve.add_argument("--host", help="address to bind (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to bind (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate the config and every plugin's settings",
                           description="Load the config, validate it and start every plugin.")
    _add_config(check)
    check.set_defaults(func=cmd_check_config)

    render = sub.add_parser(
        "render", help="print the document a user would get (no password needed)",
        description="Print exactly the document the server would send to USERNAME.")
    _add_config(render)
    render.add_argument("--username", "-u", required=True)
    render.add_argument("--version", "-V", dest="version", help="client version (default: none)")
    render.add_argument("--family", choices=("mobile", "legacy", "desktop"),
                        help="document family (default: detected as for a request)")
    render.set_defaults(func=cmd_render)

    plugins = sub.add_parser("plugins", help="list loaded plugins and the hooks they implement",
                             description="List loaded plugins, versions and hooks.")
    _add_config(plugins)
    plugins.set_defaults(func=cmd_plugins)

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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_plugin_commands(args_list))
    args = parser.parse_args(args_list)
    if args.command != "serve":
        # Commands print documents and exports on stdout: logs go to stderr, warnings only.
        from zengine.log import configure_logging
        from zengine.settings import LoggingSettings

        configure_logging(LoggingSettings(format="console", level="warning"), stream=sys.stderr)
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
        print(f"zengine: {exc.public_message} ({exc.detail})", file=sys.stderr)
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
