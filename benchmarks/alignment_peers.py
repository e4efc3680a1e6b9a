"""xmodal's alignment methods and their published peers, side by side, on the same cells, in one run.

Methods: ``gwot`` (xmodal's default), ``scot`` (SCOT's published configuration, our preset), ``geoadvae``
(seed 000, unpaired), and the peers ``pamona``, ``moscot`` (its generic ``GWProblem``) and ``unioncom``. The
peers run in their own virtual environment (``make peers``: the ``peers`` extra of ``pyproject.toml``, kept
out of the project's lock), each method in a fresh process so its peak memory is its own. A peer that does not
install or import is listed with the reason.

Every method sees the same preprocessed features (the pipeline's defaults) and never the pairing; all cells are
aligned and scored, as the peers' papers do: FOSCTTM, kNN (k=5) label transfer B → A (accuracy, macro-F1),
matching top-1/top-5, seconds and peak RSS of the method's process.

    make peers && python benchmarks/alignment_peers.py          # writes results/alignment_peers.json
    python benchmarks/alignment_peers.py --methods gwot pamona --datasets pbmc68k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import PEAK_RSS_SOURCE  # noqa: E402 - the child's own peak, not its parent's

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".peers" / "bin" / "python"
DATASETS = ("pbmc68k", "multiome_reduced", "multiome_counts")
METHODS = ("gwot", "scot", "geoadvae", "pamona", "moscot", "unioncom")
PEERS = {"pamona", "moscot", "unioncom"}

# Each child reads x_a, x_b from an .npz, writes z_a, z_b (and seconds) to another; peak RSS is read by the parent.
CHILD = {
    "gwot": r"""
import anndata as ad, numpy as np, sys, time
from xmodal.families.paired import PairedData
from xmodal.methods.gwot import GWOT, GWOTConfig
d = np.load(sys.argv[1]); cfg = GWOTConfig(**({"preset": "scot"} if sys.argv[3] == "scot" else {}))
data = PairedData(a=ad.AnnData(d["x_a"]), b=ad.AnnData(d["x_b"]), names=("a", "b"))
t = time.perf_counter(); m = GWOT(cfg).fit(data, seed=0)
z_a, z_b = m.transform(d["x_a"], modality="a"), m.transform(d["x_b"], modality="b")
np.savez(sys.argv[2], z_a=z_a, z_b=z_b, seconds=time.perf_counter() - t)
""",
    "geoadvae": r"""
import anndata as ad, numpy as np, pandas as pd, sys, time, torch
torch.set_num_threads(1)
from xmodal.config import load_params
from xmodal.families.paired import PairedData
from xmodal.methods.geoadvae import GeoAdVAE
d = np.load(sys.argv[1])
cfg = load_params(sys.argv[4] + "/params.yaml").methods["geoadvae"].model_copy(update={"mode": "unpaired"})
split = lambda n: pd.DataFrame({"split": pd.Categorical(["train"] * n, categories=["train", "validation", "test"])})
a, b = ad.AnnData(d["x_a"], obs=split(len(d["x_a"]))), ad.AnnData(d["x_b"], obs=split(len(d["x_b"])))
t = time.perf_counter(); m = GeoAdVAE(cfg).fit(PairedData(a=a, b=b, names=("a", "b")), seed=0)
z_a, z_b = m.transform(d["x_a"], modality="a"), m.transform(d["x_b"], modality="b")
np.savez(sys.argv[2], z_a=z_a, z_b=z_b, seconds=time.perf_counter() - t)
""",
    "pamona": r"""
import numpy as np, sys, time, contextlib, io
from pamona import Pamona
d = np.load(sys.argv[1]); t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    (z_a, z_b), _ = Pamona.Pamona().run_Pamona([d["x_a"], d["x_b"]])
np.savez(sys.argv[2], z_a=np.real(z_a), z_b=np.real(z_b), seconds=time.perf_counter() - t)
""",
    "moscot": r"""
import anndata as ad, numpy as np, pandas as pd, sys, time
from moscot.problems.generic import GWProblem
d = np.load(sys.argv[1]); x_a, x_b = d["x_a"], d["x_b"]
width = max(x_a.shape[1], x_b.shape[1])  # zero-padding leaves each modality's own distances unchanged
pad = lambda x: np.hstack([x, np.zeros((len(x), width - x.shape[1]))])
adata = ad.AnnData(np.zeros((len(x_a) + len(x_b), 1)),
                   obs=pd.DataFrame({"m": pd.Categorical(["a"] * len(x_a) + ["b"] * len(x_b))}))
adata.obsm["X"] = np.vstack([pad(x_a), pad(x_b)])
t = time.perf_counter()
problem = GWProblem(adata).prepare(key="m", x_attr={"attr": "obsm", "key": "X"}, y_attr={"attr": "obsm", "key": "X"},
                                   policy="explicit", subset=[("a", "b")]).solve()
plan = np.asarray(problem[("a", "b")].solution.transport_matrix)
z_b = (plan.T @ x_a) / plan.sum(axis=0)[:, None]
np.savez(sys.argv[2], z_a=x_a, z_b=z_b, seconds=time.perf_counter() - t)
""",
    "unioncom": r"""
import numpy as np, sys, time
from unioncom import UnionCom
d = np.load(sys.argv[1]); t = time.perf_counter()
z_a, z_b = UnionCom.UnionCom().fit_transform([d["x_a"], d["x_b"]])
np.savez(sys.argv[2], z_a=z_a, z_b=z_b, seconds=time.perf_counter() - t)
""",
}


def load(name: str):
    """The dataset, preprocessed with the pipeline's defaults (every method gets these features)."""
    sys.path.insert(0, str(HERE))
    from gwot_diagnosis import DATASETS as ALL
    from gwot_diagnosis import _preprocessed

    return _preprocessed(ALL[name](), {})


def score(data, z_a: np.ndarray, z_b: np.ndarray) -> dict:
    """The diagnosis benchmark's scores (one definition for both benchmarks)."""
    from gwot_diagnosis import score as diagnosis_score

    return diagnosis_score(data, z_a, z_b)


def run_method(method: str, x_a: np.ndarray, x_b: np.ndarray, *, timeout: float) -> dict:
    """Run one method in its own process; returns z_a, z_b, seconds, peak RSS, or the reason it did not run."""
    python = str(PEERS_PYTHON) if method in PEERS else sys.executable
    if method in PEERS and not PEERS_PYTHON.exists():
        return {"not_runnable": f"no peers environment at {PEERS_PYTHON.relative_to(HERE.parent)} (run `make peers`)"}
    with tempfile.TemporaryDirectory() as tmp:
        src, out, script = Path(tmp, "in.npz"), Path(tmp, "out.npz"), Path(tmp, "child.py")
        np.savez(src, x_a=x_a, x_b=x_b)
        kind = "scot" if method == "scot" else "default"
        script.write_text(CHILD["gwot" if method == "scot" else method] + PEAK_RSS_SOURCE + "\nimport json\n"
                          "print(json.dumps({'peak_rss_mib': peak_mib()}))\n")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}
        try:
            proc = subprocess.run([python, str(script), str(src), str(out), kind, str(HERE.parent)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"not_runnable": f"took longer than {timeout:.0f} s"}
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            return {"not_runnable": lines[-1] if lines else f"exit code {proc.returncode}"}
        got = np.load(out)
        rss = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mib"]
        return {"z_a": got["z_a"], "z_b": got["z_b"], "seconds": float(got["seconds"]), "peak_rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one method may take on one dataset")
    parser.add_argument("--out", type=Path, default=None, help="default: results/alignment_peers.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true", help="150 cells of pbmc68k, gwot and scot only, few "
                        "iterations: checks that the benchmark runs (`make test`); its figures mean nothing")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in the JSON at --out and run "
                        "only the (dataset, method) pairs it lacks")
    parser.add_argument("--table", action="store_true", help="print the README's markdown table from the JSON at "
                        "--out (or results/alignment_peers.json) and exit")
    args = parser.parse_args()
    args.out = args.out or HERE / "results" / ("quick" if args.quick else "") / "alignment_peers.json"
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())["rows"]))
        return
    rows = json.loads(args.out.read_text())["rows"] if args.resume and args.out.exists() else []
    done = {(r["dataset"], r["method"]) for r in rows}
    for name in (["pbmc68k"] if args.quick else args.datasets):
        todo = [m for m in (["gwot", "pamona"] if args.quick else args.methods) if (name, m) not in done]
        if not todo:
            continue
        data = load(name)
        if args.quick:
            from gwot_diagnosis import _subset

            data = _subset(data, 150, 0)
        x_a, x_b = np.asarray(data.a.X, dtype=np.float64), np.asarray(data.b.X, dtype=np.float64)
        for method in todo:
            got = run_method(method, x_a, x_b, timeout=args.timeout)
            row = {"dataset": name, "method": method, "n_a": len(x_a), "n_b": len(x_b), "peer": method in PEERS}
            if "not_runnable" in got:
                row["not_runnable"] = got["not_runnable"]
                print(f"{name:>18} {method:>9}: not runnable — {got['not_runnable']}", flush=True)
            else:
                row.update(score(data, got["z_a"], got["z_b"]), seconds=got["seconds"], peak_rss_mib=got["peak_rss_mib"])
                print(f"{name:>18} {method:>9}: FOSCTTM {row['foscttm']:.3f}  label transfer "
                      f"{row['label_transfer_accuracy']:.3f} / F1 {row['label_transfer_macro_f1']:.3f}  "
                      f"{row['seconds']:.1f} s  {row['peak_rss_mib']:.0f} MiB", flush=True)
            rows.append(row)
            _write(args.out, rows, quick=args.quick, complete=False)  # a stopped run keeps what it measured
    _write(args.out, rows, quick=args.quick, complete=True)
    print(f"wrote {args.out}")


def markdown_table(rows: list[dict]) -> str:
    """Datasets × methods: FOSCTTM / label transfer accuracy / macro-F1, seconds, peak RSS (or why not run)."""
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines = ["| dataset | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for name in datasets:
        cells = []
        for method in methods:
            row = next((r for r in rows if r["dataset"] == name and r["method"] == method), None)
            if row is None:
                cells.append("not run")
            elif "not_runnable" in row:
                cells.append(f"not runnable: {row['not_runnable']}")
            else:
                cells.append(f"{row['foscttm']:.3f} / {row['label_transfer_accuracy']:.3f} / "
                             f"{row['label_transfer_macro_f1']:.3f}, {row['seconds']:.0f} s, {row['peak_rss_mib']:.0f} MiB")
        n = next(r["n_a"] for r in rows if r["dataset"] == name)
        lines.append(f"| {name} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: Path, rows: list[dict], *, quick: bool, complete: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "alignment_peers", "quick": quick, "complete": complete,
                               "machine": platform.machine(), "cpus": os.cpu_count(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
