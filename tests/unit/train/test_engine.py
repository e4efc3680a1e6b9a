"""The training engine itself: layouts, live logging while training runs, NaN checks, precision, RNG state."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from xmodal.errors import ConfigError, TrainingDivergedError
from xmodal.train import EngineSettings, StepLoader, fit, resolve_layout
from xmodal.train._engine import rng_state, set_rng_state

sys.path.insert(0, str(Path(__file__).parents[2] / "train"))
from _linear import Linear, fit_linear  # noqa: E402


def test_a_layout_needs_ddp_for_more_than_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_layout(EngineSettings(device="cpu"), what="m").world == 1
    with pytest.raises(ConfigError, match="strategy: ddp"):
        resolve_layout(EngineSettings(device="cpu", devices=2), what="methods.x")
    assert resolve_layout(EngineSettings(device="cpu", strategy="ddp"), what="m").world == 1
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node 2 --nnodes 3"):
        resolve_layout(EngineSettings(device="cpu", strategy="ddp", devices=2, num_nodes=3), what="m")
    # under torchrun, auto takes its layout; an explicit one must agree with it
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    auto = resolve_layout(EngineSettings(device="cpu", strategy="ddp"), what="m")
    assert (auto.devices, auto.num_nodes, auto.world, auto.distributed) == (2, 2, 4, True)
    with pytest.raises(ConfigError, match="torchrun started 4"):
        resolve_layout(EngineSettings(device="cpu", strategy="ddp", devices=3, num_nodes=1), what="m")
    with pytest.raises(ConfigError, match="strategy: ddp"):
        resolve_layout(EngineSettings(device="cpu"), what="m")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_layout(EngineSettings(device="cuda"), what="methods.x")


def test_rng_state_round_trips_through_plain_values() -> None:
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    set_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_records_reach_mlflow_while_training_runs(tmp_path: Path) -> None:
    """Each record is in the MLflow store before the next step starts (flush every record here)."""
    from mlflow import MlflowClient

    from xmodal.tracking import Tracker
    from xmodal.tracking._live import TrainingRun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="xmodal", artifact_location=str(tmp_path / "artifacts"))
    run = TrainingRun(tracker, run_name="linear", params={"lr": "0.1"}, inputs=[], tags={}, flush_seconds=0.0)
    client = MlflowClient(tracking_uri=uri)
    seen: list[list[int]] = []

    def look(step: int, record: dict[str, float]) -> None:
        seen.append([m.step for m in client.get_metric_history(run.run_id, "train/loss")])

    module = Linear()
    x = torch.randn(32, 5)
    loader = StepLoader(lambda step, rank, world: {"step": step, "x": x[:8], "y": x[:8, :1]}, total=4)
    fit(module, loader, settings=EngineSettings(device="cpu"), digest="t", seed=0, live=run, on_record=look)
    assert seen == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert client.get_experiment_by_name("xmodal").tags["mlflow.experimentKind"] == "custom_model_development"


class _Exploding(Linear):
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return super().training_step(batch, batch_idx) * (float("inf") if batch["step"] == 2 else 1.0)


def test_a_non_finite_loss_stops_training_naming_it() -> None:
    x = torch.randn(16, 5)
    loader = StepLoader(lambda step, rank, world: {"step": step, "x": x, "y": x[:, :1]}, total=5)
    with pytest.raises(TrainingDivergedError, match=r"the total loss became inf at step 3"):
        fit(_Exploding(), loader, settings=EngineSettings(device="cpu"), digest="t", seed=0)


def test_bf16_mixed_precision_trains_on_cpu_too() -> None:
    """``precision: bf16-mixed`` autocasts the matmuls (a GPU setting; CPU autocast runs the same path)."""
    torch.set_num_threads(1)
    x = torch.randn(16, 5)
    seen: list[torch.dtype] = []

    class Watch(Linear):
        def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
            seen.append(self.layer(batch["x"]).dtype)
            return super().training_step(batch, batch_idx)

    module = Watch()
    loader = StepLoader(lambda step, rank, world: {"step": step, "x": x, "y": x[:, :1]}, total=3)
    result = fit(module, loader, settings=EngineSettings(device="cpu", precision="bf16-mixed"), digest="t", seed=0)
    assert seen == [torch.bfloat16] * 3
    assert result.summary["precision"] == "bf16-mixed"
    assert module.layer.weight.dtype == torch.float32  # weights stay float32


def test_one_process_fit_is_deterministic() -> None:
    torch.set_num_threads(1)
    a, b = fit_linear(batch_size=8, strategy="auto"), fit_linear(batch_size=8, strategy="auto")
    assert all(torch.equal(a[k], b[k]) for k in a)



def test_a_saved_model_loads_and_predicts_without_lightning(tmp_path: Path) -> None:
    """Serving needs the networks, not the engine: loading and predicting never imports Lightning."""
    import subprocess

    from xmodal.config import SplitConfig
    from xmodal.families.multiome._config import MultiomePreprocessConfig
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.multiome._preprocess import preprocess_multiome
    from xmodal.families.paired._config import PairedPreprocessConfig
    from xmodal.families.paired._preprocess import assign_split, preprocess_paired
    from xmodal.families.paired._synthetic import synthetic_paired
    from xmodal.methods.dualdann import DualDANN, DualDANNConfig
    from xmodal.methods.geoadvae import GeoAdVAE, GeoAdVAEConfig

    torch.set_num_threads(1)
    paired, _ = preprocess_paired(assign_split(synthetic_paired(n_cells=60, dim_a=8, dim_b=12, seed=0),
                                               split=SplitConfig()), cfg=PairedPreprocessConfig(n_pcs=4))
    GeoAdVAE(GeoAdVAEConfig(dim=8, latent_dim=2, max_iter=3, batch_size=8, phase_durations=[1, 1, 1],
                            prior_clusters=2, device="cpu")).fit(paired.split("train"), seed=0).save(tmp_path / "g")
    multi = preprocess_multiome(synthetic_multiome(n_cells=60, n_background_genes=20, n_background_peaks=30,
                                                   domains=("a", "b"), seed=0), cfg=MultiomePreprocessConfig())[0]
    DualDANN(DualDANNConfig(shared_dim=8, peak_hidden=8, peak_intermediate=8, cls_hidden=8, disc_hidden=8,
                            source_pcs=4, batch_size=8, epochs=1, device="cpu")).fit(multi, seed=0).save(tmp_path / "d")
    np.save(tmp_path / "b.npy", np.asarray(paired.b.X, dtype=np.float32))
    np.save(tmp_path / "atac.npy", np.asarray(multi.atac.X.toarray() if hasattr(multi.atac.X, "toarray")
                                              else multi.atac.X, dtype=np.float32))
    code = (f"import sys, numpy as np; from xmodal.methods import load_model; p = {str(tmp_path)!r}\n"
            "z = load_model(p + '/g').transform(np.load(p + '/b.npy'), modality='b')\n"
            "q = load_model(p + '/d').predict_proba(np.load(p + '/atac.npy'), modality='atac')\n"
            "assert z.shape[1] == 2 and q.shape[1] == 3\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
