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
from contextlib import contextmanager


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
