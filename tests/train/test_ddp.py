"""DDP for real: ``torchrun --nproc_per_node 2`` (gloo on CPU) trains a few steps of each deep method.

Checked for geoadvae, dualdann and cycleae: both ranks end with identical weights; each step's batch is split between
the ranks without overlap; only rank 0 writes checkpoints and sends live metrics; the saved model loads back
as the method's class and records the 2 processes.

Two processes at batch b equal one process at batch 2b only for a deterministic model whose loss is a mean
over cells: the least-squares model of ``_linear.py`` checks exactly that (DDP averages the ranks' gradients).
geoadvae and dualdann cannot match, and are not asked to: each process draws its own dropout masks and
re-parameterisation noise (a single process draws other numbers for 2b rows), and their batch-level terms are
not means over cells — Gromov–Wasserstein between the batch's codes, the cluster prior's and the contrastive
loss's pairwise terms, MMD/CORAL and the balance term between batch statistics, and BatchNorm's batch
statistics (synchronised across ranks by SyncBatchNorm, but not the other terms).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def _census(root: Path) -> Path:
    """A processed census dataset (synthetic, 800 cells in chunks of 60 rows) for cycleae."""
    from xmodal.config import params_from_dict
    from xmodal.stages import ingest, preprocess

    params = params_from_dict({
        "datasets": {"c": {"family": "census", "fields": ["cell_type", "sex", "assay"],
                           "source": {"kind": "synthetic_census", "n_cells": 800, "n_genes": 40, "seed": 2}}},
        "preprocess": {"census": {"n_top_genes": 30, "chunk_size": 60}}})
    ingest.run(params, dataset="c", root=root)
    preprocess.run(params, dataset="c", root=root)
    return root / "data/processed/c"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "CENSUS_PROCESSED": str(_census(tmp_path_factory.mktemp("census")))}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(HERE / "_ddp_worker.py"), str(out),
                           "geoadvae", "dualdann", "cycleae", "linear"], capture_output=True, text=True, env=env,
                          timeout=480, cwd=out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _weights(out: Path, tag: str, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(out / f"{tag}_weights_rank{rank}.pt", weights_only=True)


@pytest.mark.parametrize(("tag", "keys", "steps"), [("geoadvae", ("idx_a", "idx_b"), 6),
                                                    ("dualdann", ("idx_source", "idx_target"), None)])
def test_two_processes_train_one_model(ddp_run: Path, tag: str, keys: tuple[str, str], steps: int | None) -> None:
    out = ddp_run
    w0, w1 = _weights(out, tag, 0), _weights(out, tag, 1)
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "the ranks' weights differ"
    # each step's global batch is split between the ranks, without overlap
    b0 = json.loads((out / f"{tag}_batches_rank0.json").read_text())
    b1 = json.loads((out / f"{tag}_batches_rank1.json").read_text())
    assert [b["step"] for b in b0] == [b["step"] for b in b1] == list(range(len(b0)))
    if steps is not None:
        assert len(b0) == steps
    for r0, r1 in zip(b0, b1, strict=True):
        for key in keys:
            assert r0[key]
            assert len(r0[key]) == len(r1[key])
            assert not set(r0[key]) & set(r1[key]), f"step {r0['step']}: {key} overlaps between ranks"
    # rank 0 alone sends live metrics and writes checkpoints
    live0 = json.loads((out / f"{tag}_live_rank0.json").read_text())
    assert live0
    assert json.loads((out / f"{tag}_live_rank1.json").read_text()) == []
    assert int((out / f"{tag}_saves_rank0.txt").read_text()) >= 2
    assert not (out / f"{tag}_saves_rank1.txt").exists()
    assert (out / f"{tag}_ckpt" / "checkpoint.pt").is_file()
    # the saved model loads back as its class, and says it was trained by 2 processes
    from xmodal.methods import load_model

    model = load_model(out / f"{tag}_model")
    assert type(model).__name__ == {"geoadvae": "GeoAdVAE", "dualdann": "DualDANN"}[tag]
    assert model.info["world_size"] == 2
    assert all(torch.equal(v, w0[k]) for k, v in model.module.state_dict().items())
    assert [h["step"] for h in model.history] == [r["step"] for r in live0]  # what rank 0 sent live is the history


def test_two_processes_train_one_cycleae_on_chunk_shards(ddp_run: Path) -> None:
    """cycleae under torchrun: identical weights on both ranks, each rank's cells from its own chunks (a new
    assignment every epoch), one checkpoint writer, and the saved model records the 2 processes."""
    from xmodal.methods import load_model

    out = ddp_run
    w0, w1 = _weights(out, "cycleae", 0), _weights(out, "cycleae", 1)
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "the ranks' weights differ"
    b0 = json.loads((out / "cycleae_batches_rank0.json").read_text())
    b1 = json.loads((out / "cycleae_batches_rank1.json").read_text())
    assert len(b0) == len(b1) > 0
    assert [b["step"] for b in b0] == [b["step"] for b in b1]
    chunk = 60  # rows per chunk of the processed store
    model = load_model(out / "cycleae_model")
    per_epoch = model.info["steps"] // 2
    for epoch in range(2):
        steps = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        rows0 = {r for b in b0[steps] for r in b["rows"]}
        rows1 = {r for b in b1[steps] for r in b["rows"]}
        assert rows0
        assert rows1
        assert not rows0 & rows1, f"epoch {epoch + 1}: the ranks share cells"
        assert not {r // chunk for r in rows0} & {r // chunk for r in rows1}, "a chunk was read by both ranks"
    chunks_epoch = [{r // chunk for b in b0[s] for r in b["rows"]} for s in (slice(0, per_epoch),
                                                                            slice(per_epoch, 2 * per_epoch))]
    assert chunks_epoch[0] != chunks_epoch[1]  # rank 0's chunks are reassigned each epoch
    assert json.loads((out / "cycleae_live_rank1.json").read_text()) == []
    assert json.loads((out / "cycleae_live_rank0.json").read_text())
    assert not (out / "cycleae_saves_rank1.txt").exists()
    assert (out / "cycleae_ckpt/checkpoint.pt").is_file()
    assert model.info["world_size"] == 2
    assert all(torch.equal(v, w0[f"net.{k}"]) for k, v in model.net.state_dict().items())


def test_two_processes_at_batch_b_equal_one_process_at_batch_2b(ddp_run: Path) -> None:
    sys.path.insert(0, str(HERE))
    from _linear import fit_linear

    torch.set_num_threads(1)
    w0, w1 = _weights(ddp_run, "linear", 0), _weights(ddp_run, "linear", 1)
    single = fit_linear(batch_size=16, strategy="auto")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    for k in w0:
        torch.testing.assert_close(w0[k], single[k], rtol=1e-5, atol=1e-6)
    # and the comparison can fail: one process at batch b trains another model
    half = fit_linear(batch_size=8, strategy="auto")
    assert not all(torch.allclose(w0[k], half[k], rtol=1e-5, atol=1e-6) for k in w0)


def test_xmodal_train_under_torchrun_writes_once_from_rank_0(tiny_project: Path) -> None:
    """``torchrun --nproc_per_node 2 -m xmodal.cli train``: one model folder, one checkpoint, one MLflow run."""
    import yaml
    from mlflow import MlflowClient

    from xmodal.cli import main

    root = tiny_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["methods"]["geoadvae"] = {"dim": 16, "latent_dim": 4, "max_iter": 8, "batch_size": 8,
                                     "phase_durations": [3, 3, 2], "prior_clusters": 4, "prior_loss_warmup": 2,
                                     "checkpoint_every": 4, "log_every": 2, "strategy": "ddp", "device": "cpu"}
    params["runs"]["tiny-geoadvae"] = {"dataset": "tiny", "method": "geoadvae"}
    params["register"]["live_training"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert main([stage, "--dataset", "tiny", "--params", str(root / "params.yaml"), "--root", str(root)]) == 0
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "xmodal.cli", "train", "--dataset",
                           "tiny", "--method", "geoadvae", "--params", str(root / "params.yaml"), "--root", str(root)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
                          cwd=root)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rank 1 done (rank 0 saves the model)" in proc.stderr
    model = json.loads((root / "models/tiny/geoadvae/model.json").read_text())
    assert model["info"]["world_size"] == 2
    assert (root / "checkpoints/tiny/geoadvae/checkpoint.pt").is_file()
    assert [h["step"] for h in json.loads((root / "models/tiny/geoadvae/history.json").read_text())] == [0, 2, 4, 6, 7]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("xmodal").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_total")] == [0, 2, 4, 6, 7]
