"""The pid file ``zengine serve`` writes so that ``zengine reload`` finds the server.

``[server] pid_file`` (or ``serve --pid-file``) names it; ``serve`` writes its own process id
there once the address is known to be free, and removes the file when it exits. A file left by a
server that was killed (``SIGKILL``, a crash, a power cut) is *stale*: ``serve`` replaces it,
``reload`` refuses it with the reason rather than signal whatever process now has that id.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path


class PidFileError(Exception):
    """A pid file that names no running ``zengine serve``, or that cannot be written or read."""


def _is_zengine_serve(pid: int) -> bool:
    """Whether ``pid`` runs ``zengine serve`` (not a process that reused a dead server's id)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: the command line below still tells
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: the process is alive, trust the file
    return b"serve" in words and any(b"zengine" in word for word in words)


def read_pid(path: Path) -> int:
    """The running server's process id from ``path``; :class:`PidFileError` says why not."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise PidFileError(f"pid file {path} does not exist: is zengine serve running with "
                           "this pid file ([server] pid_file or serve --pid-file)?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PidFileError(f"cannot read pid file {path}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    if not text.isdigit() or int(text) <= 1:
        raise PidFileError(f"pid file {path} does not hold a process id")
    pid = int(text)
    if not _is_zengine_serve(pid):
        raise PidFileError(f"stale pid file {path}: process {pid} is not a running zengine serve "
                           "(the server was killed or crashed); start the server again, or "
                           "remove the file")
    return pid


def send_reload(path: Path) -> int:
    """``SIGHUP`` to the server named by ``path``; returns its process id."""
    pid = read_pid(path)
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        raise PidFileError(f"not allowed to signal zengine serve (pid {pid}, from {path}): run "
                           "as the server's user or root") from None
    return pid


@contextlib.contextmanager
def held(path: Path | None) -> Iterator[None]:
    """Write this process's id to ``path`` for as long as the block runs (``None``: no file)."""
    if path is None:
        yield
        return
    if path.exists():
        try:
            pid = read_pid(path)
        except PidFileError:
            pid = 0
        if pid:
            raise PidFileError(f"pid file {path} belongs to a running zengine serve (pid {pid}); "
                               "stop it or choose another [server] pid_file")
        path.unlink(missing_ok=True)  # stale: its server is gone
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise PidFileError(f"cannot write pid file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        # Only our own: another server may have replaced a file it took for stale.
        with contextlib.suppress(OSError):
            if path.read_text(encoding="ascii").strip() == str(os.getpid()):
                path.unlink()


def cmd_reload(args: argparse.Namespace) -> int:
    """``zengine reload``: check the config as the server would load it, then ``SIGHUP``."""
    from zengine.cli import serve_config_path
    from zengine.errors import ConfigError
    from zengine.runtime import build_runtime, check_servable
    from zengine.settings import load_settings

    config_path = serve_config_path(args.config)
    settings = load_settings(config_path)
    # As the unit's ExecReload: a config that would not start is refused here, with its reason.
    check_servable(build_runtime(settings))
    pid_file = args.pid_file or (settings.resolve_path(settings.server.pid_file)
                                 if settings.server.pid_file is not None else None)
    if pid_file is None:
        raise ConfigError(f"{settings.source}: no pid file to find the server by: set [server] "
                          "pid_file (and restart the server), or pass --pid-file FILE")
    pid = send_reload(pid_file)
    print(f"sent SIGHUP to zengine serve (pid {pid}, from {pid_file}); every worker re-reads "
          f"{config_path}; the server's log says zengine.reloaded or zengine.reload_failed "
          "per worker", file=sys.stderr)
    return 0
