"""Peak matrices held dense or sparse, what dualdann's training sees, and prediction from peaks.

Free of Lightning: a saved model loads and predicts with these alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from xmodal.methods.dualdann._module import DualDANNModule

_DENSE_LIMIT = 1 << 30  # bytes of peaks held dense under input: auto


class Peaks:
    """Peak matrix ``(n, P)`` held dense or sparse; :meth:`batch` returns a dense float32 tensor."""

    def __init__(self, x: np.ndarray | sp.spmatrix, *, mode: str, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        n, p = x.shape
        dense = mode == "dense" or (mode == "auto" and n * p * 4 <= _DENSE_LIMIT)
        if dense:
            self.dense: torch.Tensor | None = torch.as_tensor(
                np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32), device=self.device)
            self.sparse: sp.csr_matrix | None = None
        else:
            self.dense, self.sparse = None, sp.csr_matrix(x, dtype=np.float32)
        self.shape = (n, p)

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` as a dense ``(len(idx), P)`` tensor on the device."""
        if self.dense is not None:
            return self.dense[torch.as_tensor(idx, device=self.device)]
        assert self.sparse is not None
        return torch.from_numpy(self.sparse[idx].toarray()).to(self.device)


@dataclass
class TrainingData:
    """What training sees: training cells of both sides and the target domain's validation cells.

    Attributes
    ----------
    source_x, source_y
        Source embeddings ``(n_s, d)`` and phase codes ``(n_s,)``.
    target_x, target_y
        Training peaks ``(n_t, P)`` and phase codes ``(n_t,)``, ``-1`` where the label is not used.
    val_x, val_y
        The target domain's validation peaks ``(n_v, P)`` and phase codes ``(n_v,)``.
    adapted
        Boolean ``(n_t,)``: the training peaks of the target domain, adapted to (the adversary, balance
        and entropy terms see these); ``None`` when every peak row is of the source domain (the seed's
        setting, and the source-only ablation), and the adversary sees them all.
    """

    source_x: np.ndarray
    source_y: np.ndarray
    target_x: np.ndarray | sp.spmatrix
    target_y: np.ndarray
    val_x: np.ndarray | sp.spmatrix
    val_y: np.ndarray
    adapted: np.ndarray | None = None


@torch.no_grad()
def predict_peaks(module: DualDANNModule, peaks: Peaks, *, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities ``(n, K)`` of peak rows, in eval mode without gradients (module mode restored)."""
    was = module.training
    module.eval()
    try:
        n = peaks.shape[0]
        out = [torch.softmax(module.classifier(module.shared_target(peaks.batch(np.arange(i, min(i + batch_size, n))))),
                             dim=1).float().cpu() for i in range(0, n, batch_size)]
    finally:
        module.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, module.n_classes), dtype=np.float32)
