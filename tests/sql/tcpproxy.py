"""A TCP proxy the outage tests can cut, black-hole, stall and restore, so no shared database
server is ever stopped. ``python -m tests.sql.tcpproxy HOST PORT`` runs one as its own process
(it prints its port), which a test can SIGSTOP: from the client's side, a stopped server."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut()`` refuses connections and drops the open
    ones; ``blackhole()`` accepts and never answers; ``stall()`` keeps every connection open and
    stops forwarding (a hung server: the kernel still acknowledges); ``restore()`` forwards
    again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "forward"
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
            if self.mode in ("blackhole", "stall"):
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            thread = threading.Thread(target=self._pipe, args=(client, upstream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                if self.mode == "stall":
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def cut(self) -> None:
        self._close_listener()
        self._drop_all()

    def blackhole(self) -> None:
        self.cut()
        self.mode = "blackhole"
        self._listen()

    def stall(self) -> None:
        """Stop forwarding on every connection, open ones included, and answer no new one."""
        self.mode = "stall"

    def restore(self) -> None:
        self.cut()
        self.mode = "forward"
        self._listen()

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=2)


if __name__ == "__main__":
    proxy = TcpProxy((sys.argv[1], int(sys.argv[2])))
    print(proxy.port, flush=True)
    threading.Event().wait()
