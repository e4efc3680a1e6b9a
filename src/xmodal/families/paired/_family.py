"""The ``paired`` family behind the stages' interface (:class:`~xmodal.families._base.Family`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from xmodal._io import write_json
from xmodal.data import DATA_FILE, split_names
from xmodal.errors import XmodalInputError, reading
from xmodal.families._base import HEADLINE, PLOTS, SPLITS, Evaluation, Family, Projection
from xmodal.families.paired._data import SPLIT, PairedData, read_paired, write_paired


class PairedFamily(Family):
    """Two modalities (``a``, ``b``) of the same or comparable cells; alignment models embed both in one space."""

    name = "paired"

    def ingest(self, cfg: Any, *, out: Path, source_root: Path, seed: int) -> str:
        """Read ``cfg.source`` (synthetic, bundled, CSV or AnnData), validate it, write it into ``out``."""
        from xmodal.families.paired._readers import load_source

        data = load_source(cfg.source, root=source_root)
        write_paired(data, out)
        return f"A {data.a.shape}, B {data.b.shape}"

    def preprocess(self, ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                   ) -> dict[str, dict[str, int]]:
        """Split (pairs kept together, stratified by label), fit per-modality preprocessors on training cells."""
        from xmodal.families.paired._preprocess import (
            assign_split,
            check_classes,
            check_splits,
            preprocess_paired,
            save_preprocessor,
        )

        data = read_paired(ingested)
        with reading(Path(ingested) / DATA_FILE):
            check_classes(data, min_cells=split.min_cells_per_class)
            data = assign_split(data, split=split)
            check_splits(data, min_cells=split.min_cells_per_split)
            processed, fitted = preprocess_paired(data, cfg=cfg)
        write_paired(processed, out)
        for key, prep in fitted.items():
            save_preprocessor(prep, Path(out) / f"preprocessor_{key}")
        counts = {k: processed.modality(k).obs[SPLIT].astype(str).value_counts() for k in ("a", "b")}
        return {s: {k: int(v.get(s, 0)) for k, v in counts.items()} for s in SPLITS}

    def load_preprocessor(self, directory: Path) -> Any:
        """A :class:`~xmodal.families.paired._preprocess.ModalityPreprocessor`."""
        from xmodal.families.paired._preprocess import load_preprocessor

        return load_preprocessor(directory)

    def training_data(self, processed: Path) -> PairedData:
        """The training cells of both modalities (validation and test cells are not passed to ``fit``)."""
        return read_paired(processed).split("train")

    def check_fitted(self, model: Any, train: Any) -> str | None:
        """Non-finite embeddings of (up to 2000) training cells per modality."""
        if not hasattr(model, "transform"):
            return None
        for key in ("a", "b"):
            cells = np.asarray(train.modality(key).X)[:2000]
            z = np.asarray(model.transform(cells, modality=key))
            if not np.isfinite(z).all():
                return (f"{int((~np.isfinite(z)).sum()):,} values of the embedding of modality {key}'s training cells "
                        "are NaN or infinite")
        return None

    def evaluate(self, model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> Evaluation:
        """Alignment metrics (FOSCTTM, matching, label transfer) per split; embedding and training-curve plots."""
        from xmodal.families.paired._evaluate import (
            evaluate_alignment,
            plot_embedding,
            plot_history,
        )
        from xmodal.methods import load_model

        data = read_paired(processed)
        model = load_model(model_dir)
        with reading(model_dir):
            metrics = {split: evaluate_alignment(model, data.split(split), cfg=cfg) for split in SPLITS}
        write_json(Path(out) / "metrics.json", metrics)
        plots = Path(out) / PLOTS
        plots.mkdir()
        plot_embedding(model, data.split(HEADLINE), plots / "embedding.png", title=f"{title} (test cells)", cfg=cfg)
        plot_history(getattr(model, "history", []), plots / "training_curve.png")
        shown = {k: round(v, 3) for k, v in metrics[HEADLINE].items() if k in ("foscttm", "label_transfer_accuracy")}
        return Evaluation(metrics=metrics, summary=shown)

    def confusion(self, model_dir: Path, processed: Path, *, cfg: Any) -> tuple[list[str], list[list[int]]]:
        """Label-transfer confusion (B → A, ``cfg.k`` neighbours) on the test cells; empty without labels."""
        from xmodal.families.paired._data import LABEL
        from xmodal.methods import load_model
        from xmodal.metrics import label_transfer_confusion

        data = read_paired(processed).split(HEADLINE)
        if not data.has_labels:
            return [], []
        model = load_model(model_dir)
        z_a = model.transform(np.asarray(data.a.X), modality="a")
        z_b = model.transform(np.asarray(data.b.X), modality="b")
        return label_transfer_confusion(z_b, data.b.obs[LABEL].astype(str), z_a, data.a.obs[LABEL].astype(str),
                                        k=cfg.k)

    def holdout(self, ingested: Path, processed: Path) -> PairedData:
        """The test cells in their ingested features, with the processed ``obs`` (labels, pairing, split).

        Each model is scored on these cells after its own preprocessor, so models fitted on different
        preprocessing are compared on exactly the same cells.
        """
        raw, done = read_paired(ingested), read_paired(processed)
        mods = {}
        for key in ("a", "b"):
            obs, source = done.modality(key).obs, raw.modality(key)
            names = split_names(obs, HEADLINE, ingested_names=source.obs_names, ingested=ingested,
                                processed=processed)
            if len(names) == 0:
                raise XmodalInputError(f"no test cells in modality {key}", path=processed,
                                       fix="set split.test_fraction > 0 and re-run `dvc repro`")
            mods[key] = ad.AnnData(X=source[names].X, obs=obs.loc[names].copy(), var=source.var.copy())
        return replace(done, a=mods["a"], b=mods["b"])

    def score(self, model: Any, preprocessors: dict[str, Any], cells: Any, *, cfg: Any) -> dict[str, float]:
        """Alignment metrics of ``model`` on raw held-out cells, each modality through its preprocessor; with
        labels, the trivial baseline of each label-transfer metric on the query (A) cells
        (:func:`~xmodal.metrics.trivial_scores`: ``trivial/…``, ``classes/…``) for the gates."""
        from xmodal.families.paired._data import LABEL
        from xmodal.families.paired._evaluate import evaluate_alignment
        from xmodal.metrics import trivial_scores

        mods = {}
        for key in ("a", "b"):
            adata = cells.modality(key)
            x = preprocessors[key].transform(adata) if key in preprocessors else adata.X
            mods[key] = ad.AnnData(X=x, obs=adata.obs.copy())
        scored = replace(cells, a=mods["a"], b=mods["b"])
        out = evaluate_alignment(model, scored, cfg=cfg)
        if scored.has_labels:
            out |= trivial_scores(out, scored.a.obs[LABEL].astype(str).to_numpy(), prefix="label_transfer_")
        return out

    def monitor_reference(self, ingested: Path, processed: Path, *, min_cells: int) -> dict[str, ad.AnnData]:
        """Modality name → its training cells in the ingested features."""
        raw, done = read_paired(ingested), read_paired(processed)
        out = {}
        for k, key in enumerate(("a", "b")):
            source = raw.modality(key)
            names = split_names(done.modality(key).obs, "train", ingested_names=source.obs_names,
                                ingested=ingested, processed=processed)
            if len(names) < min_cells:
                raise XmodalInputError(f"modality {raw.names[k]!r} has {len(names)} training cells; drift tests need "
                                       f"at least monitor.min_cells = {min_cells}", path=processed,
                                       fix="use a larger dataset or lower monitor.min_cells")
            out[raw.names[k]] = source[names].copy()
        return out

    def monitor_new(self, path: Path, *, names: list[str], min_cells: int) -> dict[str, ad.AnnData]:
        """Modality name → the new cells of a folder (or ``.h5mu``) written like ``data/ingested/<name>``."""
        new = read_paired(path)
        if set(new.names) != set(names):
            raise XmodalInputError(f"new data has modalities {list(new.names)}, the reference has {list(names)}",
                                   path=path, fix="write the new data with the reference's modality names "
                                   "(`xmodal ingest` of a dataset of the same kind)")
        out = {}
        for name in names:
            adata = new.modality("ab"[new.names.index(name)])
            if adata.n_obs < min_cells:
                raise XmodalInputError(f"modality {name!r} of the new data has {adata.n_obs} cells; drift tests need "
                                       f"at least monitor.min_cells = {min_cells}", path=path,
                                       fix="collect more cells or lower monitor.min_cells")
            out[name] = adata
        return out

    def projection(self, cells: ad.AnnData, *, n_components: int, cfg: Any, seed: int) -> Projection:
        """The family's preprocessing (log1p rule, feature selection, scaling) with ``n_components`` PCs."""
        from xmodal.families.paired._preprocess import fit_preprocessor

        n_pcs = max(2, min(n_components, cells.n_obs - 1))
        return _PreprocessorProjection(fit_preprocessor(cells, cfg=cfg.model_copy(update={"n_pcs": n_pcs,
                                                                                          "seed": seed})))


class _PreprocessorProjection(Projection):
    """A fitted :class:`~xmodal.families.paired._preprocess.ModalityPreprocessor` as the monitor's projection."""

    def __init__(self, prep: Any) -> None:
        self.prep = prep

    @property
    def columns(self) -> list[str]:
        """``pc_1..`` (or the kept features when fewer survived selection than components were asked for)."""
        if self.prep.components is not None:
            return [f"pc_{i + 1}" for i in range(len(self.prep.components))]
        return [str(f) for f in self.prep.features]

    def missing(self, cells: ad.AnnData) -> list[str]:
        """The kept features ``cells`` lack, in the preprocessor's order."""
        have = set(map(str, cells.var_names))
        return [f for f in map(str, self.prep.features) if f not in have]

    def transform(self, cells: ad.AnnData) -> np.ndarray:
        """``(n, n_pcs)`` (or the kept features when fewer than ``n_pcs`` survive selection)."""
        return np.asarray(self.prep.transform(cells), dtype=np.float64)
