"""Keep torch's thread count across calls into libraries that change it behind its back.

scanpy's sparse ``normalize_total`` runs numba-parallel code, and numba's OpenMP layer sets the process-wide
OpenMP thread count to the number of cores (measured: torch went from 1 thread to 2 on a 2-core machine). Every
later torch fit in the process then sums in another order: a cycleae model trained after it differed in 78 of
800 weights (by 3e-8), enough to break bit-for-bit determinism under a seed and to move a trained model's
metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Put torch's intra-op thread count back as it was when the block ends (a no-op when torch is not loaded)."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None and threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


#: environment variables that numerical libraries read when they load (BLAS, OpenMP, numba, numexpr)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def _numba_threads(n: int) -> None:
    """Set numba's thread count (when numba is loaded) to ``n``, at most what it started with."""
    numba = sys.modules.get("numba")
    if numba is None:
        return
    with suppress(AttributeError, ValueError, RuntimeError):  # a numba without a threading layer
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def set_threads(n: int) -> Any:
    """Set every numerical library of this process to ``n`` threads, for the rest of the process.

    The thread variables of :data:`THREAD_VARIABLES` become ``n`` (libraries loaded later, and child processes,
    read them), every BLAS and OpenMP library already loaded is limited to ``n`` (``threadpoolctl``), and torch's
    intra-op pool and numba, when loaded, run ``n`` threads.

    Returns
    -------
    threadpoolctl.ThreadpoolController
        The limiter, whose ``restore_original_limits()`` puts the BLAS/OpenMP limits back.
    """
    import os

    from threadpoolctl import threadpool_limits

    numba_loaded = "numba" in sys.modules
    for name in THREAD_VARIABLES:
        if name != "NUMBA_NUM_THREADS" or not numba_loaded:  # numba refuses a change once it has started
            os.environ[name] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    _numba_threads(n)
    return threadpool_limits(limits=n)


@contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads in every numerical library (:func:`set_threads`), whatever the caller's
    environment, and put everything back afterwards (a command run in-process, as tests do, changes nothing).

    The bytes a stage writes depend on how its sums are split between threads (BLAS, torch's intra-op pool,
    numba, OpenMP): the same settings give the same outputs only at the same thread count.

    Parameters
    ----------
    n
        Threads (``params.yaml: threads``).
    """
    import os

    saved_env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    numba = sys.modules.get("numba")
    numba_before = numba.get_num_threads() if numba is not None else None
    limits = set_threads(n)
    try:
        yield
    finally:
        limits.restore_original_limits()
        if numba_before is not None:
            _numba_threads(numba_before)
        torch = sys.modules.get("torch")
        if torch is not None:
            # torch loaded inside the block read OMP_NUM_THREADS = n: give it what the caller's environment says
            torch.set_num_threads(torch_before if torch_before is not None else _default_torch_threads(saved_env))
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _default_torch_threads(env: dict[str, str | None]) -> int:
    import os

    value = env.get("OMP_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
