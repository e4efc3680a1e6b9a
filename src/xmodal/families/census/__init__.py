"""The ``census`` family: Census-scale raw counts with categorical metadata, streamed from a SOMA store.

Seed 002's data: CZ CELLxGENE Census cells with their metadata fields (cell type, disease, sex, tissue, assay, …).
Its package owns the source configs (``_config``: a ``cellxgene_census`` query, the seed's npz chunk export,
``.h5ad``, a synthetic generator with planted context effects), the readers and their checks (``_chunks``,
``_readers``, ``_io``), the store (``_soma``: a SOMA experiment with Census's conventions), the metadata
vocabularies (``_vocab``), the streaming loader (``_stream``), preprocessing with held-out context combinations
(``_preprocess``), what a fit sees (``_data``), the counterfactual evaluation (``_evaluate``) and the interface the
stages call (``_family``). The public names below are imported on first use.
"""

from __future__ import annotations

from xmodal._targets import lazy_exports

_EXPORTS = {
    "_config": ("CensusDatasetConfig", "CensusPreprocessConfig", "CensusQuerySource", "ChunkExportSource",
                "H5adCensusSource", "SyntheticCensusSource"),
    "_synthetic": ("CensusSim", "synthetic_census"),
    "_vocab": ("CENSUS_FIELDS", "FieldSpec", "Vocabulary", "build_vocabulary", "normalize_value"),
    "_chunks": ("scan_chunks", "scan_metadata"),
    "_soma": ("SomaChunks", "census_chunks", "census_source", "store_obs", "store_var", "write_store"),
    "_stream": ("MemoryChunks", "StreamPlan", "stream_loader"),
    "_readers": ("H5adChunks", "NpzChunks"),
    "_io": ("ingest_census", "open_source", "read_ingested"),
    "_preprocess": ("CensusPreprocessor", "assign_splits", "preprocess_census"),
    "_data": ("CensusData", "read_processed"),
    "_evaluate": ("CensusHoldout", "read_holdout", "score_holdout"),
    "_family": ("CensusFamily",),
}
__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
