"""A few training steps of each deep method on a GPU (``device: cuda``, ``precision: bf16-mixed``): throughput and
peak memory, as JSON.

Run unattended on a machine with a GPU through ``benchmarks/gpu_check.sh`` (under 5 minutes). For each deep
method, at its seed's shapes (geoadvae: 645 morphology features × 2 000 genes, batch 32; dualdann: 25 000
peaks, batch 128), the engine trains ``--steps`` steps after ``--warmup`` in float32 and in bf16-mixed, and
the script reports steps/s, cells/s and ``torch.cuda.max_memory_allocated``; geoadvae also at a batch that
fills more of the device (``--big-batch``). Figures are ratios within this one run (bf16 over float32).

Without a GPU it says so and exits 0 with ``"cuda": false`` in the JSON, unless ``--device cpu`` asks for a
CPU run of the same code path (``make test`` runs ``--quick``, on CPU where there is no GPU: its figures
mean nothing).

    python benchmarks/gpu_check.py                      # → benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed_fit(module: Any, loader: Any, *, settings: Any, warmup: int) -> dict[str, float]:
    from xmodal.train import fit

    stamps: list[float] = []
    if torch.cuda.is_available() and settings.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def stamp(step: int, record: dict[str, float]) -> None:
        if torch.cuda.is_available() and settings.device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    fit(module, loader, settings=settings, digest="gpu-check", seed=0, what=module.method, on_record=stamp)
    timed = len(stamps) - warmup
    seconds = (stamps[-1] - stamps[warmup - 1]) / timed
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() and settings.device == "cuda" else 0
    return {"seconds_per_step": seconds, "steps_per_s": 1 / seconds, "timed_steps": timed,
            "peak_memory_mib": peak / 2**20}


def geoadvae(*, device: str, precision: str, batch: int, steps: int, warmup: int, quick: bool) -> dict[str, Any]:
    from xmodal.methods.geoadvae import GeoAdVAEConfig
    from xmodal.methods.geoadvae._lightning import GeoAdVAETraining, batch_plan
    from xmodal.methods.geoadvae._module import GeoAdVAEModule
    from xmodal.methods.geoadvae._prior import ClusterPrior
    from xmodal.train import StepLoader

    dim_a, dim_b, n = (645, 2000, max(4 * batch, 2048)) if not quick else (20, 40, 64)
    total = warmup + steps
    cfg = GeoAdVAEConfig(loss_schedule={"kl": 1, "recon": 1, "prior": 1, "gan": 1, "gw": 1}, phase_durations=[total],
                         prior_loss_warmup=0, max_iter=total, log_every=10**9, checkpoint_every=10**9,
                         batch_size=batch, device=device, precision=precision, **({"dim": 16} if quick else {}))
    g = np.random.default_rng(0)
    x_a = torch.as_tensor(g.normal(size=(n, dim_a)), dtype=torch.float32)
    x_b = torch.as_tensor(g.normal(size=(n, dim_b)), dtype=torch.float32)
    prior = ClusterPrior(np.corrcoef(g.normal(size=(10, 30))).astype(np.float32), g.integers(0, 10, n),
                         g.integers(0, 10, n), "check")
    torch.manual_seed(0)
    module = GeoAdVAETraining(GeoAdVAEModule(dim_a, dim_b, cfg), cfg, prior=prior, paired=False)
    loader = StepLoader(batch_plan(x_a, x_b, batch_size=batch, seed=0, pairs=None), total=total)
    out = _timed_fit(module, loader, settings=cfg, warmup=warmup)
    out["cells_per_s"] = 2 * batch * out["steps_per_s"]
    return {"batch": batch, "shapes": [dim_a, dim_b], **out}


def dualdann(*, device: str, precision: str, steps: int, warmup: int, quick: bool) -> dict[str, Any]:
    from xmodal.families.multiome._config import MultiomePreprocessConfig
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.multiome._preprocess import preprocess_multiome
    from xmodal.methods.dualdann import DualDANN, DualDANNConfig
    from xmodal.methods.dualdann._lightning import DualDANNTraining, EpochPlan
    from xmodal.train import StepLoader

    cells, peaks = (2000, 25000) if not quick else (150, 150)
    raw = synthetic_multiome(n_cells=cells, n_background_genes=100 if quick else 400,
                             n_background_peaks=peaks, domains=("a", "b"), program_shift=1.0)
    data, _ = preprocess_multiome(raw, cfg=MultiomePreprocessConfig(min_peak_fraction=0.0))
    small = {"shared_dim": 32, "peak_hidden": 16, "peak_intermediate": 32, "batch_size": 16} if quick else {}
    cfg = DualDANNConfig(epochs=10**4, eval_every=10**6, device=device, precision=precision, **small)
    model = DualDANN(cfg)
    training, dims = model.training_data(data)
    plan = EpochPlan(training, batch_size=cfg.batch_size, world=1, seed=0, input_mode=cfg.input)
    torch.manual_seed(0)
    module = DualDANNTraining(model._build(*dims), cfg, plan=plan, val_x=training.val_x, val_y=training.val_y,
                              classes=["G1", "S", "G2M"])
    out = _timed_fit(module, StepLoader(plan, total=warmup + steps), settings=cfg, warmup=warmup)
    out["cells_per_s"] = cfg.batch_size * (1 + len(plan.streams)) * out["steps_per_s"]
    return {"batch": cfg.batch_size, "peaks": int(data.atac.n_vars), **out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--big-batch", type=int, default=4096, help="geoadvae's batch that fills more of the GPU")
    parser.add_argument("--out", type=Path, default=None, help="default: results/gpu_check.json (--quick: quick/)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs; figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.big_batch = 3, 2, 64
        if not torch.cuda.is_available():
            args.device = "cpu"  # the quick check runs the code path wherever it is
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "gpu_check.json"
    torch.set_float32_matmul_precision("high")
    report: dict[str, Any] = {"benchmark": "gpu_check", "quick": args.quick, "cuda": torch.cuda.is_available(),
                              "device": args.device, "torch": torch.__version__, "platform": platform.platform()}
    if args.device == "cuda" and not torch.cuda.is_available():
        report["note"] = "no CUDA device: nothing was run (use --device cpu for a CPU run of the same code)"
    else:
        if args.device == "cuda":
            report["gpu"] = torch.cuda.get_device_name(0)
        else:
            torch.set_num_threads(1)
        results: dict[str, Any] = {}
        kw = {"device": args.device, "steps": args.steps, "warmup": args.warmup, "quick": args.quick}
        for precision in ("32", "bf16-mixed"):
            results[f"geoadvae_b32_{precision}"] = geoadvae(precision=precision, batch=32, **kw)
            results[f"geoadvae_b{args.big_batch}_{precision}"] = geoadvae(precision=precision, batch=args.big_batch,
                                                                         **kw)
            results[f"dualdann_{precision}"] = dualdann(precision=precision, **kw)
            for key in [k for k in results if k.endswith(precision)]:
                r = results[key]
                print(f"{key:<28} {r['steps_per_s']:9.1f} steps/s  {r['cells_per_s']:11.0f} cells/s  "
                      f"peak {r['peak_memory_mib']:8.1f} MiB", flush=True)
        report["results"] = results
        report["bf16_over_fp32_steps_per_s"] = {
            k.removesuffix("_32"): results[k.replace("_32", "_bf16-mixed")]["steps_per_s"] / v["steps_per_s"]
            for k, v in results.items() if k.endswith("_32")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
