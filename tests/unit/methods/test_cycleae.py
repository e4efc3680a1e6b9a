"""cycleae as a method: trained through the engine on the streamed census store, deterministic, resumable,
saved and loaded with checks, and its counterfactual and contribution API."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from xmodal.config import params_from_dict
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.methods import load_model
from xmodal.methods.cycleae import CycleAE, CycleAEConfig
from xmodal.stages import ingest, preprocess

pytest.importorskip("tiledbsoma")

SMALL = {"latent": 16, "classifier_width": 16, "batch_size": 32, "epochs": 3, "max_validation_cells": 200}


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("census")
    params = params_from_dict({
        "datasets": {"c": {"family": "census", "fields": ["cell_type", "sex", "tissue_general", "assay"],
                           "source": {"kind": "synthetic_census", "n_cells": 1200, "n_genes": 60, "chunk_size": 300,
                                      "seed": 1}}},
        "preprocess": {"census": {"n_top_genes": 50, "chunk_size": 120}}})
    ingest.run(params, dataset="c", root=root)
    preprocess.run(params, dataset="c", root=root)
    return root / "data/processed/c"


@pytest.fixture(scope="module")
def data(processed: Path):
    from xmodal.families.census import read_processed

    return read_processed(processed)


@pytest.fixture(scope="module")
def fitted(data) -> CycleAE:
    return CycleAE(CycleAEConfig(**SMALL)).fit(data, seed=0)


def _cells(data, n: int = 40) -> ad.AnnData:
    counts, _, obs = data.sample("validation", max_cells=n, seed=0)
    return ad.AnnData(X=counts, obs=obs, var=pd.DataFrame({"feature_name": data.feature_names},
                                                          index=pd.Index(data.genes, name="feature_id")))


def _weights(model: CycleAE) -> list[torch.Tensor]:
    return [*model.net.state_dict().values(), *model.classifier.state_dict().values()]


def test_fit_reads_the_stream_and_records_epochs(fitted: CycleAE, data) -> None:
    epochs = [h for h in fitted.history if "epoch" in h]
    assert [h["epoch"] for h in epochs] == [1.0, 2.0, 3.0]
    validated = [h for h in fitted.history if "val_loss" in h]
    assert len(validated) == 3
    assert all(np.isfinite(h["val_recon"]) for h in validated)
    assert fitted.info["n_train"] == data.ranges["train"][1] - data.ranges["train"][0]
    assert fitted.info["steps_run"] == fitted.info["steps"] > 0
    assert fitted.info["fields"] == data.vocab.fields
    assert not fitted.net.training
    assert not fitted.classifier.training


def test_the_same_seed_gives_the_same_weights(fitted: CycleAE, data) -> None:
    again = CycleAE(CycleAEConfig(**SMALL)).fit(data, seed=0)
    for a, b in zip(_weights(fitted), _weights(again), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = CycleAE(CycleAEConfig(**SMALL)).fit(data, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(_weights(fitted), _weights(other), strict=True))


def test_spawn_workers_train_the_same_model(fitted: CycleAE, data) -> None:
    """DataLoader workers started with spawn (TileDB is not fork-safe) read the same batches in the same order."""
    with_workers = CycleAE(CycleAEConfig(**SMALL, workers=1)).fit(data, seed=0)
    for a, b in zip(_weights(fitted), _weights(with_workers), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_resumed_run_ends_bit_identical(fitted: CycleAE, data, tmp_path: Path) -> None:
    from xmodal.train import CHECKPOINT

    cfg = CycleAEConfig(**SMALL, checkpoint_every=5)

    class Interrupt(Exception):
        pass

    def stop(epoch: int, record: dict[str, float]) -> None:
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        CycleAE(cfg).fit(data, seed=0, checkpoint_dir=tmp_path, callback=stop)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert 0 < saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["step"] < fitted.info["steps"]
    torch.manual_seed(99)
    resumed = CycleAE(cfg).fit(data, seed=0, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(_weights(fitted), _weights(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.history == fitted.history


def test_save_load_round_trip(fitted: CycleAE, data, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    cells = _cells(data)
    a = fitted.counterfactual(cells, set={"sex": "female"})
    b = loaded.counterfactual(cells, set={"sex": "female"})
    np.testing.assert_array_equal(a.X, b.X)
    assert loaded.fields == fitted.fields
    assert loaded.genes == fitted.genes
    assert (tmp_path / "m/loss_curves.png").stat().st_size > 1000


def test_load_checks_its_files(fitted: CycleAE, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m")
    genes = json.loads((path / "genes.json").read_text())
    (path / "genes.json").write_text(json.dumps({**genes, "genes": genes["genes"][:-1]}))
    with pytest.raises(XmodalInputError, match="genes.json and vocab.json hold"):
        load_model(path)
    (path / "genes.json").write_text(json.dumps(genes))
    (path / "weights.pt").write_bytes((path / "weights.pt").read_bytes()[:100])
    with pytest.raises(XmodalInputError, match="cycleae weights"):
        load_model(path)


def test_counterfactual_moves_every_field_it_is_told(fitted: CycleAE, data) -> None:
    cells = _cells(data)
    out = fitted.counterfactual(cells, set={"sex": "female", "assay": fitted.values("assay")[0]})
    assert out.shape == (len(cells), len(data.genes))
    assert set(out.obs["sex"]) == {"female"}
    assert list(out.obs["source_sex"]) == list(cells.obs["sex"])
    np.testing.assert_allclose(out.layers["change"], out.X - out.layers["reconstruction"], atol=1e-6)
    same = fitted.counterfactual(cells, set={})
    np.testing.assert_allclose(same.X, same.layers["reconstruction"])
    female = (cells.obs["sex"].astype(str) == "female").to_numpy()
    assert np.abs(out.layers["change"][female & (cells.obs["assay"] == fitted.values("assay")[0]).to_numpy()]).max(
        initial=0) < 1e-5  # nothing to change for cells already in the context
    assert np.abs(out.layers["change"][~female]).mean() > 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"colour": "red"}, "cannot set 'colour'"),
    ({"sex": "other"}, r"sex = 'other' is not a value the model learned \(known: female, male\)"),
])
def test_counterfactual_refuses_what_the_model_does_not_know(fitted: CycleAE, data, changes: dict,
                                                            message: str) -> None:
    with pytest.raises(XmodalInputError, match=message):
        fitted.counterfactual(_cells(data), set=changes)


def test_inputs_are_checked(fitted: CycleAE, data) -> None:
    cells = _cells(data)
    with pytest.raises(XmodalInputError, match="lacks 2 of the model's"):
        fitted.counterfactual(cells[:, 2:], set={"sex": "female"})
    with pytest.raises(XmodalInputError, match="obs lacks the field 'assay'"):
        fitted.counterfactual(ad.AnnData(X=cells.X, obs=cells.obs.drop(columns=["assay"]), var=cells.var),
                              set={"sex": "female"})
    bad = cells.copy()
    bad.X = bad.X.astype(np.float32) * 0.5
    bad.X.data[0] = 0.5
    with pytest.raises(XmodalInputError, match="not an integer"):
        fitted.counterfactual(bad, set={"sex": "female"})
    by_name = cells.copy()
    by_name.var_names = data.feature_names  # genes may be named by feature_name
    np.testing.assert_array_equal(fitted.counterfactual(by_name, set={"sex": "male"}).X,
                                  fitted.counterfactual(cells, set={"sex": "male"}).X)


@pytest.mark.parametrize(("value", "message"), [(16777217.0, "beyond what float32 holds exactly"),
                                                (1e-50, "not an integer")])
def test_served_counts_are_checked_before_float32_could_change_them(fitted: CycleAE, data, value: float,
                                                                    message: str) -> None:
    """float32 stores 16 777 217 as 16 777 216 and a float64 1e-50 as 0: checked after the conversion, both passed."""
    bad = _cells(data).copy()
    bad.X = bad.X.astype(np.float64)
    bad.X.data[0] = value
    with pytest.raises(XmodalInputError, match=message):
        fitted.counterfactual(bad, set={"sex": "female"})


def test_null_and_unseen_metadata_take_the_reserved_path(fitted: CycleAE, data) -> None:
    cells = _cells(data, n=6)
    cells.obs["tissue_general"] = ["unknown", None, "a tissue never seen", "blood", "lung", "brain"]
    out = fitted.counterfactual(cells, set={"sex": "female"})
    assert np.isfinite(out.X).all()


def test_contributions_are_additive_and_in_eval_mode(fitted: CycleAE, data) -> None:
    cells = _cells(data)
    fitted.net.train()
    parts = fitted.contributions(cells)
    assert fitted.net.training  # the mode is put back
    fitted.net.eval()
    total = sum(parts.layers[name] for name in ["base", *fitted.fields])
    np.testing.assert_allclose(parts.X, total, atol=1e-5)
    for name in ["base", *fitted.fields]:
        np.testing.assert_allclose(parts.obs[f"influence_{name}"], np.linalg.norm(parts.layers[name], axis=1),
                                   rtol=1e-5)
    with torch.enable_grad():
        x, codes = fitted.inputs(cells)
        out, _ = fitted._forward(x, codes, codes)
    assert not out.requires_grad


def test_the_seed_configuration_trains_too(data) -> None:
    """The seed's choices (field init, plain-MSE integration, no smoothing, lr 1e-4) run through the same code."""
    seed = CycleAEConfig(**{**SMALL, "epochs": 1}, field_init="seed", integration="mse", label_smoothing=0.0, lr=1e-4,
                          shift_weight=0.0)
    model = CycleAE(seed).fit(data, seed=0)
    assert np.isfinite([h["loss_total"] for h in model.history if "loss_total" in h]).all()


def test_the_shift_term_reads_checked_training_means(processed: Path, tmp_path: Path) -> None:
    import shutil

    from xmodal.families.census import read_processed

    copy = tmp_path / "c"
    shutil.copytree(processed, copy)
    data = read_processed(copy)
    means = data.field_means()
    assert [m.shape for m in means] == [(k + 1, data.n_genes) for k in data.cardinalities]
    assert [m.shape for m in data.field_means(adjusted=True)] == [m.shape for m in means]
    with np.load(copy / "field_means.npz") as npz:
        arrays = dict(npz)
    name = data.vocab.fields[0]
    np.savez(copy / "field_means.npz", **{**arrays, f"mean:{name}": arrays[f"mean:{name}"][:, :3]})
    with pytest.raises(XmodalInputError, match=r"mean:.* expected shape .* found \(\d+, 3\)"):
        CycleAE(CycleAEConfig(**SMALL, shift_targets="means")).fit(data, seed=0)
    np.savez(copy / "field_means.npz", **{k: v for k, v in arrays.items() if k != f"effect:{name}"})  # an older file
    with pytest.raises(XmodalInputError, match=rf"effect:{name}: expected shape .* found missing"):
        CycleAE(CycleAEConfig(**SMALL, shift_targets="adjusted")).fit(data, seed=0)
    (copy / "field_means.npz").unlink()
    with pytest.raises(XmodalInputError, match="no per-value training means"):
        data.field_means()
    CycleAE(CycleAEConfig(**{**SMALL, "epochs": 1}, shift_weight=0.0)).fit(data, seed=0)  # the seed has no such term


def test_auto_shift_targets_take_the_count_model_where_it_fits(data, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` fits the Poisson GLM when the fields' indicator columns fit its per-gene Hessian and the adjusted
    effects beyond, and says which in ``model.json``."""
    from xmodal.methods.cycleae import _glm

    quick = {**SMALL, "epochs": 1}
    assert CycleAE(CycleAEConfig(**quick)).fit(data, seed=0).info["shift_targets"] == "glm"
    monkeypatch.setattr(_glm, "MAX_COLUMNS", 2)
    assert CycleAE(CycleAEConfig(**quick)).fit(data, seed=0).info["shift_targets"] == "adjusted"
    with pytest.raises(ConfigError, match="at most 2"):
        CycleAE(CycleAEConfig(**quick, shift_targets="glm")).fit(data, seed=0)
