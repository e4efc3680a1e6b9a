"""Inter-process file locks (``flock``), re-entrant within one process.

A lock is an empty file; holding it means holding an exclusive ``flock`` on it, which the kernel releases
when the process ends, however it ends (SIGKILL included), so a crashed holder never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_held: dict[str, list[int]] = {}  # resolved path → [fd, depth]


@contextlib.contextmanager
def file_lock(path: str | Path, *, what: str, timeout: float = 3600.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) inside the block.

    Parameters
    ----------
    path
        The lock file.
    what
        What the lock protects, for the log line written while waiting.
    timeout
        Seconds to wait for another holder before :class:`TimeoutError`.

    Notes
    -----
    Re-entrant in one process: a nested ``file_lock`` on the same path does not wait for itself. On a file
    system without ``flock`` (some network mounts) the block runs unlocked, with a warning.
    """
    path = Path(path)
    key = str(path.parent.resolve() / path.name)  # the folder may be a link (a disk elsewhere); the lock never is
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        from xmodal.errors import ConfigError

        if Path(key).is_symlink() or exc.errno == errno.ELOOP:
            raise ConfigError(f"{key}: the lock file of {what} is a symbolic link; xmodal never writes through one: "
                              "remove the link") from None
        if exc.errno == errno.EISDIR:
            raise ConfigError(f"{key}: the lock file of {what} is a folder; remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        from xmodal.errors import ConfigError

        raise ConfigError(f"{key}: the lock file of {what} is not a regular file; remove it")
    try:
        _acquire(fd, key, what=what, timeout=timeout)
        _held[key] = [fd, 1]
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, key: str, *, what: str, timeout: float) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        log.info("waiting for %s (another xmodal process holds %s)", what, key)
    except OSError as exc:  # no flock here: go on unlocked rather than fail
        log.warning("cannot lock %s (%s): %s is not protected against concurrent runs", key, exc.strerror, what)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {key} stayed locked for {timeout:.0f} s by another process") from None
            time.sleep(0.1)
