"""Chunk readers of the streaming loader over files: seed 002's npz export and ``.h5ad`` read in row blocks.

Each implements :class:`~xmodal.families.census._stream.ChunkReader` (``sizes``, ``read(i)``), opens its files
lazily and pickles as paths only, so spawn-started DataLoader workers reopen them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.census._chunks import chunk_files, npz_rows, read_chunk, read_genes
from xmodal.families.census._vocab import Vocabulary


class NpzChunks:
    """Seed 002's chunk folder as a chunk reader: one file pair per chunk, metadata encoded by ``vocab``.

    Parameters
    ----------
    folder
        The chunk folder (see :mod:`xmodal.families.census._chunks`).
    vocab
        Encodes each chunk's metadata.
    trust_pickle
        Read ``.pkl`` metadata (only for files you made).
    """

    def __init__(self, folder: str | Path, vocab: Vocabulary, *, trust_pickle: bool = False) -> None:
        self.folder, self.vocab, self.trust_pickle = Path(folder), vocab, trust_pickle
        self.pairs = chunk_files(self.folder, trust_pickle=trust_pickle)
        self.n_genes = len(read_genes(self.folder, self.pairs))
        self._sizes = [npz_rows(c) for c, _ in self.pairs]

    @property
    def sizes(self) -> list[int]:  # noqa: D102 - ChunkReader
        return self._sizes

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:  # noqa: D102 - ChunkReader
        counts_path, meta_path = self.pairs[index]
        chunk = read_chunk(counts_path, meta_path, n_genes=self.n_genes, trust_pickle=self.trust_pickle)
        return chunk.counts, self.vocab.encode(chunk.obs, where=str(meta_path))


class H5adChunks:
    """An ``.h5ad`` file read ``chunk_size`` rows at a time from disk (``X`` CSR, or the layer ``layer``).

    Parameters
    ----------
    path
        The file; ``X`` (or ``layers[layer]``) must hold raw counts, stored CSR.
    vocab
        Encodes ``obs``.
    chunk_size
        Rows per chunk.
    layer
        Read this layer instead of ``X``.
    """

    def __init__(self, path: str | Path, vocab: Vocabulary, *, chunk_size: int = 10_000, layer: str | None = None
                 ) -> None:
        self.path, self.vocab, self.chunk_size, self.layer = Path(path), vocab, int(chunk_size), layer
        self._file: Any = None
        self._matrix: Any = None
        obs = self.obs()
        self.codes = vocab.encode(obs, where=str(self.path))  # (n, fields) int64: small beside X
        n = len(obs)
        self._sizes = [min(self.chunk_size, n - s) for s in range(0, n, self.chunk_size)]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_matrix": None}

    def obs(self) -> pd.DataFrame:
        """The file's ``obs`` (read without ``X``)."""
        import anndata as ad
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                return ad.io.read_elem(f["obs"])
        except (OSError, KeyError) as exc:
            raise XmodalInputError(f"not a readable .h5ad ({exc})", path=self.path,
                                   fix="write it with AnnData.write_h5ad") from None

    def _open(self) -> Any:
        if self._matrix is None:
            import anndata as ad
            import h5py

            self._file = h5py.File(self.path, "r")
            node = self._file["X"] if self.layer is None else self._file["layers"][self.layer]
            if not isinstance(node, h5py.Group) or node.attrs.get("encoding-type") != "csr_matrix":
                raise XmodalInputError(
                    f"{'X' if self.layer is None else 'layers/' + self.layer} is not stored as CSR, so it cannot be "
                    "read in row blocks", path=self.path,
                    fix="store raw counts sparse: adata.X = scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(...)")
            self._matrix = ad.io.sparse_dataset(node)
        return self._matrix

    @property
    def sizes(self) -> list[int]:  # noqa: D102 - ChunkReader
        return self._sizes

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:  # noqa: D102 - ChunkReader
        start = index * self.chunk_size
        rows = slice(start, start + self._sizes[index])
        counts = sp.csr_matrix(self._open()[rows], dtype=np.float32)
        return counts, self.codes[rows]
