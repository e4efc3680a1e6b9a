"""Geneformer as a frozen source encoder: rank-value tokenisation and cell embeddings from local weights.

A Geneformer folder holds the Hugging Face BERT checkpoint (``config.json`` and ``model.safetensors`` or
``pytorch_model.bin``) and the two dictionaries of the Geneformer package, under these names:

``token_dictionary.pkl``
    Ensembl gene id → token id, with the special tokens ``<pad>``, ``<mask>`` and (V2) ``<cls>``, ``<eos>``.
``gene_median_dictionary.pkl``
    Ensembl gene id → the gene's median non-zero expression over Genecorpus (after depth normalisation).
``gene_name_id_dict.pkl`` (optional)
    Gene symbol → Ensembl id, for data whose genes are named by symbol.

Tokenisation follows Geneformer's ``TranscriptomeTokenizer``: counts are scaled to 10 000 per cell,
divided by each gene's median, genes with a positive value are ranked by it (highest first), mapped to
tokens and cut to the model's input size (``max_position_embeddings``), with ``<cls> … <eos>`` around
them when the dictionary has those tokens (V2). Genes the dictionary does not know are left out. Seed
001 ranked the raw values without the medians, sent unknown genes as ``<pad>`` with attention 1 and cut
at 512 tokens (defect 11); those are the differences.

The embedding of a cell is the last layer's ``<cls>`` state (V2, the seed's choice) or the mean of the
last layer over the gene tokens (``pooling="mean"``; V1 has no ``<cls>``). Nothing is downloaded:
``from_pretrained`` runs with ``local_files_only``. Embeddings are cached as ``.npy`` under
``cache_dir``, keyed by the SHA-256 of the model files and of the tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmodal.errors import XmodalInputError, first_line
from xmodal.methods.dualdann._cache import cache_key, cached, files_digest

log = logging.getLogger(__name__)
TOKENS, MEDIANS, NAMES = "token_dictionary.pkl", "gene_median_dictionary.pkl", "gene_name_id_dict.pkl"
TARGET_SUM = 10_000


def _load_pickle(path: Path, what: str) -> dict[str, Any]:
    """One of Geneformer's ``.pkl`` dictionaries, read by a restricted unpickler (plain data only: a file naming
    any other Python object is refused unread)."""
    from xmodal._safe_load import load_pickle

    fix = f"put the Geneformer package's {what} into the model folder as {path.name}"
    if not path.is_file():
        raise XmodalInputError(f"Geneformer {what} not found", path=path, fix=fix)
    found = load_pickle(path, what=f"Geneformer {what}", fix=fix + " (as the Geneformer package ships it)")
    if not isinstance(found, dict):
        raise XmodalInputError(f"Geneformer {what} is not a dictionary", path=path, fix=fix)
    return found


def _typed(path: Path, what: str, kind: type) -> dict[str, Any]:
    """A Geneformer dictionary with ``str`` keys and ``kind`` values (an entry that is neither is an error)."""
    out = {}
    for key, value in _load_pickle(path, what).items():
        try:
            out[str(key)] = kind(value)
        except (TypeError, ValueError):
            raise XmodalInputError(f"Geneformer {what}: entry {key!r} holds {value!r}, not a {kind.__name__}",
                                   path=path, fix="use the dictionary as the Geneformer package ships it") from None
    return out


@dataclass(frozen=True)
class Tokenized:
    """Token ids ``(n, L)`` (``<pad>``-filled), attention mask ``(n, L)`` and each cell's gene-token count."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    n_genes: np.ndarray


class GeneformerEncoder:
    """A frozen Geneformer model with its dictionaries, read from a local folder.

    Parameters
    ----------
    path
        The model folder (see the module docstring for its files).
    pooling
        ``cls`` (needs a ``<cls>`` token) or ``mean`` over the gene tokens; ``auto``: ``cls`` when the
        dictionary has it.
    batch_size
        Cells per forward pass; ``None``: 1 on CPU (measured faster there than padded batches:
        ``benchmarks/foundation_embed.py``), 32 on CUDA.
    cache_dir
        Where embeddings are cached (``None``: no cache).
    device
        ``cpu`` or ``cuda``.
    """

    def __init__(self, path: str | Path, *, pooling: str = "auto", batch_size: int | None = None,
                 cache_dir: str | Path | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise XmodalInputError("not a Geneformer model folder (no config.json)", path=self.path,
                                   fix="point methods.dualdann.geneformer_path to the downloaded model folder")
        self.tokens = _typed(self.path / TOKENS, "token dictionary", int)
        self.medians = _typed(self.path / MEDIANS, "gene median dictionary", float)
        names = self.path / NAMES
        self.symbols = _typed(names, "gene name dictionary", str) if names.is_file() else {}
        for special in ("<pad>",):
            if special not in self.tokens:
                raise XmodalInputError(f"the token dictionary has no {special} token", path=self.path / TOKENS)
        self.special = "<cls>" in self.tokens and "<eos>" in self.tokens
        if pooling == "auto":
            pooling = "cls" if self.special else "mean"
        if pooling == "cls" and not self.special:
            raise XmodalInputError("pooling `cls` needs a <cls> token (Geneformer V2); this dictionary has none",
                                   path=self.path / TOKENS, fix="use pooling `mean`")
        self.pooling, self.device = pooling, device
        self.batch_size = batch_size or (1 if str(device).startswith("cpu") else 32)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._model: Any = None
        self._digest: bytes | None = None

    # -------------------------------------------------------------- model
    @property
    def model(self) -> Any:
        """The BERT encoder (loaded on first use, eval mode, from local files only)."""
        if self._model is None:
            from transformers import BertModel

            try:  # transformers reads pytorch_model.bin with weights_only=True: nothing in it runs
                self._model = BertModel.from_pretrained(str(self.path), local_files_only=True).eval().to(self.device)
            except Exception as exc:  # noqa: BLE001 - OSError, UnpicklingError, ValueError... one clear error
                raise XmodalInputError(f"cannot load the Geneformer weights ({type(exc).__name__}: "
                                       f"{first_line(exc)})", path=self.path,
                                       fix="the folder needs config.json and model.safetensors or "
                                       "pytorch_model.bin, complete, holding tensors only") from None
        return self._model

    def _config_value(self, key: str) -> int:
        from xmodal._io import read_json

        config = read_json(self.path / "config.json", fix="use the model folder's config.json as it was released")
        try:
            return int(config[key])
        except (KeyError, TypeError, ValueError):
            raise XmodalInputError(f"config.json has no integer {key!r}", path=self.path / "config.json",
                                   fix="use the model folder's config.json as it was released") from None

    @property
    def input_size(self) -> int:
        """Tokens per cell the model takes (``max_position_embeddings`` of its config)."""
        return self._config_value("max_position_embeddings")

    @property
    def dim(self) -> int:
        """Embedding width (``hidden_size``)."""
        return self._config_value("hidden_size")

    # --------------------------------------------------------- tokenising
    def gene_ids(self, genes: list[str]) -> list[str | None]:
        """Ensembl ids of ``genes`` (symbols mapped through the name dictionary); ``None`` when unknown."""
        out: list[str | None] = []
        for g in genes:
            gid = g if g in self.tokens else self.symbols.get(g)
            out.append(gid if gid in self.tokens and gid in self.medians else None)
        return out

    def tokenize(self, counts: np.ndarray | sp.spmatrix, genes: list[str], *,
                 n_counts: np.ndarray | None = None) -> Tokenized:
        """Rank-value encode raw counts.

        Parameters
        ----------
        counts
            Raw counts, cells × genes ``(n, g)``.
        genes
            The ``g`` gene names (Ensembl ids or symbols).
        n_counts
            Each cell's total counts over *all* its genes ``(n,)`` (default: the row sums of ``counts``).

        Returns
        -------
        Tokenized
            ``input_ids``/``attention_mask`` ``(n, L)`` with ``L`` the longest cell (≤ the input size).
        """
        ids = self.gene_ids(list(map(str, genes)))
        known = np.array([i is not None for i in ids])
        if not known.any():
            raise XmodalInputError(f"none of the {len(genes)} genes of the data is in the Geneformer dictionary "
                                   f"(first: {genes[0]!r})", path=self.path / TOKENS,
                                   fix="name genes by Ensembl id, or add gene_name_id_dict.pkl")
        x = sp.csr_matrix(counts, dtype=np.float64)
        totals = np.asarray(x.sum(axis=1)).ravel() if n_counts is None else np.asarray(n_counts, dtype=np.float64)
        medians = np.array([self.medians[i] if i is not None else np.inf for i in ids])
        token_of = np.array([self.tokens[i] if i is not None else -1 for i in ids])
        budget = self.input_size - (2 if self.special else 0)
        cells = []
        for row in range(x.shape[0]):
            start, end = x.indptr[row], x.indptr[row + 1]
            cols, vals = x.indices[start:end], x.data[start:end]
            keep = known[cols] & (vals > 0)
            cols, vals = cols[keep], vals[keep]
            scaled = vals / max(totals[row], 1.0) * TARGET_SUM / medians[cols]
            order = np.argsort(-scaled, kind="stable")[:budget]
            tokens = token_of[cols[order]]
            if self.special:
                tokens = np.concatenate([[self.tokens["<cls>"]], tokens, [self.tokens["<eos>"]]])
            cells.append(tokens)
        width = max(len(c) for c in cells) if cells else 0
        input_ids = np.full((len(cells), width), self.tokens["<pad>"], dtype=np.int64)
        mask = np.zeros((len(cells), width), dtype=np.int64)
        for i, c in enumerate(cells):
            input_ids[i, :len(c)] = c
            mask[i, :len(c)] = 1
        n_genes = np.array([len(c) - (2 if self.special else 0) for c in cells], dtype=np.int64)
        return Tokenized(input_ids=input_ids, attention_mask=mask, n_genes=n_genes)

    # ---------------------------------------------------------- embedding
    def _model_digest(self) -> bytes:
        """SHA-256 over the folder's files (names and contents), computed once per encoder."""
        if self._digest is None:
            self._digest = files_digest(f for f in self.path.iterdir() if f.is_file())
        return self._digest

    def embed(self, counts: np.ndarray | sp.spmatrix, genes: list[str], *,
              n_counts: np.ndarray | None = None) -> np.ndarray:
        """Cell embeddings ``(n, hidden_size)`` float32 of raw counts ``(n, g)`` (eval mode, no gradients).

        A cached result is returned when the same model and tokens were embedded before.
        """
        tokens = self.tokenize(counts, genes, n_counts=n_counts)

        def key() -> str:
            return cache_key(self._model_digest(), self.pooling, np.ascontiguousarray(tokens.input_ids).tobytes(),
                             str(tokens.input_ids.shape))

        return cached(self.cache_dir, "geneformer", key, lambda: self._forward(tokens))

    def _forward(self, tokens: Tokenized) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        model = self.model
        parts = []
        with torch.no_grad():
            for i in tqdm(range(0, len(tokens.input_ids), self.batch_size), desc="geneformer", unit="batch",
                          disable=None, leave=False):
                ids = torch.from_numpy(tokens.input_ids[i:i + self.batch_size]).to(self.device)
                mask = torch.from_numpy(tokens.attention_mask[i:i + self.batch_size]).to(self.device)
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                if self.pooling == "cls":
                    parts.append(hidden[:, 0])
                else:
                    genes_mask = mask.clone()
                    if self.special:  # <cls> and <eos> are not genes
                        genes_mask[:, 0] = 0
                        genes_mask[torch.arange(len(mask), device=mask.device), mask.sum(dim=1) - 1] = 0
                    weights = genes_mask.unsqueeze(-1).to(hidden.dtype)
                    parts.append((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0))
        return torch.cat(parts).cpu().numpy().astype(np.float32) if parts else np.zeros((0, self.dim), np.float32)
