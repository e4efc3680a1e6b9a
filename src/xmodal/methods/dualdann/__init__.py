"""``dualdann`` (seed 001): dual-encoder class-conditional domain-adversarial phase transfer, RNA → ATAC.

:class:`DualDANNConfig` is cheap to import; :class:`DualDANN` (PyTorch) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmodal.methods.dualdann._config import DualDANNConfig

if TYPE_CHECKING:
    from xmodal.methods.dualdann._model import DualDANN

__all__ = ["DualDANN", "DualDANNConfig"]


def __getattr__(name: str) -> Any:
    if name == "DualDANN":
        from xmodal.methods.dualdann._model import DualDANN

        return DualDANN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
