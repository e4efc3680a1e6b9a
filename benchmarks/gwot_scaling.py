"""Wall time, peak memory and FOSCTTM of gwot vs. cells per modality, for the exact and the anchor solver.

Each (size, solver) runs in a fresh subprocess, so its peak RSS is its own, on synthetic paired data
preprocessed like the demo. FOSCTTM is computed on a seeded random sample of at most 5 000 true pairs (an
unbiased estimate of the full FOSCTTM, which is O(n²) to compute). Growth exponents b of ``t ≈ a·n^b`` are
fitted by least squares in log-log space, per solver. A size whose estimated memory does not fit is recorded
as skipped, with the reason.

    python benchmarks/gwot_scaling.py                              # exact ≤ 4 000; anchors to 10^6
    python benchmarks/gwot_scaling.py --exact 500 1000 --anchors 1000 10000 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import PEAK_RSS_SOURCE  # noqa: E402 - the child's own peak, not its parent's

CHILD = r"""
import json, os, resource, sys, time
PEAK_RSS_SOURCE
import numpy as np
from xmodal.config import SplitConfig
from xmodal.families.paired import PairedPreprocessConfig, assign_split, preprocess_paired, synthetic_paired
from xmodal.methods.gwot import GWOT, GWOTConfig
from xmodal.metrics.alignment import foscttm
n, solver, overrides, dims = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
t0 = time.perf_counter()
data = synthetic_paired(n_cells=int(round(n / 0.95)), seed=0, dim_a=dims[0], dim_b=dims[1])
data, _ = preprocess_paired(assign_split(data, split=SplitConfig(validation_fraction=0.025, test_fraction=0.025)),
                            cfg=PairedPreprocessConfig(n_pcs=dims[2], n_top_features=None))
train = data.split("train")
prep_seconds = time.perf_counter() - t0
rss0 = peak_mib() * 1024
t = time.perf_counter()
model = GWOT(GWOTConfig(solver=solver, **overrides)).fit(train, seed=0)
seconds = time.perf_counter() - t
rss1 = peak_mib() * 1024
ia = np.flatnonzero(train.a.obs["match"].isin(train.b.obs_names))
ia = np.sort(np.random.default_rng(0).choice(ia, size=min(5000, len(ia)), replace=False))
ib = train.b.obs_names.get_indexer(train.a.obs["match"].to_numpy()[ia])
z_a = model.transform(np.asarray(train.a.X)[ia], modality="a")
z_b = model.transform(np.asarray(train.b.X)[ib], modality="b")
print(json.dumps({"n_a": train.a.n_obs, "n_b": train.b.n_obs, "solver": model.info["solver"], "seconds": seconds,
                  "prepare_seconds": prep_seconds, "iterations": model.info["n_iter"],
                  "n_reference": model.info["n_reference_a"], "foscttm": foscttm(z_a, z_b), "foscttm_pairs": len(ia),
                  "peak_rss_mib": rss1 / 1024, "peak_rss_increase_mib": (rss1 - rss0) / 1024}))
"""
CHILD = CHILD.replace("PEAK_RSS_SOURCE\n", PEAK_RSS_SOURCE)  # the child's own peak, not its parent's


def _exponent(rows: list[dict], value) -> float | None:
    """Slope b of log(value) = log(a) + b·log(n) over the rows (None with fewer than two sizes)."""
    if len(rows) < 2:
        return None
    return float(np.polyfit(np.log([r["n_a"] for r in rows]), np.log([value(r) for r in rows]), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exact", type=int, nargs="*", default=[500, 1000, 2000, 4000],
                        help="cells per modality for the exact solver")
    parser.add_argument("--anchors", type=int, nargs="*", default=[1000, 4000, 10_000, 100_000, 1_000_000],
                        help="cells per modality for the anchor solver")
    parser.add_argument("--config", default='{"n_init": 1}', help="GWOTConfig overrides as JSON")
    parser.add_argument("--dims", type=int, nargs=3, default=[40, 100, 20], metavar=("DIM_A", "DIM_B", "N_PCS"),
                        help="features of the two synthetic modalities and the PCs kept")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one size may take")
    parser.add_argument("--out", type=Path, default=None, help="default: results/gwot_scaling.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.exact, args.anchors = [100, 200], [200, 400]
        args.config = '{"n_init": 1, "max_iter": 5, "n_anchors": 50}'
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "gwot_scaling.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rows: list[dict] = []
    for solver, sizes in (("exact", args.exact), ("anchors", args.anchors)):
        for n in sizes:
            try:
                proc = subprocess.run([sys.executable, "-c", CHILD, str(n), solver, args.config, json.dumps(args.dims)],
                                      capture_output=True, text=True, env=env, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                rows.append({"n_a": n, "solver": solver, "skipped": f"took longer than --timeout {args.timeout:.0f} s"})
                print(f"{solver:>7} n={n:>8}: skipped (timeout)", flush=True)
                continue
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append({"n_a": n, "solver": solver, "skipped": reason})
                print(f"{solver:>7} n={n:>8}: skipped ({reason})", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{solver:>7} n={row['n_a']:>8}: {row['seconds']:8.1f} s  FOSCTTM {row['foscttm']:.3f}  "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
    result = {
        "benchmark": "gwot_scaling",
        "config": json.loads(args.config),
        "dims": args.dims,
        "quick": args.quick,
        "rows": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": env["OMP_NUM_THREADS"],
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None},
    }
    for solver in ("exact", "anchors"):
        done = [r for r in rows if r.get("solver") == solver and "skipped" not in r]
        result[f"{solver}_time_growth_exponent"] = _exponent(done, lambda r: r["seconds"])
        result[f"{solver}_memory_growth_exponent"] = _exponent(done, lambda r: max(r["peak_rss_mib"], 1e-3))
    both = sorted({r["n_a"] for r in rows if "skipped" not in r and r["solver"] == "exact"}
                  & {r["n_a"] for r in rows if "skipped" not in r and r["solver"] == "anchors"})
    if both:
        n = both[-1]
        pick = {r["solver"]: r for r in rows if r["n_a"] == n and "skipped" not in r}
        result["largest_size_both_ran"] = {"n": n, "foscttm_exact": pick["exact"]["foscttm"],
                                           "foscttm_anchors": pick["anchors"]["foscttm"],
                                           "difference": pick["anchors"]["foscttm"] - pick["exact"]["foscttm"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"exponents: exact time {result['exact_time_growth_exponent']}, anchors time "
          f"{result['anchors_time_growth_exponent']}, anchors memory {result['anchors_memory_growth_exponent']} "
          f"→ {args.out}")


if __name__ == "__main__":
    main()
