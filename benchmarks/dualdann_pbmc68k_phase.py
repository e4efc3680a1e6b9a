"""Real-data check of dualdann's expression side: cell-cycle phase from RNA on scanpy's ``pbmc68k_reduced``.

scanpy ships 700 PBMCs × 765 genes (``.raw``: log-normalised) with a ``phase`` column (G1 501, S 182,
G2M 17 cells) from scanpy's own cell-cycle scoring on the full gene set; only a few of the Tirosh genes
are among the 765. The expression-side classifier of dualdann (PCA → the seed's projection and label
classifier, classification + supervised contrast; :func:`xmodal.methods.dualdann._expression.
expression_phase_check`) trains on 70 % of the cells, keeps its best epoch on 15 % (macro-F1) and is
scored on the other 15 %, over ``--repeats`` stratified splits (G2M has only 2–3 test cells per split,
so one split says little). Baselines on the same splits and the same principal components: always
predicting the majority phase, and a logistic regression (scikit-learn).

    python benchmarks/dualdann_pbmc68k_phase.py      # → benchmarks/results/dualdann_pbmc68k_phase.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

import numpy as np

from xmodal.families.multiome._data import PHASES
from xmodal.methods.dualdann import DualDANNConfig
from xmodal.methods.dualdann._expression import expression_phase_check, split_stratified
from xmodal.methods.dualdann._source import PCAEncoder
from xmodal.metrics import classification_metrics

KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "cohen_kappa", "f1_G1", "f1_S", "f1_G2M")


def _baselines(x: np.ndarray, phases: np.ndarray, split: np.ndarray, *, n_pcs: int) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression

    train, test = split == "train", split == "test"
    majority = max(PHASES, key=lambda p: int(np.sum(phases[train] == p)))
    pca = PCAEncoder.fit(x[train], n_components=n_pcs)
    clf = LogisticRegression(max_iter=5000).fit(pca.transform(x[train]), phases[train])
    return {"majority": classification_metrics(phases[test], np.full(int(test.sum()), majority), classes=PHASES),
            "logistic_regression": classification_metrics(phases[test], clf.predict(pca.transform(x[test])),
                                                          classes=PHASES)}


def _summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in KEYS:
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="stratified splits (split seeds 0..repeats-1)")
    parser.add_argument("--output", default=None, help="default: results/dualdann_pbmc68k_phase.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    args.output = args.output or str(Path(__file__).parent / "results" / ("quick" if args.quick else "")
                                     / "dualdann_pbmc68k_phase.json")

    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = sc.datasets.pbmc68k_reduced()
    x = np.asarray(adata.raw.X.toarray() if hasattr(adata.raw.X, "toarray") else adata.raw.X, dtype=np.float32)
    phases = adata.obs["phase"].astype(str).to_numpy()
    cfg = DualDANNConfig(epochs=3) if args.quick else DualDANNConfig()
    results: dict[str, list[dict[str, float]]] = {"dualdann_rna": [], "majority": [], "logistic_regression": []}
    kept = []
    for seed in range(args.repeats):
        split = split_stratified(phases, seed=seed)
        check = expression_phase_check(x, phases, split, config=cfg, seed=seed)
        results["dualdann_rna"].append(check.test)
        kept.append(check.best_epoch)
        for name, metrics in _baselines(x, phases, split, n_pcs=cfg.source_pcs).items():
            results[name].append(metrics)
        print(f"split {seed}: dualdann macro-F1 {check.test['macro_f1']:.3f} (epoch {check.best_epoch}), "
              f"accuracy {check.test['accuracy']:.3f}; logistic regression macro-F1 "
              f"{results['logistic_regression'][-1]['macro_f1']:.3f}; majority accuracy "
              f"{results['majority'][-1]['accuracy']:.3f}", flush=True)
    out = {
        "check": "dualdann expression-side phase classifier on scanpy's pbmc68k_reduced",
        "quick": args.quick,
        "cells": int(adata.n_obs), "genes": int(adata.raw.shape[1]),
        "phases": {p: int(np.sum(phases == p)) for p in PHASES},
        "splits": {"train": 0.70, "validation": 0.15, "test": 0.15, "repeats": args.repeats},
        "kept_epochs": kept,
        "summary": {name: _summary(runs) for name, runs in results.items()},
        "runs": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
