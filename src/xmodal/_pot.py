"""Importing POT without its framework probes."""

from __future__ import annotations

from typing import Any


def import_pot() -> Any:
    """Import POT with only its NumPy backend (xmodal hands POT NumPy arrays only).

    On first import POT probes PyTorch, JAX, CuPy and TensorFlow; the PyTorch probe alone costs
    about 2.5 s of start-up in every process (each pipeline task is one). The switches are POT's own
    ``POT_BACKEND_DISABLE_*`` variables, set only around the import and restored afterwards.
    """
    import sys

    from xmodal._env import temporary_env

    if "ot" in sys.modules:
        return sys.modules["ot"]
    with temporary_env({f"POT_BACKEND_DISABLE_{name}": "1" for name in ("PYTORCH", "JAX", "CUPY", "TENSORFLOW")}):
        import ot
    return ot
