"""Source (RNA) encoders of dualdann: fixed embeddings computed once, before the networks train.

``pca`` is the offline default: principal components of the normalised expression, fitted on the
source domain's training cells only. Seed 001 used frozen foundation models (Geneformer,
scFoundation, their concatenation). Geneformer's loading and rank-value tokenisation are in
:mod:`._geneformer`, not yet wired into training; scFoundation's loading path is not built. Asking
for either is a configuration error that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xmodal.errors import ConfigError


@dataclass(frozen=True)
class PCAEncoder:
    """Principal components of cells × genes.

    Attributes
    ----------
    mean
        Gene means of the fitting cells ``(g,)``.
    components
        Loadings ``(k, g)``, signs fixed so each component's largest loading is positive.
    """

    mean: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray | sp.spmatrix, *, n_components: int) -> PCAEncoder:
        """Fit on ``x`` ``(n, g)``; ``n_components`` is capped at ``min(n, g) - 1``."""
        dense = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
        k = max(1, min(n_components, min(dense.shape) - 1))
        mean = dense.mean(axis=0)
        _, _, vt = np.linalg.svd(dense - mean, full_matrices=False)
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
        return cls(mean=mean.astype(np.float32), components=(vt * signs[:, None]).astype(np.float32))

    def transform(self, x: np.ndarray | sp.spmatrix) -> np.ndarray:
        """``(n, g)`` → scores ``(n, k)`` float32."""
        dense = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
        if dense.shape[1] != self.components.shape[1]:
            raise ValueError(f"expected {self.components.shape[1]} genes, got {dense.shape[1]}")
        return (dense - self.mean) @ self.components.T

    @property
    def dim(self) -> int:
        """Embedding width ``k``."""
        return int(self.components.shape[0])


def check_source_encoder(kind: str) -> None:
    """Raise a :class:`ConfigError` for source encoders that cannot train yet."""
    if kind == "geneformer":
        raise ConfigError(
            "methods.dualdann.source_encoder: 'geneformer' is not available yet for training (its loading and "
            "tokenisation code is there, xmodal.methods.dualdann._geneformer.GeneformerEncoder, but the stages do "
            "not yet pass it raw counts); use `pca`")
    if kind != "pca":
        raise ConfigError(
            f"methods.dualdann.source_encoder: {kind!r} is not available yet (its local-weights loading path is "
            "still to be built); use `pca`")
