"""scFoundation cell-embedding throughput (cells/s) at the released architecture, batched vs one cell at a time.

The released weights cannot be downloaded here, so a random model of the released shape (19 264 genes,
768-d, 12 layers, 12 heads, 100 bins; the encoder half only, about 86 M parameters) is written to a
temporary folder as ``models.ckpt`` + gene list and read back through the real loading path
(:class:`xmodal.methods.dualdann._scfoundation.ScFoundationEncoder`). Cells are synthetic counts with a
spread of expressed genes (``--genes`` ± 50 %), as real cells vary in depth.

* ``one_by_one``: ``batch_size=1``, as scFoundation's ``get_embedding.py`` embeds (the baseline);
* ``batched``: ``--batch`` cells per pass, longest first so that padding stays small, padding masked.

Both run in the same process on the same cells (no cache); the ratio is batched/one_by_one cells/s, and
the largest difference between the two embeddings is reported (they must agree to float precision).

    python benchmarks/scfoundation_embed.py               # → benchmarks/results/scfoundation_embed.json
    python benchmarks/scfoundation_embed.py --depth 2 --cells 16 --genes 300   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xmodal.methods.dualdann._scfoundation import ScFoundationEncoder, ScFoundationEncoderModule

N_GENES, DIM, HEADS, BINS = 19_264, 768, 12, 100


def _write_model(folder: Path, *, depth: int) -> None:
    torch.manual_seed(0)
    module = ScFoundationEncoderModule(dim=DIM, depth=depth, heads=HEADS, seq_len=N_GENES + 2, bin_num=BINS,
                                       bin_alpha=1.0)
    config = {"model": "mae_autobin", "model_config": {"mae_autobin": {
        "encoder": {"hidden_dim": DIM, "depth": depth, "heads": HEADS, "module_type": "transformer"},
        "bin_num": BINS, "bin_alpha": 1.0, "pad_token_id": 103, "mask_token_id": 102}},
        "dataset_config": {"rnaseq": {"seq_len": N_GENES + 2}}}
    entry = {"config": config, "state_dict": {f"model.{k}": v for k, v in module.state_dict().items()}}
    torch.save({"cell": entry}, folder / "models.ckpt")
    pd.DataFrame({"gene_name": [f"G{i}" for i in range(N_GENES)]}).to_csv(
        folder / "OS_scRNA_gene_index.19264.tsv", sep="\t", index=False)


def _cells(n: int, genes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, N_GENES), dtype=np.float32)
    for i in range(n):
        k = int(genes * rng.uniform(0.5, 1.5))
        counts[i, rng.choice(N_GENES, size=k, replace=False)] = rng.poisson(2.0, size=k) + 1
    return counts


def _timed(encoder: ScFoundationEncoder, counts: np.ndarray, names: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    z = encoder.embed(counts, names)
    return time.perf_counter() - start, z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=32, help="cells embedded (default 32)")
    parser.add_argument("--genes", type=int, default=1000, help="mean expressed genes per cell (default 1000)")
    parser.add_argument("--depth", type=int, default=12, help="encoder layers (released: 12)")
    parser.add_argument("--batch", type=int, default=8, help="cells per batched pass (default 8)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scfoundation_embed.json")
    args = parser.parse_args()

    names = [f"G{i}" for i in range(N_GENES)]
    counts = _cells(args.cells, args.genes)
    with tempfile.TemporaryDirectory() as tmp:
        _write_model(Path(tmp), depth=args.depth)
        base = ScFoundationEncoder(tmp, batch_size=1)
        batched = ScFoundationEncoder(tmp, batch_size=args.batch)
        base.model, batched.model  # noqa: B018 - load both before timing
        base.embed(counts[:1], names)  # warm-up
        t_base, z_base = _timed(base, counts, names)
        t_batched, z_batched = _timed(batched, counts, names)
    lengths = (counts > 0).sum(axis=1) + 2
    result = {
        "benchmark": "scfoundation_embed",
        "model": {"genes": N_GENES, "dim": DIM, "depth": args.depth, "heads": HEADS, "bins": BINS,
                  "parameters": int(sum(p.numel() for p in batched.model.parameters()))},
        "cells": args.cells, "tokens_per_cell": {"mean": float(lengths.mean()), "min": int(lengths.min()),
                                                  "max": int(lengths.max())},
        "one_by_one": {"seconds": round(t_base, 3), "cells_per_s": round(args.cells / t_base, 3)},
        "batched": {"batch_size": args.batch, "seconds": round(t_batched, 3),
                    "cells_per_s": round(args.cells / t_batched, 3)},
        "ratio_batched_vs_one_by_one": round(t_base / t_batched, 3),
        "max_abs_difference": float(np.abs(z_base - z_batched).max()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))  # noqa: T201 - a benchmark script reports on stdout


if __name__ == "__main__":
    main()
