"""Run by ``torchrun --nproc_per_node 2`` from ``test_ddp.py``: a few DDP steps of each deep method on CPU (gloo).

Each rank writes, under ``$OUT``: its final weights, the rows of every batch it trained on, the records its
live logger received, and how many checkpoints it saved. The method's own outputs (checkpoint, model folder)
go where the method puts them; rank 0 alone saves the model, as ``xmodal train`` does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
OUT = Path(sys.argv[1])
RANK = int(os.environ["RANK"])


class Recorder:
    """A LiveLogger that keeps what it was sent."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        self.records.append({"step": step, **metrics})

    def flush(self) -> None:
        pass


ORIGINAL_ITER: dict[str, object] = {}
CURRENT = ["none"]  # the method being trained, for the checkpoint counts


def count_checkpoint_saves() -> None:
    """Wrap the engine's checkpoint writer so each rank counts the checkpoints it writes."""
    import xmodal.train._engine as engine

    make = engine._checkpoint_io

    def counting() -> object:
        io = make()
        save = io.save_checkpoint

        def wrapped(checkpoint: dict, path: object, storage_options: object = None) -> None:
            counts = OUT / f"{CURRENT[0]}_saves_rank{RANK}.txt"
            counts.write_text(str(int(counts.read_text()) + 1 if counts.exists() else 1))
            save(checkpoint, path, storage_options)

        io.save_checkpoint = wrapped
        return io

    engine._checkpoint_io = counting


def record_batches(tag: str, keys: tuple[str, ...]) -> None:
    """Wrap StepLoader so each rank records the rows of every batch it trains on."""
    import xmodal.train._loader as loader

    original = ORIGINAL_ITER.setdefault("iter", loader.StepLoader.__iter__)
    seen: list[dict[str, list[int]]] = []

    def iterate(self: loader.StepLoader):  # noqa: ANN202
        for batch in original(self):
            seen.append({"step": batch["step"], **{k: batch[k].tolist() for k in keys}})
            (OUT / f"{tag}_batches_rank{RANK}.json").write_text(json.dumps(seen))
            yield batch

    loader.StepLoader.__iter__ = iterate


def save_outputs(tag: str, model: object, recorder: Recorder) -> None:
    torch.save({k: v.detach().clone() for k, v in model.module.state_dict().items()},
               OUT / f"{tag}_weights_rank{RANK}.pt")
    (OUT / f"{tag}_live_rank{RANK}.json").write_text(json.dumps(recorder.records))
    if model.rank == 0:
        model.save(OUT / f"{tag}_model")


def geoadvae() -> None:
    from xmodal.config import SplitConfig
    from xmodal.families.paired._config import PairedPreprocessConfig
    from xmodal.families.paired._preprocess import assign_split, preprocess_paired
    from xmodal.families.paired._synthetic import synthetic_paired
    from xmodal.methods.geoadvae import GeoAdVAE, GeoAdVAEConfig

    data, _ = preprocess_paired(assign_split(synthetic_paired(n_cells=120, dim_a=12, dim_b=40, n_clusters=3, seed=2),
                                             split=SplitConfig()), cfg=PairedPreprocessConfig(n_pcs=8))
    cfg = GeoAdVAEConfig(dim=16, latent_dim=4, max_iter=6, batch_size=8, phase_durations=[2, 2, 2], prior_clusters=4,
                         prior_loss_warmup=2, log_every=1, checkpoint_every=3, strategy="ddp", device="cpu")
    recorder = Recorder()
    record_batches("geoadvae", ("idx_a", "idx_b"))
    model = GeoAdVAE(cfg).fit(data.split("train"), seed=0, checkpoint_dir=OUT / "geoadvae_ckpt", live=recorder)
    save_outputs("geoadvae", model, recorder)


def dualdann() -> None:
    from xmodal.families.multiome._config import MultiomePreprocessConfig
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.multiome._preprocess import preprocess_multiome
    from xmodal.methods.dualdann import DualDANN, DualDANNConfig

    raw = synthetic_multiome(n_cells=150, n_background_genes=40, n_background_peaks=150, domains=("a", "b"),
                             program_shift=1.0, seed=3)
    data = preprocess_multiome(raw, cfg=MultiomePreprocessConfig())[0]
    cfg = DualDANNConfig(shared_dim=32, peak_hidden=16, peak_intermediate=32, cls_hidden=16, disc_hidden=16,
                         source_pcs=10, batch_size=16, eval_every=1, epochs=2, checkpoint_every=2, strategy="ddp",
                         device="cpu")
    recorder = Recorder()
    record_batches("dualdann", ("idx_source", "idx_target"))
    model = DualDANN(cfg).fit(data, seed=0, checkpoint_dir=OUT / "dualdann_ckpt", live=recorder)
    save_outputs("dualdann", model, recorder)
    (OUT / f"dualdann_info_rank{RANK}.json").write_text(json.dumps(model.info))


def cycleae() -> None:
    """cycleae on a processed census store the test wrote (``CENSUS_PROCESSED``): the stream shards by chunk."""
    from xmodal.families.census import read_processed
    from xmodal.methods.cycleae import CycleAE, CycleAEConfig

    data = read_processed(Path(os.environ["CENSUS_PROCESSED"]))
    cfg = CycleAEConfig(latent=8, classifier_width=8, batch_size=16, epochs=2, checkpoint_every=3, strategy="ddp",
                        device="cpu", max_validation_cells=100)
    recorder = Recorder()
    record_batches("cycleae", ("rows",))
    model = CycleAE(cfg).fit(data, seed=0, checkpoint_dir=OUT / "cycleae_ckpt", live=recorder)
    torch.save({**{f"net.{k}": v.detach().clone() for k, v in model.net.state_dict().items()},
                **{f"classifier.{k}": v.detach().clone() for k, v in model.classifier.state_dict().items()}},
               OUT / f"cycleae_weights_rank{RANK}.pt")
    (OUT / f"cycleae_live_rank{RANK}.json").write_text(json.dumps(recorder.records))
    if model.rank == 0:
        model.save(OUT / "cycleae_model")


def linear() -> None:
    """A deterministic least-squares model: 2 processes × batch b must equal 1 process × batch 2b."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _linear import fit_linear

    weights = fit_linear(batch_size=8)
    torch.save(weights, OUT / f"linear_weights_rank{RANK}.pt")


if __name__ == "__main__":
    count_checkpoint_saves()
    import xmodal.train._loader as steps

    for name in sys.argv[2:]:
        CURRENT[0] = name
        steps.StepLoader.__iter__ = ORIGINAL_ITER.get("iter", steps.StepLoader.__iter__)
        {"geoadvae": geoadvae, "dualdann": dualdann, "cycleae": cycleae, "linear": linear}[name]()
