"""Cell-embedding throughput (cells/s) of the frozen foundation models, one cell per pass vs padded batches.

The released weights cannot be downloaded here, so random models of the released shapes are written to a
temporary folder and read back through the real loading paths:

* ``scfoundation``: 19 264 genes, 768-d, 12 layers, 12 heads, 100 bins (the encoder half, about 100 M
  parameters) as ``models.ckpt`` + gene list (:class:`xmodal.methods.dualdann._scfoundation.ScFoundationEncoder`);
* ``geneformer``: a BERT of the 104M size (768-d, 12 layers, 12 heads, 3 072 intermediate, input size
  4 096) with 20 000 gene tokens and their medians (:class:`xmodal.methods.dualdann._geneformer.GeneformerEncoder`).

Cells are synthetic counts with a spread of expressed genes (``--genes`` ± 50 %), as real cells vary in
depth. For each model the same cells are embedded (no cache) with every ``--batch`` size in the same
process; ratios are cells/s against one cell per pass (scFoundation's own ``get_embedding.py`` way), and the
largest difference from the one-by-one embeddings is reported (they must agree to float precision).

    python benchmarks/foundation_embed.py            # → benchmarks/results/foundation_embed.json (~10 min, 2 cores)
    python benchmarks/foundation_embed.py --depth 1 --cells 4 --genes 200   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xmodal.methods.dualdann._geneformer import GeneformerEncoder
from xmodal.methods.dualdann._scfoundation import ScFoundationEncoder, ScFoundationEncoderModule

DIM, HEADS = 768, 12
Encoder = Callable[[int], ScFoundationEncoder | GeneformerEncoder]


def _scfoundation(folder: Path, *, depth: int) -> tuple[Encoder, list[str], int]:
    n_genes = 19_264
    torch.manual_seed(0)
    module = ScFoundationEncoderModule(dim=DIM, depth=depth, heads=HEADS, seq_len=n_genes + 2, bin_num=100,
                                       bin_alpha=1.0)
    config = {"model": "mae_autobin", "model_config": {"mae_autobin": {
        "encoder": {"hidden_dim": DIM, "depth": depth, "heads": HEADS, "module_type": "transformer"},
        "bin_num": 100, "bin_alpha": 1.0, "pad_token_id": 103, "mask_token_id": 102}},
        "dataset_config": {"rnaseq": {"seq_len": n_genes + 2}}}
    entry = {"config": config, "state_dict": {f"model.{k}": v for k, v in module.state_dict().items()}}
    torch.save({"cell": entry}, folder / "models.ckpt")
    names = [f"G{i}" for i in range(n_genes)]
    pd.DataFrame({"gene_name": names}).to_csv(folder / "OS_scRNA_gene_index.19264.tsv", sep="\t", index=False)
    n_params = sum(p.numel() for p in module.parameters())
    return (lambda bs: ScFoundationEncoder(folder, batch_size=bs)), names, n_params


def _geneformer(folder: Path, *, depth: int) -> tuple[Encoder, list[str], int]:
    from transformers import BertConfig, BertModel

    names = [f"ENSG{i:06d}" for i in range(20_000)]
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3, **{g: 4 + i for i, g in enumerate(names)}}
    for name, obj in (("token_dictionary.pkl", tokens), ("gene_median_dictionary.pkl", dict.fromkeys(names, 2.0))):
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokens), hidden_size=DIM, num_hidden_layers=depth,
                                 num_attention_heads=HEADS, intermediate_size=4 * DIM, max_position_embeddings=4096))
    model.save_pretrained(folder)
    return (lambda bs: GeneformerEncoder(folder, batch_size=bs)), names, sum(p.numel() for p in model.parameters())


def _cells(n: int, n_genes: int, genes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, n_genes), dtype=np.float32)
    for i in range(n):
        k = int(genes * rng.uniform(0.5, 1.5))
        counts[i, rng.choice(n_genes, size=k, replace=False)] = rng.poisson(2.0, size=k) + 1
    return counts


def _measure(make: Encoder, names: list[str], *, cells: int, genes: int, batches: list[int]) -> dict[str, object]:
    counts = _cells(cells, len(names), genes)
    make(1).embed(counts[:1], names)  # warm-up: weights read, kernels
    runs, reference = {}, None
    for bs in sorted(set([1, *batches])):
        encoder = make(bs)
        encoder.model  # noqa: B018 - load before timing
        start = time.perf_counter()
        z = encoder.embed(counts, names)
        seconds = time.perf_counter() - start
        reference = z if bs == 1 else reference
        runs[str(bs)] = {"seconds": round(seconds, 3), "cells_per_s": round(cells / seconds, 4),
                         "max_abs_difference_vs_1": float(np.abs(z - reference).max())}
    base = runs["1"]["cells_per_s"]
    for run in runs.values():
        run["ratio_vs_1"] = round(run["cells_per_s"] / base, 3)
    lengths = (counts > 0).sum(axis=1)
    return {"cells": cells, "expressed_genes": {"mean": float(lengths.mean()), "min": int(lengths.min()),
                                                "max": int(lengths.max())}, "batch_size": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["scfoundation", "geneformer"],
                        choices=["scfoundation", "geneformer"])
    parser.add_argument("--cells", type=int, default=16, help="cells embedded per setting (default 16)")
    parser.add_argument("--genes", type=int, default=1000, help="mean expressed genes per cell (default 1000)")
    parser.add_argument("--depth", type=int, default=12, help="encoder layers (released: 12)")
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32], help="batch sizes against 1 (default 8 32)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/foundation_embed.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.genes, args.depth, args.batch = 2, 50, 1, [2]
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "foundation_embed.json"

    result: dict[str, object] = {"benchmark": "foundation_embed", "quick": args.quick, "depth": args.depth, "dim": DIM, "heads": HEADS}
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            make, names, n_params = {"scfoundation": _scfoundation, "geneformer": _geneformer}[name](
                Path(tmp), depth=args.depth)
            result[name] = {"parameters": int(n_params), "genes": len(names),
                            **_measure(make, names, cells=args.cells, genes=args.genes, batches=args.batch)}
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))  # noqa: T201 - a benchmark script reports on stdout


if __name__ == "__main__":
    main()
