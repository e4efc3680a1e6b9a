"""``monitor``: does new data still look like the data the champion was trained on?

The **reference** is the training split of ``data/processed/<dataset>`` (the cells the current model
was fitted on) in its *ingested* features; the **new data** is a folder (or ``.h5mu``) written like
``data/ingested/<name>``, by ``xmodal ingest`` of a dataset of the same family. The dataset's family reads
both and supplies the projection. Per modality:

1. both are capped at ``monitor.max_cells`` cells (seeded subsample);
2. the family's projection (its preprocessing with ``preprocess.<family>`` settings, then PCA with
   ``monitor.n_components``) is fitted on a ``monitor.fit_fraction`` share of the reference cells only;
   the remaining reference cells and the new cells are projected with it. Both samples are therefore
   *out-of-sample* for the PCA: scoring a PCA on the cells it was fitted on inflates the variance of its
   later components, which a two-sample test would report as drift;
3. Evidently (``DataDriftPreset``, one per modality, in one report) tests every component with
   ``monitor.stattest`` at ``monitor.stattest_threshold``.

Decision (:func:`decide_retrain`): retrain when the drifted share of any modality is
``>= monitor.retrain_share``. Outputs go to ``reports/monitor/<dataset>/``: ``drift.html`` (the
Evidently report) and ``drift.json`` (decision, reasons, per-column scores), written atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from xmodal._io import atomic_dir, prepare_output, read_json, write_json
from xmodal.config import MonitorConfig, Params
from xmodal.data import DATA_FILE, SCHEMA_FILE
from xmodal.errors import XmodalInputError, reading
from xmodal.families import family_of
from xmodal.families._base import Projection
from xmodal.stages._paths import ingested_dir, monitor_dir, processed_dir

log = logging.getLogger(__name__)

REPORT_FILE, DECISION_FILE = "drift.html", "drift.json"
_FIX_REFERENCE = "run `dvc repro` (or `xmodal ingest` and `xmodal preprocess`) for this dataset first"


@dataclass(frozen=True)
class RetrainDecision:
    """The outcome of :func:`decide_retrain`."""

    retrain: bool
    reasons: list[str]


def decide_retrain(drifted_share: Mapping[str, float], *, retrain_share: float) -> RetrainDecision:
    """Retrain when the drifted share of any modality reaches ``retrain_share`` (pure: no I/O).

    Parameters
    ----------
    drifted_share
        Modality name → share of its tested columns that drifted, in ``[0, 1]``.
    retrain_share
        The share at or above which a modality calls for retraining.

    Returns
    -------
    RetrainDecision
        ``retrain`` and one reason per modality.

    Examples
    --------
    >>> decide_retrain({"rna": 0.05, "atac": 0.4}, retrain_share=0.3).retrain
    True
    """
    reasons = []
    for name, share in drifted_share.items():
        hit = share >= retrain_share
        reasons.append(f"{name}: drifted share {share:.3f} {'>=' if hit else '<'} retrain_share {retrain_share:g}")
    return RetrainDecision(any(s >= retrain_share for s in drifted_share.values()), reasons)


@dataclass(frozen=True)
class ModalityDrift:
    """Drift of one modality.

    Attributes
    ----------
    name
        Modality name (e.g. ``"expression"``).
    scores
        Column → the test's score (a p-value or a distance, see ``stattest``), ``n_columns`` entries.
    drifted
        The columns Evidently flags as drifted.
    n_reference, n_new
        Cells in the tested reference sample and in the (subsampled) new data.
    n_reference_fit
        Reference cells the projection was fitted on (not tested).
    """

    name: str
    scores: dict[str, float]
    drifted: list[str]
    n_reference: int
    n_new: int
    n_reference_fit: int

    @property
    def n_columns(self) -> int:
        """Number of tested columns (components)."""
        return len(self.scores)

    @property
    def drifted_share(self) -> float:
        """``len(drifted) / n_columns``."""
        return len(self.drifted) / max(self.n_columns, 1)


@dataclass(frozen=True)
class MonitorResult:
    """Where the report went, the decision and the per-modality drift."""

    output: Path
    retrain: bool
    reasons: list[str]
    modalities: dict[str, ModalityDrift]
    summary: dict[str, Any]


def subsample(n: int, *, max_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_cells`` of ``n`` cells, drawn without replacement (all when ``n <= max_cells``)."""
    if n <= max_cells:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_cells, replace=False))


def missing_features(projection: Projection, adata: ad.AnnData) -> list[str]:
    """The features ``projection`` needs that ``adata`` lacks, in its order."""
    return projection.missing(adata)


def project(projection: Projection, adata: ad.AnnData) -> pd.DataFrame:
    """Apply a fitted projection; returns ``(n_cells, n_columns)`` named as the projection names them."""
    return pd.DataFrame(np.asarray(projection.transform(adata), dtype=np.float64), columns=projection.columns)


def drift_report(reference: Mapping[str, pd.DataFrame], current: Mapping[str, pd.DataFrame], *,
                 cfg: MonitorConfig) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Run one Evidently report with a ``DataDriftPreset`` per modality.

    Parameters
    ----------
    reference, current
        Modality name → ``(n_cells, n_columns)`` frame; the two mappings have the same names and
        columns per name. Cell counts may differ between modalities (columns are padded with NaN,
        which Evidently drops per column).
    cfg
        ``stattest``, ``stattest_threshold`` and ``retrain_share`` (the preset's ``drift_share``).

    Returns
    -------
    tuple
        The Evidently snapshot (``save_html``) and, per modality, ``{"scores": {column: score},
        "drifted": [column, ...]}`` with the modality's own column names.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def wide(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        return pd.concat([df.add_prefix(f"{name}:").reset_index(drop=True) for name, df in frames.items()], axis=1)

    ref, cur = wide(reference), wide(current)
    columns = {name: [f"{name}:{c}" for c in df.columns] for name, df in reference.items()}
    definition = DataDefinition(numerical_columns=list(ref.columns))
    presets = [DataDriftPreset(columns=cols, num_method=cfg.stattest, num_threshold=cfg.stattest_threshold,
                               drift_share=cfg.retrain_share) for cols in columns.values()]
    snapshot = Report(presets, include_tests=True).run(Dataset.from_pandas(cur, data_definition=definition),
                                                       Dataset.from_pandas(ref, data_definition=definition))
    content = snapshot.dict()
    scores: dict[str, float] = {}
    by_id: dict[str, str] = {}
    for metric in content["metrics"]:
        column = metric.get("config", {}).get("column")
        if metric["metric_name"].startswith("ValueDrift") and column is not None:
            scores[column] = float(metric["value"])
            by_id[metric["id"]] = column
    failed = set()
    for test in content["tests"]:
        column = by_id.get(test.get("metric_config", {}).get("metric_id"))
        status = getattr(test.get("status"), "value", test.get("status"))
        if column is not None and str(status) == "FAIL":
            failed.add(column)
    out = {}
    for name, cols in columns.items():
        absent = [c for c in cols if c not in scores]
        if absent:  # pragma: no cover - guards against a changed Evidently result layout
            raise RuntimeError(f"Evidently returned no drift score for {absent[:3]}")
        out[name] = {"scores": {c.split(":", 1)[1]: scores[c] for c in cols},
                     "drifted": [c.split(":", 1)[1] for c in cols if c in failed]}
    return snapshot, out


def read_reference(params: Params, root: str | Path, *, dataset: str, min_cells: int) -> dict[str, ad.AnnData]:
    """Modality name → the training cells of ``data/processed/<dataset>`` in their ingested features.

    Raises
    ------
    XmodalInputError
        When the ingested or processed data are missing, carry no split, or have fewer than
        ``min_cells`` training cells in a modality (fix: ``dvc repro``).
    """
    pdir, idir = processed_dir(root, dataset), ingested_dir(root, dataset)
    for folder in (idir, pdir):  # every family's stage folder holds its schema.json beside the data
        if not (folder / SCHEMA_FILE).is_file():
            raise XmodalInputError(f"no reference data for dataset {dataset!r}", path=folder / SCHEMA_FILE,
                                   fix=_FIX_REFERENCE)
    return family_of(params, dataset).monitor_reference(idir, pdir, min_cells=min_cells)


def read_new(params: Params, path: str | Path, *, dataset: str, names: list[str],
             min_cells: int) -> dict[str, ad.AnnData]:
    """Modality name → the new cells of ``path``, read by the family of ``dataset``.

    Parameters
    ----------
    path
        A folder written like ``data/ingested/<name>`` (``data.h5mu`` + ``schema.json``) or the ``.h5mu`` itself.
    names
        The reference's modality names.
    min_cells
        Fewest cells accepted per modality.
    """
    return family_of(params, dataset).monitor_new(Path(path), names=names, min_cells=min_cells)


def run(params: Params, *, dataset: str, new: str | Path, root: str | Path = ".") -> MonitorResult:
    """Compare new data with the training cells of ``dataset`` and decide whether to retrain.

    Parameters
    ----------
    params
        ``params.monitor`` (projection, test, threshold, decision share, cell caps) and
        ``preprocess.<family>`` (the family's preprocessing inside the projection).
    dataset
        The dataset the current champion was trained on; ``dvc repro`` must have ingested and
        preprocessed it.
    new
        A folder written like ``data/ingested/<name>`` (``data.h5mu`` + ``schema.json``; ``xmodal ingest`` of a
        dataset of the same family) or the ``.h5mu`` itself, with the reference's modality names and at
        least the features the projection keeps. A relative path is taken from ``root``.
    root
        Project root.

    Returns
    -------
    MonitorResult
        ``reports/monitor/<dataset>/`` (``drift.html``, ``drift.json``), ``retrain``, the reasons and
        per-modality drift.

    Raises
    ------
    XmodalInputError
        Missing reference (fix: ``dvc repro``), unreadable new data, modalities that do not match,
        missing features (named), non-finite values or fewer than ``monitor.min_cells`` cells.
        Nothing is written then.
    """
    cfg = params.monitor
    out = prepare_output(monitor_dir(root, dataset))
    new_path = Path(new) if Path(new).is_absolute() else Path(root) / new
    started = time.perf_counter()
    family = family_of(params, dataset)
    reference = read_reference(params, root, dataset=dataset, min_cells=cfg.min_cells)
    current = read_new(params, new_path, dataset=dataset, names=list(reference), min_cells=cfg.min_cells)
    seconds = {"read": time.perf_counter() - started}

    tick = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    ref_frames, new_frames, sizes = {}, {}, {}
    for name, all_ref in reference.items():
        ref_cells = all_ref
        ref_cells = ref_cells[subsample(ref_cells.n_obs, max_cells=cfg.max_cells, rng=rng)]
        order = rng.permutation(ref_cells.n_obs)
        n_fit = min(max(round(cfg.fit_fraction * ref_cells.n_obs), 3), ref_cells.n_obs - 2)
        prep = family.projection(ref_cells[np.sort(order[:n_fit])], n_components=cfg.n_components,
                                 cfg=params.preprocess_config(family.name), seed=cfg.seed)
        new_cells = current[name]
        absent = missing_features(prep, new_cells)
        if absent:
            shown = ", ".join(map(repr, absent[:10])) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            raise XmodalInputError(f"modality {name!r} of the new data lacks {len(absent)} feature(s) the reference "
                                   f"projection needs: {shown}", path=new_path,
                                   fix="provide new data measured on the reference's features")
        keep = subsample(new_cells.n_obs, max_cells=cfg.max_cells, rng=rng)
        ref_frames[name] = project(prep, ref_cells[np.sort(order[n_fit:])])
        with reading(new_path):  # every new cell is checked (a negative count is refused, with its row)
            new_frames[name] = project(prep, new_cells).iloc[keep].reset_index(drop=True)
        if not np.isfinite(new_frames[name].to_numpy()).all():
            raise XmodalInputError(f"modality {name!r} of the new data has NaN or infinite values", path=new_path,
                                   fix="remove or impute them (run the new data through `xmodal ingest`)")
        sizes[name] = {"n_reference": len(ref_frames[name]), "n_reference_fit": n_fit, "n_new": len(new_frames[name]),
                       "n_reference_total": all_ref.n_obs, "n_new_total": current[name].n_obs}
    seconds["project"] = time.perf_counter() - tick
    log.info("monitor %s: projected %s in %.1f s", dataset,
             {n: f"{s['n_reference']} ref / {s['n_new']} new × {ref_frames[n].shape[1]}" for n, s in sizes.items()},
             seconds["project"])

    tick = time.perf_counter()
    snapshot, tested = drift_report(ref_frames, new_frames, cfg=cfg)
    seconds["evidently"] = time.perf_counter() - tick
    log.info("monitor %s: Evidently tested %d columns in %.1f s", dataset,
             sum(len(t["scores"]) for t in tested.values()), seconds["evidently"])

    modalities = {name: ModalityDrift(name=name, scores=tested[name]["scores"], drifted=tested[name]["drifted"],
                                      n_reference=sizes[name]["n_reference"], n_new=sizes[name]["n_new"],
                                      n_reference_fit=sizes[name]["n_reference_fit"]) for name in reference}
    decision = decide_retrain({n: m.drifted_share for n, m in modalities.items()}, retrain_share=cfg.retrain_share)
    summary = _summary(params, dataset=dataset, new_path=new_path, root=root, decision=decision,
                       modalities=modalities, sizes=sizes, seconds=seconds)

    tick = time.perf_counter()
    with atomic_dir(out) as tmp:
        snapshot.save_html(str(tmp / REPORT_FILE))
        write_json(tmp / DECISION_FILE, summary)
    log.info("monitor %s: wrote %s in %.1f s (total %.1f s); retrain: %s", dataset, out, time.perf_counter() - tick,
             time.perf_counter() - started, "yes" if decision.retrain else "no")
    return MonitorResult(output=out, retrain=decision.retrain, reasons=decision.reasons, modalities=modalities,
                         summary=summary)


def _summary(params: Params, *, dataset: str, new_path: Path, root: str | Path, decision: RetrainDecision,
             modalities: dict[str, ModalityDrift], sizes: dict[str, dict[str, int]],
             seconds: dict[str, float]) -> dict[str, Any]:
    from evidently import __version__ as evidently_version
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    cfg = params.monitor
    test = get_registered_stattest(cfg.stattest, ColumnType.Numerical)
    return {
        "dataset": dataset,
        "reference": f"train split of {processed_dir(root, dataset)} in the features of {ingested_dir(root, dataset)}",
        "new": str(new_path),
        "retrain": decision.retrain,
        "reasons": decision.reasons,
        "stattest": {"name": cfg.stattest, "display_name": test.display_name,
                     "threshold": cfg.stattest_threshold if cfg.stattest_threshold is not None
                     else test.default_threshold},
        "retrain_share": cfg.retrain_share,
        "settings": cfg.model_dump(mode="json"),
        "modalities": {
            name: {**sizes[name], "n_columns": m.n_columns, "n_drifted": len(m.drifted), "drifted_share": m.drifted_share,
                   "drifted_columns": m.drifted, "scores": m.scores}
            for name, m in modalities.items()
        },
        "lineage": {"reference_ingested_sha256": _hashes(ingested_dir(root, dataset)),
                    "reference_processed_sha256": _hashes(processed_dir(root, dataset)),
                    "new_sha256": _hashes(new_path if new_path.is_dir() else new_path.parent)
                    if new_path.is_dir() or new_path.name == DATA_FILE else None},
        "evidently_version": evidently_version,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def _hashes(folder: Path) -> dict[str, str] | None:
    """Modality name → content SHA-256 from a ``schema.json`` beside the data, when there is one."""
    schema_file = folder / SCHEMA_FILE
    if not schema_file.is_file():
        return None
    mods = read_json(schema_file).get("modalities", {})
    return {str(m.get("name", key)): str(m.get("sha256", "")) for key, m in mods.items()}


__all__ = ["ModalityDrift", "MonitorResult", "RetrainDecision", "decide_retrain", "drift_report", "missing_features", "project", "read_new", "read_reference", "run", "subsample"]
