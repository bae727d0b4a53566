"""Hashing plain passwords of an import on every core, before its transaction opens.

argon2id is made to be slow (about 0.3 s a password here): 1,000 users hashed one after the
other inside the import's transaction kept it open, idle, for minutes. This module is what the
worker processes import, so it imports only what hashing needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from zengine.passwords import Passwords, PasswordSettings, cores


def hash_chunk(settings: PasswordSettings, plains: Sequence[str]) -> list[str]:
    """In a worker process: the hashes of ``plains``, in order."""
    passwords = Passwords(settings)
    return [passwords.hash(plain) for plain in plains]


def hash_all(plains: Sequence[str], settings: PasswordSettings, *, workers: int | None = None,
             progress: Callable[[int, int], None] = lambda _done, _total: None) -> list[str]:
    """The hashes of ``plains``, in order, made by a pool of ``workers`` processes (default:
    one per core); ``progress(done, total)`` after each chunk."""
    total = len(plains)
    workers = max(1, min(workers or cores(), total))
    if workers == 1:
        passwords, hashes = Passwords(settings), []
        for plain in plains:
            hashes.append(passwords.hash(plain))
            progress(len(hashes), total)
        return hashes
    # Small chunks: progress moves, and a slow process does not hold the last quarter back.
    size = max(1, min(25, total // (workers * 4) or 1))
    chunks = [list(plains[start:start + size]) for start in range(0, total, size)]
    results: dict[int, list[str]] = {}
    done = 0
    # spawn, not fork: the importing process has threads (database pool, loggers).
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(hash_chunk, settings, chunk): index
                   for index, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done += len(results[futures[future]])
            progress(done, total)
    return [digest for index in range(len(chunks)) for digest in results[index]]

