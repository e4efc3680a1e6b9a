"""Overhead of the orchestrators: one lifecycle run directly, through ``dvc repro``, through ``kfp.local``.

The same work each time — ingest → preprocess → train → evaluate → register (MLflow, sqlite) of
``gwot`` on one synthetic paired dataset — in a fresh temporary project per mode:

- ``direct``: the stage functions called one after another in one fresh Python process (the baseline: what
  a script calling the library does, imports paid once);
- ``direct_warm``: the same in this process, imports already warm (a lower bound);
- ``dvc``: ``dvc repro`` of the project's own ``dvc.yaml`` in a temporary git repo, then ``xmodal register``;
- ``kfp_local``: ``xmodal pipeline run --local`` (``kfp.local.SubprocessRunner(use_venv=False)``).

Wall times (best and median of the repeats) and their ratios to ``direct`` go to
``benchmarks/results/pipeline_overhead.json``.

    python benchmarks/pipeline_overhead.py                   # 800 cells (the demo's size)
    python benchmarks/pipeline_overhead.py --n-cells 300 --repeats 1 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _params(n_cells: int) -> dict[str, Any]:
    return {
        "seed": 0,
        "threads": 1,
        "datasets": {"bench": {"family": "paired",
                               "source": {"kind": "synthetic", "n_cells": n_cells, "n_clusters": 6, "seed": 0}}},
        "split": {},  # dvc.yaml declares it: DVC needs the key (the defaults apply)
        "preprocess": {"paired": {"n_pcs": 30}},
        "methods": {"gwot": {"max_iter": 100, "tol": 1.0e-7}},
        "evaluate": {"embedding_plot": "pca"},
        "runs": {"bench-gwot": {"dataset": "bench", "method": "gwot"}},
    }


def _project(params: dict[str, Any], *, with_dvc: bool) -> Path:
    root = Path(tempfile.mkdtemp(prefix="xmodal-bench-"))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    if with_dvc:
        shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
        shutil.copytree(REPO / "src" / "xmodal", root / "src" / "xmodal", symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return root


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run_direct(params: dict[str, Any]) -> float:
    """The stages called one after another in a fresh Python process (start-up and imports included)."""
    root = _project(params, with_dvc=False)
    code = ("from xmodal import stages\n"
            "from xmodal.config import load_params\n"
            "p = load_params('params.yaml')\n"
            "stages.ingest.run(p, dataset='bench')\n"
            "stages.preprocess.run(p, dataset='bench')\n"
            "stages.train.run(p, dataset='bench', method='gwot')\n"
            "stages.evaluate.run(p, dataset='bench', method='gwot')\n"
            "stages.register.run(p, dataset='bench', method='gwot')\n")
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=root, env=_env(), check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_direct_warm(params: dict[str, Any]) -> float:
    """The stages called in this process (imports warm after the first repeat)."""
    from xmodal import stages
    from xmodal.config import params_from_dict

    root = _project(params, with_dvc=False)
    try:
        p = params_from_dict(params)
        start = time.perf_counter()
        stages.ingest.run(p, dataset="bench", root=root)
        stages.preprocess.run(p, dataset="bench", root=root)
        stages.train.run(p, dataset="bench", method="gwot", root=root)
        stages.evaluate.run(p, dataset="bench", method="gwot", root=root)
        decision = stages.register.run(p, dataset="bench", method="gwot", root=root).decision
        seconds = time.perf_counter() - start
        assert decision["decision"] in ("promoted", "rejected"), decision
        return seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_dvc(params: dict[str, Any]) -> float:
    """``dvc repro`` then ``xmodal register --all``, as ``make demo`` does."""
    root = _project(params, with_dvc=True)
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root, env=_env(), check=True)
        subprocess.run([str(BIN / "xmodal"), "register", "--all"], cwd=root, env=_env(), check=True,
                       capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_kfp_local(params: dict[str, Any]) -> float:
    """``xmodal pipeline run --local``."""
    root = _project(params, with_dvc=False)
    try:
        start = time.perf_counter()
        subprocess.run([str(BIN / "xmodal"), "pipeline", "run", "--local"], cwd=root, env=_env(), check=True,
                       capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-cells", type=int, default=800, help="cells per modality (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode; the minimum is kept")
    parser.add_argument("--out", type=Path, default=None, help="default: results/pipeline_overhead.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.n_cells, args.repeats = 120, 1
    args.out = args.out or REPO / "benchmarks" / "results" / ("quick" if args.quick else "") / "pipeline_overhead.json"
    params = _params(args.n_cells)
    modes = {"direct": run_direct, "direct_warm": run_direct_warm, "dvc": run_dvc, "kfp_local": run_kfp_local}
    times: dict[str, list[float]] = {name: [] for name in modes}
    for repeat in range(args.repeats):
        for name, fn in modes.items():
            times[name].append(fn(params))
            sys.stderr.write(f"repeat {repeat + 1}/{args.repeats} {name}: {times[name][-1]:.1f} s\n")
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "pipeline_overhead",
        "n_cells": args.n_cells,
        "quick": args.quick,
        "repeats": args.repeats,
        "seconds": best,
        "median_seconds": median,
        "all_seconds": times,
        "ratio_to_direct": {name: best[name] / best["direct"] for name in modes},
        "ratio_of_medians_to_direct": {name: median[name] / median["direct"] for name in modes},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result["ratio_to_direct"]) + "\n")


if __name__ == "__main__":
    main()
