"""``geoadvae``: per-modality VAEs, a latent adversary, differentiable Gromov–Wasserstein and a cluster prior.

:class:`GeoAdVAEConfig` is cheap to import; :class:`GeoAdVAE` (PyTorch) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmodal.methods.geoadvae._config import GeoAdVAEConfig

if TYPE_CHECKING:
    from xmodal.methods.geoadvae._model import GeoAdVAE

__all__ = ["GeoAdVAE", "GeoAdVAEConfig"]


def __getattr__(name: str) -> Any:
    if name == "GeoAdVAE":
        from xmodal.methods.geoadvae._model import GeoAdVAE

        return GeoAdVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
