"""The ``multiome`` family: RNA + ATAC of the same cells (10x Multiome) in one or more domains, with phases.

Seed 001's data: cell lines as domains, cell-cycle phases from RNA transferred to ATAC. Its package owns the
source configs (``_config``), the container and the synthetic generator (``_data``), the readers (10x ``.h5``,
CSV, ``.h5mu``) with peak mapping across domains (``_io``, ``_prep``), preprocessing (``_preprocess``),
evaluation (``_evaluate``) and the interface the stages call (``_family``). The public names below are
imported on first use.
"""

from __future__ import annotations

from xmodal._targets import lazy_exports

_EXPORTS = {
    "_config": ("MultiomeDatasetConfig", "MultiomeDomainFiles", "MultiomeFilesSource", "MultiomePreprocessConfig",
                "MultiomeSource", "SyntheticMultiomeSource"),
    "_data": ("DOMAIN", "G2M_GENES", "PHASE", "PHASES", "S_GENES", "MultiomeData", "synthetic_multiome"),
    "_io": ("check_phases", "concat_domains", "content_hash", "load_multiome", "read_10x_multiome",
            "read_multiome", "read_multiome_csv", "read_phase_labels", "validate_multiome", "write_multiome"),
    "_prep": ("MEASURED", "PeakMapper", "frequent_peaks", "looks_normalized", "map_peaks", "mapper_views",
              "normalize_cpm_log1p_l2", "parse_peaks", "score_phases"),
    "_preprocess": ("MultiomePreprocessor", "fit_peak_mappers", "fit_preprocessors", "preprocess_multiome",
                    "split_per_domain", "without_test"),
    "_evaluate": ("ablation_metrics", "evaluate_all", "evaluate_phases", "label_confusion", "predict_all"),
    "_family": ("MultiomeFamily",),
}
__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
