"""scFoundation as a frozen source encoder: its value tokenisation and cell embeddings from local weights.

An scFoundation folder holds the two files of the released model, under these names:

``models.ckpt``
    The checkpoint. The released file has one entry per variant (``gene``, ``cell``, ``rde``), each with
    ``config`` (``model: mae_autobin``, ``model_config`` and ``dataset_config``) and ``state_dict``
    (keys prefixed ``model.``); a single converted entry (``config`` flat, ``model_state_dict``) is read too.
``OS_scRNA_gene_index.19264.tsv``
    The model's gene list (tab-separated, column ``gene_name``: gene symbols), in the model's order.

Only the encoder half of the model is used for cell embeddings, as in scFoundation's own
``get_embedding.py``: every gene of the list gets ``log1p(count / total · 10⁴)`` (genes missing from the
data are 0, genes not in the list are left out, ``total`` is the cell's count over the listed genes), two
depth tokens follow the genes — T, the target resolution (``t4``: 4; ``f<k>``: log10(k·total);
``a<k>``: log10(total)+k) and S = log10(total) — and the tokens with a positive value enter the encoder
with their gene's position embedding. Values are embedded by the auto-discretisation (a soft assignment
to ``bin_num`` learned bins), the transformer encoder runs with padding masked, and the cell embedding
is the maximum over its tokens (``pooling="max"``, ``hidden_dim`` wide: 768 for the released model, the
size seed 001 used) or ``[S, T, max over genes, mean over genes]`` (``pooling="all"``, 4×).

Differences from the reference script, none of which changes a cell's embedding: cells are embedded in
padded batches rather than one at a time (padding is masked in attention and pooling), padding is
recognised by position rather than by the value ``pad_token_id``, and the two depth tokens are always
kept (the script drops them when their value is ≤ 0, which then shifts its ``[S, T, …]`` pooling onto
genes). Nothing is downloaded; embeddings are cached under ``cache_dir`` keyed by the SHA-256 of the two
files, the options and the input values.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from xmodal.errors import XmodalInputError
from xmodal.methods.dualdann._cache import cache_key, cached, files_digest

log = logging.getLogger(__name__)
CHECKPOINT, GENE_LIST = "models.ckpt", "OS_scRNA_gene_index.19264.tsv"
TARGET_SUM = 10_000
_RESOLUTION = re.compile(r"^([tfa])(\d+(?:\.\d+)?)$")
_ENCODER_KEYS = ("token_emb.", "pos_emb.", "encoder.")


def parse_resolution(text: str) -> tuple[str, float]:
    """``t4``/``f1``/``a0.5`` → (kind, number); raises ``ValueError`` on anything else."""
    found = _RESOLUTION.match(text)
    if not found:
        raise ValueError(f"resolution {text!r} must be t<k> (target log10 depth), f<k> (fold of the cell's depth) "
                         "or a<k> (added to log10 depth), e.g. t4")
    return found.group(1), float(found.group(2))


@dataclass(frozen=True)
class Tokenized:
    """Padded encoder input of ``n`` cells, ``L`` tokens each (the longest cell).

    Attributes
    ----------
    values
        Token values ``(n, L)`` float32: normalised expression, then T and S; 0 where padded.
    positions
        Position (gene) ids ``(n, L)``: list index ``0…G−1``, ``G`` for T, ``G+1`` for S, ``G+2`` padded.
    padding
        ``(n, L)`` bool, True on padding.
    n_genes
        Gene tokens per cell ``(n,)``.
    """

    values: np.ndarray
    positions: np.ndarray
    padding: np.ndarray
    n_genes: np.ndarray


class ValueEmbedding(nn.Module):
    """scFoundation's auto-discretised value embedding: ``(B, N)`` values → ``(B, N, D)``."""

    def __init__(self, dim: int, bin_num: int, bin_alpha: float) -> None:
        super().__init__()
        self.bin_alpha = bin_alpha
        self.mlp = nn.Linear(1, bin_num)
        self.mlp2 = nn.Linear(bin_num, bin_num)
        self.emb = nn.Embedding(bin_num, dim)
        self.emb_mask = nn.Embedding(1, dim)  # the pre-training mask token (unused for embeddings)
        self.emb_pad = nn.Embedding(1, dim)

    def forward(self, values: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.mlp(values.unsqueeze(-1)), 0.1)
        h = self.bin_alpha * h + self.mlp2(h)
        x = torch.softmax(h, dim=-1) @ self.emb.weight
        return torch.where(padding.unsqueeze(-1), self.emb_pad.weight[0], x)


class Encoder(nn.Module):
    """Post-norm transformer encoder layers and a final LayerNorm (the released model's encoder)."""

    def __init__(self, dim: int, depth: int, heads: int, ff_mult: int, norm_first: bool) -> None:
        super().__init__()
        self.transformer_encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim * ff_mult, batch_first=True,
                                       norm_first=norm_first) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        for layer in self.transformer_encoder:
            x = layer(x, src_key_padding_mask=padding)
        return self.norm(x)


class ScFoundationEncoderModule(nn.Module):
    """Value embedding + gene position embedding → transformer encoder: ``(B, N)`` → ``(B, N, D)``."""

    def __init__(self, *, dim: int, depth: int, heads: int, seq_len: int, bin_num: int, bin_alpha: float,
                 ff_mult: int = 4, norm_first: bool = False) -> None:
        super().__init__()
        self.token_emb = ValueEmbedding(dim, bin_num, bin_alpha)
        self.pos_emb = nn.Embedding(seq_len + 1, dim)  # the last row: padding
        self.encoder = Encoder(dim, depth, heads, ff_mult, norm_first)

    def forward(self, values: torch.Tensor, positions: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.token_emb(values, padding) + self.pos_emb(positions)
        return self.encoder(x, padding)


def read_checkpoint(path: Path, *, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model config (merged ``model_config`` and ``dataset_config.rnaseq``) and the encoder's weights.

    Parameters
    ----------
    path
        ``models.ckpt``.
    key
        The variant of a released checkpoint (``cell``, ``rde`` or ``gene``).

    Raises
    ------
    XmodalInputError
        Unreadable file, unknown layout, missing variant, or an encoder that is not a transformer.
    """
    from xmodal._safe_load import load_torch

    # tensors, containers, numbers and NumPy scalars/arrays only: a checkpoint holding any other Python object is
    # refused unread (unpickling it could run code), unlike scFoundation's own loader
    found = load_torch(path, what="cannot read the scFoundation checkpoint", map_location="cpu",
                       fix="use the released models.ckpt as downloaded, or re-save its `config` and `state_dict` "
                       "entries alone with torch.save")
    if not isinstance(found, dict):
        raise XmodalInputError("the scFoundation checkpoint is not a dictionary", path=path)
    if "config" not in found:
        if key not in found:
            raise XmodalInputError(f"the scFoundation checkpoint has no {key!r} model (it has: "
                                   f"{', '.join(map(str, found))})", path=path,
                                   fix="set methods.dualdann.scfoundation_key to one of those")
        found = found[key]
    raw = found.get("config") or {}
    if "model_config" in raw:  # the released layout
        model_type = raw.get("model")
        config = {**dict(raw["model_config"].get(model_type, {})),
                  **dict(raw.get("dataset_config", {}).get("rnaseq", {})), "model": model_type}
        state = {str(k).split("model.", 1)[1]: v for k, v in found.get("state_dict", {}).items()
                 if str(k).startswith("model.")}
    else:
        config, state = dict(raw), dict(found.get("model_state_dict", {}))
    if config.get("model") != "mae_autobin":
        raise XmodalInputError(f"not an scFoundation (mae_autobin) checkpoint: model {config.get('model')!r}",
                               path=path)
    missing = [k for k in ("encoder", "seq_len", "bin_num", "bin_alpha") if k not in config]
    encoder = config.get("encoder") or {}
    missing += [f"encoder.{k}" for k in ("hidden_dim", "depth", "heads") if k not in encoder]
    if missing:
        raise XmodalInputError(f"the scFoundation checkpoint's config lacks {', '.join(missing)}", path=path)
    if encoder.get("module_type", "transformer") != "transformer":
        raise XmodalInputError(f"scFoundation encoder type {encoder['module_type']!r} is not supported "
                               "(the released models' encoder is a transformer)", path=path)
    return config, {k: v for k, v in state.items() if k.startswith(_ENCODER_KEYS)}


class ScFoundationEncoder:
    """A frozen scFoundation encoder with its gene list, read from a local folder.

    Parameters
    ----------
    path
        The model folder (see the module docstring for its files).
    key
        Which model of a released checkpoint: ``cell`` (cell embeddings; scFoundation's default),
        ``rde`` (read-depth enhancement) or ``gene``.
    pooling
        ``max`` over the tokens (``hidden_dim`` wide) or ``all`` (``[S, T, max, mean]``, 4× as wide).
    resolution
        The T token: ``t<k>``, ``f<k>`` or ``a<k>`` (scFoundation's ``tgthighres``; default ``t4``).
    batch_size
        Cells per forward pass; ``None``: 1 on CPU (measured faster there than padded batches:
        ``benchmarks/foundation_embed.py``), 16 on CUDA.
    cache_dir
        Where embeddings are cached (``None``: no cache).
    device
        ``cpu`` or ``cuda``.
    """

    def __init__(self, path: str | Path, *, key: str = "cell", pooling: str = "max", resolution: str = "t4",
                 batch_size: int | None = None, cache_dir: str | Path | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        for name, what in ((CHECKPOINT, "checkpoint"), (GENE_LIST, "gene list")):
            if not (self.path / name).is_file():
                raise XmodalInputError(f"scFoundation {what} not found", path=self.path / name,
                                       fix=f"put the released {name} into methods.dualdann.scfoundation_path")
        if pooling not in ("max", "all"):
            raise ValueError(f"pooling must be max or all, not {pooling!r}")
        self.resolution = parse_resolution(resolution)
        genes = pd.read_csv(self.path / GENE_LIST, sep="\t")
        if "gene_name" not in genes.columns:
            raise XmodalInputError("the gene list has no gene_name column", path=self.path / GENE_LIST,
                                   fix="use the released tab-separated list (header with gene_name)")
        self.genes = [str(g) for g in genes["gene_name"]]
        self.device = torch.device(device)
        self.batch_size = batch_size or (1 if self.device.type == "cpu" else 16)
        self.key, self.pooling = key, pooling
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._model: Any = None
        self._config: dict[str, Any] | None = None
        self._digest: bytes | None = None

    # -------------------------------------------------------------- model
    def _load(self) -> None:
        config, state = read_checkpoint(self.path / CHECKPOINT, key=self.key)
        if int(config["seq_len"]) != len(self.genes) + 2:
            raise XmodalInputError(f"the checkpoint's seq_len {config['seq_len']} is not the gene list's "
                                   f"{len(self.genes)} genes + 2 depth tokens", path=self.path / GENE_LIST,
                                   fix="use the gene list released with this checkpoint")
        enc = config["encoder"]
        module = ScFoundationEncoderModule(dim=int(enc["hidden_dim"]), depth=int(enc["depth"]), heads=int(enc["heads"]),
                            seq_len=int(config["seq_len"]), bin_num=int(config["bin_num"]),
                            bin_alpha=float(config["bin_alpha"]), ff_mult=int(enc.get("ff_mult", 4)),
                            norm_first=bool(enc.get("norm_first", False)))
        expected = module.state_dict()
        missing = sorted(set(expected) - set(state))
        if missing:
            raise XmodalInputError(f"the scFoundation checkpoint lacks {len(missing)} encoder weights (first: "
                                   f"{missing[0]})", path=self.path / CHECKPOINT)
        shapes = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
        if shapes:
            raise XmodalInputError(f"scFoundation weight {shapes[0]} has shape {tuple(state[shapes[0]].shape)}, "
                                   f"the config implies {tuple(expected[shapes[0]].shape)}", path=self.path / CHECKPOINT)
        module.load_state_dict({k: state[k] for k in expected})
        self._model, self._config = module.eval().to(self.device), config

    @property
    def model(self) -> Any:
        """The encoder module (loaded on first use, eval mode)."""
        if self._model is None:
            self._load()
        return self._model

    @property
    def dim(self) -> int:
        """Embedding width: ``hidden_dim`` (``max``) or 4 × ``hidden_dim`` (``all``)."""
        if self._config is None:
            self._load()
        assert self._config is not None
        width = int(self._config["encoder"]["hidden_dim"])
        return width if self.pooling == "max" else 4 * width

    # --------------------------------------------------------- tokenising
    def tokenize(self, counts: np.ndarray | sp.spmatrix, genes: list[str]) -> Tokenized:
        """The encoder input of raw counts.

        Parameters
        ----------
        counts
            Raw counts, cells × genes ``(n, g)``.
        genes
            The ``g`` gene symbols; those not in the model's list are left out.

        Returns
        -------
        Tokenized
            Gene tokens (positive normalised values, in list order) then T and S, padded to the longest cell.
        """
        index = {g: i for i, g in enumerate(self.genes)}
        cols = np.array([index.get(str(g), -1) for g in genes])
        known = cols >= 0
        if not known.any():
            raise XmodalInputError(f"none of the {len(genes)} genes of the data is in scFoundation's gene list "
                                   f"(first: {genes[0]!r})", path=self.path / GENE_LIST,
                                   fix="name genes by their symbols (HGNC), as the list does")
        n_list = len(self.genes)
        x = sp.csr_matrix(counts, dtype=np.float64)[:, np.flatnonzero(known)]
        x = sp.csr_matrix((x.data, cols[known][x.indices], x.indptr), shape=(x.shape[0], n_list))
        x.sum_duplicates()
        x.sort_indices()
        totals = np.asarray(x.sum(axis=1)).ravel()
        empty = int((totals <= 0).sum())
        if empty:
            log.warning("scfoundation: %d cells have no counts on the model's genes; they get depth tokens only",
                        empty)
        kind, k = self.resolution
        log_total = np.log10(np.maximum(totals, 1.0))
        t_token = {"t": np.full_like(log_total, k), "f": np.log10(np.maximum(totals * k, 1.0)),
                   "a": log_total + k}[kind]
        cells_v, cells_p = [], []
        for row in range(x.shape[0]):
            start, end = x.indptr[row], x.indptr[row + 1]
            vals = np.log1p(x.data[start:end] / max(totals[row], 1.0) * TARGET_SUM)
            keep = vals > 0
            cells_v.append(np.concatenate([vals[keep], [t_token[row], log_total[row]]]))
            cells_p.append(np.concatenate([x.indices[start:end][keep], [n_list, n_list + 1]]))
        width = max((len(v) for v in cells_v), default=2)
        values = np.zeros((len(cells_v), width), dtype=np.float32)
        positions = np.full((len(cells_v), width), n_list + 2, dtype=np.int64)
        padding = np.ones((len(cells_v), width), dtype=bool)
        for i, (v, p) in enumerate(zip(cells_v, cells_p, strict=True)):
            values[i, :len(v)], positions[i, :len(p)], padding[i, :len(v)] = v, p, False
        return Tokenized(values=values, positions=positions, padding=padding,
                         n_genes=np.array([len(v) - 2 for v in cells_v], dtype=np.int64))

    # ---------------------------------------------------------- embedding
    def _model_digest(self) -> bytes:
        if self._digest is None:
            self._digest = files_digest([self.path / CHECKPOINT, self.path / GENE_LIST])
        return self._digest

    def embed(self, counts: np.ndarray | sp.spmatrix, genes: list[str]) -> np.ndarray:
        """Cell embeddings ``(n, dim)`` float32 of raw counts ``(n, g)`` (eval mode, no gradients).

        A cached result is returned when the same model, options and input values were embedded before.
        """
        tokens = self.tokenize(counts, genes)

        def key() -> str:
            return cache_key(self._model_digest(), self.key, self.pooling, "".join(map(str, self.resolution)),
                             tokens.values.tobytes(), tokens.positions.tobytes(), str(tokens.values.shape))

        return cached(self.cache_dir, "scfoundation", key, lambda: self._forward(tokens))

    def _forward(self, tokens: Tokenized) -> np.ndarray:
        """Embed in batches of cells of similar length (longest first, so padding stays small), in input order."""
        from tqdm.auto import tqdm

        model = self.model
        lengths = (~tokens.padding).sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        out = np.zeros((len(order), self.dim), dtype=np.float32)
        with torch.no_grad():
            for i in tqdm(range(0, len(order), self.batch_size), desc="scfoundation", unit="batch",
                          disable=None, leave=False):
                rows = order[i:i + self.batch_size]
                n_tokens = int(lengths[rows].max())
                padding = torch.from_numpy(tokens.padding[rows, :n_tokens]).to(self.device)
                hidden = model(torch.from_numpy(tokens.values[rows, :n_tokens]).to(self.device),
                               torch.from_numpy(tokens.positions[rows, :n_tokens]).to(self.device), padding)
                out[rows] = self._pool(hidden, padding).cpu().numpy()
        return out

    def _pool(self, hidden: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` token states → ``(B, D)`` (``max``) or ``(B, 4D)`` (``all``)."""
        valid = ~padding.unsqueeze(-1)
        top = hidden.masked_fill(~valid, float("-inf")).amax(dim=1)
        if self.pooling == "max":
            return top
        last = valid.squeeze(-1).sum(dim=1) - 1  # S sits last, T just before it
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        s_state, t_state = hidden[rows, last], hidden[rows, last - 1]
        genes = valid.clone()
        genes[rows, last] = False
        genes[rows, last - 1] = False
        gene_max = hidden.masked_fill(~genes, float("-inf")).amax(dim=1)
        gene_max = torch.where(torch.isfinite(gene_max), gene_max, torch.zeros_like(gene_max))
        weights = genes.to(hidden.dtype)
        gene_mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return torch.cat([s_state, t_state, gene_max, gene_mean], dim=1)
