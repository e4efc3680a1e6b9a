"""Milliseconds per geoadvae training iteration at seed 000's defaults, against the compute floor.

Shapes: 645 morphology features, 2 000 genes, hidden width 256, latent 16, batch 32, two
discriminator updates per encoder update, every loss on (KL, L1 reconstruction, latent LSGAN,
Gromov–Wasserstein with its gradient, cluster prior). Three iterations are timed in this process:

* ``gw_on``: xmodal's iteration in the hand-written loop it had before the engine
  (``benchmarks/_handwritten.py``);
* ``engine``: the same iteration as it trains today, inside :func:`xmodal.train.fit` (Lightning,
  manual optimisation, the engine's callbacks: records, checkpoint check, progress), timed per step
  after warm-up; ``engine_over_handwritten`` is the engine's overhead per step, against the faster of
  ``gw_on`` and ``gw_on_after_engine`` (the hand-written iteration timed again after the engine);
* ``gw_off``: the hand-written iteration with ``gw_w = 0``;
* ``seed_style``: the seed's iteration structure rebuilt from the same networks — the encoders run
  again for each discriminator update, GW is solved on detached NumPy codes (so it has no
  gradient), Adam is PyTorch's default implementation — the baseline the speed-up is measured against.

The floor counts the two things an iteration cannot avoid, each against this machine measured in the same
run: the floating-point work (``torch.utils.flop_counter``) at the matmul throughput of the iteration's own
layer shapes (forward and both backward products), and the optimisers' memory traffic (Adam reads a
parameter, its gradient and both moments and writes three of them back: 28 bytes per parameter per step, one
generator step and ``num_disc`` discriminator steps per iteration) at the memory bandwidth of a STREAM-style
triad on buffers of the model's size. ``floor_ms = flop / throughput + bytes / bandwidth``.

The targets (issue 16) are relative: at least 2.5× faster than ``seed_style``, and within 2× of the floor;
``targets`` in the JSON says whether each holds. On a GPU machine ``benchmarks/gpu_check.sh`` reports
iterations/s at batch 32 and at a batch that fills the device.

    python benchmarks/geoadvae_speed.py                 # → benchmarks/results/geoadvae_speed.json
    python benchmarks/geoadvae_speed.py --iters 100 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from xmodal import losses as L
from xmodal.methods.geoadvae import GeoAdVAEConfig
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.methods.geoadvae._prior import ClusterPrior

sys.path.insert(0, str(Path(__file__).parent))
from _handwritten import GeoAdVAELoop as Trainer  # noqa: E402 - the pre-engine loop, the overhead's baseline

DIM_A, DIM_B, N_CELLS, N_CLUSTERS = 645, 2000, 645, 10


def _config(**over: object) -> GeoAdVAEConfig:
    """Seed defaults with every loss on from the first iteration."""
    base = {"loss_schedule": {"kl": 1, "recon": 1, "prior": 1, "gan": 1, "gw": 1}, "phase_durations": [10**9],
            "prior_loss_warmup": 0, "max_iter": 10**9, "log_every": 10**9, "checkpoint_every": 10**9}
    return GeoAdVAEConfig(**{**base, **over})


def _trainer(cfg: GeoAdVAEConfig, seed: int = 0) -> Trainer:
    g = np.random.default_rng(seed)
    x_a = torch.as_tensor(g.normal(size=(N_CELLS, DIM_A)), dtype=torch.float32)
    x_b = torch.as_tensor(g.normal(size=(N_CELLS, DIM_B)), dtype=torch.float32)
    corr = np.corrcoef(g.normal(size=(N_CLUSTERS, 30))).astype(np.float32)
    prior = ClusterPrior(corr, g.integers(0, N_CLUSTERS, N_CELLS), g.integers(0, N_CLUSTERS, N_CELLS), "bench")
    torch.manual_seed(seed)
    module = GeoAdVAEModule(DIM_A, DIM_B, cfg)
    return Trainer(module, cfg, x_a, x_b, prior=prior, pairs=None, seed=seed)


def _seed_style_step(t: Trainer, opt_gen: torch.optim.Optimizer, opt_dis: torch.optim.Optimizer) -> None:
    """One iteration as seed 000 structured it (see the module docstring)."""
    from xmodal._pot import import_pot

    ot = import_pot()
    cfg, m = t.cfg, t.module
    idx_a, idx_b = t.batches(t.step)
    x_a, x_b = t.x_a[idx_a], t.x_b[idx_b]
    for _ in range(cfg.num_disc):
        with torch.no_grad():
            z_a = m.vae_a.sample(*m.vae_a.encode(x_a))
            z_b = m.vae_b.sample(*m.vae_b.encode(x_b))
        loss = cfg.gan_w * L.discriminator_loss(m.disc(z_a), m.disc(z_b))
        opt_dis.zero_grad()
        loss.backward()
        opt_dis.step()
    z_a, mu_a, lv_a, xh_a = m.vae_a(x_a)
    z_b, mu_b, lv_b, xh_b = m.vae_b(x_b)
    kl = L.kl_per_latent_dim(mu_a, lv_a) + L.kl_per_latent_dim(mu_b, lv_b)
    rec = L.l1_reconstruction(xh_a, x_a) + L.l1_reconstruction(xh_b, x_b)
    gan = L.generator_loss(m.disc(z_a), m.disc(z_b))
    c_a = torch.cdist(z_a, z_a).detach().numpy().astype(np.float64)
    c_b = torch.cdist(z_b, z_b).detach().numpy().astype(np.float64)
    p = np.full(len(c_a), 1 / len(c_a))
    gw = torch.tensor(float(ot.gromov.gromov_wasserstein2(c_a, c_b, p, p, "square_loss")))  # a fresh leaf: no gradient
    target = L.prior_target(t.corr, t.clusters_a[idx_a], t.clusters_b[idx_b])
    prior = L.cluster_prior_mse(z_a, z_b, target) / cfg.prior_temperature**2
    total = cfg.kl_w * kl + cfg.recon_x_w * rec + cfg.gan_w * gan + cfg.gw_w * gw + cfg.lambda_p * prior
    opt_gen.zero_grad()
    total.backward()
    opt_gen.step()
    t.step += 1


def _time(step: object, iters: int, repeats: int) -> dict[str, float]:
    for _ in range(min(5, iters)):
        step()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        runs.append((time.perf_counter() - start) / iters * 1e3)
    return {"ms_median": statistics.median(runs), "ms_best": min(runs), "ms_runs": runs}


def _engine(cfg: GeoAdVAEConfig, *, iters: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """ms per step of the shipped training (``xmodal.train.fit``) on the data and prior of :func:`_trainer`."""
    from xmodal.methods.geoadvae._lightning import GeoAdVAETraining, batch_plan
    from xmodal.train import StepLoader, fit

    t = _trainer(cfg, seed)  # the same data, prior and initial networks
    warm = min(5, iters)
    total = warm + iters * repeats
    stamps: list[float] = []
    module = GeoAdVAETraining(t.module, cfg.model_copy(update={"max_iter": total}), prior=t.prior, paired=False)
    loader = StepLoader(batch_plan(t.x_a, t.x_b, batch_size=cfg.batch_size, seed=seed, pairs=None), total=total)
    fit(module, loader, settings=cfg.model_copy(update={"device": "cpu"}), digest="bench", seed=seed,
        what="geoadvae", on_record=lambda step, record: stamps.append(time.perf_counter()))
    runs = [(stamps[warm - 1 + (r + 1) * iters] - stamps[warm - 1 + r * iters]) / iters * 1e3 for r in range(repeats)]
    return {"ms_median": statistics.median(runs), "ms_best": min(runs), "ms_runs": runs}


def _flop(t: Trainer) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        t.iteration()
    return int(counter.get_total_flops())


def _matmul_gflops(cfg: GeoAdVAEConfig, repeats: int = 200) -> float:
    """Throughput of the iteration's linear layers: each ``(batch × in) @ (in × out)`` with its two backward products."""
    from xmodal.nn import encoder_widths

    shapes = []
    for d in (DIM_A, DIM_B):
        sizes = [d, *encoder_widths(d, cfg.dim)]
        shapes += list(zip(sizes, sizes[1:], strict=False)) + list(zip(sizes[::-1], sizes[::-1][1:], strict=False))
    b = cfg.batch_size
    mats = [(torch.randn(b, i), torch.randn(i, o), torch.randn(b, o)) for i, o in shapes]
    flop = sum(3 * 2 * b * i * o for i, o in shapes)

    def once() -> None:
        for x, w, g in mats:
            x @ w
            g @ w.T
            x.T @ g

    for _ in range(20):
        once()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            once()
        best = min(best, (time.perf_counter() - start) / repeats)
    return flop / best / 1e9


def _optimizer_bytes(t: Trainer, num_disc: int) -> int:
    """Adam's memory traffic per iteration: 7 float32 values per parameter per step (read p, g, m, v; write p, m, v)."""
    n_gen = sum(p.numel() for p in t.module.generator_parameters())
    n_dis = sum(p.numel() for p in t.module.disc.parameters())
    return 7 * 4 * (n_gen + num_disc * n_dis)


def _bandwidth_gbs(n_values: int, repeats: int = 50) -> float:
    """Memory bandwidth of a triad ``c = a + s·b`` on float32 buffers of ``n_values`` (3 × 4 bytes per value)."""
    a, b, c = torch.randn(n_values), torch.randn(n_values), torch.empty(n_values)
    for _ in range(5):
        torch.add(a, b, alpha=0.5, out=c)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.add(a, b, alpha=0.5, out=c)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 12 * n_values / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=60, help="iterations per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="default: results/geoadvae_speed.json (--quick: "
                        "results/quick/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the benchmark runs (`make test` does this); its figures mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.iters, args.repeats = 2, 1
    args.out = args.out or Path(__file__).parent / "results" / ("quick" if args.quick else "") / "geoadvae_speed.json"

    cfg = _config()
    on, off, seed = _trainer(cfg), _trainer(_config(gw_w=0.0)), _trainer(cfg)
    opt_gen = torch.optim.Adam(seed.module.generator_parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                               weight_decay=cfg.weight_decay)
    opt_dis = torch.optim.Adam(seed.module.disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                               weight_decay=cfg.weight_decay)
    for t in (on, off, seed):
        t.module.train()

    def step_on() -> None:
        on.iteration()
        on.step += 1

    def step_off() -> None:
        off.iteration()
        off.step += 1

    results = {"gw_on": _time(step_on, args.iters, args.repeats),
               "gw_off": _time(step_off, args.iters, args.repeats),
               "seed_style": _time(lambda: _seed_style_step(seed, opt_gen, opt_dis), args.iters, args.repeats),
               "engine": _engine(cfg, iters=args.iters, repeats=args.repeats)}
    results["gw_on_after_engine"] = _time(step_on, args.iters, args.repeats)  # the load may have moved meanwhile
    hand_ms = min(results["gw_on"]["ms_median"], results["gw_on_after_engine"]["ms_median"])
    flop = _flop(on)
    gflops = _matmul_gflops(cfg, repeats=5 if args.quick else 200)
    opt_bytes = _optimizer_bytes(on, cfg.num_disc)
    bandwidth = _bandwidth_gbs(opt_bytes // 28, repeats=3 if args.quick else 50)
    compute_ms = flop / (gflops * 1e9) * 1e3
    memory_ms = opt_bytes / (bandwidth * 1e9) * 1e3
    floor_ms = compute_ms + memory_ms

    # the GW term's gradient reaches the encoders in the timed configuration
    idx_a, idx_b = on.batches(0)
    z_a = on.module.vae_a.sample(*on.module.vae_a.encode(on.x_a[idx_a]))
    z_b = on.module.vae_b.sample(*on.module.vae_b.encode(on.x_b[idx_b]))
    on.module.zero_grad()
    L.gromov_wasserstein_loss(z_a, z_b).backward()
    gw_grad = float(sum(p.grad.norm() ** 2 for p in on.module.vae_a.encoder.parameters() if p.grad is not None) ** 0.5)

    report = {
        "benchmark": "geoadvae_speed",
        "quick": args.quick,
        "shapes": {"dim_a": DIM_A, "dim_b": DIM_B, "dim": cfg.dim, "latent": cfg.latent_dim,
                   "batch": cfg.batch_size, "num_disc": cfg.num_disc, "losses": sorted(cfg.loss_schedule)},
        "ms_per_iteration": {k: round(v["ms_median"], 2) for k, v in results.items()},
        "timings": results,
        "flop_per_iteration": flop,
        "matmul_gflops": round(gflops, 1),
        "optimizer_bytes_per_iteration": opt_bytes,
        "memory_bandwidth_gbs": round(bandwidth, 1),
        "floor_compute_ms": round(compute_ms, 2),
        "floor_memory_ms": round(memory_ms, 2),
        "floor_ms": round(floor_ms, 2),
        "ratios": {
            "seed_style_over_gw_on": round(results["seed_style"]["ms_median"] / results["gw_on"]["ms_median"], 2),
            "gw_on_over_floor": round(results["gw_on"]["ms_median"] / floor_ms, 2),
            "gw_on_over_gw_off": round(results["gw_on"]["ms_median"] / results["gw_off"]["ms_median"], 2),
            "engine_over_handwritten": round(results["engine"]["ms_median"] / hand_ms, 3),
            "seed_style_over_engine": round(results["seed_style"]["ms_median"] / results["engine"]["ms_median"], 2),
            "engine_over_floor": round(results["engine"]["ms_median"] / floor_ms, 2),
        },
        "gw_gradient_norm_to_encoder_a": gw_grad,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
    }
    speedup = report["ratios"]["seed_style_over_engine"]
    over_floor = report["ratios"]["engine_over_floor"]
    report["targets"] = {
        "seed_style_over_engine": {"min": 2.5, "value": speedup, "met": speedup >= 2.5},
        "engine_over_floor": {"max": 2.0, "value": over_floor, "met": over_floor <= 2.0},
        "gpu_iterations_per_second": "benchmarks/gpu_check.sh on a GPU machine (batch 32 and a device-filling batch)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("ms_per_iteration", "flop_per_iteration", "matmul_gflops",
                                             "memory_bandwidth_gbs", "floor_compute_ms", "floor_memory_ms", "floor_ms",
                                             "ratios", "targets")}, indent=2))


if __name__ == "__main__":
    main()
