"""Which matrices ``kinds: auto`` reads as counts, and what reading dense integer aggregates as counts costs.

The rule (:func:`xmodal.data._counts.judge_counts`): non-negative integers are counts unless they have no low end
(the 5th percentile of the values 100 or more, so no zeros and no small values: binned or aggregated
measurements). Before issue 28 every matrix of non-negative integers was counts, and ``log1p: auto`` then took its
log.

Three parts, each row with the rule's kind and reason:

* ``datasets``: every bundled and synthetic dataset of xmodal (``synthetic_paired``, the SNARE-seq-like simulation
  with counts and reduced features, ``pbmc68k_reduced``'s two panels, the ``multiome`` family's RNA and ATAC, the
  ``census`` family's counts), beside the kind xmodal gives it and the kind the old rule gave it;
* ``shapes``: realistic simulated shapes with the kind they should get (``either`` where nothing in the values
  can tell): negative-binomial UMI counts at several depths and panel sizes, binary-ish ATAC, dense integer
  aggregates spanning 1e2-1e5, dense Poisson at a low and a high mean, ordinal scores;
* ``gwot``: what it is for. ``synthetic_paired`` with its continuous modality A shifted and scaled into dense
  integers (each feature linearly onto [100, top], top log-uniform in 1e3-1e5, rounded; no zeros), fitted by gwot
  (defaults, all cells, unpaired) after the pipeline's preprocessing with ``log1p`` (the old ``auto``) and
  without (the rule's reading); FOSCTTM against the true pairs and kNN (k=5) label transfer B → A, on several
  seeds; the original continuous A as reference on the first seed.

    python benchmarks/counts_rule.py                 # writes results/counts_rule.json
    python benchmarks/counts_rule.py --quick         # small sizes, one seed (results/quick/): checks it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from xmodal.data._counts import LOW_END, LOW_PERCENTILE, judge_counts  # noqa: E402


def _old_rule(x: Any) -> str:
    """The rule before issue 28: counts when every value is a non-negative integer."""
    v = np.asarray(x.data if sp.issparse(x) else x, dtype=np.float64)
    return "counts" if bool((v >= 0).all() and (v == np.round(v)).all()) else "continuous"


def _row(name: str, x: Any, **extra: Any) -> dict[str, Any]:
    verdict = judge_counts(x)
    return {"name": name, "shape": list(x.shape), "kind": verdict.kind, "reason": verdict.reason,
            "zero_share": verdict.zero_share, "low": verdict.low, "median_nonzero": verdict.median,
            "old_rule": _old_rule(x), **extra}


# --------------------------------------------------------------------------- datasets
def dataset_rows(*, quick: bool) -> list[dict[str, Any]]:
    """The rule on every bundled and synthetic dataset; ``declared``: the kind xmodal gives it today."""
    from xmodal.families.census._synthetic import synthetic_census
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.paired import pbmc68k_paired, simulated_multiome, synthetic_paired

    small = {"n_cells": 200} if quick else {}
    rows = []
    d = synthetic_paired(**small)
    rows += [_row("synthetic_paired a (morphology-like)", d.a.X, declared="continuous"),
             _row("synthetic_paired b (expression counts)", d.b.X, declared="counts")]
    for features in ("counts", "reduced"):
        d = simulated_multiome(features=features, **small)
        kind = "counts" if features == "counts" else "continuous"
        rows += [_row(f"multiome simulation ({features}) a (ATAC)", d.a.X, declared=kind),
                 _row(f"multiome simulation ({features}) b (RNA)", d.b.X, declared=kind)]
    d = pbmc68k_paired()
    rows += [_row("pbmc68k_reduced a (panel 1)", d.a.X, declared="continuous"),
             _row("pbmc68k_reduced b (panel 2)", d.b.X, declared="continuous")]
    m = synthetic_multiome(n_cells=200 if quick else 1000)
    rows += [_row("synthetic_multiome rna", m.rna.X, declared="counts (CPM, log1p, L2)"),
             _row("synthetic_multiome atac", m.atac.X, declared="counts (CPM, log1p, L2)")]
    c = synthetic_census(n_cells=500 if quick else 6000, n_genes=200 if quick else 2000, seed=0)
    rows.append(_row("synthetic_census counts", c.counts, declared="counts (checked at ingest)"))
    for r in rows:
        r["agrees_with_declared"] = r["declared"].startswith(r["kind"])
        r["changed_from_old_rule"] = r["kind"] != r["old_rule"]
    return rows


# --------------------------------------------------------------------------- shapes
def _nb_counts(rng: np.random.Generator, *, cells: int, genes: int, depth: float, top: int | None = None,
               theta: float = 5.0) -> np.ndarray:
    """Negative-binomial UMI counts: log-normal gene abundances, log-normal library sizes around ``depth``."""
    p = rng.lognormal(0.0, 1.5, genes)
    p /= p.sum()
    lib = rng.lognormal(np.log(depth), 0.4, cells)
    x = rng.poisson(rng.gamma(theta, lib[:, None] * p[None, :] / theta)).astype(np.float64)
    return x if top is None else x[:, np.sort(np.argsort(-x.var(axis=0))[:top])]


def shape_rows(*, quick: bool, seed: int = 0) -> list[dict[str, Any]]:
    """The rule on realistic simulated shapes; ``expected``: the kind such data should get."""
    rng = np.random.default_rng(seed)
    cells = 100 if quick else 500
    rows = []
    panels = ([(2000, 200), (50, None)] if quick else
              [(20000, 2000), (2000, 200), (2000, None), (500, None), (200, None), (50, None)])
    depths = (1000, 100000) if quick else (1000, 5000, 20000, 100000)
    for genes, top in panels:
        for depth in depths:
            x = _nb_counts(rng, cells=cells, genes=genes, depth=depth, top=top)
            panel = f"{top} most variable of {genes} genes" if top else f"{genes} genes"
            rows.append(_row(f"NB UMI counts, {panel}, {depth} UMIs/cell", x, expected="counts"))
    atac = (rng.random((cells, 2000)) < 0.04).astype(np.float64)
    atac[rng.random(atac.shape) < 0.003] = 2.0
    rows.append(_row("binary-ish ATAC (4 % open, a few 2s)", atac, expected="counts"))
    rows.append(_row("binary ATAC (4 % open)", (rng.random((cells, 2000)) < 0.04).astype(np.float64),
                     expected="counts"))
    top = 10 ** rng.uniform(3, 5, 40)
    z = rng.random((cells, 40))
    rows.append(_row("dense integer aggregates, no zeros, 1e2-1e5", np.round(100 + z * (top - 100)),
                     expected="continuous"))
    agg = np.round(10 ** rng.uniform(2, 5, (cells, 40)))
    agg[rng.random(agg.shape) < 0.02] = 0
    rows.append(_row("dense integer aggregates, 2 % zeros (empty bins), log-uniform 1e2-1e5", agg,
                     expected="continuous"))
    # a count process, but by its values alone it cannot be told from an aggregate
    rows.append(_row("dense Poisson, mean 1000", rng.poisson(1000.0, (cells, 40)).astype(np.float64),
                     expected="either"))
    rows.append(_row("dense Poisson, mean 20", rng.poisson(20.0, (cells, 40)).astype(np.float64), expected="counts"))
    for background in (5, 20, 60):  # CITE-seq-like antibody counts: a negative and a positive population
        mean = np.where(rng.random((cells, 30)) < 0.4, rng.lognormal(np.log(500), 0.8, (cells, 30)),
                        rng.lognormal(np.log(background), 0.5, (cells, 30)))
        rows.append(_row(f"antibody counts, background {background}, positive 500",
                         rng.poisson(rng.gamma(5.0, mean / 5.0)).astype(np.float64), expected="counts"))
    rows.append(_row("dense integers 10-99 (uniform)", rng.integers(10, 100, (cells, 20)).astype(np.float64),
                     expected="either"))
    # not counts, but small integers: log1p barely bends them, and a counts kind only checks they stay integers
    rows.append(_row("ordinal scores 1-5", rng.integers(1, 6, (cells, 20)).astype(np.float64), expected="either"))
    rows.append(_row("ordinal scores 0-4", rng.integers(0, 5, (cells, 20)).astype(np.float64), expected="either"))
    for r in rows:
        r["agrees"] = r["expected"] in ("either", r["kind"])
    return rows


# --------------------------------------------------------------------------- gwot
def _aggregates(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each feature linearly onto [100, top] (top log-uniform in 1e3-1e5), rounded: dense integers, no zeros."""
    lo, hi = a.min(axis=0), a.max(axis=0)
    top = 10 ** rng.uniform(3, 5, a.shape[1])
    return np.round(100 + (a - lo) / np.where(hi > lo, hi - lo, 1) * (top - 100))


def gwot_rows(*, quick: bool, seeds: list[int]) -> list[dict[str, Any]]:
    """gwot on synthetic_paired with modality A as dense integer aggregates, with and without log1p."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gwot_diagnosis import score

    from xmodal.families.paired import PairedPreprocessConfig, synthetic_paired
    from xmodal.families.paired._preprocess import fit_preprocessor
    from xmodal.methods.gwot import GWOT, GWOTConfig

    rows = []
    cfg = PairedPreprocessConfig()
    fast = {"max_iter": 30, "n_init": 1, "distance": "euclidean"} if quick else {}
    for seed in seeds:
        data = synthetic_paired(**({"n_cells": 150, "dim_b": 60} if quick else {}), seed=seed)
        x = _aggregates(np.asarray(data.a.X, dtype=np.float64), np.random.default_rng(seed))
        agg = ad.AnnData(X=x.astype(np.float32), obs=data.a.obs.copy(), var=data.a.var.copy())
        verdict = judge_counts(agg.X)
        arms = {"aggregates, log1p (old auto: counts)": (agg, "counts"),
                f"aggregates, no log1p (rule: {verdict.kind})": (agg, verdict.kind)}
        if seed == seeds[0]:  # the reference (z-scoring undoes the linear map: the no-log1p arm is expected to match)
            arms = {"original continuous A": (data.a, "continuous"), **arms}
        for arm, (a, kind) in arms.items():
            def prep(m: ad.AnnData, k: str) -> ad.AnnData:
                z = fit_preprocessor(m, cfg=cfg, kind=k, name="x").transform(m)
                return ad.AnnData(X=z, obs=m.obs.copy(), var=pd.DataFrame(index=[f"f{i}" for i in range(z.shape[1])]))

            run = replace(data, a=prep(a, kind), b=prep(data.b, "counts"))
            start = time.perf_counter()
            model = GWOT(GWOTConfig(**fast)).fit(run, seed=0)
            seconds = time.perf_counter() - start
            z_a, z_b = model.transform(run.a.X, modality="a"), model.transform(run.b.X, modality="b")
            s = score(run, z_a, z_b)
            rows.append({"seed": seed, "arm": arm, "kind_a": kind, "log1p_a": kind == "counts",
                         "n_cells": int(data.a.n_obs), "foscttm": s["foscttm"],
                         "label_transfer_accuracy": s["label_transfer_accuracy"], "seconds": seconds,
                         "reason_a": verdict.reason if a is agg else "continuous"})
            print(f"seed {seed} {arm:>44}: FOSCTTM {s['foscttm']:.3f}  label transfer "
                  f"{s['label_transfer_accuracy']:.3f}  {seconds:.1f} s", flush=True)
    return rows


def gwot_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean FOSCTTM and label transfer per arm over the seeds."""
    out = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        out[arm] = {"foscttm": float(np.mean([r["foscttm"] for r in mine])),
                    "label_transfer_accuracy": float(np.mean([r["label_transfer_accuracy"] for r in mine])),
                    "seeds": len(mine)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="default: results/counts_rule.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one seed, a fast gwot: checks that the "
                        "benchmark runs (`make test`); its gwot figures mean nothing")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic_paired experiments")
    args = parser.parse_args()
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "counts_rule.json"
    datasets = dataset_rows(quick=args.quick)
    shapes = shape_rows(quick=args.quick)
    for r in datasets + shapes:
        print(f"{r['name']:>70}: {r['kind']:<10} ({r['reason']})", flush=True)
    gwot = gwot_rows(quick=args.quick, seeds=args.seeds[:1] if args.quick else args.seeds)
    result = {"benchmark": "counts_rule", "quick": args.quick, "machine": platform.machine(), "cpus": os.cpu_count(),
              "rule": {"low_percentile": LOW_PERCENTILE, "low_end": LOW_END}, "datasets": datasets, "shapes": shapes,
              "shapes_agree": sum(r["agrees"] for r in shapes), "shapes_total": len(shapes),
              "datasets_changed_from_old_rule": [r["name"] for r in datasets if r["changed_from_old_rule"]],
              "gwot": gwot, "gwot_summary": gwot_summary(gwot)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["gwot_summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
