"""A toy data family and a toy method, defined outside ``src/``: what adding a family and a method takes.

The family ``toy``: one modality ``x`` of labelled Gaussian blobs (class means on a simplex, optional planted
shift). The method ``centroid``: a nearest-class-centroid classifier. Neither is known to ``xmodal`` until a
test puts one entry into ``xmodal.families.FAMILIES`` and one into ``xmodal.methods.METHODS``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
from pydantic import Field

from xmodal._io import read_json, write_json
from xmodal.config import StrictModel
from xmodal.data import DATA_FILE, SCHEMA_FILE, read_h5mu, split_cells, write_h5mu
from xmodal.errors import XmodalInputError
from xmodal.families._base import HEADLINE, PLOTS, SPLITS, Evaluation, Family, Projection
from xmodal.methods._base import read_model_meta, write_model_meta
from xmodal.metrics import classification_metrics

LABEL, SPLIT = "label", "split"


# ------------------------------------------------------------------------------------------------ params
class ToySource(StrictModel):
    kind: Literal["blobs"] = "blobs"
    n_cells: int = Field(300, ge=10)
    n_features: int = Field(20, ge=2)
    n_classes: int = Field(3, ge=2)
    spread: float = Field(0.5, gt=0)
    shift: float = Field(0.0, description="added to every feature: a planted batch effect")
    seed: int = 0


class ToyDatasetConfig(StrictModel):
    family: Literal["toy"]
    source: ToySource = Field(default_factory=ToySource)
    description: str = ""


class ToyPreprocessConfig(StrictModel):
    scale: bool = True


# ------------------------------------------------------------------------------------------------ family
def _read(folder: Path) -> ad.AnnData:
    mdata, path = read_h5mu(folder)
    if mdata.uns.get("xmodal", {}).get("family") != "toy":
        raise XmodalInputError("not a toy family file", path=path)
    return mdata.mod["x"].copy()


def _write(adata: ad.AnnData, folder: Path) -> None:
    write_h5mu({"x": adata}, {"xmodal": {"family": "toy"}}, folder)
    write_json(Path(folder) / SCHEMA_FILE, {"family": "toy", "n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars)})


class Scaler:
    """The toy preprocessor: z-score fitted on training cells."""

    def __init__(self, features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> None:
        self.features, self.mean, self.scale = features, mean, scale

    def transform(self, adata: ad.AnnData) -> np.ndarray:
        missing = [f for f in self.features if f not in set(adata.var_names)]
        if missing:
            raise XmodalInputError(f"missing feature {missing[0]!r}")
        return ((np.asarray(adata[:, list(self.features)].X, dtype=np.float64) - self.mean) / self.scale)

    def transform_frame(self, frame: pd.DataFrame, *, domain: str | None = None) -> np.ndarray:
        return self.transform(ad.AnnData(X=frame.to_numpy(dtype=np.float64),
                                         var=pd.DataFrame(index=frame.columns.astype(str))))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"family": "toy", "features": list(self.features)}))
        np.save(folder / "mean.npy", self.mean)
        np.save(folder / "scale.npy", self.scale)

    @classmethod
    def load(cls, folder: Path) -> Scaler:
        meta = read_json(Path(folder) / "meta.json")
        return cls(np.asarray(meta["features"]), np.load(Path(folder) / "mean.npy"),
                   np.load(Path(folder) / "scale.npy"))


class _PCA(Projection):
    def __init__(self, features: np.ndarray, mean: np.ndarray, components: np.ndarray) -> None:
        self.features, self.mean, self.components = features, mean, components

    @property
    def columns(self) -> list[str]:
        return [f"pc_{i + 1}" for i in range(len(self.components))]

    def missing(self, cells: ad.AnnData) -> list[str]:
        return [f for f in self.features if f not in set(cells.var_names)]

    def transform(self, cells: ad.AnnData) -> np.ndarray:
        return (np.asarray(cells[:, list(self.features)].X, dtype=np.float64) - self.mean) @ self.components.T


class ToyFamily(Family):
    name = "toy"

    def ingest(self, cfg: Any, *, out: Path, source_root: Path, seed: int) -> str:
        src = cfg.source
        rng = np.random.default_rng(src.seed)
        means = np.eye(src.n_classes, src.n_features) * 3.0
        labels = rng.integers(0, src.n_classes, src.n_cells)
        x = means[labels] + rng.normal(scale=src.spread, size=(src.n_cells, src.n_features)) + src.shift
        adata = ad.AnnData(X=x.astype(np.float32), obs=pd.DataFrame(
            {LABEL: pd.Categorical([f"class_{k}" for k in labels])}, index=[f"cell_{i}" for i in range(src.n_cells)]),
            var=pd.DataFrame(index=[f"f{j}" for j in range(src.n_features)]))
        _write(adata, out)
        return f"x {adata.shape}"

    def preprocess(self, ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                   ) -> dict[str, dict[str, int]]:
        adata = _read(ingested)
        strata = [adata.obs[LABEL].astype(str).to_numpy()] if split.stratify else []
        adata.obs[SPLIT] = split_cells(adata.n_obs, strata=strata, validation=split.validation_fraction,
                                       test=split.test_fraction, rng=np.random.default_rng(split.seed))
        train = np.asarray(adata[adata.obs[SPLIT] == "train"].X, dtype=np.float64)
        scale = train.std(axis=0) if cfg.scale else np.ones(train.shape[1])
        prep = Scaler(np.asarray(adata.var_names), train.mean(axis=0), np.where(scale > 0, scale, 1.0))
        _write(ad.AnnData(X=prep.transform(adata), obs=adata.obs.copy(), var=adata.var.copy()), out)
        prep.save(Path(out) / "preprocessor_x")
        counts = adata.obs[SPLIT].value_counts()
        return {s: {"x": int(counts.get(s, 0))} for s in SPLITS}

    def load_preprocessor(self, directory: Path) -> Scaler:
        return Scaler.load(directory)

    def training_data(self, processed: Path) -> ad.AnnData:
        adata = _read(processed)
        return adata[adata.obs[SPLIT] == "train"].copy()

    def evaluate(self, model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> Evaluation:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from xmodal.methods import load_model

        model, adata = load_model(model_dir), _read(processed)
        metrics = {}
        for split in SPLITS:
            cells = adata[adata.obs[SPLIT] == split]
            metrics[split] = classification_metrics(cells.obs[LABEL].astype(str).to_numpy(),
                                                    model.predict(np.asarray(cells.X)), classes=model.classes)
        write_json(Path(out) / "metrics.json", metrics)
        (Path(out) / PLOTS).mkdir()
        fig, ax = plt.subplots()
        ax.bar(list(SPLITS), [metrics[s]["accuracy"] for s in SPLITS])
        ax.set_title(title)
        fig.savefig(Path(out) / PLOTS / "accuracy.png")
        plt.close(fig)
        return Evaluation(metrics=metrics, summary={"accuracy": metrics[HEADLINE]["accuracy"]})

    def holdout(self, ingested: Path, processed: Path) -> ad.AnnData:
        raw, done = _read(ingested), _read(processed)
        names = done.obs_names[done.obs[SPLIT] == HEADLINE]
        cells = raw[names].copy()
        cells.obs[SPLIT] = HEADLINE
        return cells

    def score(self, model: Any, preprocessors: dict[str, Any], cells: Any, *, cfg: Any) -> dict[str, float]:
        return classification_metrics(cells.obs[LABEL].astype(str).to_numpy(),
                                      model.predict(preprocessors["x"].transform(cells)), classes=model.classes)

    def monitor_reference(self, ingested: Path, processed: Path, *, min_cells: int) -> dict[str, ad.AnnData]:
        raw, done = _read(ingested), _read(processed)
        return {"x": raw[done.obs_names[done.obs[SPLIT] == "train"]].copy()}

    def monitor_new(self, path: Path, *, names: list[str], min_cells: int) -> dict[str, ad.AnnData]:
        return {"x": _read(path)}

    def projection(self, cells: ad.AnnData, *, n_components: int, cfg: Any, seed: int) -> Projection:
        x = np.asarray(cells.X, dtype=np.float64)
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return _PCA(np.asarray(cells.var_names), mean, vt[: min(n_components, len(vt))])


# ------------------------------------------------------------------------------------------------ method
class CentroidConfig(StrictModel):
    shrink: float = Field(0.0, ge=0, le=1, description="pull every centroid towards the grand mean")


class Centroid:
    """Nearest class centroid on the processed features."""

    method = "centroid"

    def __init__(self, config: CentroidConfig | None = None) -> None:
        self.config = config or CentroidConfig()
        self.classes: np.ndarray = np.array([])
        self.centroids: np.ndarray = np.zeros((0, 0))
        self.info: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []

    def fit(self, train: ad.AnnData, *, seed: int = 0) -> Centroid:
        x, y = np.asarray(train.X, dtype=np.float64), train.obs[LABEL].astype(str).to_numpy()
        self.classes = np.unique(y)
        grand = x.mean(axis=0)
        self.centroids = np.stack([(1 - self.config.shrink) * x[y == c].mean(axis=0) + self.config.shrink * grand
                                   for c in self.classes])
        self.info = {"n_train": int(len(x)), "classes": self.classes.tolist()}
        self.history = [{"step": 0, "loss_within": float(((x - self.centroids[np.searchsorted(self.classes, y)]) ** 2)
                                                          .sum(axis=1).mean())}]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        d = ((np.asarray(x)[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        return self.classes[d.argmin(axis=1)]

    def transform(self, x: np.ndarray, *, modality: str = "x") -> np.ndarray:
        return -((np.asarray(x, dtype=np.float64)[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "centroids.npy", self.centroids)
        write_model_meta(folder, method=self.method, config=self.config, info=self.info, history=self.history,
                         classes=self.classes.tolist())

    @classmethod
    def load(cls, folder: Path) -> Centroid:
        meta = read_model_meta(folder, method=cls.method)
        model = cls(CentroidConfig(**meta["config"]))
        model.centroids = np.load(Path(folder) / "centroids.npy", allow_pickle=False)
        model.classes = np.asarray(meta["classes"])
        model.info = meta["info"]
        return model


__all__ = ["DATA_FILE", "Centroid", "CentroidConfig", "ToyDatasetConfig", "ToyFamily", "ToyPreprocessConfig"]
