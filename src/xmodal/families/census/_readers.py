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
    """An ``.h5ad`` file read ``chunk_size`` rows at a time from disk (``X`` CSR, or the layer ``layer``); each
    block's raw arrays and counts are checked (:mod:`xmodal.data._sparse`) before scipy builds it.

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
        # each chunk's metadata is read with the chunk: memory does not grow with the cells (a Census-sized obs
        # index alone is gigabytes of strings)
        n = self._n_obs()
        self._sizes = [min(self.chunk_size, n - s) for s in range(0, n, self.chunk_size)]

    def _n_obs(self) -> int:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                obs = f["obs"]
                missing = [c for c in self.vocab.fields if c not in obs]
                if missing:
                    raise XmodalInputError(f"obs has no column {missing[0]!r}", path=self.path,
                                           fix="give every cell the fields the vocabulary was built on")
                return int(obs[obs.attrs["_index"]].shape[0])
        except XmodalInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types for a damaged or foreign file
            raise XmodalInputError(f"not a readable .h5ad ({exc})", path=self.path,
                                   fix="write it with AnnData.write_h5ad") from None

    def _codes(self, rows: slice) -> np.ndarray:
        """Codes ``(rows, fields)`` of a block of ``obs``, read from the file column by column."""
        import anndata as ad

        obs = self._open_file()["obs"]
        frame = pd.DataFrame({f: _column_block(ad, obs[f], rows) for f in self.vocab.fields})
        return self.vocab.encode(frame, where=str(self.path))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_matrix": None}

    def _open_file(self) -> Any:
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r")
        return self._file

    def _open(self) -> Any:
        """The matrix's layout (:func:`xmodal.data._sparse.h5_sparse`), checked once; blocks are read raw."""
        if self._matrix is None:
            import h5py

            from xmodal.data._sparse import Where, h5_sparse

            name = "X" if self.layer is None else f"layers/{self.layer}"
            node = self._open_file().get(name)
            if not isinstance(node, h5py.Group) or node.attrs.get("encoding-type") != "csr_matrix":
                raise XmodalInputError(
                    f"{name} is not stored as CSR, so it cannot be read in row blocks", path=self.path,
                    fix="store raw counts sparse: adata.X = scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(...)")
            self._matrix = h5_sparse(node, where=Where(self.path, matrix=name))
        return self._matrix

    @property
    def sizes(self) -> list[int]:  # noqa: D102 - ChunkReader
        return self._sizes

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:  # noqa: D102 - ChunkReader
        start = index * self.chunk_size
        rows = slice(start, start + self._sizes[index])
        counts = self._open().rows(rows.start, rows.stop, kind="counts")  # raw arrays and counts checked first
        return sp.csr_matrix(counts, dtype=np.float32), self._codes(rows)


def _column_block(ad: Any, node: Any, rows: slice) -> pd.Series:
    """Rows ``rows`` of one ``obs`` column as stored by anndata (categorical: codes + categories; else an array)."""
    import h5py

    if isinstance(node, h5py.Group) and node.attrs.get("encoding-type") == "categorical":
        categories = ad.io.read_elem(node["categories"])
        codes = node["codes"][rows]
        return pd.Series(pd.Categorical.from_codes(codes, categories=categories))
    values = node[rows]
    if values.dtype.kind in "SO":
        values = [v.decode() if isinstance(v, bytes) else v for v in values]
    return pd.Series(values, dtype=object)
