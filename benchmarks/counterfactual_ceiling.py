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
  model in log-rate space reaches).

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
               "true_case_mean", "additive_truth")


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
    from xmodal.metrics.counterfactual import r2

    data = read_processed(processed)
    cells = _through(load_preprocessor(processed / "preprocessor_rna"), read_holdout(processed))
    truth, name = cells.truth, cells.field
    if truth is None:
        raise SystemExit(f"{processed}: not a synthetic dataset (no truth.npz)")
    _, codes, obs = data.sample("train", max_cells=None, seed=0, columns=(INGESTED_ROW,))
    train_rows, train_ctx = obs[INGESTED_ROW].to_numpy(), _truth_context(obs, truth)
    noise_free = truth.true_expression(train_rows, train_ctx)
    design = np.concatenate([np.eye(k + 1)[codes[:, j]] for j, k in enumerate(data.cardinalities)], axis=1)
    effects = additive_effects(design.T @ design, design.T @ noise_free)
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
