"""cycleae (seed 002): train on a processed census dataset, save and load, counterfactual expression and the
additive per-field contributions of every cell."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xmodal._safe_load import load_torch
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.families.census._vocab import Vocabulary
from xmodal.methods._base import RETRAIN, read_history, read_model_meta, write_model_meta
from xmodal.methods.cycleae._config import CycleAEConfig
from xmodal.methods.cycleae._module import ContextClassifier, CycleAEModule, log_normalize

log = logging.getLogger(__name__)

WEIGHTS, VOCAB, GENES = "weights.pt", "vocab.json", "genes.json"
#: cells per forward pass at inference
INFERENCE_BATCH = 2048
#: share of the observed mean changes a field's scaled changes must explain for its calibration to apply
MIN_EXPLAINED = 0.1


class CycleAE:
    """The context-conditioned cycle autoencoder (seed 002) as a fitted, saved, served model.

    The generator is additive over heads: a tied non-negative base head plus, per metadata field, an encoder, one
    context head per value and a decoder. Its input is ``log1p(target_sum · counts / Σ counts)`` of the model's genes;
    so are its outputs. :meth:`counterfactual` moves cells into another context (any fields at once);
    :meth:`contributions` splits each cell's reconstruction into the heads' additive parts.

    Parameters
    ----------
    config
        Hyper-parameters (defaults: :class:`CycleAEConfig`).

    Examples
    --------
    After ``dvc repro`` (or ``xmodal train --dataset synthetic_census --method cycleae``)::

        model = CycleAE.load("models/synthetic_census/cycleae")
        female = model.counterfactual(adata, set={"sex": "female"})     # AnnData: predicted expression
        parts = model.contributions(adata)                                # layers: base, cell_type, sex, ...
    """

    method = "cycleae"

    def __init__(self, config: CycleAEConfig | None = None) -> None:
        self.config = config or CycleAEConfig()
        self.net: CycleAEModule | None = None
        self.classifier: ContextClassifier | None = None
        self.vocab: Vocabulary | None = None
        self.genes: list[str] = []
        self.feature_names: list[str] = []
        self.target_sum = 1e4
        self.history: list[dict[str, float]] = []
        self.info: dict[str, Any] = {}
        self.change_scale: dict[str, float] = {}
        self.rank = 0

    # ------------------------------------------------------------------ fit
    def _build(self, n_genes: int, cardinalities: list[int]) -> tuple[CycleAEModule, ContextClassifier]:
        cfg = self.config
        return (CycleAEModule(n_genes, cardinalities, latent=cfg.latent, field_gain=cfg.field_gain,
                              field_init=cfg.field_init),
                ContextClassifier(n_genes, cardinalities, width=cfg.classifier_width))

    def fit(self, data: Any, *, seed: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = False,
            live: Any = None, callback: Any = None) -> CycleAE:
        """Train on the ``train`` cells streamed from the processed store; select on ``validation`` cells.

        Parameters
        ----------
        data
            A :class:`~xmodal.families.census.CensusData` (``xmodal.families.census.read_processed``): the store's
            training and validation rows, the vocabulary and the genes; test cells are never read.
        seed
            Seeds initialisation, the stream's orders and the target contexts.
        checkpoint_dir, resume
            Where ``checkpoint.pt`` is written every ``checkpoint_every`` steps; continue from it.
        live
            A :class:`~xmodal.train.LiveLogger` receiving each record while training runs.
        callback
            ``callback(epoch, record)`` after every epoch.

        Returns
        -------
        CycleAE
            ``self``, holding the best state on validation cells.
        """
        from xmodal.families.census._stream import StreamPlan, stream_loader
        from xmodal.methods.cycleae._lightning import (
            DIRECTION,
            MIN_GROUP,
            CycleAETraining,
            seen_changes,
        )
        from xmodal.train import Selection, StepLoader, fit, resolve_layout, settings_digest

        cfg = self.config
        start = time.perf_counter()
        self.vocab, self.genes, self.feature_names = data.vocab, list(data.genes), list(data.feature_names)
        self.target_sum = float(data.target_sum)
        fields, cards = list(data.vocab.fields), list(data.cardinalities)
        world = resolve_layout(cfg, what="methods.cycleae").world
        plan = StreamPlan(data.reader("train"), batch_size=cfg.batch_size, seed=seed,
                          buffer_chunks=cfg.buffer_chunks, lanes=max(1, cfg.workers))
        try:
            total = plan.total_steps(cfg.epochs, world)
        except ValueError as exc:
            raise ConfigError(f"methods.cycleae: {exc}") from None
        iterate = None
        if cfg.workers:
            def iterate(first: int, end: int, rank: int, size: int) -> Any:
                return stream_loader(plan, start=first, total=end, rank=rank, world=size, workers=cfg.workers)

        val_counts, val_codes, _ = data.sample("validation", max_cells=cfg.max_validation_cells, seed=seed)
        val_x = log_normalize(torch.from_numpy(val_counts.toarray()), target_sum=self.target_sum).numpy()
        field = data.counterfactual_field
        strata = [fields.index(f) for f in dict.fromkeys(f for c in data.holdout for f in c)
                  if f != field and f in fields]
        changes = seen_changes(val_x, val_codes, field=fields.index(field), strata=strata) if field in fields else []
        metric = cfg.selection_metric if cfg.selection_metric != "auto" else "cf_mean_r2" if changes else "recon"
        if metric == "cf_mean_r2" and not changes:
            raise ConfigError("methods.cycleae.selection_metric cf_mean_r2 needs validation cells of two values of "
                              f"the counterfactual field in one stratum (at least {MIN_GROUP} cells each); choose "
                              "auto, recon or loss")
        torch.manual_seed(seed)
        net, classifier = self._build(len(self.genes), cards)
        means = glm = None
        from xmodal.methods.cycleae._glm import MAX_COLUMNS, fit_poisson_glm

        targets = cfg.shift_targets
        if targets == "auto":
            targets = "glm" if sum(k + 1 for k in cards) <= MAX_COLUMNS else "adjusted"
            log.info("cycleae: mean-shift targets %s (%d indicator columns; the count model takes at most %d)",
                     targets, sum(k + 1 for k in cards), MAX_COLUMNS)
        if cfg.shift_weight > 0 and targets == "glm":
            counts, codes, _ = data.sample("train", max_cells=cfg.glm_cells, seed=seed)
            glm = fit_poisson_glm(counts.toarray(), codes, cards, target_sum=self.target_sum)
        elif cfg.shift_weight > 0:
            means = data.field_means(adjusted=targets == "adjusted")
        module = CycleAETraining(net, classifier, cfg, plan=plan, world=world, target_sum=self.target_sum,
                                 val_x=val_x, val_codes=val_codes, changes=changes, means=means, glm=glm)
        module._field_names = fields
        key = f"val_{metric}"

        def on_record(step: int, record: dict[str, float]) -> None:
            if callback is not None and record and "epoch" in record:
                callback(int(record["epoch"]), record)

        from xmodal._io import read_json
        from xmodal.data import SCHEMA_FILE
        from xmodal.train import data_hash

        # the store's cells enter through the content hash preprocess recorded (its cells, genes and split)
        recorded = read_json(data.folder / SCHEMA_FILE).get("sha256")
        digest = settings_digest(cfg, shapes=(len(self.genes), *cards, int(sum(plan.sizes))), seed=seed,
                                 data=data_hash(str(recorded), sorted(data.ranges.items()), self.genes))
        result = fit(module, StepLoader(plan, total=total, iterate=iterate), settings=cfg, seed=seed, digest=digest,
                     checkpoint_dir=checkpoint_dir, resume=resume,
                     selection=Selection(monitor=key, mode=DIRECTION[metric], patience=cfg.patience),
                     live=live, gradient_clip=None, what=self.method, on_record=on_record)
        self.net, self.classifier = net.cpu().eval(), classifier.cpu().eval()
        self.history, self.rank = result.history, result.rank
        holdout_fields = list(dict.fromkeys(f for c in data.holdout for f in c))
        self.change_scale = self._calibrate(val_x, val_codes, holdout_fields) if cfg.calibrate else {}
        best_step = result.summary.get("best_step")
        self.info = {
            "fields": fields, "cardinalities": cards, "n_genes": len(self.genes), "n_train": int(sum(plan.sizes)),
            "n_validation": int(len(val_x)), "seen_changes": len(changes), "cycles": cfg.cycles,
            "steps": total, "steps_run": result.summary["steps_run"], "stopped": result.summary["stopped"],
            "selection_metric": key, "best_step": best_step, f"best_{key}": result.summary.get(f"best_{key}"),
            "best_epoch": plan.locate(best_step - 1, world)[0] + 1 if best_step else None,
            "fit_seconds": time.perf_counter() - start, "device": result.summary["device"], "world_size": result.world,
            "precision": cfg.precision, "change_scale": self.change_scale, "shift_targets": targets,
        }
        log.info("cycleae: %d steps in %.1f s; best validation %s %.4g at epoch %s (%s)", self.info["steps_run"],
                 self.info["fit_seconds"], metric, self.info[f"best_{key}"] or float("nan"),
                 self.info["best_epoch"], self.info["stopped"])
        return self

    def _calibrate(self, x: np.ndarray, codes: np.ndarray, strata_fields: list[str]) -> dict[str, float]:
        """Per field, the factor ``γ`` minimising ``Σ (γ · predicted − observed)²`` over the mean changes between its
        values within strata of the other held-out fields (validation cells, :func:`seen_changes`), in ``[0, 10]``;
        1 where no change is observed or the scaled changes explain less than :data:`MIN_EXPLAINED` of the observed
        ones (a field without a visible effect)."""
        from xmodal.metrics.counterfactual import seen_changes

        fields = self.fields
        xt, ct = torch.from_numpy(np.asarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(codes))
        out = {}
        for j, name in enumerate(fields):
            strata = [fields.index(f) for f in strata_fields if f != name and f in fields]
            changes = seen_changes(np.asarray(x), np.asarray(codes), field=j, strata=strata)
            if not changes:
                out[name] = 1.0
                continue
            pred, obs = [], []
            for ch in changes:
                rows = torch.as_tensor(ch.rows)
                target = ct[rows].clone()
                target[:, j] = ch.code
                pred.append(self._field_changes(xt[rows], ct[rows], target)[j].mean(0).numpy())
                obs.append(ch.observed)
            p, o = np.concatenate(pred), np.concatenate(obs)
            gamma = float(np.clip(p @ o / max(float(p @ p), 1e-12), 0.0, 10.0))
            explained = 1.0 - float(((gamma * p - o) ** 2).sum()) / max(float(((o - o.mean()) ** 2).sum()), 1e-12)
            out[name] = gamma if explained >= MIN_EXPLAINED else 1.0  # no evidence: leave the generator's change
        log.info("cycleae: counterfactual change scale per field (validation cells): %s",
                 {k: round(v, 3) for k, v in out.items()})
        return out

    def _field_changes(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Each field's own change ``out_f(t_f) − out_f(s_f)`` ``(n, G)``; their sum is ``G(x; s→t) − G(x; s→s)``."""
        _, moved = self._forward(x, source, target)
        _, own = self._forward(x, source, source)
        return [m - o for m, o in zip(moved[1:], own[1:], strict=True)]

    # ------------------------------------------------------------------ inputs
    def _check_fitted(self) -> tuple[CycleAEModule, ContextClassifier, Vocabulary]:
        if self.net is None or self.classifier is None or self.vocab is None:
            raise RuntimeError("CycleAE is not fitted: call fit() or load() first")
        return self.net, self.classifier, self.vocab

    @property
    def fields(self) -> list[str]:
        """The metadata fields the model conditions on, in head order."""
        return list(self._check_fitted()[2].fields)

    def values(self, field: str) -> list[str]:
        """The values of ``field`` the model knows (a counterfactual may set any of them)."""
        vocab = self._check_fitted()[2]
        if field not in vocab.fields:
            raise XmodalInputError(f"unknown field {field!r}; the model conditions on {', '.join(vocab.fields)}")
        return list(vocab.values[field])

    def inputs(self, adata: Any, *, layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """An AnnData of raw counts (genes named by ``feature_id`` or ``feature_name``; the fields in ``obs``) →
        ``(x (n, G) log1p-normalised over the model's genes, codes (n, F))``.

        Raises
        ------
        XmodalInputError
            Missing genes or fields, counts that are not finite non-negative integers.
        """
        from xmodal.families.census._preprocess import CensusPreprocessor, model_counts

        _, _, vocab = self._check_fitted()
        matrix = adata.X if layer is None else adata.layers[layer]
        prep = CensusPreprocessor(genes=self.genes, feature_names=self.feature_names, target_sum=self.target_sum,
                                  vocab=vocab)
        cols = prep.gene_columns(list(map(str, adata.var_names)))
        counts = model_counts(matrix, cols, path="the input cells" if layer is None
                              else f"layers[{layer!r}] of the input cells")
        missing = [f for f in vocab.fields if f not in adata.obs.columns]
        if missing:
            raise XmodalInputError(f"obs lacks the field {missing[0]!r} (the model conditions on "
                                   f"{', '.join(vocab.fields)})", fix="give every cell's metadata in obs; unknown "
                                   "values may be left empty (code 0)")
        codes = vocab.encode(adata.obs, where="obs of the input cells")
        x = log_normalize(torch.from_numpy(counts.toarray()), target_sum=self.target_sum)
        return x, torch.from_numpy(codes)

    def target_codes(self, codes: torch.Tensor, changes: Mapping[str, str]) -> torch.Tensor:
        """``codes`` with the fields of ``changes`` set to the given values.

        Raises
        ------
        XmodalInputError
            An unknown field, or a value the model did not see in training (the known values are listed).
        """
        _, _, vocab = self._check_fitted()
        out = codes.clone()
        for field, value in changes.items():
            if field not in vocab.fields:
                raise XmodalInputError(f"cannot set {field!r}: the model conditions on {', '.join(vocab.fields)}")
            code = vocab.code(field, value)
            if code == 0:
                raise XmodalInputError(f"{field} = {value!r} is not a value the model learned (known: "
                                       f"{', '.join(vocab.values[field])})", fix="set a known value")
            out[:, vocab.fields.index(field)] = code
        return out

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        net, _, _ = self._check_fitted()
        was = net.training
        net.eval()
        try:
            outs, parts = [], []
            for i in range(0, len(x), INFERENCE_BATCH):
                out, _, contrib = net(x[i:i + INFERENCE_BATCH], source[i:i + INFERENCE_BATCH],
                                      target[i:i + INFERENCE_BATCH])
                outs.append(out)
                parts.append(torch.stack(contrib))
            if not outs:
                return x.new_zeros((0, len(self.genes))), [x.new_zeros((0, len(self.genes)))] * (1 + len(self.fields))
            return torch.cat(outs), list(torch.cat(parts, dim=1))
        finally:
            net.train(was)

    # ------------------------------------------------------------------ the API
    def counterfactual(self, adata: Any, *, set: Mapping[str, str], layer: str | None = None,  # noqa: A002
                       calibrated: bool = True) -> Any:
        """Predict each cell's expression in another context.

        Parameters
        ----------
        adata
            Raw counts ``(n, genes)`` (any superset of the model's genes, named by ``feature_id`` or
            ``feature_name``), with the model's fields in ``obs``.
        set
            ``{field: value}``: the context to move every cell into (the other fields keep each cell's own value),
            e.g. ``{"sex": "female", "disease": "normal"}``.
        layer
            Read the counts from this layer instead of ``X``.
        calibrated
            Scale each field's change by the factor fitted on validation cells (``info["change_scale"]``; see
            :class:`CycleAEConfig` ``calibrate``); false: the generator's own change.

        Returns
        -------
        anndata.AnnData
            ``X`` ``(n, G)``: the predicted expression in the target context, in the model's space
            ``log1p(target_sum · counts / Σ counts)``; ``layers["reconstruction"]``: the model's reading of the cell
            in its own context, ``layers["change"]`` = ``X − reconstruction``; ``layers["observed"]``: the input in
            the same space; ``obs``: the input's, with the fields set and ``source_<field>`` holding the old values.
        """
        import anndata as ad

        x, codes = self.inputs(adata, layer=layer)
        target = self.target_codes(codes, set)
        own, _ = self._forward(x, codes, codes)
        if calibrated and self.change_scale:
            changes = self._field_changes(x, codes, target)
            moved = own + sum(self.change_scale.get(f, 1.0) * c for f, c in zip(self.fields, changes, strict=True))
        else:
            moved, _ = self._forward(x, codes, target)
        obs = adata.obs.copy()
        for field, value in set.items():
            obs[f"source_{field}"] = obs[field].astype(object)
            obs[field] = value
        out = ad.AnnData(X=moved.numpy(), obs=obs, var=self._var())
        out.layers["reconstruction"] = own.numpy()
        out.layers["change"] = (moved - own).numpy()
        out.layers["observed"] = x.numpy()
        out.uns["counterfactual"] = {"set": dict(set), "space": f"log1p({self.target_sum:g} * counts / total)"}
        return out

    def contributions(self, adata: Any, *, layer: str | None = None) -> Any:
        """Each cell's reconstruction split into the heads' additive contributions.

        Returns
        -------
        anndata.AnnData
            ``X`` ``(n, G)``: the reconstruction in the cell's own context (the sum of the layers); ``layers["base"]``
            and one layer per field: that head's contribution; ``obs["influence_<head>"]``: its L2 norm per cell (the
            seed's "metadata influence", here on the cell's own context rather than a second cycle).
        """
        import anndata as ad

        x, codes = self.inputs(adata, layer=layer)
        total, parts = self._forward(x, codes, codes)
        out = ad.AnnData(X=total.numpy(), obs=adata.obs.copy(), var=self._var())
        for name, part in zip(["base", *self.fields], parts, strict=True):
            out.layers[name] = part.numpy()
            out.obs[f"influence_{name}"] = torch.linalg.vector_norm(part, dim=1).numpy()
        return out

    @torch.no_grad()
    def predict_context(self, x: torch.Tensor) -> np.ndarray:
        """The frozen classifier's reading of log1p-normalised cells ``(n, G)``: codes ``(n, F)`` (1-based)."""
        _, classifier, _ = self._check_fitted()
        was = classifier.training
        classifier.eval()
        try:
            return torch.stack([logit.argmax(1) + 1 for logit in classifier(x)], dim=1).numpy()
        finally:
            classifier.train(was)

    def _var(self) -> pd.DataFrame:
        return pd.DataFrame({"feature_name": self.feature_names}, index=pd.Index(self.genes, name="feature_id"))

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write ``model.json``, ``history.json``, ``weights.pt`` (both networks), ``vocab.json``, ``genes.json``."""
        net, classifier, vocab = self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_model_meta(path, method=self.method, config=self.config, info=self.info, history=self.history,
                         dims=[len(self.genes), *net.cardinalities])
        state = {**{f"net.{k}": v for k, v in net.state_dict().items()},
                 **{f"classifier.{k}": v for k, v in classifier.state_dict().items()}}
        torch.save(state, path / WEIGHTS)
        vocab.save(path / VOCAB)
        (path / GENES).write_text(json.dumps({"genes": self.genes, "feature_names": self.feature_names,
                                              "target_sum": self.target_sum}, indent=1) + "\n")
        if self.history:
            plot_training(self.history, path / "loss_curves.png")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CycleAE:
        """Load a model written by :meth:`save` (CPU, eval mode); its files are checked against each other.

        Raises
        ------
        XmodalInputError
            A missing or damaged file, or weights that do not fit the genes and fields recorded.
        """
        from xmodal._io import read_json

        path = Path(path)
        meta = read_model_meta(path, method=cls.method)
        model = cls(CycleAEConfig.model_validate(meta["config"]))
        model.vocab = Vocabulary.load(path / VOCAB)
        genes = read_json(path / GENES, fix=RETRAIN)
        model.genes, model.feature_names = list(genes["genes"]), list(genes["feature_names"])
        model.target_sum = float(genes["target_sum"])
        n_genes, *cards = (int(d) for d in meta["dims"])
        if n_genes != len(model.genes) or cards != [model.vocab.cardinality(f) for f in model.vocab.fields]:
            raise XmodalInputError(f"model.json records {n_genes} genes and fields of {cards} values; genes.json and "
                                   f"vocab.json hold {len(model.genes)} genes and "
                                   f"{[model.vocab.cardinality(f) for f in model.vocab.fields]}", path=path, fix=RETRAIN)
        net, classifier = model._build(n_genes, cards)
        state = load_torch(path / WEIGHTS, what="cycleae weights", fix=RETRAIN)
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        classifier.load_state_dict({k[11:]: v for k, v in state.items() if k.startswith("classifier.")})
        model.net, model.classifier = net.eval(), classifier.eval()
        model.info, model.history = meta.get("info", {}), read_history(path)
        model.change_scale = {str(k): float(v) for k, v in (model.info.get("change_scale") or {}).items()}
        return model




def plot_training(history: list[dict[str, float]], path: Path) -> None:
    """Loss terms per epoch (left, log scale) and the validation metrics (right) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    epochs = [h for h in history if "epoch" in h]
    for key in sorted({k for h in epochs for k in h if k.startswith("loss_")}):
        axes[0].plot([h["epoch"] for h in epochs], [abs(h.get(key, np.nan)) for h in epochs], label=key[5:], lw=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_title("loss terms (training cells)")
    axes[0].legend(fontsize=8)
    validated = [h for h in history if "val_loss" in h]
    steps = [h["step"] + 1 for h in validated]
    for key in ("val_recon", "val_cycle", "val_target_accuracy", "val_classifier_accuracy", "val_cf_mean_r2"):
        values = [h.get(key, np.nan) for h in validated]
        if np.isfinite(values).any():
            axes[1].plot(steps, values, marker="o", ms=3, lw=1, label=key[4:])
    axes[1].set_xlabel("step")
    axes[1].set_title("validation cells")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["CycleAE", "plot_training"]
