"""Wall time and peak memory of the gwot alignment vs. cells per modality; fitted growth exponents.

Each size runs in a fresh subprocess (so peak RSS is that size's own), on synthetic paired data
preprocessed like the demo (30 PCs). Times and memory are also reported as ratios to the smallest
size, and the growth exponent b of ``t ≈ a·n^b`` is fitted by least squares in log-log space.

    python benchmarks/gwot_scaling.py                  # n = 500 1000 2000 4000
    python benchmarks/gwot_scaling.py --sizes 500 1000 --out /tmp/x.json
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

CHILD = r"""
import json, resource, sys, time
import anndata as ad
from dataclasses import replace
from xmodal.config import SplitConfig
from xmodal.families.paired import PairedPreprocessConfig, assign_split, preprocess_paired, synthetic_paired
from xmodal.methods.gwot import GWOT, GWOTConfig
n = int(sys.argv[1])
cfg = PairedPreprocessConfig()
data = synthetic_paired(n_cells=int(round(n / 0.95)), seed=0)
data, _ = preprocess_paired(assign_split(data, split=SplitConfig(validation_fraction=0.025, test_fraction=0.025)),
                            cfg=cfg)
train = data.split("train")
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
model = GWOT(GWOTConfig(**json.loads(sys.argv[2]))).fit(train, seed=0)
seconds = time.perf_counter() - t
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n_a": train.a.n_obs, "n_b": train.b.n_obs, "seconds": seconds,
                  "iterations": len(model.history), "peak_rss_mib": rss1 / 1024,
                  "peak_rss_increase_mib": (rss1 - rss0) / 1024}))
"""


def _exponent(rows: list[dict], value) -> float | None:
    """Slope b of log(value) = log(a) + b·log(n) over the rows (None with fewer than two sizes)."""
    if len(rows) < 2:
        return None
    return float(np.polyfit(np.log([r["n_a"] for r in rows]), np.log([value(r) for r in rows]), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--config", default='{"max_iter": 100, "tol": 1e-7}', help="GWOTConfig overrides as JSON")
    parser.add_argument("--out", type=Path, default=None, help="default: results/gwot_scaling.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.config = [100, 200], '{"max_iter": 5, "anneal_steps": 1}'
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "gwot_scaling.json"
    rows = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(n), args.config],
                              capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"n={row['n_a']:>5}: {row['seconds']:8.1f} s  {row['iterations']:4d} it  "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
    base = rows[0]
    for row in rows:
        row["time_ratio"] = row["seconds"] / base["seconds"]
        row["memory_ratio"] = row["peak_rss_increase_mib"] / max(base["peak_rss_increase_mib"], 1e-9)
    result = {
        "benchmark": "gwot_scaling",
        "config": json.loads(args.config),
        "quick": args.quick,
        "rows": rows,
        "time_growth_exponent": _exponent(rows, lambda r: r["seconds"]),
        "time_per_iteration_growth_exponent": _exponent(rows, lambda r: r["seconds"] / r["iterations"]),
        "memory_growth_exponent": _exponent(rows, lambda r: max(r["peak_rss_increase_mib"], 1e-3)),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"time exponent {result['time_growth_exponent']}, memory exponent {result['memory_growth_exponent']} → {args.out}")


if __name__ == "__main__":
    main()
