"""dualdann training throughput (cells/s) on 25 000 peaks × 8 000 cells, per peak encoder, sparse vs dense input.

Synthetic Multiome data: two cell lines of 4 000 cells, 25 000 peaks (1 491 linked to the S/G2M and
background genes, the rest background), every peak kept (no frequency filter) and normalised
(CPM → log1p → L2). For each peak encoder and each input form, the training step (a batch of source embeddings, one of
the source line's ATAC cells and one of the target line's, every loss term, AdamW, clipping) runs
in the hand-written loop dualdann had before the engine (``benchmarks/_handwritten.py``) for
``--steps`` steps after one warm-up step, ``--repeats`` times; the best repeat counts.

``engine``: for the default encoder (``hybrid``) and ``mlp``, dense input, the same steps as
dualdann trains today, inside :func:`xmodal.train.fit` (Lightning, manual optimisation, the
engine's callbacks), timed per step after warm-up in the same process, alternating with the
hand-written loop ``--repeats`` times (best of each); ``engine_over_handwritten`` is the engine's
overhead per step.

* ``dense``: the training peaks are held as one dense float32 tensor and batches are row gathers;
* ``sparse``: they stay a SciPy CSR matrix and each batch is densified on the fly.

Throughput is cells (source + ATAC rows) per second; ratios are against the ``mlp`` encoder with dense
input measured in the same process, and sparse/dense per encoder. Memory of the two forms is reported.

    python benchmarks/dualdann_speed.py                # → benchmarks/results/dualdann_speed.json
    python benchmarks/dualdann_speed.py --steps 5 --cells 1000 --peaks 5000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from xmodal.families.multiome._config import MultiomePreprocessConfig
from xmodal.families.multiome._data import G2M_GENES, S_GENES, synthetic_multiome
from xmodal.families.multiome._preprocess import preprocess_multiome
from xmodal.methods.dualdann import DualDANN, DualDANNConfig
from xmodal.nn import PEAK_KINDS

sys.path.insert(0, str(Path(__file__).parent))
from _handwritten import DualDANNLoop  # noqa: E402 - the pre-engine loop, the overhead's baseline

GENES_BG, PEAKS_PER_GENE = 400, 3


def _data(cells_per_line: int, peaks: int) -> object:
    linked = (len(S_GENES) + len(G2M_GENES) + GENES_BG) * PEAKS_PER_GENE
    raw = synthetic_multiome(n_cells=cells_per_line, n_background_genes=GENES_BG, peaks_per_gene=PEAKS_PER_GENE,
                             n_background_peaks=max(peaks - linked, 0), domains=("a", "b"), program_shift=1.0)
    data, _ = preprocess_multiome(raw, cfg=MultiomePreprocessConfig(min_peak_fraction=0.0))
    return data


def _handwritten(data: object, *, kind: str, form: str) -> DualDANNLoop:
    cfg = DualDANNConfig(peak_encoder=kind, input=form, epochs=100, device="cpu")
    model = DualDANN(cfg)
    training, dims = model.training_data(data)
    torch.manual_seed(0)
    return DualDANNLoop(model._build(*dims), cfg, training, classes=["G1", "S", "G2M"], seed=0,
                        device=torch.device("cpu"))


def _engine(data: object, *, kind: str, form: str, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per step of the shipped training (``xmodal.train.fit``), best of ``repeats`` runs of ``steps``."""
    from xmodal.methods.dualdann._lightning import DualDANNTraining, EpochPlan
    from xmodal.train import StepLoader, fit

    total = 1 + steps * repeats
    cfg = DualDANNConfig(peak_encoder=kind, input=form, epochs=100, device="cpu", eval_every=10**6)
    model = DualDANN(cfg)
    training, dims = model.training_data(data)
    plan = EpochPlan(training, batch_size=cfg.batch_size, world=1, seed=0, input_mode=form)
    torch.manual_seed(0)
    module = DualDANNTraining(model._build(*dims), cfg, plan=plan, val_x=training.val_x, val_y=training.val_y,
                              classes=["G1", "S", "G2M"])
    stamps: list[float] = []
    fit(module, StepLoader(plan, total=total), settings=cfg, digest="bench", seed=0, what="dualdann",
        on_record=lambda step, record: stamps.append(time.perf_counter()))
    best = min((stamps[(r + 1) * steps] - stamps[r * steps]) / steps for r in range(repeats))
    return {"seconds_per_step": best, "steps_per_epoch": plan.steps_per_epoch}


def _throughput(data: object, *, kind: str, form: str, steps: int, repeats: int) -> dict[str, float]:
    trainer = _handwritten(data, kind=kind, form=form)
    trainer.steps_per_epoch = 1
    trainer.epoch(0)  # warm-up: allocator, kernels
    trainer.steps_per_epoch = steps
    rows = trainer.cfg.batch_size * (1 + len(trainer.streams))
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        trainer.epoch(r + 1)
        best = min(best, time.perf_counter() - start)
    held = trainer.target
    memory = (held.dense.numel() * 4 if held.dense is not None else
              held.sparse.data.nbytes + held.sparse.indices.nbytes + held.sparse.indptr.nbytes)
    return {"seconds_per_step": best / steps, "cells_per_s": rows * steps / best, "rows_per_step": rows,
            "training_peaks_bytes": int(memory)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=4000, help="cells per cell line (two lines)")
    parser.add_argument("--peaks", type=int, default=25000)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=None, help="default: results/dualdann_speed.json (--quick: results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.peaks, args.steps, args.repeats = 400, 400, 2, 1
    args.output = args.output or str(Path(__file__).parent / "results" / ("quick" if args.quick else "")
                                     / "dualdann_speed.json")

    t0 = time.perf_counter()
    data = _data(args.cells, args.peaks)
    atac = sp.csr_matrix(data.atac.X)
    print(f"data: {data.rna.n_obs} cells, {data.atac.n_vars} peaks ({1 - atac.nnz / np.prod(atac.shape):.1%} zeros), "
          f"{data.rna.n_vars} genes; built in {time.perf_counter() - t0:.1f} s", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind in PEAK_KINDS:
        results[kind] = {}
        for form in ("dense", "sparse"):
            results[kind][form] = _throughput(data, kind=kind, form=form, steps=args.steps, repeats=args.repeats)
            print(f"{kind:<12} {form:<6} {results[kind][form]['cells_per_s']:8.0f} cells/s "
                  f"({1000 * results[kind][form]['seconds_per_step']:.0f} ms/step)", flush=True)
    engine = {}
    for kind in ("hybrid", "mlp"):  # alternated, best of each: the machine's load moves both alike
        hands, engines = [], []
        for _ in range(args.repeats):
            hands.append(_throughput(data, kind=kind, form="dense", steps=args.steps, repeats=1)["seconds_per_step"])
            engines.append(_engine(data, kind=kind, form="dense", steps=args.steps, repeats=1)["seconds_per_step"])
        hand, e = min(hands), {"seconds_per_step": min(engines)}
        engine[kind] = {"engine_seconds_per_step": e["seconds_per_step"], "handwritten_seconds_per_step": hand,
                        "engine_over_handwritten": e["seconds_per_step"] / hand,
                        "runs": {"handwritten": hands, "engine": engines}}
        print(f"{kind:<12} engine {1000 * e['seconds_per_step']:.0f} ms/step vs hand-written {1000 * hand:.0f} "
              f"({engine[kind]['engine_over_handwritten']:.3f}×)", flush=True)
    base = results["mlp"]["dense"]["cells_per_s"]
    ratios = {}
    for kind, forms in results.items():
        for r in forms.values():
            r["ratio_vs_mlp_dense"] = r["cells_per_s"] / base
        ratios[kind] = forms["sparse"]["cells_per_s"] / forms["dense"]["cells_per_s"]
    out = {
        "benchmark": "dualdann training throughput", "cells": int(data.rna.n_obs), "peaks": int(data.atac.n_vars),
        "peak_zero_share": float(1 - atac.nnz / np.prod(atac.shape)), "batch_size": DualDANNConfig().batch_size,
        "steps": args.steps, "repeats": args.repeats, "quick": args.quick, "results": results, "sparse_over_dense": ratios,
        "engine": engine,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
