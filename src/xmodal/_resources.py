"""How much memory a job will need, checked before it starts: a clear error instead of an out-of-memory kill."""

from __future__ import annotations

import os
from pathlib import Path

from xmodal.errors import ConfigError

#: share of the available memory a single allocation plan may take
HEADROOM = 0.8


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``, else total RAM), or ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_memory(nbytes: float, *, what: str, fix: str) -> None:
    """Raise :class:`~xmodal.errors.ConfigError` when ``nbytes`` exceed :data:`HEADROOM` of the available memory.

    Parameters
    ----------
    nbytes
        Estimated peak bytes of the job.
    what
        What needs them, with the parameters that decide it (``"datasets.x.source: 10^12 cells × 460 features"``).
    fix
        The parameters to lower.
    """
    free = available_memory()
    if free is not None and nbytes > HEADROOM * free:
        raise ConfigError(f"{what} needs about {_gib(nbytes)} of memory; this machine has {_gib(free)} available. "
                          f"Fix: {fix}")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes < 2**50 else f"{nbytes / 2**40:,.3g} TiB"
