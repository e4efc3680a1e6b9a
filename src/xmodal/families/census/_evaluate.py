"""Evaluation of a counterfactual model on the ``census`` family: held-out context combinations on test cells.

For each held-out combination (e.g. ``{cell_type: T cell, sex: female}``), the **source cells** are the test cells
that share every other value of it but not the counterfactual field's (``T cell``, ``male``); they are moved into
the combination (``sex → female``), which no training cell had. What is scored, pooled over combinations:

* ``cf_mean_change_r2`` (every dataset, the primary metric): R² of the predicted mean change of the source cells
  against the **observed** change, the mean of the combination's own test cells minus the source cells' mean;
* with a synthetic dataset's planted truth: ``cf_cell_change_r2`` (each source cell's predicted change against its
  true change, all genes), ``cf_cell_change_r2_top50`` (the 50 genes whose true change is largest, per combination)
  and ``cf_gene_mean_r2`` (the predicted expression's per-gene means against the true counterfactual's);
* baselines on the same cells: ``mean_shift_*`` (the training cells' mean of the target value minus that of the
  source value, one shift for every cell), ``additive_shift_*`` (the same with each value's additive effect fitted
  jointly with the other fields', which takes out the other fields' mix: ``field_means.npz``'s ``effect:``, present
  when the data were preprocessed by this version), ``no_change_*`` (a change of zero) and, with the truth,
  ``additive_truth_*`` (the true change without the planted interaction: what a perfect additive model reaches);
  the model trained without cycles (``ablation/``) adds ``no_cycles_*``;
* ``target_accuracy``: the model's frozen classifier reads the target value from the moved cells;
* ``recon_mse`` on test cells (with ``recon_mse_mean`` of predicting every cell as the training mean, for scale) and
  each head's influence (mean L2 norm of its contribution).

The same function scores the registry's held-out cells (raw counts through the logged preprocessor), so
``metrics.json`` and the registry agree. Validation and training cells get reconstruction, the classifier's
accuracy and (validation) ``cf_mean_r2`` on seen combinations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xmodal.errors import XmodalInputError
from xmodal.families._base import PLOTS
from xmodal.families.census._io import STORE, TRUTH_FILE
from xmodal.families.census._preprocess import FIELD_MEANS, INGESTED_ROW
from xmodal.families.census._vocab import normalize_column, normalize_value
from xmodal.metrics.counterfactual import r2, top_changed

log = logging.getLogger(__name__)

#: source (and target) cells kept per held-out combination; reconstruction cells of the test split
MAX_CASE_CELLS, MAX_RECON_CELLS = 2000, 4000
TOP = 50


@dataclass(frozen=True)
class Case:
    """One held-out combination: the test cells moved into it, and its own test cells."""

    combo: dict[str, str]
    value: str
    sources: np.ndarray
    targets: np.ndarray


@dataclass
class CensusHoldout:
    """Test cells of a census dataset in their ingested (raw) genes, and what scoring them needs.

    Attributes
    ----------
    adata
        Raw counts ``(n, ingested genes)``; ``obs`` holds the fields, ``split`` and ``ingested_row``.
    cases
        The held-out combinations (rows of ``adata``).
    recon
        Rows scored for reconstruction.
    field
        The counterfactual field.
    means
        ``{field: (K + 1, G)}`` the training cells' mean per code (row 0: null/unseen), on the model's genes.
    effects
        ``{field: (K + 1, G)}`` the additive effects per code, on the model's genes (empty for data preprocessed
        before they were written).
    vocab_values
        The training vocabulary's values per field (the means' rows 1..K).
    truth
        The planted model of a synthetic dataset on the model's genes (or ``None``).
    """

    adata: Any
    cases: list[Case]
    recon: np.ndarray
    field: str
    means: dict[str, np.ndarray]
    vocab_values: dict[str, list[str]]
    truth: Any = None
    effects: dict[str, np.ndarray] = _field(default_factory=dict)


def find_cases(obs: pd.DataFrame, holdout: list[dict[str, str]], counterfactual: str, *,
               max_cells: int = MAX_CASE_CELLS, seed: int = 0) -> list[Case]:
    """The held-out combinations among test cells ``obs``: source rows (every other value of the combination, another
    value of ``counterfactual``) and target rows (the combination itself), at most ``max_cells`` each (seeded)."""
    rng = np.random.default_rng(seed)
    cases = []
    norm = {f: normalize_column(obs[f]) for combo in holdout for f in combo}
    for combo in holdout:
        same = np.ones(len(obs), dtype=bool)
        for f, v in combo.items():
            if f != counterfactual:
                same &= (norm[f] == normalize_value(v)).to_numpy()
        value = normalize_value(combo[counterfactual])
        inside = same & (norm[counterfactual] == value).to_numpy()
        moved = same & norm[counterfactual].notna().to_numpy() & ~inside
        pick = [np.flatnonzero(m) for m in (moved, inside)]
        pick = [np.sort(rng.choice(p, size=max_cells, replace=False)) if len(p) > max_cells else p for p in pick]
        if len(pick[0]) and len(pick[1]):
            cases.append(Case(combo=dict(combo), value=str(value), sources=pick[0], targets=pick[1]))
    return cases


def read_holdout(processed: Path, *, ingested: Path | None = None, seed: int = 0) -> CensusHoldout:
    """The test cells the counterfactual evaluation and the registry score (see :class:`CensusHoldout`).

    Parameters
    ----------
    processed
        ``data/processed/<dataset>``: which cells, the baselines' means and (synthetic data) the truth.
    ingested
        ``data/ingested/<dataset>``: read the cells' raw counts of every ingested gene from there (the registry's
        held-out cells); default: the processed store's counts of the kept genes (evaluation).
    seed
        Seeds the samples of large combinations and of the reconstruction cells.

    Raises
    ------
    XmodalInputError
        No test cell, or no held-out combination with source and target cells among them.
    """
    import anndata as ad

    from xmodal._io import read_json
    from xmodal.data import SCHEMA_FILE
    from xmodal.families.census._soma import store_obs, store_rows, store_var
    from xmodal.families.census._synthetic import CensusSim
    from xmodal.families.census._vocab import Vocabulary

    processed = Path(processed)
    schema = read_json(processed / SCHEMA_FILE)
    lo, hi = schema["rows"]["test"]
    if hi <= lo:
        raise XmodalInputError("the processed data have no test cells", path=processed,
                               fix="set split.test_fraction > 0 or hold out a combination, and re-run `dvc repro`")
    obs = store_obs(processed / STORE).iloc[lo:hi]
    field_name = schema["counterfactual_field"]
    cases = find_cases(obs, schema["holdout"], field_name, seed=seed)
    if not cases:
        raise XmodalInputError(f"no held-out combination has test cells to move into it along {field_name!r}",
                               path=processed, fix="hold out combinations whose other values occur in test cells")
    rng = np.random.default_rng(seed + 1)
    recon = np.arange(len(obs)) if len(obs) <= MAX_RECON_CELLS else np.sort(
        rng.choice(len(obs), size=MAX_RECON_CELLS, replace=False))
    rows = np.unique(np.concatenate([recon, *[np.concatenate([c.sources, c.targets]) for c in cases]]))
    remap = {int(r): i for i, r in enumerate(rows)}
    take = obs.iloc[rows]
    if ingested is None:
        store, positions = processed / STORE, lo + rows
    else:
        store, positions = Path(ingested) / STORE, take[INGESTED_ROW].to_numpy()
    counts, _ = store_rows(store, positions)
    adata = ad.AnnData(X=counts, obs=take.copy(), var=store_var(store))
    cases = [Case(combo=c.combo, value=c.value, sources=np.array([remap[int(r)] for r in c.sources]),
                  targets=np.array([remap[int(r)] for r in c.targets])) for c in cases]
    with np.load(processed / FIELD_MEANS, allow_pickle=False) as npz:
        means = {k.split(":", 1)[1]: npz[k] for k in npz.files if k.startswith("mean:")}
        effects = {k.split(":", 1)[1]: npz[k] for k in npz.files if k.startswith("effect:")}
    truth = CensusSim.load_truth(processed / TRUTH_FILE) if (processed / TRUTH_FILE).is_file() else None
    return CensusHoldout(adata=adata, cases=cases, recon=np.array([remap[int(r)] for r in recon]), field=field_name,
                         means=means, vocab_values=dict(Vocabulary.load(processed / "vocab.json").values), truth=truth,
                         effects=effects)


def _truth_context(obs: pd.DataFrame, truth: Any) -> pd.DataFrame:
    return obs[list(truth.values)].astype(str)


def observed_space(cells: CensusHoldout, rows: np.ndarray, *, target_sum: float, genes: list[str] | None = None
                   ) -> np.ndarray:
    """``log1p(target_sum · counts / Σ counts)`` of ``rows`` of the holdout (over ``genes``, default all of
    ``cells.adata``'s, which are the model's once the preprocessor ran) ``(n, G)``."""
    from xmodal.families.census._preprocess import lognormalize_csr

    sub = cells.adata[rows] if genes is None else cells.adata[rows][:, genes]
    return lognormalize_csr(sub.X, target_sum=target_sum).toarray()


def score_predictions(cells: CensusHoldout, predicted: list[dict[str, np.ndarray]], *, target_sum: float,
                      prefix: str = "cf_", baselines: bool = True) -> dict[str, float]:
    """Score predicted counterfactuals of the held-out combinations (any method's) against the observed and true
    changes, with the baselines.

    Parameters
    ----------
    cells
        :func:`read_holdout` cells, brought to the model's genes (its ``adata`` holds exactly the predicted genes).
    predicted
        One entry per case of ``cells.cases``: ``{"change": (n_sources, G), "moved": (n_sources, G)}``, each source
        cell's predicted change and its predicted expression in the target context, in the model's space.
    target_sum
        The space's counts per cell (observed cells are normalised the same way).
    prefix
        Of the method's metric names (``cf_``; an ablation ``no_cycles_cf_``).
    baselines
        Add the mean-shift, no-change and (with a truth) additive-truth metrics.

    Returns
    -------
    dict
        ``<prefix>mean_change_r2`` and, with a truth, ``<prefix>cell_change_r2``, ``<prefix>cell_change_r2_top50``,
        ``<prefix>gene_mean_r2``; the baselines' (see the module docstring).
    """
    field_name = cells.field
    pred_mean, obs_mean, ms_mean, as_mean = [], [], [], []
    pred_cells, true_cells, add_cells, ms_cells, as_cells, tops = [], [], [], [], [], []
    effects = cells.effects.get(field_name)
    gene_pred, gene_true = [], []
    codes_of = {v: i + 1 for i, v in enumerate(cells.vocab_values.get(field_name, []))}
    additive = None
    if cells.truth is not None:
        additive = type(cells.truth)(**{**cells.truth.__dict__, "interaction": np.zeros_like(cells.truth.interaction)})
    for case, pred in zip(cells.cases, predicted, strict=True):
        src_obs = cells.adata.obs.iloc[case.sources]
        x_src = observed_space(cells, case.sources, target_sum=target_sum)
        x_tgt = observed_space(cells, case.targets, target_sum=target_sum)
        pred_mean.append(pred["change"].mean(0))
        obs_mean.append(x_tgt.mean(0) - x_src.mean(0))
        source_codes = np.array([codes_of.get(normalize_value(v) or "", 0) for v in src_obs[field_name]])
        means = cells.means[field_name]
        shift = means[codes_of[case.value]][None, :] - means[source_codes]
        ms_mean.append(shift.mean(0))
        if effects is not None:
            adjusted = effects[codes_of[case.value]][None, :] - effects[source_codes]
            as_mean.append(adjusted.mean(0))
        if cells.truth is not None:
            rows = src_obs[INGESTED_ROW].to_numpy()
            own = _truth_context(src_obs, cells.truth)
            target = own.assign(**{field_name: case.value})
            t_own, t_tgt = cells.truth.true_expression(rows, own), cells.truth.true_expression(rows, target)
            pred_cells.append(pred["change"])
            true_cells.append(t_tgt - t_own)
            add_cells.append(additive.true_expression(rows, target) - additive.true_expression(rows, own))
            ms_cells.append(np.broadcast_to(shift, pred["change"].shape))
            if effects is not None:
                as_cells.append(np.broadcast_to(adjusted, pred["change"].shape))
            tops.append(top_changed(t_tgt - t_own, k=TOP))
            gene_pred.append(pred["moved"].mean(0))
            gene_true.append(t_tgt.mean(0))
    out = {f"{prefix}mean_change_r2": r2(np.stack(pred_mean), np.stack(obs_mean))}
    if baselines:
        out["mean_shift_mean_change_r2"] = r2(np.stack(ms_mean), np.stack(obs_mean))
        if as_mean:
            out["additive_shift_mean_change_r2"] = r2(np.stack(as_mean), np.stack(obs_mean))
        out["no_change_mean_change_r2"] = r2(np.zeros_like(np.stack(obs_mean)), np.stack(obs_mean))
    if cells.truth is not None:
        true_all = np.concatenate(true_cells)

        def cell_scores(pred: list[np.ndarray], name: str) -> dict[str, float]:
            top_p = np.concatenate([p[:, t].ravel() for p, t in zip(pred, tops, strict=True)])
            top_t = np.concatenate([t_[:, t].ravel() for t_, t in zip(true_cells, tops, strict=True)])
            return {f"{name}cell_change_r2": r2(np.concatenate(pred), true_all),
                    f"{name}cell_change_r2_top{TOP}": r2(top_p, top_t)}

        out |= cell_scores(pred_cells, prefix)
        out[f"{prefix}gene_mean_r2"] = r2(np.stack(gene_pred), np.stack(gene_true))
        if baselines:
            out |= cell_scores(ms_cells, "mean_shift_")
            if as_cells:
                out |= cell_scores(as_cells, "additive_shift_")
            out |= cell_scores([np.zeros_like(p) for p in pred_cells], "no_change_")
            out |= cell_scores(add_cells, "additive_truth_")
    return out


def model_predictions(model: Any, cells: CensusHoldout) -> list[dict[str, np.ndarray]]:
    """A counterfactual model's :func:`score_predictions` input: each case's source cells moved into it."""
    out = []
    for case in cells.cases:
        moved = model.counterfactual(cells.adata[case.sources], set={cells.field: case.value})
        out.append({"change": np.asarray(moved.layers["change"]), "moved": np.asarray(moved.X)})
    return out


def score_holdout(model: Any, cells: CensusHoldout, *, prefix: str = "") -> dict[str, float]:
    """Score a counterfactual model (``counterfactual``, ``inputs``, ``contributions``) on :func:`read_holdout` cells.

    Returns
    -------
    dict
        The metrics of the module docstring (the model's, then with ``prefix`` for an ablation: baselines are
        left out when ``prefix`` is given).
    """
    import torch

    predicted = model_predictions(model, cells)
    out = score_predictions(cells, predicted, target_sum=model.target_sum, prefix=f"{prefix}cf_",
                            baselines=not prefix)
    field_name = cells.field
    hits = []
    for case, pred in zip(cells.cases, predicted, strict=True):
        reading = model.predict_context(torch.from_numpy(pred["moved"]))
        hits.append(reading[:, model.fields.index(field_name)] == model.vocab.code(field_name, case.value))
    out[f"{prefix}target_accuracy"] = float(np.concatenate(hits).mean())
    out[f"{prefix}cf_cells"] = float(sum(len(c.sources) for c in cells.cases))
    recon = cells.adata[cells.recon]
    parts = model.contributions(recon)
    x, _ = model.inputs(recon)
    x = x.numpy()
    out[f"{prefix}recon_mse"] = float(np.mean((np.asarray(parts.X) - x) ** 2))
    if not prefix:
        out["recon_mse_mean"] = float(np.mean((x - x.mean(0)) ** 2))
        for name in ["base", *model.fields]:
            out[f"influence_{name}"] = float(parts.obs[f"influence_{name}"].mean())
    return out


def split_scores(model: Any, processed: Path, split: str, *, max_cells: int, seed: int) -> dict[str, float]:
    """Reconstruction MSE, the classifier's accuracy on real cells and (validation) ``cf_mean_r2`` of a split."""
    import anndata as ad

    from xmodal.families.census._data import read_processed
    from xmodal.metrics.counterfactual import seen_changes

    data = read_processed(processed, splits=(split,))
    counts, _, obs = data.sample(split, max_cells=max_cells, seed=seed)
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame({"feature_name": data.feature_names},
                                                            index=pd.Index(data.genes, name="feature_id")))
    x, codes_t = model.inputs(adata)
    parts = model.contributions(adata)
    out = {"recon_mse": float(np.mean((np.asarray(parts.X) - x.numpy()) ** 2))}
    reading = model.predict_context(x)
    known = codes_t.numpy() > 0
    out["classifier_accuracy"] = float(np.mean([(reading[known[:, j], j] == codes_t.numpy()[known[:, j], j]).mean()
                                                for j in range(reading.shape[1]) if known[:, j].any()]))
    fields = model.fields
    if split == "validation" and data.counterfactual_field in fields:
        strata = [fields.index(f) for f in dict.fromkeys(f for c in data.holdout for f in c)
                  if f != data.counterfactual_field and f in fields]
        changes = seen_changes(x.numpy(), codes_t.numpy(), field=fields.index(data.counterfactual_field),
                               strata=strata)
        if changes:
            pred, true = [], []
            for ch in changes:
                sub = adata[ch.rows]
                moved = model.counterfactual(sub, set={data.counterfactual_field: model.values(
                    data.counterfactual_field)[ch.code - 1]})
                pred.append(moved.layers["change"].mean(0))
                true.append(ch.observed)
            out["cf_mean_r2"] = r2(np.stack(pred), np.stack(true))
    return out


def evaluate_all(model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> dict[str, dict[str, float]]:
    """Score the model in ``model_dir`` on every split; write ``metrics.json`` and ``plots/`` into ``out``.

    Returns
    -------
    dict
        ``{"test": {...}, "validation": {...}, "train": {...}}``; ``test`` holds the counterfactual metrics.
    """
    from xmodal._io import write_json
    from xmodal.errors import reading
    from xmodal.families import load_preprocessor
    from xmodal.methods import load_model
    from xmodal.stages._paths import ABLATION

    model = load_model(model_dir)
    cells = read_holdout(processed, seed=cfg.seed)
    prep = load_preprocessor(Path(processed) / "preprocessor_rna")
    with reading(model_dir):
        test = score_holdout(model, _through(prep, cells))
        if (Path(model_dir) / ABLATION).is_dir():
            test |= score_holdout(load_model(Path(model_dir) / ABLATION), _through(prep, cells), prefix="no_cycles_")
        metrics = {"test": test,
                   "validation": split_scores(model, processed, "validation", max_cells=MAX_RECON_CELLS, seed=cfg.seed),
                   "train": split_scores(model, processed, "train", max_cells=MAX_RECON_CELLS, seed=cfg.seed)}
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    plots = out / PLOTS
    plots.mkdir()
    influence_table(model, cells).to_csv(plots / "field_influence.csv", index=False)
    plot_influence(model, cells, plots / "field_influence.png", title=title)
    plot_changes(model, cells, plots / "counterfactual_change.png", title=title)
    if getattr(model, "history", None):
        from xmodal.methods.cycleae._model import plot_training

        plot_training(model.history, plots / "training_curve.png")
    return metrics


def _through(prep: Any, cells: CensusHoldout) -> CensusHoldout:
    """The holdout with its raw counts brought to the model's genes by the preprocessor (as the registry does)."""
    return CensusHoldout(**{**cells.__dict__, "adata": prep.transform_adata(cells.adata)})


def influence_table(model: Any, cells: CensusHoldout) -> pd.DataFrame:
    """Each head's influence on the test cells: mean, min and max L2 norm of its contribution per cell."""
    parts = model.contributions(cells.adata[cells.recon])
    rows = []
    for name in ["base", *model.fields]:
        v = parts.obs[f"influence_{name}"].to_numpy()
        rows.append({"head": name, "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())})
    return pd.DataFrame(rows)


def plot_influence(model: Any, cells: CensusHoldout, path: Path, *, title: str) -> None:
    """Bar chart of :func:`influence_table` (mean, with min–max whiskers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = influence_table(model, cells)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(table)), 4))
    pos = np.arange(len(table))
    err = np.vstack([table["mean"] - table["min"], table["max"] - table["mean"]])
    ax.bar(pos, table["mean"], yerr=err, capsize=3, color=["grey"] + ["C0"] * (len(table) - 1))
    ax.set_xticks(pos, table["head"], rotation=30, ha="right")
    ax.set_ylabel("L2 norm of the head's contribution per cell")
    ax.set_title(f"{title}: field influence (test cells)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_changes(model: Any, cells: CensusHoldout, path: Path, *, title: str) -> None:
    """Per held-out combination: the predicted mean change per gene against the observed (and, with a truth, the
    true) one, and the mean-shift baseline's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cells.cases)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
    for ax, case in zip(axes[0], cells.cases, strict=True):
        moved = model.counterfactual(cells.adata[case.sources], set={cells.field: case.value})
        x_tgt, _ = model.inputs(cells.adata[case.targets])
        observed = x_tgt.numpy().mean(0) - moved.layers["observed"].mean(0)
        means = cells.means[cells.field]
        codes = {v: i + 1 for i, v in enumerate(cells.vocab_values[cells.field])}
        src_codes = [codes.get(normalize_value(v) or "", 0) for v in cells.adata[case.sources].obs[cells.field]]
        shift = (means[codes[case.value]][None, :] - means[src_codes]).mean(0)
        ax.scatter(observed, shift, s=5, alpha=0.5, color="grey", label="mean shift")
        ax.scatter(observed, moved.layers["change"].mean(0), s=6, alpha=0.7, color="C0", label=model.method)
        lim = float(np.abs(observed).max() or 1)
        ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.5)
        ax.set_xlabel("observed mean change (held-out cells − moved cells)")
        ax.set_ylabel("predicted mean change")
        ax.set_title(", ".join(f"{k}={v}" for k, v in case.combo.items()), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: moved along {cells.field}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["Case", "CensusHoldout", "evaluate_all", "find_cases", "model_predictions", "observed_space",
           "read_holdout", "score_holdout", "score_predictions", "split_scores"]
