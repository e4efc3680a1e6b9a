"""What a method sees of a processed census dataset: the streamed training cells and a validation sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.census._io import STORE
from xmodal.families.census._vocab import Vocabulary


@dataclass(frozen=True)
class CensusData:
    """A processed census dataset as a fit sees it: row ranges of the splits it may read, never the test cells.

    Attributes
    ----------
    folder
        ``data/processed/<dataset>``.
    vocab
        The training cells' metadata vocabulary.
    genes, feature_names
        The model's genes (``feature_id``) and their names.
    ranges
        ``{"train": (lo, hi), "validation": (lo, hi)}``: rows of the processed store.
    target_sum
        The normalisation's counts per cell.
    chunk_size
        Rows per chunk the loader reads.
    holdout, counterfactual_field
        The dataset's held-out combinations and the field the evaluation changes.
    """

    folder: Path
    vocab: Vocabulary
    genes: list[str]
    feature_names: list[str]
    ranges: dict[str, tuple[int, int]]
    target_sum: float
    chunk_size: int
    holdout: list[dict[str, str]] = field(default_factory=list)
    counterfactual_field: str = ""

    @property
    def store(self) -> Path:
        """The processed SOMA store."""
        return self.folder / STORE

    @property
    def n_genes(self) -> int:
        """Genes of the model's input."""
        return len(self.genes)

    @property
    def cardinalities(self) -> list[int]:
        """``K_f`` of every used field."""
        return [self.vocab.cardinality(f) for f in self.vocab.fields]

    def field_means(self, *, adjusted: bool = False) -> list[np.ndarray]:
        """The training cells' mean log1p-normalised expression per value of every used field, as preprocess wrote
        them: one ``(K_f + 1, genes)`` float32 array per field (row 0: null or unseen; rows ``1..K_f``: its codes).

        ``adjusted``: each value's additive effect fitted jointly with the other fields' instead
        (:func:`~xmodal.families.census._preprocess.additive_effects`); only differences within a field mean
        anything.

        Raises
        ------
        XmodalInputError
            The file is missing or does not match the vocabulary or the genes.
        """
        from xmodal.families.census._preprocess import FIELD_MEANS

        path = self.folder / FIELD_MEANS
        if not path.is_file():
            raise XmodalInputError("no per-value training means here", path=path,
                                   fix="re-run `xmodal preprocess` for this dataset")
        out = []
        try:
            with np.load(path, allow_pickle=False) as npz:
                for name in self.vocab.fields:
                    key = f"{'effect' if adjusted else 'mean'}:{name}"
                    shape = (self.vocab.cardinality(name) + 1, self.n_genes)
                    array = np.asarray(npz[key]) if key in npz.files else None
                    if array is None or array.shape != shape or array.dtype.kind != "f":
                        got = "missing" if array is None else array.shape if array.shape != shape else array.dtype
                        raise XmodalInputError(f"{key}: expected shape {shape} of floats, found {got}", path=path,
                                               fix="re-run `xmodal preprocess` for this dataset")
                    out.append(array.astype(np.float32))
        except XmodalInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many types for a damaged file
            raise XmodalInputError(f"cannot read the per-value training means ({type(exc).__name__}: {exc})",
                                   path=path, fix="the file is damaged: re-run `xmodal preprocess` for this dataset"
                                   ) from None
        return out

    def reader(self, split: str = "train", *, chunk_size: int | None = None) -> Any:
        """A chunk reader (:class:`~xmodal.families.census._soma.SomaChunks`) over one split's rows."""
        from xmodal.families.census._soma import SomaChunks

        if split not in self.ranges:
            raise KeyError(f"split {split!r} is not readable here (readable: {sorted(self.ranges)})")
        return SomaChunks(self.store, self.vocab, chunk_size=chunk_size or self.chunk_size, rows=self.ranges[split])

    def sample(self, split: str, *, max_cells: int | None, seed: int,
               columns: tuple[str, ...] = ()) -> tuple[sp.csr_matrix, np.ndarray, pd.DataFrame]:
        """Up to ``max_cells`` cells of ``split`` (a seeded sample, in store order): raw counts ``(n, genes)`` CSR,
        codes ``(n, fields)`` int64 and ``obs`` (the fields and ``columns``)."""
        lo, hi = self.ranges[split]
        rows = np.arange(lo, hi)
        if max_cells is not None and len(rows) > max_cells:
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_cells, replace=False))
        counts, obs = self.reader(split).read_rows(rows, columns=list(dict.fromkeys([*self.vocab.fields, *columns])))
        return counts, self.vocab.encode(obs, where=str(self.store)), obs


def read_processed(folder: Path, *, splits: tuple[str, ...] = ("train", "validation")) -> CensusData:
    """Open ``data/processed/<dataset>`` for a fit (``splits``: the row ranges it may read).

    Raises
    ------
    XmodalInputError
        The folder is not a processed census dataset.
    """
    from xmodal._io import read_json
    from xmodal.data import SCHEMA_FILE
    from xmodal.families.census._preprocess import PREPROCESSOR, VOCAB_FILE

    folder = Path(folder)
    if not (folder / STORE).is_dir() or not (folder / SCHEMA_FILE).is_file():
        raise XmodalInputError("no processed census store here (store/, schema.json)", path=folder,
                               fix="run `xmodal preprocess` (or `dvc repro`) for this dataset")
    schema = read_json(folder / SCHEMA_FILE)
    prep = read_json(folder / PREPROCESSOR / "meta.json")
    try:
        ranges = {s: (int(schema["rows"][s][0]), int(schema["rows"][s][1])) for s in splits}
        return CensusData(folder=folder, vocab=Vocabulary.load(folder / VOCAB_FILE), genes=list(prep["genes"]),
                          feature_names=list(prep["feature_names"]), ranges=ranges,
                          target_sum=float(schema["target_sum"]), chunk_size=int(schema.get("chunk_size", 2000)),
                          holdout=list(schema.get("holdout", [])),
                          counterfactual_field=str(schema.get("counterfactual_field", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise XmodalInputError(f"schema.json is not a processed census schema ({exc})", path=folder / SCHEMA_FILE,
                               fix="re-run `xmodal preprocess`") from None


__all__ = ["CensusData", "read_processed"]
