"""How far an additive estimate of a field's effect can go on the synthetic Census held-out combinations: the
per-cell change R² of population-level predictions, from the observed training cells up to the planted truth.

Every prediction here gives each source cell of a held-out combination one change per gene (a shift), except the
last, and is scored like the family's evaluation (R² of per-cell changes against the true ones, pooled over the
combinations; :mod:`xmodal.families.census._evaluate`):

* ``mean_shift``: the training cells' mean of the target value minus that of the source value (the issue's
  baseline);
* ``additive_shift``: the same from each value's effect fitted jointly with every other field's
  (``field_means.npz`` ``effect:``; what cycleae's mean-shift term is taught);
* ``additive_shift_noise_free``: that fit on the training cells' **noise-free** expression (the planted truth of
  the same cells in their own context), so no count noise: the most any additive estimate in the model's
  ``log1p`` space can reach from the training cells;
* ``true_population_change``: the true change of the training cells of the source value, averaged (not additive
  in ``log1p`` space: it is the planted change itself, over the training population);
* ``true_case_mean``: each combination's own mean true change (an oracle: the best any one shift per combination
  can do);
* ``additive_truth``: each cell's true change without the planted interaction (per cell; what a perfect additive
  model in log-rate space reaches);
* ``poisson_glm_population`` and ``poisson_glm_context`` (a direction for cycleae's targets, measured here, not in
  xmodal): a Poisson GLM per gene of the training counts on every field's indicators with each cell's library as
  offset (:func:`xmodal.methods.cycleae._glm.fit_poisson_glm`, cycleae's own), so the effects add in log-rate space and count noise is modelled; the field's
  log-rate change, shrunk by its standard error, is read through ``log1p`` at the fitted rates with their spread
  across cells (moments of the counts). ``population``: averaged over the source value's training cells, one shift;
  ``context``: at each moved cell's own context (per cell).

    python benchmarks/counterfactual_ceiling.py                       # → results/counterfactual_ceiling.json
    python benchmarks/counterfactual_ceiling.py --data-seeds 0 1 2 3  # 0: the demo's experiment
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PREDICTIONS = ("mean_shift", "additive_shift", "additive_shift_noise_free", "true_population_change",
               "true_case_mean", "additive_truth", "poisson_glm_population", "poisson_glm_context")
#: shrinkage of the GLM's change: d · max(0, 1 − SHRINK · se² / d²)
SHRINK = 4.0


def through_log1p(rate: np.ndarray, change: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Mean over a log-normal spread ``spread`` ``(G,)`` around ``rate`` ``(n, G)`` of
    ``log1p(rate · e^change) − log1p(rate)`` (16 fixed draws), ``(n, G)``."""
    z = np.random.default_rng(0).normal(size=(16, 1, 1))
    spread_rate = rate[None] * np.exp(z * spread - spread ** 2 / 2)
    return (np.log1p(spread_rate * np.exp(change)) - np.log1p(spread_rate)).mean(0)


def experiment(processed: Path) -> dict[str, float]:
    """Per-cell change R² of each prediction of :data:`PREDICTIONS` on one processed synthetic dataset."""
    from xmodal.families import load_preprocessor
    from xmodal.families.census import read_processed
    from xmodal.families.census._evaluate import (
        INGESTED_ROW,
        _through,
        _truth_context,
        read_holdout,
    )
    from xmodal.families.census._preprocess import additive_effects
    from xmodal.methods.cycleae._glm import fit_poisson_glm
    from xmodal.metrics.counterfactual import r2

    data = read_processed(processed)
    cells = _through(load_preprocessor(processed / "preprocessor_rna"), read_holdout(processed))
    truth, name = cells.truth, cells.field
    if truth is None:
        raise SystemExit(f"{processed}: not a synthetic dataset (no truth.npz)")
    counts, codes, obs = data.sample("train", max_cells=None, seed=0, columns=(INGESTED_ROW,))
    train_rows, train_ctx = obs[INGESTED_ROW].to_numpy(), _truth_context(obs, truth)
    noise_free = truth.true_expression(train_rows, train_ctx)
    design = np.concatenate([np.eye(k + 1)[codes[:, j]] for j, k in enumerate(data.cardinalities)], axis=1)
    effects = additive_effects(design.T @ design, design.T @ noise_free)
    counts = np.asarray(counts.todense(), dtype=np.float64)
    library = counts.sum(1)
    glm = fit_poisson_glm(counts, codes, data.cardinalities, target_sum=data.target_sum, shrink=SHRINK)
    beta, inverse_hessian = glm.beta.double().numpy(), glm.inverse_hessian.double().numpy()
    fitted = np.exp(design @ beta)  # (cells, G) each training cell's context rate per target_sum counts
    j = data.vocab.fields.index(name)
    offset = sum(k + 1 for k in data.cardinalities[:j])
    code_of = {v: i + 1 for i, v in enumerate(cells.vocab_values[name])}
    additive = type(truth)(**{**truth.__dict__, "interaction": np.zeros_like(truth.interaction)})
    source_value = train_ctx[name].to_numpy()
    preds: dict[str, list[np.ndarray]] = {p: [] for p in PREDICTIONS}
    true = []
    for case in cells.cases:
        src = cells.adata.obs.iloc[case.sources]
        rows, own = src[INGESTED_ROW].to_numpy(), _truth_context(src, truth)
        target = own.assign(**{name: case.value})
        change = truth.true_expression(rows, target) - truth.true_expression(rows, own)
        true.append(change)
        a, b = code_of[str(src[name].iloc[0])], code_of[case.value]
        if (src[name].astype(str) != str(src[name].iloc[0])).any():
            raise SystemExit("a combination's source cells hold more than one value: extend this benchmark")
        same = source_value == str(src[name].iloc[0])
        moved = train_ctx[same].assign(**{name: case.value})
        population = (truth.true_expression(train_rows[same], moved) - noise_free[same]).mean(0)
        shifts = {"mean_shift": cells.means[name][b] - cells.means[name][a],
                  "additive_shift": cells.effects[name][b] - cells.effects[name][a],
                  "additive_shift_noise_free": effects[offset + b] - effects[offset + a],
                  "true_population_change": population, "true_case_mean": change.mean(0)}
        contrast = np.zeros(len(beta))
        contrast[offset + b], contrast[offset + a] = 1.0, -1.0
        se2 = np.einsum("p,gpq,q->g", contrast, inverse_hessian, contrast)
        d = beta[offset + b] - beta[offset + a]
        d = d * np.clip(1 - SHRINK * se2 / np.maximum(d ** 2, 1e-12), 0, None)
        rate = fitted[same]
        observed = data.target_sum * counts[same] / library[same, None]
        excess = ((observed - rate) ** 2 - rate * data.target_sum / library[same, None]).mean(0)
        spread = np.sqrt(np.clip(np.log1p(np.maximum(excess, 0) / np.maximum((rate ** 2).mean(0), 1e-12)), 0, 4))
        shifts["poisson_glm_population"] = through_log1p(rate, d, spread).mean(0)
        own_codes = data.vocab.encode(src, where="held-out cells")
        own_design = np.concatenate([np.eye(k + 1)[own_codes[:, i]] for i, k in enumerate(data.cardinalities)], axis=1)
        preds["poisson_glm_context"].append(through_log1p(np.exp(own_design @ beta), d, spread))
        for key, shift in shifts.items():
            preds[key].append(np.broadcast_to(shift, change.shape))
        preds["additive_truth"].append(additive.true_expression(rows, target) - additive.true_expression(rows, own))
    every = np.concatenate(true)
    return {key: r2(np.concatenate(p), every) for key, p in preds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="synthetic experiments (0: the demo's)")
    parser.add_argument("--output", default=None, help="default: results/counterfactual_ceiling.json")
    parser.add_argument("--quick", action="store_true", help="one tiny experiment: checks the script runs")
    args = parser.parse_args()
    from counterfactual_peers import build

    output = Path(args.output or HERE / "results" / ("quick" if args.quick else "") / "counterfactual_ceiling.json")
    seeds = args.data_seeds[:1] if args.quick else args.data_seeds
    rows = []
    with tempfile.TemporaryDirectory(prefix="cf-ceiling-") as tmp:
        for seed in seeds:
            processed = build(Path(tmp) / f"seed{seed}", quick=args.quick, data_seed=None if seed == 0 else seed)
            scores = experiment(processed)
            rows.append({"data_seed": seed, **scores,
                         **{f"margin_{k}": scores[k] - scores["mean_shift"] for k in PREDICTIONS if k != "mean_shift"}})
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"benchmark": "counterfactual_ceiling", "quick": args.quick,
                                  "machine": platform.platform(), "python": platform.python_version(), "rows": rows},
                                 indent=1) + "\n")
    print(markdown_table(rows))


def markdown_table(rows: list[dict]) -> str:
    """Per-cell change R² of each prediction (columns: experiments)."""
    lines = ["| prediction | " + " | ".join(f"experiment {r['data_seed']}" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for key in PREDICTIONS:
        lines.append(f"| {key} | " + " | ".join(f"{r[key]:.3f}" for r in rows) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
