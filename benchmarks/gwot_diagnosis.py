"""Which of gwot's choices break data that behaves like real paired measurements: one change at a time.

Every dataset is fitted unpaired (gwot never reads the pairing) on all its cells and scored on them, as SCOT
reports: FOSCTTM against the true pairs, kNN (k=5) label transfer B → A (accuracy and macro-F1), the GW
distance of the chosen coupling and seconds. Datasets:

* ``pbmc68k`` (700 real PBMCs, two disjoint gene panels) and a 400-cell subset of it;
* ``multiome_counts``: the SNARE-seq-like simulation, 2 000 genes and 6 000 binary peaks, through the pipeline's
  preprocessing (log1p, top genes, z-score, 30 PCs);
* ``multiome_reduced`` (seeds 0, 1, 2): the same experiment shipped as published paired sets are, 10 RNA PCs and
  19 ATAC topic proportions;
* ``synthetic_paired`` (the demo's data).

Configurations: ``before`` (the gwot of the previous release, with its z-scoring preprocessing), ``scot``
(SCOT's published configuration), ``scot_tuned`` (with SCOT's self-tuning; only with ``--tuned``, 20 solves
per dataset), and the current default with one choice put back at a time.

    python benchmarks/gwot_diagnosis.py                     # writes results/gwot_diagnosis.json
    python benchmarks/gwot_diagnosis.py --datasets pbmc68k --configs default before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xmodal.families.paired import (  # noqa: E402
    PairedPreprocessConfig,
    pbmc68k_paired,
    simulated_multiome,
    synthetic_paired,
)
from xmodal.families.paired._preprocess import fit_preprocessor  # noqa: E402
from xmodal.methods.gwot import GWOT, GWOTConfig  # noqa: E402
from xmodal.metrics.alignment import foscttm, knn_label_transfer, matching_accuracy  # noqa: E402

BEFORE = {"normalize": "none", "distance": "euclidean", "epsilon": 5e-3, "anneal_steps": 3, "max_iter": 100,
          "tol": 1e-7, "init": "product", "n_init": 1, "n_neighbors": 50}
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (GWOTConfig fields, PairedPreprocessConfig fields)
    "default": ({}, {}),
    "before": (BEFORE, {"scale": True}),
    "scot": ({"preset": "scot"}, {}),
    "scot_tuned": ({"preset": "scot_tuned"}, {}),
    "z-scored features": ({}, {"scale": True}),
    "no per-cell L2": ({"normalize": "none"}, {}),
    "product start only": ({"init": "product", "n_init": 1}, {}),
    "one start": ({"n_init": 1}, {}),
    "annealed epsilon": ({"anneal_steps": 3, "epsilon": 5e-3}, {}),
    "hop-count graph": ({"distance": "geodesic", "graph": "connectivity"}, {}),
    "weighted graph": ({"distance": "geodesic", "graph": "distance"}, {}),
    "euclidean": ({"distance": "euclidean"}, {}),
}


def _subset(data, n: int, seed: int):
    keep = np.sort(np.random.default_rng(seed).choice(data.a.n_obs, size=n, replace=False))
    a = data.a[keep]
    return replace(data, a=a, b=data.b[[data.b.obs_names.get_loc(m) for m in a.obs["match"]]])


DATASETS = {
    "pbmc68k": lambda: pbmc68k_paired(),
    "pbmc68k_400": lambda: _subset(pbmc68k_paired(), 400, 0),
    "multiome_counts": lambda: simulated_multiome(features="counts"),
    "multiome_reduced": lambda: simulated_multiome(features="reduced"),
    "multiome_reduced_s1": lambda: simulated_multiome(features="reduced", seed=1),
    "multiome_reduced_s2": lambda: simulated_multiome(features="reduced", seed=2),
    "synthetic_paired": lambda: synthetic_paired(),
}


def _preprocessed(data, overrides: dict[str, Any]):
    cfg = PairedPreprocessConfig(**overrides)

    def one(adata: ad.AnnData, kind: str) -> ad.AnnData:
        x = fit_preprocessor(adata, cfg=cfg, kind=kind, name="x").transform(adata)
        return ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame(index=[f"f{i}" for i in range(x.shape[1])]))

    counts = [bool(np.all(np.asarray(m.X) == np.round(np.asarray(m.X))) and np.asarray(m.X).min() >= 0)
              for m in (data.a, data.b)]
    return replace(data, a=one(data.a, "counts" if counts[0] else "continuous"),
                   b=one(data.b, "counts" if counts[1] else "continuous"))


def score(data, z_a: np.ndarray, z_b: np.ndarray) -> dict[str, float]:
    """FOSCTTM against the true pairs, kNN (k=5) label transfer B → A, matching top-1/top-5."""
    pairs = np.array([data.b.obs_names.get_loc(m) for m in data.a.obs["match"]])
    transfer = knn_label_transfer(z_a, data.a.obs["label"].astype(str).to_numpy(), z_b,
                                  data.b.obs["label"].astype(str).to_numpy(), k=5)
    return {"foscttm": foscttm(z_a, z_b[pairs]), "label_transfer_accuracy": transfer["label_transfer_accuracy"],
            "label_transfer_macro_f1": transfer["label_transfer_macro_f1"],
            **matching_accuracy(z_a, z_b[pairs], ks=(1, 5))}


def run_one(data, gwot: dict[str, Any], prep: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """Preprocess, fit, score one configuration on one dataset."""
    data = _preprocessed(data, prep)
    start = time.perf_counter()
    model = GWOT(GWOTConfig(**gwot)).fit(data, seed=seed)
    seconds = time.perf_counter() - start
    z_a, z_b = model.transform(data.a.X, modality="a"), model.transform(data.b.X, modality="b")
    return {**score(data, z_a, z_b), "gw_distance": model.info["gw_distance"], "n_neighbors": model.info["n_neighbors"],
            "epsilon": model.info["epsilon"], "start": model.info["init"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=[c for c in CONFIGS if c != "scot_tuned"],
                        choices=list(CONFIGS))
    parser.add_argument("--tuned", action="store_true", help="also run scot_tuned (20 solves per dataset)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/gwot_diagnosis.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true", help="150 synthetic cells, two configurations: checks that "
                        "the benchmark runs (`make test`); its figures mean nothing")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in the JSON at --out and run "
                        "only the (dataset, configuration) pairs it lacks; a run split over several sessions "
                        "accumulates in one file")
    parser.add_argument("--table", action="store_true", help="print a markdown table (FOSCTTM / label transfer, one "
                        "row per dataset, one column per configuration) from the JSON at --out and exit")
    args = parser.parse_args()
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "gwot_diagnosis.json"
    if args.quick:
        DATASETS["tiny"] = lambda: synthetic_paired(n_cells=150, dim_a=12, dim_b=40, n_clusters=3, seed=1)
        args.datasets, args.configs = ["tiny"], ["default", "before"]
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())["rows"]))
        return
    configs = args.configs + (["scot_tuned"] if args.tuned and "scot_tuned" not in args.configs else [])
    rows = json.loads(args.out.read_text())["rows"] if args.resume and args.out.exists() else []
    done = {(r["dataset"], r["config"]) for r in rows}
    for name in args.datasets:
        todo = [c for c in configs if (name, c) not in done]
        if not todo:
            continue
        data = DATASETS[name]()
        chance = float(data.a.obs["label"].value_counts(normalize=True).max())
        for config in todo:
            gwot, prep = CONFIGS[config]
            row = {"dataset": name, "config": config, "n_a": data.a.n_obs, "n_b": data.b.n_obs,
                   "majority_class": chance, **run_one(data, gwot, prep)}
            rows.append(row)
            print(f"{name:>20} {config:>20}: FOSCTTM {row['foscttm']:.3f}  label transfer "
                  f"{row['label_transfer_accuracy']:.3f} (majority {chance:.2f})  GW {row['gw_distance']:.4g}  "
                  f"{row['seconds']:.1f} s", flush=True)
            _write(args.out, rows, quick=args.quick, complete=False)  # a stopped run keeps what it measured
    every = {(d, c) for d in args.datasets for c in configs}
    _write(args.out, rows, quick=args.quick, complete=every <= {(r["dataset"], r["config"]) for r in rows})
    print(f"wrote {args.out}")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """FOSCTTM / label-transfer accuracy per dataset (rows) and configuration (columns); a dash where not run."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    configs = [c for c in CONFIGS if any(r["config"] == c for r in rows)]
    cell = {(r["dataset"], r["config"]): f"{r['foscttm']:.3f} / {r['label_transfer_accuracy']:.3f}" for r in rows}
    chance = {r["dataset"]: r["majority_class"] for r in rows}
    lines = ["| dataset (cells) | majority class | " + " | ".join(configs) + " |",
             "|---|---|" + "---|" * len(configs)]
    for d in datasets:
        n = next(r["n_a"] for r in rows if r["dataset"] == d)
        lines.append(f"| {d} ({n}) | {chance[d]:.2f} | " + " | ".join(cell.get((d, c), "–") for c in configs) + " |")
    return "\n".join(lines)


def _write(out: Path, rows: list[dict[str, Any]], *, quick: bool, complete: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "gwot_diagnosis", "quick": quick, "complete": complete,
                               "machine": platform.machine(), "cpus": os.cpu_count(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
