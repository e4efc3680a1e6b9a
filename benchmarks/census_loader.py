"""Cells/s of the census streaming loader on one process, per backend, and its peak RSS at 1× and 10× the cells.

Data: Census-like sparse counts, 2 000 genes, about 7 % non-zero (a gene-specific detection probability and
``1 + Poisson`` values, as ``reference/census-notes.md`` measured), three categorical fields. Each size is
written once per backend, chunk by chunk (the writer never holds the matrix):

* ``npz``: seed 002's export, ``*_counts_<k>.npz`` (uncompressed ``save_npz``) + ``*_metadata_<k>.parquet``;
* ``soma``: xmodal's store (:func:`xmodal.families.census._soma.write_store`, Census's conventions);
* ``h5ad``: one ``.h5ad`` with CSR ``X``, read in row blocks.

Every (backend, size) is read in a fresh process, one full epoch through
:class:`~xmodal.families.census._stream.StreamPlan` (batch 128, buffers of 4 chunks of 10 000 cells, each batch a
dense float32 tensor plus int64 codes, as training sees it), so its peak RSS is its own. ``rss_ratio_10x`` is
the 10× run's peak over the 1× run's (flat: close to 1). Targets (issue 17): npz ≥ 100 000 cells/s, SOMA ≥
30 000 cells/s.

    python benchmarks/census_loader.py                     # 100 000 and 1 000 000 cells → results/census_loader.json
    python benchmarks/census_loader.py --cells 50000 --backends npz soma
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _rss import PEAK_RSS_SOURCE  # noqa: E402

BACKENDS = ("npz", "soma", "h5ad")
FIELDS = ["cell_type", "sex", "assay"]
VALUES = {"cell_type": [f"type_{i}" for i in range(12)], "sex": ["female", "male"],
          "assay": ["10x 3' v3", "10x 5' v2", "Smart-seq2"]}
CHUNK = 10_000

CHILD = r"""
import json, sys, time
import numpy as np
import pandas as pd
PEAK_RSS_SOURCE
backend, path, genes = sys.argv[1], sys.argv[2], int(sys.argv[3])
from xmodal.families.census._stream import StreamPlan
from xmodal.families.census._vocab import Vocabulary, FieldSpec
values = json.loads(sys.argv[4])
vocab = Vocabulary(values=values, specs=[FieldSpec(f, len(v), 0, 0, True) for f, v in values.items()])
if backend == "npz":
    from xmodal.families.census._readers import NpzChunks
    reader = NpzChunks(path, vocab)
elif backend == "soma":
    from xmodal.families.census._soma import SomaChunks
    reader = SomaChunks(path, vocab, chunk_size=10000)
else:
    from xmodal.families.census._readers import H5adChunks
    reader = H5adChunks(path, vocab, chunk_size=10000)
rss_open = peak_mib()
plan = StreamPlan(reader, batch_size=128, seed=0, buffer_chunks=4)
steps = plan.steps_in_epoch(0, 1)
t0 = time.perf_counter(); first = None; total = 0.0
for s in range(steps):
    b = plan(s, 0, 1)
    total += float(b["x"][:, 0].sum())
    if first is None:
        first = time.perf_counter() - t0
seconds = time.perf_counter() - t0
print(json.dumps({"cells": steps * 128, "seconds": seconds, "cells_per_s": steps * 128 / seconds,
                  "first_batch_s": first, "peak_rss_mib": peak_mib(), "rss_after_open_mib": rss_open,
                  "checksum": total}))
"""
CHILD = CHILD.replace("PEAK_RSS_SOURCE\n", PEAK_RSS_SOURCE)  # the child's own peak, not its parent's


def _chunks(n_cells: int, n_genes: int, seed: int):
    """Census-like chunks: gene-specific detection (about 7 % non-zero), ``1 + Poisson`` values, 3 fields."""
    rng = np.random.default_rng(seed)
    detect = np.clip(rng.lognormal(np.log(0.04), 1.0, size=n_genes), 0, 0.9)
    scale = 0.074 / detect.mean()
    for start in range(0, n_cells, CHUNK):
        rows = min(CHUNK, n_cells - start)
        mask = rng.random((rows, n_genes), dtype=np.float32) < (detect * scale)[None, :]
        r, c = np.nonzero(mask)
        data = (1 + rng.poisson(1.5, size=len(r))).astype(np.float32)
        counts = sp.csr_matrix((data, (r, c)), shape=(rows, n_genes))
        obs = pd.DataFrame({f: rng.choice(v, size=rows) for f, v in VALUES.items()},
                           index=pd.Index([f"c{start + i}" for i in range(rows)], name="cell_id"))
        yield counts, obs


def _write(backend: str, folder: Path, n_cells: int, n_genes: int) -> Path:
    var = pd.DataFrame({"feature_name": [f"G{g}" for g in range(n_genes)]},
                       index=pd.Index([f"ENSG{g:011d}" for g in range(n_genes)], name="feature_id"))
    if backend == "npz":
        folder.mkdir(parents=True)
        var.reset_index().to_csv(folder / "genes.csv", index=False)
        for k, (counts, obs) in enumerate(_chunks(n_cells, n_genes, 0)):
            sp.save_npz(folder / f"bench_counts_{k}.npz", counts, compressed=False)
            obs.reset_index().to_parquet(folder / f"bench_metadata_{k}.parquet")
        return folder
    if backend == "soma":
        from xmodal.families.census._soma import write_store

        return write_store(folder, _chunks(n_cells, n_genes, 0), var=var, n_cells=n_cells, fields=FIELDS,
                           values=VALUES)
    return _write_h5ad(folder.with_suffix(".h5ad"), n_cells, n_genes, var)


def _write_h5ad(path: Path, n_cells: int, n_genes: int, var: pd.DataFrame) -> Path:
    """An .h5ad with CSR X written chunk by chunk (h5py, anndata's on-disk encoding)."""
    import anndata as ad
    import h5py

    obs_parts = []
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = g.create_dataset("data", shape=(0,), maxshape=(None,), dtype="float32", chunks=(1 << 20,))
        indices = g.create_dataset("indices", shape=(0,), maxshape=(None,), dtype="int32", chunks=(1 << 20,))
        indptr = [0]
        for counts, obs in _chunks(n_cells, n_genes, 0):
            n = data.shape[0]
            data.resize((n + counts.nnz,))
            indices.resize((n + counts.nnz,))
            data[n:] = counts.data
            indices[n:] = counts.indices
            indptr.extend((counts.indptr[1:] + n).tolist())
            obs_parts.append(obs)
        g.create_dataset("indptr", data=np.asarray(indptr, dtype=np.int64))
        obs = pd.concat(obs_parts).astype("category")
        ad.io.write_elem(f, "obs", obs)
        ad.io.write_elem(f, "var", var)
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
    return path


def _read(backend: str, path: Path, n_genes: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, str(path), str(n_genes), json.dumps(VALUES)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{backend} read failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100_000, help="the 1× size (the 10× size is ten times it)")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--tmp", type=Path, default=None, help="where the stores are written (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/census_loader.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true", help="2 000 and 20 000 cells of 200 genes: checks that the "
                        "benchmark runs (`make test`); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.genes = 2_000, 200
    args.out = args.out or HERE / "results" / ("quick" if args.quick else "") / "census_loader.json"
    tmp = Path(tempfile.mkdtemp(dir=args.tmp))
    rows = []
    try:
        for backend in args.backends:
            runs = {}
            for factor in (1, 10):
                n = args.cells * factor
                start = time.perf_counter()
                path = _write(backend, tmp / f"{backend}_{n}", n, args.genes)
                write_s = time.perf_counter() - start
                runs[factor] = {**_read(backend, path, args.genes), "n_cells": n, "write_seconds": write_s}
                print(f"{backend:>5} {n:>9} cells: {runs[factor]['cells_per_s']:>9.0f} cells/s, peak RSS "
                      f"{runs[factor]['peak_rss_mib']:.0f} MiB (write {write_s:.0f} s)", flush=True)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
            rows.append({"backend": backend, "1x": runs[1], "10x": runs[10],
                         "rss_ratio_10x": runs[10]["peak_rss_mib"] / runs[1]["peak_rss_mib"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    targets = {"npz": 100_000, "soma": 30_000}
    report = {"benchmark": "census_loader", "quick": args.quick, "genes": args.genes, "batch": 128,
              "chunk_cells": CHUNK, "buffer_chunks": 4, "rows": rows,
              "targets": {b: {"min_cells_per_s": v, "value": r["10x"]["cells_per_s"],
                              "met": r["10x"]["cells_per_s"] >= v}
                          for b, v in targets.items() for r in rows if r["backend"] == b},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
