"""``cycleae`` (seed 002): the context-conditioned cycle autoencoder — counterfactual expression and additive
per-field contributions.

:class:`CycleAEConfig` is cheap to import; :class:`CycleAE` (PyTorch) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmodal.methods.cycleae._config import CycleAEConfig

if TYPE_CHECKING:
    from xmodal.methods.cycleae._model import CycleAE

__all__ = ["CycleAE", "CycleAEConfig"]


def __getattr__(name: str) -> Any:
    if name == "CycleAE":
        from xmodal.methods.cycleae._model import CycleAE

        return CycleAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
