"""Source (RNA) encoders of dualdann: fixed embeddings computed once, before the networks train.

``pca`` is the offline default: principal components of the normalised expression, fitted on the
source domain's training cells only. ``geneformer`` embeds the raw counts (``layers["counts"]`` and
``obs["n_counts"]``, which ``preprocess`` keeps) with a frozen local Geneformer (:mod:`._geneformer`),
``scfoundation`` with a frozen local scFoundation (:mod:`._scfoundation`), and ``ensemble`` concatenates
the two (seed 001: Geneformer-316M 1 152 + scFoundation 768 = 1 920 dimensions).

Every encoder takes the RNA as an ``AnnData`` (PCA also a matrix) and returns ``(n, dim)`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from xmodal.errors import ConfigError, XmodalInputError


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

    def transform(self, x: np.ndarray | sp.spmatrix | ad.AnnData) -> np.ndarray:
        """``(n, g)`` (a matrix, or an AnnData's ``X``) → scores ``(n, k)`` float32."""
        if isinstance(x, ad.AnnData):
            x = x.X
        dense = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
        if dense.shape[1] != self.components.shape[1]:
            raise ValueError(f"expected {self.components.shape[1]} genes, got {dense.shape[1]}")
        return (dense - self.mean) @ self.components.T

    @property
    def dim(self) -> int:
        """Embedding width ``k``."""
        return int(self.components.shape[0])


def _counts(rna: Any, kind: str) -> ad.AnnData:
    if not isinstance(rna, ad.AnnData) or "counts" not in rna.layers:
        raise XmodalInputError(f"the {kind} source encoder needs raw counts: an AnnData with layers['counts']",
                               fix="pass the RNA as `xmodal preprocess` writes it")
    return rna


class GeneformerSource:
    """Frozen Geneformer embeddings of raw counts (see :class:`~._geneformer.GeneformerEncoder`)."""

    def __init__(self, path: str, *, pooling: str = "auto", cache_dir: str | None = None, device: str = "cpu") -> None:
        from xmodal.methods.dualdann._geneformer import GeneformerEncoder

        self.encoder = GeneformerEncoder(path, pooling=pooling, cache_dir=cache_dir, device=device)

    @property
    def dim(self) -> int:
        """Embedding width (the model's hidden size)."""
        return self.encoder.dim

    def transform(self, rna: Any) -> np.ndarray:
        """``AnnData`` with ``layers["counts"]`` ``(n, g)`` (and ``obs["n_counts"]``) → embeddings ``(n, dim)``."""
        rna = _counts(rna, "geneformer")
        n_counts = rna.obs["n_counts"].to_numpy() if "n_counts" in rna.obs else None
        return self.encoder.embed(rna.layers["counts"], list(map(str, rna.var_names)), n_counts=n_counts)


class ScFoundationSource:
    """Frozen scFoundation embeddings of raw counts (see :class:`~._scfoundation.ScFoundationEncoder`)."""

    def __init__(self, path: str, *, key: str = "cell", pooling: str = "max", resolution: str = "t4",
                 cache_dir: str | None = None, device: str = "cpu") -> None:
        from xmodal.methods.dualdann._scfoundation import ScFoundationEncoder

        self.encoder = ScFoundationEncoder(path, key=key, pooling=pooling, resolution=resolution,
                                           cache_dir=cache_dir, device=device)

    @property
    def dim(self) -> int:
        """Embedding width (``hidden_dim``, or 4× with ``all`` pooling)."""
        return self.encoder.dim

    def transform(self, rna: Any) -> np.ndarray:
        """``AnnData`` with ``layers["counts"]`` ``(n, g)``, genes named by symbol → embeddings ``(n, dim)``."""
        rna = _counts(rna, "scfoundation")
        return self.encoder.embed(rna.layers["counts"], list(map(str, rna.var_names)))


@dataclass(frozen=True)
class EnsembleSource:
    """Several frozen encoders side by side: their embeddings concatenated, in order (seed 001's ensemble)."""

    parts: tuple[GeneformerSource | ScFoundationSource, ...]

    @property
    def dim(self) -> int:
        """Sum of the parts' widths."""
        return sum(p.dim for p in self.parts)

    def transform(self, rna: Any) -> np.ndarray:
        """``AnnData`` with raw counts ``(n, g)`` → ``(n, Σ dim)``: each part's embeddings, concatenated."""
        return np.concatenate([p.transform(rna) for p in self.parts], axis=1)


SourceEncoder = PCAEncoder | GeneformerSource | ScFoundationSource | EnsembleSource


def build_source_encoder(config: Any, rna_train: ad.AnnData) -> SourceEncoder:
    """The configured source encoder, fitted on the source domain's training RNA where it learns anything.

    Raises
    ------
    ConfigError
        For a foundation model whose path is not set, or missing ``transformers`` (Geneformer).
    """
    if config.source_encoder == "pca":
        return PCAEncoder.fit(rna_train.X, n_components=config.source_pcs)
    return load_source_encoder(config)


def load_source_encoder(config: Any) -> GeneformerSource | ScFoundationSource | EnsembleSource:
    """The frozen foundation-model encoder(s) named by ``config`` (nothing to fit; also used when loading)."""
    kind = config.source_encoder
    if kind == "ensemble":
        return EnsembleSource(parts=(_geneformer(config), _scfoundation(config)))
    if kind == "geneformer":
        return _geneformer(config)
    if kind == "scfoundation":
        return _scfoundation(config)
    raise ConfigError(f"methods.dualdann.source_encoder: {kind!r} has no frozen model to load")


def _geneformer(config: Any) -> GeneformerSource:
    if not config.geneformer_path:
        raise ConfigError(f"methods.dualdann.geneformer_path: set it to the local Geneformer folder "
                          f"(source_encoder: {config.source_encoder}); nothing is downloaded")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError("source_encoder geneformer needs the transformers package: "
                          "pip install 'xmodal[foundation]'") from None
    return GeneformerSource(config.geneformer_path, pooling=config.geneformer_pooling,
                            cache_dir=config.embedding_cache, device=_device(config))


def _scfoundation(config: Any) -> ScFoundationSource:
    if not config.scfoundation_path:
        raise ConfigError(f"methods.dualdann.scfoundation_path: set it to the local scFoundation folder "
                          f"(models.ckpt and its gene list; source_encoder: {config.source_encoder}); "
                          "nothing is downloaded")
    return ScFoundationSource(config.scfoundation_path, key=config.scfoundation_key,
                              pooling=config.scfoundation_pooling, resolution=config.scfoundation_resolution,
                              cache_dir=config.embedding_cache, device=_device(config))


def _device(config: Any) -> str:
    """Where a frozen foundation model runs: CUDA when the config allows it and a device is there, else CPU (a
    model trained on a GPU still serves on a CPU-only machine)."""
    import torch

    return "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
