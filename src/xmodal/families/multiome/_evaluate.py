"""Evaluation of the ``multiome`` family: phase classification on held-out cells of both domains.

The headline is the **test** split (never seen by training, early stopping or search): ATAC and RNA
cells of the source and the target domain. ``metrics.json`` holds ``test`` (the headline),
``validation`` (what early stopping saw, for reference) and ``train``. When the model folder carries
a source-only ablation (``ablation/``), its target-domain ATAC test metrics come too, with the gain
of adaptation (``adaptation_gain_macro_f1``, ``adaptation_gain_accuracy``).

Written to ``reports/<dataset>/<method>/``: ``metrics.json``, ``predictions.csv`` (every cell: split,
domain, phase, the predicted phase and the class probabilities from ATAC and from RNA),
``predictions.h5mu`` (the processed data with the same columns in ``obs``), and in ``plots/``:
``confusion_matrix.png``, ``embedding.png`` (the shared space) and ``training_curve.png``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xmodal._io import write_json
from xmodal.errors import reading
from xmodal.families._base import PLOTS
from xmodal.families.multiome._data import DOMAIN, PHASE, PHASES, MultiomeData
from xmodal.families.multiome._io import read_multiome
from xmodal.geometry import pca_2d
from xmodal.methods import load_model
from xmodal.metrics import classification_metrics, confusion_matrix, trivial_scores
from xmodal.stages._paths import ABLATION

SPLIT = "split"

def _domain_roles(model: Any) -> list[tuple[str, str]]:
    """``(role, domain)``: ``target`` first; ``source`` too when it is another domain."""
    source, target = model.info["source_domain"], model.info["target_domain"]
    return [("target", target)] + ([("source", source)] if source != target else [])


def evaluate_phases(model: Any, data: MultiomeData, *, split: str, trivial: bool = False) -> dict[str, float]:
    """Classification metrics of every (domain role, modality) on the cells of ``split``.

    Parameters
    ----------
    model
        A fitted model with ``predict(x, modality=...)`` and ``info["source_domain"/"target_domain"]``.
    data
        Processed Multiome data with ``split``, ``domain`` and ``phase`` in ``obs``.
    split
        ``test``, ``validation`` or ``train``.
    trivial
        Add each metric's trivial baseline on the same cells (:func:`~xmodal.metrics.trivial_scores`:
        ``trivial/<metric>``, ``classes/<metric>``), which ``register``'s gates read.

    Returns
    -------
    dict
        ``<role>_<modality>_<metric>`` (e.g. ``target_atac_macro_f1``, ``source_rna_accuracy``), with
        accuracy, balanced accuracy, macro-F1, Cohen's κ, per-class F1 and ``n``.
    """
    out: dict[str, float] = {}
    obs = data.rna.obs
    for role, domain in _domain_roles(model):
        mask = (obs[SPLIT].astype(str) == split).to_numpy() & (obs[DOMAIN].astype(str) == domain).to_numpy()
        truth = obs[PHASE].astype(str).to_numpy()[mask]
        for modality in ("atac", "rna"):
            cells = getattr(data, modality)[mask]  # an AnnData: a foundation-model encoder reads its raw counts
            scores = classification_metrics(truth, model.predict(cells, modality=modality), classes=PHASES,
                                            prefix=f"{role}_{modality}_")
            out |= scores
            if trivial:
                out |= trivial_scores(scores, truth, classes=PHASES, prefix=f"{role}_{modality}_")
    return out


def evaluate_all(model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> dict[str, dict[str, float]]:
    """Score the model in ``model_dir`` on every split of ``processed``; write the files of the module docstring
    into ``out``.

    Returns
    -------
    dict
        ``{"test": {...}, "validation": {...}, "train": {...}}`` (:func:`evaluate_phases` per split; the
        ablation's test metrics and the gains of adaptation join ``test``).
    """
    data = read_multiome(processed)
    model = load_model(model_dir)
    with reading(model_dir):
        metrics = {split: evaluate_phases(model, data, split=split) for split in ("test", "validation", "train")}
        if (Path(model_dir) / ABLATION).is_dir():
            ablation = load_model(Path(model_dir) / ABLATION)
            metrics["test"] |= ablation_metrics(metrics["test"], evaluate_phases(ablation, data, split="test"))
        predictions = predict_all(model, data)
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    predictions.to_csv(out / "predictions.csv", index_label="cell")
    _write_annotated(data, predictions, out / "predictions.h5mu")
    plots = out / PLOTS
    plots.mkdir()
    _plot_confusions(data, predictions, model, plots / "confusion_matrix.png", title=title)
    _plot_shared_space(model, data, plots / "embedding.png", title=title, seed=cfg.seed, max_cells=cfg.max_plot_cells)
    model.plot_history(plots / "training_curve.png")
    return metrics


def ablation_metrics(adapted: dict[str, float], ablation: dict[str, float]) -> dict[str, float]:
    """The ablation's target-domain ATAC metrics (``ablation_target_atac_*``) and the gains of adaptation."""
    out = {f"ablation_{k}": v for k, v in ablation.items() if k.startswith("target_atac_")}
    for metric in ("macro_f1", "accuracy", "balanced_accuracy"):
        key = f"target_atac_{metric}"
        if key in adapted and key in ablation:
            out[f"adaptation_gain_{metric}"] = adapted[key] - ablation[key]
    return out


def predict_all(model: Any, data: MultiomeData) -> pd.DataFrame:
    """Every cell's split, domain, phase and the predictions (phase + class probabilities) from ATAC and RNA."""
    obs = data.rna.obs
    frame = pd.DataFrame({SPLIT: obs[SPLIT].astype(str), DOMAIN: obs[DOMAIN].astype(str),
                          PHASE: obs[PHASE].astype(str)}, index=obs.index)
    for modality in ("atac", "rna"):
        probs = model.predict_proba(getattr(data, modality), modality=modality)
        frame[f"predicted_phase_{modality}"] = np.asarray(PHASES)[probs.argmax(axis=1)]
        for j, phase in enumerate(PHASES):
            frame[f"p_{phase}_{modality}"] = probs[:, j].astype(np.float64).round(6)
    return frame


def _write_annotated(data: MultiomeData, predictions: pd.DataFrame, path: Path) -> None:
    import mudata as md

    mods = {}
    for name in ("rna", "atac"):
        adata = getattr(data, name).copy()
        for column in predictions.columns.drop([SPLIT, DOMAIN, PHASE]):
            adata.obs[column] = predictions[column].to_numpy()
        mods[name] = adata
    md.set_options(pull_on_update=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md.MuData(mods).write(path)


def label_confusion(model_dir: Path, processed: Path) -> tuple[list[str], list[list[int]]]:
    """Confusion matrix of the target domain's ATAC test cells (rows: true phase, columns: predicted)."""
    data = read_multiome(processed)
    model = load_model(model_dir)
    obs = data.rna.obs
    mask = (obs[SPLIT].astype(str) == "test").to_numpy() & (
        obs[DOMAIN].astype(str) == model.info["target_domain"]).to_numpy()
    cm = confusion_matrix(obs[PHASE].astype(str).to_numpy()[mask], model.predict(data.atac.X[mask], modality="atac"),
                          classes=PHASES)
    return list(PHASES), cm.tolist()


def _plot_confusions(data: MultiomeData, predictions: pd.DataFrame, model: Any, path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(role, domain, modality) for role, domain in _domain_roles(model) for modality in ("atac", "rna")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    test = predictions[predictions[SPLIT] == "test"]
    for ax, (role, domain, modality) in zip(axes[0], panels, strict=True):
        cells = test[test[DOMAIN] == domain]
        cm = confusion_matrix(cells[PHASE], cells[f"predicted_phase_{modality}"], classes=PHASES)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(PHASES)):
            for j in range(len(PHASES)):
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(PHASES)), PHASES)
        ax.set_yticks(range(len(PHASES)), PHASES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true (RNA phase)")
        ax.set_title(f"{role} {domain} — {modality.upper()}", fontsize=9)
    fig.suptitle(f"{title}: test cells (counts; colour: share of the true phase)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_shared_space(model: Any, data: MultiomeData, path: Path, *, title: str, seed: int, max_cells: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = (data.rna.obs[SPLIT].astype(str) == "test").to_numpy()
    z = np.vstack([model.transform(data.atac[test], modality="atac"),
                   model.transform(data.rna[test], modality="rna")])
    n = int(test.sum())
    modality = np.array(["ATAC"] * n + ["RNA"] * n)
    domain = np.tile(data.rna.obs[DOMAIN].astype(str).to_numpy()[test], 2)
    phase = np.tile(data.rna.obs[PHASE].astype(str).to_numpy()[test], 2)
    idx = np.random.default_rng(seed).permutation(len(z))[:max_cells]
    xy = pca_2d(z[idx])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, colour, name in ((axes[0], modality, "modality"), (axes[1], domain, "domain"), (axes[2], phase, "phase")):
        for value in np.unique(colour):
            sel = colour[idx] == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, alpha=0.6, label=str(value))
        ax.set_title(f"{title} — shared space of test cells, by {name}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["ablation_metrics", "evaluate_all", "evaluate_phases", "label_confusion", "predict_all"]
