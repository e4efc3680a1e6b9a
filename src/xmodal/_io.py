"""Atomic file and directory output: an interrupted or failed run leaves no half-written output.

A stage writes its output folder into a temporary sibling ``.<name>.tmp-<pid>-<random>`` and swaps it
into place when it is complete:

* on Linux (and macOS) the swap is one atomic exchange of the two directory entries
  (``renameat2(RENAME_EXCHANGE)`` / ``renamex_np(RENAME_SWAP)``), so at every instant ``<name>`` is
  either the whole old output or the whole new one; the old one is removed afterwards;
* elsewhere it is two renames (old → ``.<name>.old-…``, new → ``<name>``); if the process dies between
  them, the next stage that looks for ``<name>`` puts the old output back (:func:`restore_interrupted`).

While a writer works, it holds an exclusive ``flock`` on its temporary folder (or file). A temporary
that nobody holds belongs to a process that died (SIGKILL, power loss): :func:`prepare_output`, which
every stage calls when it starts, removes it. Output folders and files get the permissions the umask
gives (``0755``/``0644`` with the usual ``022``), not the ``0700``/``0600`` of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TMP, _OLD = ".tmp-", ".old-"


# ------------------------------------------------------------------------------------------ locks
def _lock(path: Path, *, wait: bool) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path`` (file or folder), or ``None`` when another process
    holds it (``wait=False``), the file system cannot lock, or ``path`` is a symbolic link (never opened
    through, so a link to a FIFO or a device cannot block or touch anything outside)."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _remove(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder tree."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _temporary(target: Path, kind: str) -> Path:
    """A fresh name ``.<name><kind><pid>-<random>`` beside ``target`` (``kind``: :data:`_TMP` or :data:`_OLD`)."""
    return target.parent / f".{target.name}{kind}{os.getpid()}-{secrets.token_hex(4)}"


def _siblings(target: Path, kind: str) -> list[Path]:
    prefix = f".{target.name}{kind}"
    try:
        return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


# ------------------------------------------------------------------------------------------ recovery
def restore_interrupted(target: str | Path) -> bool:
    """Put back an output that a writer moved aside and died before replacing (two-rename platforms).

    Returns
    -------
    bool
        Whether an old output was restored.
    """
    target = Path(target)
    if target.exists() or target.is_symlink():
        return False
    for old in reversed(_siblings(target, _OLD)):
        fd = _lock(old, wait=False)
        if fd is None and not old.is_symlink():
            continue  # its writer is alive (or it cannot be locked): leave it
        try:
            old.rename(target)
        except OSError:
            continue
        finally:
            _unlock(fd)
        log.warning("%s: restored the previous output (a writer died while replacing it)", target)
        return True
    return False


def remove_stale(target: str | Path) -> list[Path]:
    """Remove the temporaries beside ``target`` that no live writer holds; return what was removed.

    A temporary that is a symbolic link is unlinked; what it points to is never opened or removed.
    """
    target = Path(target)
    removed = []
    for kind in (_TMP, _OLD):
        for path in _siblings(target, kind):
            fd = _lock(path, wait=False)
            if fd is None and not path.is_symlink():
                continue
            try:
                _remove(path)
            finally:
                _unlock(fd)
            removed.append(path)
    if removed:
        log.info("%s: removed %d stale temporar%s of an interrupted run (%s)", target, len(removed),
                 "y" if len(removed) == 1 else "ies", ", ".join(p.name for p in removed))
    return removed


def remove_stale_in(folder: str | Path) -> list[Path]:
    """Remove the stale temporaries of every entry of ``folder`` (e.g. a checkpoint being written when the
    process was killed); return what was removed.

    A ``folder`` that is a symbolic link is left alone (nothing is removed through it: what it points to is
    not xmodal's); a temporary that is a link is removed as a link, never what it points to.
    """
    folder = Path(folder)
    if folder.is_symlink():
        log.warning("%s is a symbolic link: its stale temporaries are not removed (xmodal deletes nothing "
                    "through a link)", folder)
        return []
    if not folder.is_dir():
        return []
    names = {p.name[1:].split(kind)[0] for p in folder.iterdir() for kind in (_TMP, _OLD)
             if p.name.startswith(".") and kind in p.name}
    return [p for name in sorted(names) for p in remove_stale(folder / name)]


def prepare_output(target: str | Path) -> Path:
    """What a stage calls when it starts: restore an interrupted swap, remove stale temporaries of ``target``.

    Returns
    -------
    Path
        ``target``.
    """
    target = Path(target)
    if target.parent.is_dir():
        restore_interrupted(target)
        remove_stale(target)
    return target


# ------------------------------------------------------------------------------------------ swap
def _exchange_function() -> Callable[[Path, Path], None] | None:
    """Atomic exchange of two directory entries, or ``None`` where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no C library
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        call = libc.renameat2
        call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

        def exchange(a: Path, b: Path) -> None:
            if call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(a))

        return exchange
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):  # pragma: no cover - not tested here
        rename_swap = 2
        call = libc.renamex_np
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]

        def exchange(a: Path, b: Path) -> None:
            if call(os.fsencode(a), os.fsencode(b), rename_swap) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(a))

        return exchange
    return None


_EXCHANGE = _exchange_function()
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def _swap_into_place(new: Path, target: Path) -> None:
    """Make ``new`` (a complete folder) the ``target``; the old ``target`` (if any) is removed."""
    if target.exists() or target.is_symlink():
        if _EXCHANGE is not None:
            try:
                _EXCHANGE(new, target)
            except OSError as exc:
                if exc.errno not in _NOT_SUPPORTED:
                    raise
            else:  # ``new`` now holds the old output
                _remove(new)
                return
        old = _temporary(target, _OLD)
        held = None if target.is_symlink() else _lock(target, wait=True)  # restore_interrupted() waits for us
        try:
            target.rename(old)
            new.rename(target)  # dying before this line: restore_interrupted() puts ``old`` back
        finally:
            _unlock(held)
        _remove(old)
        return
    new.rename(target)


def _begin(target: Path) -> tuple[Path, list[Path]]:
    """Check ``target``, create its parent, clear stale temporaries; return the name to write to and the
    folders above ``target`` this call created (deepest first: :func:`_undo_parents` removes them again when
    the write fails, so a failed stage leaves nothing behind, not even an empty ``data/ingested``).

    Refuses targets that name no entry of their own (``/``, ``.``, ``..``): replacing them would replace their
    parent. Stage outputs come from :mod:`xmodal.stages._paths`, which also keeps them in their folder.
    """
    from xmodal.errors import ConfigError

    if target.name in ("", ".", ".."):
        raise ConfigError(f"{str(target)!r}: not a place for an output (its last part is {target.name!r}); "
                          "nothing was written")
    created, folder = [], target.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    prepare_output(target)
    return _temporary(target, _TMP), created


def _undo_parents(created: list[Path]) -> None:
    """Remove the folders :func:`_begin` created, deepest first, while they are empty (another writer's files
    stay)."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only if the block succeeds.

    Parameters
    ----------
    target
        The output directory. Its parent is created; a previous ``target`` is replaced as a whole on
        success (a symbolic link is replaced, never followed) and left untouched on failure. Stale
        temporaries of earlier, interrupted writes of ``target`` are removed first.

    Yields
    ------
    Path
        A temporary directory beside ``target`` to write into.
    """
    target = Path(target)
    tmp, created = _begin(target)
    tmp.mkdir(mode=0o777)  # the umask decides, as for any folder the user makes
    fd = _lock(tmp, wait=True)
    try:
        try:
            yield tmp
        except BaseException:
            _remove(tmp)
            _undo_parents(created)
            raise
        _swap_into_place(tmp, target)
    finally:
        _unlock(fd)


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path that is renamed onto ``target`` only if the block succeeds.

    The file gets the permissions the umask gives; stale temporaries of ``target`` are removed first. A
    ``target`` that is a symbolic link is replaced, never followed.

    Raises
    ------
    XmodalInputError
        A folder stands at ``target`` (checked before anything is written).
    """
    from xmodal.errors import XmodalInputError

    target = Path(target)
    if target.is_dir() and not target.is_symlink():
        raise XmodalInputError("a folder stands where this file goes; nothing was written", path=target,
                               fix=f"remove or rename the folder (`rm -r {target}`) and run again")
    tmp, created = _begin(target)
    # 0o666 less the umask (the kernel applies it), not mkstemp's 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            _undo_parents(created)
            raise
        os.replace(tmp, target)
    finally:
        _unlock(fd)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (non-finite floats become ``null``)."""
    with Path(path).open("w") as fh:
        json.dump(_finite(obj), fh, indent=2, sort_keys=True)
        fh.write("\n")


def update_json(path: str | Path, **entries: Any) -> dict[str, Any]:
    """Add ``entries`` to the JSON object in ``path`` (rewritten as :func:`write_json` writes); return it."""
    content = read_json(path)
    content.update(entries)
    write_json(path, content)
    return content


def read_json(path: str | Path, *, fix: str = "the file is damaged: re-run the stage that writes it "
              "(`dvc repro`)") -> Any:
    """Read a JSON file that xmodal (or the user) wrote.

    Raises
    ------
    XmodalInputError
        The file is missing, unreadable or not valid JSON (naming the file, the line and ``fix``).
    """
    from xmodal.errors import XmodalInputError

    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise XmodalInputError("file not found", path=path, fix=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise XmodalInputError(f"cannot read the file as UTF-8 text ({exc})", path=path, fix=fix) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise XmodalInputError(f"not valid JSON ({exc})", path=path, fix=fix) from None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _finite(obj.item())
    return obj
