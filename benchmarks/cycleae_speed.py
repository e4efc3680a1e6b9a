"""cycleae training throughput (cells/s) against seed 002's structure, re-implemented here, in the same process.

Seed 002's ``CAE.py`` and ``trainer.py`` as they are built (not their defects' numbers): a tied base head, and per
field an ``nn.Linear`` encoder and decoder and an ``nn.ModuleList`` of one ``nn.Linear`` per value, applied by
grouping the batch by value (a boolean mask and a matmul per value present); the generator's backward, clip and
AdamW step, then **every** parameter clamped, then the classifier's own forward, backward and Adam step. xmodal's
:class:`~xmodal.methods.cycleae._module.CycleAEModule`: one parameter per value too, applied to the batch's rows
sorted by code (one slice per value present); one backward for both losses (disjoint parameters), the base head
alone clamped. The seed's losses on both sides (``xmodal_over_seed``), and xmodal's default step with its mean-shift
term (``xmodal_shift_over_seed``).

Both train the same batches (raw counts, log1p-normalised for xmodal's input as it trains) of Census-like shape:
2 000 genes, latent 128, batch 128, eight fields with Census's cardinalities (``--cardinalities``: cell types
~600, tissues ~200, ...), so a batch holds many values of a field. The two alternate ``--repeats`` times for
``--steps`` steps after a warm-up; the best repeat of each counts. ``xmodal_over_seed`` is the speed-up.

``fit``: a whole epoch of :meth:`xmodal.methods.cycleae.CycleAE.fit` (engine, the SOMA store streamed, validation)
on ``--cells`` synthetic cells, cells/s end to end.

    python benchmarks/cycleae_speed.py                 # → benchmarks/results/cycleae_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812

from xmodal.methods.cycleae._module import (  # noqa: E402
    ContextClassifier,
    CycleAEModule,
    log_normalize,
    optimizers,
    train_step,
)

#: Census-like cardinalities of the seed's fields (cell_type, disease, development_stage, sex, ethnicity,
#: tissue_general, tissue, assay), in the ranges of a 2024 human Census release
CENSUS_CARDS = (600, 100, 60, 3, 30, 50, 200, 20)


# ---------------------------------------------------------------------- seed 002's structure
class SeedHeads(nn.Module):
    """One ``nn.Linear(L, L, bias=False)`` per value, applied to the rows of that value (the seed's grouping)."""

    def __init__(self, k: int, latent: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(latent, latent, bias=False) for _ in range(k)])

    def forward(self, h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(h)
        for c in torch.unique(codes).tolist():
            rows = (codes == c).nonzero(as_tuple=True)[0]
            out = out.index_put((rows,), self.heads[c](h[rows]))
        return out


class SeedCAE(nn.Module):
    """Seed 002's generator: tied base head, per field encoder → source head → target head → decoder × 0.0159."""

    def __init__(self, genes: int, cards: list[int], latent: int) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.rand(latent, genes))
        self.enc = nn.ModuleList([nn.Linear(genes, latent, bias=False) for _ in cards])
        self.dec = nn.ModuleList([nn.Linear(latent, genes, bias=False) for _ in cards])
        self.heads = nn.ModuleList([SeedHeads(k, latent) for k in cards])

    def forward(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h_base = x @ self.base.T
        out = h_base @ self.base
        hidden = [h_base]
        for f in range(len(self.heads)):
            h = self.heads[f](self.enc[f](x), s[:, f])
            hidden.append(h)
            out = out + 0.0159 * self.dec[f](self.heads[f](h, t[:, f]))
        return out, hidden


class SeedClassifier(nn.Module):
    def __init__(self, genes: int, cards: list[int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(genes, 128), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(128, k) for k in cards])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.trunk(x)
        return [head(z) for head in self.heads]


def seed_step(model: SeedCAE, cls: SeedClassifier, opt: torch.optim.Optimizer, opt_c: torch.optim.Optimizer,
              x: torch.Tensor, s: torch.Tensor, cards: list[int]) -> None:
    """The seed's ``train_on_batch``: targets, two cycles, three losses with the classifier frozen, clip, AdamW,
    clamp every parameter; then the classifier's step on the real cells."""
    t = s.clone()
    for f, k in enumerate(cards):  # (the seed changed only the last field; the cost is the same)
        t[:, f] = (s[:, f] + torch.randint(1, k, (len(s),))) % k
    for p in cls.parameters():
        p.requires_grad_(False)
    x_st, h1 = model(x, s, t)
    x_sts, h2 = model(x_st, t, s)
    recon = F.mse_loss(x_sts, x)
    integ = sum(F.mse_loss(a, b) for a, b in zip(h1, h2, strict=True))
    adv = torch.stack([F.cross_entropy(logit, t[:, f]) for f, logit in enumerate(cls(x_st))]).mean()
    opt.zero_grad()
    (recon + integ + adv).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    opt.step()
    with torch.no_grad():
        for p in model.parameters():
            p.clamp_(min=0.0)
    for p in cls.parameters():
        p.requires_grad_(True)
    loss_c = torch.stack([F.cross_entropy(logit, s[:, f]) for f, logit in enumerate(cls(x))]).mean()
    opt_c.zero_grad()
    loss_c.backward()
    opt_c.step()


# ---------------------------------------------------------------------- timing
def _batches(n: int, *, genes: int, cards: list[int], batch: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.3, 2.0, size=genes)
    out = []
    for _ in range(n):
        counts = torch.from_numpy(rng.poisson(rate, size=(batch, genes)).astype(np.float32))
        # Census-like value frequencies: a few common values, a long tail
        codes = np.stack([np.minimum(rng.zipf(1.6, size=batch), k) for k in cards], axis=1)
        out.append((counts, torch.from_numpy(codes.astype(np.int64))))
    return out


def _time(run: object, batches: list, *, warmup: int) -> float:
    for b in batches[:warmup]:
        run(*b)
    start = time.perf_counter()
    for b in batches[warmup:]:
        run(*b)
    return (time.perf_counter() - start) / max(len(batches) - warmup, 1)


def compare(*, genes: int, cards: list[int], latent: int, batch: int, steps: int, repeats: int) -> dict:
    """Seconds per step of the seed's structure and xmodal's, alternating, best of ``repeats``."""
    torch.manual_seed(0)
    batches = _batches(steps + 2, genes=genes, cards=cards, batch=batch, seed=0)
    seed_model, seed_cls = SeedCAE(genes, cards, latent), SeedClassifier(genes, cards)
    seed_opt = torch.optim.AdamW(seed_model.parameters(), lr=1e-4, weight_decay=1e-4)
    seed_opt_c = torch.optim.Adam(seed_cls.parameters(), lr=1e-4)
    ours, ours_cls = CycleAEModule(genes, cards, latent=latent), ContextClassifier(genes, cards)
    opt, opt_c = optimizers(ours, ours_cls, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    # xmodal's default losses: the same step plus the mean-shift term, against per-value means of these batches
    shifted, shifted_cls = CycleAEModule(genes, cards, latent=latent), ContextClassifier(genes, cards)
    opt_s, opt_sc = optimizers(shifted, shifted_cls, lr=1e-4)
    x_all = torch.cat([log_normalize(c) for c, _ in batches])
    codes_all = torch.cat([c for _, c in batches])
    means = [torch.zeros(k + 1, genes).index_add(0, codes_all[:, f], x_all)
             / torch.bincount(codes_all[:, f], minlength=k + 1).clamp_min(1)[:, None] for f, k in enumerate(cards)]

    def seed_run(counts: torch.Tensor, codes: torch.Tensor) -> None:
        seed_step(seed_model, seed_cls, seed_opt, seed_opt_c, torch.log1p(counts), codes - 1, cards)

    def ours_run(counts: torch.Tensor, codes: torch.Tensor) -> None:
        train_step(ours, ours_cls, opt, opt_c, log_normalize(counts), codes, generator=g, label_smoothing=0.1)

    def shifted_run(counts: torch.Tensor, codes: torch.Tensor) -> None:
        train_step(shifted, shifted_cls, opt_s, opt_sc, log_normalize(counts), codes, generator=g,
                   label_smoothing=0.1, means=means, shift_weight=1.0)

    seed_t, ours_t, shift_t = [], [], []
    for _ in range(repeats):
        seed_t.append(_time(seed_run, batches, warmup=2))
        ours_t.append(_time(ours_run, batches, warmup=2))
        shift_t.append(_time(shifted_run, batches, warmup=2))
    s, o, w = min(seed_t), min(ours_t), min(shift_t)
    return {"seed_seconds_per_step": s, "xmodal_seconds_per_step": o, "seed_cells_per_s": batch / s,
            "xmodal_cells_per_s": batch / o, "xmodal_over_seed": s / o, "seed_repeats": seed_t, "xmodal_repeats": ours_t,
            "xmodal_shift_seconds_per_step": w, "xmodal_shift_cells_per_s": batch / w, "xmodal_shift_over_seed": s / w,
            "xmodal_shift_repeats": shift_t}


def fit_throughput(*, cells: int, genes: int, epochs: int) -> dict:
    """One training of cycleae through ``xmodal.train`` on a synthetic SOMA store (ingest + preprocess first)."""
    from xmodal.config import params_from_dict
    from xmodal.families.census import read_processed
    from xmodal.methods.cycleae import CycleAE, CycleAEConfig
    from xmodal.stages import ingest, preprocess

    with tempfile.TemporaryDirectory(prefix="cycleae-speed-") as tmp:
        params = params_from_dict({
            "datasets": {"c": {"family": "census", "source": {"kind": "synthetic_census", "n_cells": cells,
                                                              "n_genes": genes, "chunk_size": 2000}}},
            "preprocess": {"census": {"n_top_genes": None, "chunk_size": 2000}}})
        ingest.run(params, dataset="c", root=tmp)
        preprocess.run(params, dataset="c", root=tmp)
        data = read_processed(Path(tmp) / "data/processed/c")
        start = time.perf_counter()
        model = CycleAE(CycleAEConfig(epochs=epochs, calibrate=False)).fit(data, seed=0)
        seconds = time.perf_counter() - start
    n = model.info["steps_run"] * 128
    return {"cells": cells, "genes": genes, "epochs": epochs, "train_cells_seen": n, "seconds": seconds,
            "cells_per_s": n / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cardinalities", type=int, nargs="+", default=list(CENSUS_CARDS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=20000, help="cells of the end-to-end fit")
    parser.add_argument("--output", default=None, help="default: results/cycleae_speed.json (--quick: results/quick/)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        args.genes, args.latent, args.steps, args.repeats, args.cells = 200, 16, 3, 1, 1500
        args.cardinalities = [12, 3, 2]
    torch.set_num_threads(1)
    args.output = args.output or str(Path(__file__).parent / "results" / ("quick" if args.quick else "")
                                      / "cycleae_speed.json")
    step = compare(genes=args.genes, cards=args.cardinalities, latent=args.latent, batch=args.batch,
                   steps=args.steps, repeats=args.repeats)
    print(f"seed structure {step['seed_cells_per_s']:8.0f} cells/s   xmodal {step['xmodal_cells_per_s']:8.0f} cells/s"
          f"   ×{step['xmodal_over_seed']:.2f}   with the mean-shift term {step['xmodal_shift_cells_per_s']:8.0f} cells/s"
          f"   ×{step['xmodal_shift_over_seed']:.2f}", flush=True)
    fit = fit_throughput(cells=args.cells, genes=args.genes, epochs=1)
    print(f"end-to-end fit (SOMA stream, engine, validation) {fit['cells_per_s']:8.0f} cells/s", flush=True)
    out = {"benchmark": "cycleae_speed", "quick": args.quick, "genes": args.genes, "latent": args.latent,
           "batch": args.batch, "cardinalities": args.cardinalities, "threads": torch.get_num_threads(),
           "machine": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
           "step": step, "fit": fit}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
