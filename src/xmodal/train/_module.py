"""The base of every deep method's LightningModule: records, finite checks, validation hooks."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from xmodal.errors import TrainingDivergedError


class XmodalModule(pl.LightningModule):
    """A LightningModule that :func:`xmodal.train.fit` can run.

    A subclass implements ``training_step(batch, batch_idx)`` (``batch["step"]`` is the step's number)
    and ``configure_optimizers``; for adversarial training it sets ``automatic_optimization = False``
    and steps its optimisers itself. It may also give:

    * :meth:`validate` and :meth:`validation_due`: metrics of held-out validation cells, which the
      engine uses for best-model selection and early stopping;
    * :meth:`stop_reason`: a method's own stopping rule (e.g. a collapsed classifier);
    * :meth:`extra_state` / :meth:`load_extra_state`: plain values it keeps across steps (e.g. the
      running sums of an epoch), saved in each checkpoint.

    Attributes
    ----------
    method
        Name used in messages (``"geoadvae"``).
    divergence_fix
        What to change when a loss term stops being finite.
    """

    method = "model"
    divergence_fix = "lower the learning rate, or check the input for extreme values"

    def __init__(self) -> None:
        super().__init__()
        self._record: dict[str, float] | None = None

    # ------------------------------------------------------------ records
    def record(self, values: dict[str, float]) -> None:
        """Hand the engine this step's record (history, progress bar, live MLflow metrics)."""
        self._record = {**(self._record or {}), **values}

    def take_record(self) -> dict[str, float] | None:
        """The record of the last step (once), or ``None``."""
        out, self._record = self._record, None
        return out

    def check_finite(self, name: str, value: torch.Tensor, *, where: str, fix: str | None = None) -> None:
        """Stop training with an error naming the loss term when ``value`` is NaN or infinite.

        Parameters
        ----------
        name
            The loss term (``"recon"``, ``"domain"``).
        value
            A scalar tensor.
        where
            Where in training (``"iteration 120 (phase 2)"``).
        fix
            What to change (default: :attr:`divergence_fix`).

        Raises
        ------
        TrainingDivergedError
            When ``value`` is not finite.
        """
        v = float(value.detach())
        if not math.isfinite(v):
            raise TrainingDivergedError(f"{self.method}: the {name} loss became {v} at {where}; "
                                        f"{fix or self.divergence_fix}")

    # ------------------------------------------------------------ validation
    def validation_due(self, step: int) -> bool:
        """Whether the engine should validate after step ``step`` (0-based) ends."""
        return False

    def validate(self) -> dict[str, float]:
        """Metrics of the validation cells (called in eval mode without gradients)."""
        raise NotImplementedError(f"{self.method} has no validation")

    def stop_reason(self, history: list[dict[str, float]]) -> str | None:
        """A reason to stop now, from the records so far (default: none)."""
        return None

    # ------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        """Plain values (numbers, lists, dicts) to keep in checkpoints."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102 - Lightning hook
        checkpoint["xmodal_module"] = self.extra_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102 - Lightning hook
        self.load_extra_state(checkpoint.get("xmodal_module", {}))


__all__ = ["XmodalModule"]
