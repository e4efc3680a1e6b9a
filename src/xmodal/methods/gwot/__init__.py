"""``gwot``: SCOT-style entropic Gromov–Wasserstein alignment, the alignment baseline.

:class:`GWOTConfig` is cheap to import; :class:`GWOT` (NumPy, POT) is imported on first use, so validating
``params.yaml`` does not load the model's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmodal.methods.gwot._config import GWOTConfig

if TYPE_CHECKING:
    from xmodal.methods.gwot._model import GWOT

__all__ = ["GWOT", "GWOTConfig"]


def __getattr__(name: str) -> Any:
    if name == "GWOT":
        from xmodal.methods.gwot._model import GWOT

        return GWOT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
