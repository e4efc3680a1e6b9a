"""Data: the ``paired`` family container, readers with validation, synthetic and bundled data."""

from __future__ import annotations

from xmodal.data._paired import (
    CLUSTER,
    LABEL,
    MATCH,
    SPLIT,
    PairedData,
    content_hash,
    read_paired,
    write_paired,
)
from xmodal.data.bundled import pbmc68k_paired
from xmodal.data.synthetic import synthetic_paired

__all__ = [
    "CLUSTER",
    "LABEL",
    "MATCH",
    "SPLIT",
    "PairedData",
    "content_hash",
    "load_source",
    "pbmc68k_paired",
    "read_paired",
    "synthetic_paired",
    "write_paired",
]


def load_source(source: object, *, root: object = ".") -> PairedData:
    """Build a :class:`PairedData` from a dataset ``source`` config (any of the four kinds).

    Parameters
    ----------
    source
        A ``SyntheticPairedSource``, ``Pbmc68kSource``, ``CsvPairedSource`` or ``AnnDataSource``.
    root
        Directory that relative file paths in ``source`` are resolved against. ``s3://`` URIs
        (``csv`` and ``anndata`` sources) are downloaded to a temporary folder, read like local
        files and removed (see :mod:`xmodal._s3` for the endpoint and credentials).

    Returns
    -------
    PairedData
        Validated data; bad input raises :class:`~xmodal.errors.XmodalInputError`.
    """
    from dataclasses import replace
    from pathlib import Path

    from xmodal.config import AnnDataSource, CsvPairedSource, Pbmc68kSource, SyntheticPairedSource
    from xmodal.data.readers import read_paired_anndata, read_paired_csv, validate_paired

    if isinstance(source, SyntheticPairedSource):
        data = replace(synthetic_paired(source), kinds=("continuous", "counts"))
    elif isinstance(source, Pbmc68kSource):
        data = replace(pbmc68k_paired(source), kinds=("continuous", "continuous"))
    elif isinstance(source, CsvPairedSource):
        return read_paired_csv(source, root=Path(str(root)))
    elif isinstance(source, AnnDataSource):
        return read_paired_anndata(source, root=Path(str(root)))
    else:  # pragma: no cover - the config union is closed
        raise TypeError(f"unknown data source {type(source).__name__}")
    validate_paired(data)
    return data
