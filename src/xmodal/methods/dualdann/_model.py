"""The ``dualdann`` model: fit on a processed Multiome dataset, predict phases from peaks or RNA, save, load."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from xmodal._safe_load import load_torch
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.families.multiome._data import DOMAIN, PHASE, PHASES, MultiomeData
from xmodal.methods._base import RETRAIN, read_history, read_model_meta, write_model_meta
from xmodal.methods.dualdann._config import DualDANNConfig
from xmodal.methods.dualdann._module import DualDANNModule
from xmodal.methods.dualdann._peaks import Peaks, TrainingData, predict_peaks
from xmodal.methods.dualdann._source import (
    PCAEncoder,
    SourceEncoder,
    build_source_encoder,
    load_source_encoder,
)
from xmodal.nn import PeakEncoder

log = logging.getLogger(__name__)
WEIGHTS, SOURCE = "weights.pt", "source_pca.npz"
SPLIT = "split"


def resolve_domains(domains: list[str], *, source: str | None = None, target: str | None = None) -> tuple[str, str]:
    """The source and target domain names (defaults: the first, and the second or else the first)."""
    source = source or domains[0]
    target = target or next((d for d in domains if d != source), source)
    for role, name in (("source_domain", source), ("target_domain", target)):
        if name not in domains:
            raise ConfigError(f"{role} {name!r} is not a domain of the data (domains: {domains})")
    return source, target


def _cells(data: MultiomeData, *, split: str, domain: str) -> np.ndarray:
    obs = data.rna.obs
    return np.flatnonzero((obs[SPLIT].astype(str) == split).to_numpy() & (obs[DOMAIN].astype(str) == domain).to_numpy())


def _codes(data: MultiomeData, idx: np.ndarray) -> np.ndarray:
    phases = data.rna.obs[PHASE].astype(str).to_numpy()[idx]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise XmodalInputError(f"unknown phases {unknown}", fix=f"phases must be {list(PHASES)}")
    return np.array([PHASES.index(p) for p in phases], dtype=np.int64)


class DualDANN:
    """Cell-cycle phase transfer from RNA to ATAC with a dual-encoder class-conditional DANN (seed 001).

    Source cells enter as fixed RNA embeddings (PCA of the source domain's training cells), target
    cells as peaks through a trainable peak encoder with its own objective. Both are projected into a
    shared space where one phase classifier works and a domain discriminator, behind gradient
    reversal, sees the features and the **detached** class probabilities. The ATAC cells trained on
    are the source domain's (their phases known from the paired RNA) and, with ``adapt``, the target
    domain's (unlabelled unless ``target_labels``). The kept model is the best on the target domain's
    **validation** cells; test cells are never read.

    Parameters
    ----------
    config
        Hyper-parameters (defaults: :class:`DualDANNConfig`, seed 001's training script).

    Examples
    --------
    >>> from xmodal.families.multiome import MultiomePreprocessConfig, preprocess_multiome, synthetic_multiome
    >>> data, _ = preprocess_multiome(synthetic_multiome(n_cells=200, n_background_genes=50, n_background_peaks=100),
    ...                               cfg=MultiomePreprocessConfig())
    >>> cfg = DualDANNConfig(epochs=2, batch_size=32, eval_every=1, shared_dim=32, peak_hidden=16)
    >>> model = DualDANN(cfg).fit(data, seed=0)
    >>> model.predict_proba(data.atac.X, modality="atac").shape
    (400, 3)
    """

    method = "dualdann"
    modalities = ("atac", "rna")

    def __init__(self, config: DualDANNConfig | None = None) -> None:
        self.config = config or DualDANNConfig()
        self.module: DualDANNModule | None = None
        self.source_encoder: SourceEncoder | None = None
        self.history: list[dict[str, float]] = []
        self.info: dict[str, Any] = {}
        self.rank = 0

    # ------------------------------------------------------------------ fit
    def _build(self, source_dim: int, n_peaks: int) -> DualDANNModule:
        cfg = self.config
        encoder = PeakEncoder(cfg.peak_encoder, n_peaks, hidden=cfg.peak_hidden, intermediate=cfg.peak_intermediate,
                              layers=cfg.peak_layers, dropout=cfg.peak_dropout, noise_level=cfg.noise_level,
                              beta=cfg.beta_vae, temperature=cfg.contrastive_temperature,
                              augment=cfg.contrastive_augment)
        return DualDANNModule(source_dim, encoder, embedding_dim=cfg.peak_hidden, n_classes=len(PHASES),
                              shared_dim=cfg.shared_dim, cls_hidden=cfg.cls_hidden, cls_layers=cfg.cls_layers,
                              disc_hidden=cfg.disc_hidden, disc_layers=cfg.disc_layers, dropout=cfg.dropout,
                              conditional=cfg.conditional, spectral_norm=cfg.spectral_norm)

    def fit(self, data: MultiomeData, *, seed: int = 0, source_domain: str | None = None,
            target_domain: str | None = None, callback: Any = None, checkpoint_dir: str | Path | None = None,
            resume: bool = False, live: Any = None) -> DualDANN:
        """Train on the ``train`` cells, select on the target domain's ``validation`` cells.

        Parameters
        ----------
        data
            Processed Multiome data with ``obs["split"]``, ``obs["domain"]`` and ``obs["phase"]``; ``rna.X``
            ``(n, g)`` and ``atac.X`` ``(n, P)``. Cells of the ``test`` split are never read.
        seed
            Seeds initialisation, batch order, dropout and noise.
        source_domain, target_domain
            Domain names (default: the first, and the second or else the first).
        callback
            ``callback(epoch, record)`` after every epoch.
        checkpoint_dir
            Where ``checkpoint.pt`` is written every ``checkpoint_every`` steps.
        resume
            Continue from ``checkpoint_dir/checkpoint.pt`` when it exists.
        live
            A :class:`~xmodal.train.LiveLogger` that rank 0 sends each epoch's record to while training runs.

        Returns
        -------
        DualDANN
            ``self``, holding the best state on target validation.
        """
        from xmodal.methods.dualdann._lightning import (
            DualDANNTraining,
            EpochPlan,
            config_digest,
            epochs_of,
        )
        from xmodal.train import Selection, StepLoader, data_hash, fit, resolve_layout

        cfg = self.config
        start = time.perf_counter()
        training, data_dims = self.training_data(data, source_domain=source_domain, target_domain=target_domain)
        world = resolve_layout(cfg, what="methods.dualdann").world
        plan = EpochPlan(training, batch_size=cfg.batch_size, world=world, seed=seed, input_mode=cfg.input)
        torch.manual_seed(seed)
        net = self._build(*data_dims)
        module = DualDANNTraining(net, cfg, plan=plan, val_x=training.val_x, val_y=training.val_y,
                                  classes=list(PHASES))
        key = f"val_{cfg.selection_metric}"

        def on_record(step: int, record: dict[str, float]) -> None:
            if callback is not None and record:
                callback(int(record["epoch"]), record)

        result = fit(module, StepLoader(plan, total=cfg.epochs * plan.steps_per_epoch), settings=cfg, seed=seed,
                     digest=config_digest(cfg, data_dims, seed, data=data_hash(
                         training.source_x, training.source_y, training.target_x, training.target_y, training.val_x,
                         training.val_y, training.adapted)), checkpoint_dir=checkpoint_dir, resume=resume,
                     selection=Selection(monitor=key, mode="max", patience=cfg.patience), live=live,
                     what=self.method, on_record=on_record)
        self.module, self.history, self.rank = net.cpu().eval(), result.history, result.rank
        summary = {"best_epoch": epochs_of(result.history, result.summary["best_step"]),
                   f"best_{key}": result.summary[f"best_{key}"],
                   "epochs_run": result.summary["steps_run"] // plan.steps_per_epoch,
                   "stopped": result.summary["stopped"].replace("max_steps", "max_epochs"),
                   "steps_per_epoch": plan.steps_per_epoch}
        self.info |= {"fit_seconds": time.perf_counter() - start, "device": result.summary["device"],
                      "world_size": result.world, "precision": cfg.precision, **summary}
        log.info("dualdann: %d epochs in %.1f s; best target-validation %s %.3f at epoch %d (%s)",
                 summary["epochs_run"], self.info["fit_seconds"], cfg.selection_metric,
                 summary[f"best_{key}"], summary["best_epoch"], summary["stopped"])
        return self

    def training_data(self, data: MultiomeData, *, source_domain: str | None = None,
                      target_domain: str | None = None) -> tuple[TrainingData, tuple[int, int]]:
        """Fit the source encoder and gather what training sees: ``(cells, (source_dim, n_peaks))``.

        Sets ``self.source_encoder`` and the data part of ``self.info``; see :meth:`fit` for the arguments.
        """
        cfg = self.config
        if SPLIT not in data.rna.obs:
            raise XmodalInputError("the data have no `split`", fix="run `xmodal preprocess` first")
        source, target = resolve_domains(data.domains, source=source_domain, target=target_domain)
        src = _cells(data, split="train", domain=source)
        val = _cells(data, split="validation", domain=target)
        if len(src) == 0 or len(val) == 0:
            raise XmodalInputError(f"no training cells in {source!r} or no validation cells in {target!r}",
                                   fix="check preprocess.multiome fractions and the domain names")
        rna_src = data.rna[src]
        self.source_encoder = build_source_encoder(cfg, rna_src)
        atac = sp.csr_matrix(data.atac.X)
        pool, labels, adapted = [src], [_codes(data, src)], None
        if cfg.adapt and target != source:
            tgt = _cells(data, split="train", domain=target)
            pool.append(tgt)
            labels.append(_codes(data, tgt) if cfg.target_labels else np.full(len(tgt), -1, dtype=np.int64))
            adapted = np.repeat([False, True], [len(src), len(tgt)])
        pool_idx = np.concatenate(pool)
        training = TrainingData(source_x=self.source_encoder.transform(rna_src), source_y=_codes(data, src),
                                target_x=atac[pool_idx], target_y=np.concatenate(labels),
                                val_x=atac[val], val_y=_codes(data, val), adapted=adapted)
        self.info = {
            "source_domain": source, "target_domain": target, "classes": list(PHASES),
            "n_source_train": int(len(src)), "n_target_train": int(len(pool_idx) - len(src)),
            "n_target_validation": int(len(val)), "adapt": cfg.adapt,
            "features_rna": list(map(str, data.rna.var_names)), "features_atac": list(map(str, data.atac.var_names)),
        }
        return training, (self.source_encoder.dim, data.atac.n_vars)

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> tuple[DualDANNModule, SourceEncoder]:
        if self.module is None or self.source_encoder is None:
            raise RuntimeError("DualDANN is not fitted: call fit() or load() first")
        return self.module, self.source_encoder

    def _check_width(self, x: Any, modality: str) -> None:
        expected = len(self.info.get(f"features_{modality}", [])) or None
        if isinstance(x, ad.AnnData):
            x = x.X
        if expected is not None and x.shape[1] != expected:
            raise XmodalInputError(f"{modality} has {x.shape[1]} features, the model was trained on {expected}",
                                   fix="preprocess new data with the training data's preprocessor")

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray | sp.spmatrix, *, modality: str = "atac") -> np.ndarray:
        """Phase probabilities ``(n, 3)`` (columns: ``G1``, ``S``, ``G2M``) in eval mode, without gradients.

        Parameters
        ----------
        x
            Processed cells of ``modality``: peaks ``(n, P)`` or expression ``(n, g)``, as a matrix or an
            ``AnnData`` (a foundation-model source encoder needs the AnnData, with ``layers["counts"]``).
        modality
            ``"atac"`` (through the peak encoder) or ``"rna"`` (through the source encoder).
        """
        module, encoder = self._check_fitted()
        if modality not in ("atac", "rna"):
            raise ValueError(f"modality must be 'atac' or 'rna', got {modality!r}")
        self._check_width(x, modality)
        if isinstance(x, ad.AnnData) and modality == "atac":
            x = x.X
        if modality == "atac":
            return predict_peaks(module, Peaks(x, mode=self.config.input, device=torch.device("cpu")))
        was = module.training
        module.eval()
        try:
            z = torch.from_numpy(encoder.transform(x))
            return torch.softmax(module.classifier(module.shared_source(z)), dim=1).numpy()
        finally:
            module.train(was)

    def predict(self, x: np.ndarray | sp.spmatrix, *, modality: str = "atac") -> np.ndarray:
        """Phase names ``(n,)`` — the most probable of :meth:`predict_proba`."""
        return np.asarray(PHASES)[self.predict_proba(x, modality=modality).argmax(axis=1)]

    @torch.no_grad()
    def transform(self, x: np.ndarray | sp.spmatrix, *, modality: str = "atac") -> np.ndarray:
        """Shared-space features ``(n, shared_dim)`` of either modality (eval mode)."""
        module, encoder = self._check_fitted()
        self._check_width(x, modality)
        was = module.training
        module.eval()
        try:
            if modality == "rna":
                return module.shared_source(torch.from_numpy(encoder.transform(x))).numpy()
            if isinstance(x, ad.AnnData):
                x = x.X
            peaks = Peaks(x, mode=self.config.input, device=torch.device("cpu"))
            n = peaks.shape[0]
            parts = [module.shared_target(peaks.batch(np.arange(i, min(i + 1024, n)))) for i in range(0, n, 1024)]
            return torch.cat(parts).numpy() if parts else np.zeros((0, self.config.shared_dim), np.float32)
        finally:
            module.train(was)

    def plot_history(self, path: Path) -> None:
        """Loss terms and target-validation metrics per epoch as a PNG (see :func:`plot_training`)."""
        plot_training(self.history, path, metric=f"val_{self.config.selection_metric}")

    # ----------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write ``model.json``, ``history.json``, ``weights.pt``, ``loss_curves.png`` and, for the PCA source
        encoder, ``source_pca.npz`` (a foundation model stays in its folder, named by the config)."""
        module, encoder = self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_model_meta(path, method=self.method, config=self.config, info=self.info, history=self.history,
                         dims=[encoder.dim, len(self.info["features_atac"])])
        torch.save(module.state_dict(), path / WEIGHTS)
        if isinstance(encoder, PCAEncoder):  # a foundation model is not copied: config names its folder
            with open(path / SOURCE, "wb") as fh:
                np.savez(fh, mean=encoder.mean, components=encoder.components)
        self.plot_history(path / "loss_curves.png")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DualDANN:
        """Load a model written by :meth:`save` (CPU, eval mode)."""
        path = Path(path)
        meta = read_model_meta(path, method=cls.method)
        model = cls(DualDANNConfig.model_validate(meta["config"]))
        if model.config.source_encoder == "pca":
            with np.load(path / SOURCE) as arrays:
                model.source_encoder = PCAEncoder(mean=arrays["mean"], components=arrays["components"])
        else:
            model.source_encoder = load_source_encoder(model.config)
        source_dim, n_peaks = meta["dims"]
        module = model._build(source_dim, n_peaks)
        module.load_state_dict(load_torch(path / WEIGHTS, what="dualdann weights", fix=RETRAIN))
        model.module = module.eval()
        model.info = meta.get("info", {})
        model.history = read_history(path)
        return model


def plot_training(history: list[dict[str, float]], path: Path, *, metric: str) -> None:
    """Weighted loss terms per epoch (left, log scale) and the target-validation metrics (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    epochs = np.array([h["epoch"] for h in history])
    for key in sorted({k for h in history for k in h if k.startswith("loss_")}):
        values = np.array([abs(h.get(key, np.nan)) for h in history], dtype=float)
        axes[0].plot(epochs, values, label=key[5:], lw=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_title("weighted loss terms (|value|)")
    axes[0].legend(fontsize=8)
    validated = [h for h in history if metric in h]
    for key in ("val_accuracy", "val_balanced_accuracy", "val_macro_f1"):
        axes[1].plot([h["epoch"] for h in validated], [h.get(key, np.nan) for h in validated], marker="o", ms=3,
                     label=key[4:], lw=1)
    if validated:
        best = max(validated, key=lambda h: h[metric])
        axes[1].axvline(best["epoch"], color="grey", ls=":", lw=1, label=f"kept (best {metric[4:]})")
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("target-domain validation ATAC")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
