"""``gwot``: SCOT-style entropic Gromov–Wasserstein alignment, the alignment baseline."""

from __future__ import annotations

from xmodal.methods.gwot._config import GWOTConfig
from xmodal.methods.gwot._model import GWOT

__all__ = ["GWOT", "GWOTConfig"]
