"""Evaluation of the ``paired`` family: alignment metrics of a shared embedding, its plot and the training curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmodal.config import EvaluateConfig
from xmodal.errors import XmodalInputError
from xmodal.families.paired._data import LABEL, PairedData
from xmodal.geometry import pca_2d
from xmodal.metrics import foscttm, knn_label_transfer, matching_accuracy, neighborhood_matching


def evaluate_alignment(model: Any, data: PairedData, *, cfg: EvaluateConfig) -> dict[str, float]:
    """Embed both modalities and score the alignment.

    Parameters
    ----------
    model
        A fitted paired-family model with ``transform(x, modality=...)``.
    data
        Cells to score (typically the validation split).
    cfg
        ``k`` for label transfer and ``top_k`` for matching.

    Returns
    -------
    dict
        ``foscttm``, ``matching_top{k}`` and seed 000's ``neighborhood_matching_k{k}`` over known
        pairs (when pairing is known);
        ``label_transfer_*`` from B (reference) to A (query) with k neighbours (when labelled);
        ``n_a``, ``n_b``, ``n_pairs``.
    """
    z_a = model.transform(np.asarray(data.a.X), modality="a")
    z_b = model.transform(np.asarray(data.b.X), modality="b")
    for key, z in (("a", z_a), ("b", z_b)):
        if not np.isfinite(z).all():
            raise XmodalInputError(f"the model embeds {int((~np.isfinite(z)).any(axis=1).sum())} of {len(z)} cells of "
                                   f"modality {key} at NaN or infinite coordinates",
                                   fix="train the model again (`xmodal train`); a fit that diverged is not saved")
    ia, ib = data.true_pairs()
    out: dict[str, float] = {"n_a": data.a.n_obs, "n_b": data.b.n_obs, "n_pairs": len(ia)}
    if len(ia) >= 2:
        out["foscttm"] = foscttm(z_a[ia], z_b[ib])
        out.update(matching_accuracy(z_a[ia], z_b[ib], ks=cfg.top_k))
        out.update(neighborhood_matching(z_a[ia], z_b[ib], ks=cfg.neighborhood_k))
    if data.has_labels:
        out.update(knn_label_transfer(z_b, data.b.obs[LABEL].astype(str), z_a, data.a.obs[LABEL].astype(str), k=cfg.k))
    return out


def plot_embedding(model: Any, data: PairedData, path: Path, *, title: str, cfg: EvaluateConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = np.vstack([model.transform(np.asarray(data.a.X), modality="a"),
                   model.transform(np.asarray(data.b.X), modality="b")])
    rng = np.random.default_rng(cfg.seed)
    idx = rng.permutation(len(z))[: cfg.max_plot_cells]
    if cfg.embedding_plot == "umap" and len(idx) >= 30 and z.shape[1] >= 2:  # UMAP needs neighbours and room
        import umap

        xy = umap.UMAP(random_state=cfg.seed, n_jobs=1).fit_transform(z[idx])
    else:
        xy = pca_2d(z[idx])
    modality = np.array([data.names[0]] * data.a.n_obs + [data.names[1]] * data.b.n_obs)[idx]
    labels = (np.concatenate([data.a.obs[LABEL].astype(str), data.b.obs[LABEL].astype(str)])[idx]
              if data.has_labels else modality)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, colour_by, name in ((axes[0], modality, "modality"), (axes[1], labels, "label")):
        for value in np.unique(colour_by):
            sel = colour_by == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, label=str(value))
        ax.set_title(f"{title} — by {name}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if history:
        steps = [h["step"] for h in history]
        every = list(dict.fromkeys(k for h in history for k in h))
        losses = [k for k in every if k.startswith("loss_")]  # multi-term models: every raw term
        keys = losses or [k for k in every if k not in ("step", "epsilon")][:1]
        for key in keys:
            ax.plot(steps, [abs(h.get(key, float("nan"))) for h in history], label=key, lw=1)
        if losses:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(keys[0] if len(keys) == 1 else "|loss|")
        ax.legend(fontsize=7)
    ax.set_title("training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["evaluate_alignment", "plot_embedding", "plot_history"]
