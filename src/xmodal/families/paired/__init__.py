"""The ``paired`` family: two modalities of the same (or comparable) cells, pairing known or not.

Morphology + expression (seed 000), two gene panels of one experiment (``pbmc68k_reduced``), the seed's CSV
set or AnnData files. Its package owns the source configs (``_config``), the container (``_data``), the
readers with validation (``_readers``), the synthetic generators and the bundled data (``_synthetic``,
``_multiomic``, ``_bundled``), preprocessing (``_preprocess``), evaluation (``_evaluate``) and the interface the stages call
(``_family``). The public names below are imported on first use.
"""

from __future__ import annotations

from xmodal._targets import lazy_exports

_EXPORTS = {
    "_config": ("AnnDataSource", "CsvPairedSource", "Kind", "MultiomicSimSource", "PairedDatasetConfig", "PairedPreprocessConfig",
                "PairedSource", "Pbmc68kSource", "SyntheticPairedSource"),
    "_data": ("CLUSTER", "LABEL", "MATCH", "SPLIT", "PairedData", "content_hash", "read_paired", "write_paired"),
    "_readers": ("CLUSTER_ID", "assign_kinds", "load_source", "read_paired_anndata", "read_paired_csv",
                 "validate_paired"),
    "_synthetic": ("synthetic_paired",),
    "_multiomic": ("simulated_multiome",),
    "_bundled": ("pbmc68k_paired",),
    "_preprocess": ("ModalityPreprocessor", "assign_split", "check_classes", "check_splits", "fit_preprocessor",
                    "load_preprocessor", "preprocess_paired", "save_preprocessor"),
    "_evaluate": ("evaluate_alignment", "plot_embedding", "plot_history"),
    "_family": ("PairedFamily",),
}
__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
