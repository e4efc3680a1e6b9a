"""dualdann as a model: fit/predict/save/load for every peak encoder × divergence, the seed-001 fixes of the
training loop (no test cell reaches training or early stopping; the kept model is the best on target
validation), determinism, configuration errors, and adaptation beating the source-only ablation."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from xmodal.config import load_params
from xmodal.errors import ConfigError
from xmodal.families.multiome._config import MultiomePreprocessConfig
from xmodal.families.multiome._data import MultiomeData, synthetic_multiome
from xmodal.families.multiome._evaluate import evaluate_phases
from xmodal.families.multiome._preprocess import preprocess_multiome, without_test
from xmodal.methods import load_model
from xmodal.methods.dualdann import DualDANN, DualDANNConfig
from xmodal.nn import PEAK_KINDS

SMALL = {"shared_dim": 32, "peak_hidden": 16, "peak_intermediate": 32, "cls_hidden": 16, "disc_hidden": 16,
         "source_pcs": 10, "batch_size": 32, "eval_every": 1}


@pytest.fixture(scope="module")
def data() -> MultiomeData:
    raw = synthetic_multiome(n_cells=150, n_background_genes=40, n_background_peaks=150, domains=("a", "b"),
                             program_shift=1.0, seed=3)
    return preprocess_multiome(raw, cfg=MultiomePreprocessConfig())[0]


def _fit(data: MultiomeData, **overrides: object) -> DualDANN:
    return DualDANN(DualDANNConfig(**{**SMALL, "epochs": 2, **overrides})).fit(data, seed=0)


def _weights(model: DualDANN) -> list[torch.Tensor]:
    assert model.module is not None
    return [t.clone() for t in model.module.state_dict().values()]


@pytest.mark.parametrize("kind", PEAK_KINDS)
@pytest.mark.parametrize("divergence", ["mmd", "coral", "kl", "js"])
def test_every_encoder_and_divergence_fits_predicts_and_round_trips(data: MultiomeData, kind: str, divergence: str,
                                                                     tmp_path: Path) -> None:
    model = _fit(data, peak_encoder=kind, divergence=divergence)
    losses = [v for h in model.history for k, v in h.items() if k.startswith("loss_")]
    assert losses
    assert all(math.isfinite(v) for v in losses)
    for modality, x in (("atac", data.atac.X), ("rna", data.rna.X)):
        probs = model.predict_proba(x, modality=modality)
        assert probs.shape == (data.rna.n_obs, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.transform(data.atac.X, modality="atac").shape == (data.rna.n_obs, SMALL["shared_dim"])
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(data.atac.X), model.predict_proba(data.atac.X))
    np.testing.assert_array_equal(loaded.predict(data.rna.X, modality="rna"), model.predict(data.rna.X, modality="rna"))


def test_fit_is_deterministic_and_saves_identical_bytes(data: MultiomeData, tmp_path: Path) -> None:
    first, second = _fit(data), _fit(data)
    for a, b in zip(_weights(first), _weights(second), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    digests = []
    for name, model in (("1", first), ("2", second)):
        folder = model.save(tmp_path / name)
        digests.append({f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
                        for f in ("model.json", "history.json", "weights.pt", "source_pca.npz")})
    assert digests[0] == digests[1]


def test_no_test_cell_reaches_training_or_early_stopping(data: MultiomeData) -> None:
    """Seed 001 searched and early-stopped on the split it reported (defect 4). Here the test cells can be
    anything: the fitted weights and the whole history stay the same."""
    test = (data.rna.obs["split"].astype(str) == "test").to_numpy()
    scrambled = MultiomeData(rna=data.rna.copy(), atac=data.atac.copy())
    rng = np.random.default_rng(0)
    for adata in (scrambled.rna, scrambled.atac):
        x = adata.X.toarray()
        x[test] = rng.random((int(test.sum()), x.shape[1])).astype(np.float32) * 5
        adata.X = x
    scrambled.rna.obs.loc[test, "phase"] = "G2M"
    a, b = _fit(data, epochs=3), _fit(scrambled, epochs=3)
    assert a.history == b.history
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        torch.testing.assert_close(wa, wb, rtol=0, atol=0)
    # ... and dropping them is the same again
    c = _fit(without_test(data), epochs=3)
    assert c.history == a.history


def test_the_kept_model_is_the_best_on_target_validation(data: MultiomeData) -> None:
    """Seed 001 reported the checkpoint that was best on the *source* validation cells (defect 5)."""
    model = _fit(data, epochs=8)
    validated = [h for h in model.history if "val_macro_f1" in h]
    assert len(validated) == 8
    best = max(validated, key=lambda h: h["val_macro_f1"])
    assert model.info["best_epoch"] == best["epoch"]
    # the kept weights score exactly the best validation value again
    again = evaluate_phases(model, data, split="validation")["target_atac_macro_f1"]
    assert again == pytest.approx(best["val_macro_f1"], abs=1e-9)
    assert again == pytest.approx(model.info["best_val_macro_f1"], abs=1e-9)


def test_early_stopping_after_patience_validations(data: MultiomeData) -> None:
    model = _fit(data, epochs=40, patience=2, lr=1e-9)  # nothing improves after the first validation
    assert model.info["epochs_run"] == 3
    assert "no improvement" in model.info["stopped"]


def test_source_only_never_sees_the_target_domain(data: MultiomeData) -> None:
    model = _fit(data, adapt=False)
    assert model.info["n_target_train"] == 0
    adapted = _fit(data)
    assert adapted.info["n_target_train"] > 0
    # the target domain's training labels are not read unless asked for
    target_train = (data.rna.obs["split"].astype(str) == "train").to_numpy() & (
        data.rna.obs["domain"].astype(str) == "b").to_numpy()
    relabelled = MultiomeData(rna=data.rna.copy(), atac=data.atac.copy())
    relabelled.rna.obs.loc[target_train, "phase"] = "S"
    assert _fit(relabelled).history == adapted.history
    assert _fit(relabelled, target_labels=True).history != _fit(data, target_labels=True).history


def test_flags_the_seed_could_not_switch_off_are_plain_booleans(tmp_path: Path) -> None:
    """Seed 001's store_true flags with default=True could not be turned off (defect 8)."""
    (tmp_path / "params.yaml").write_text("methods:\n  dualdann: {}\n")
    params = load_params(tmp_path / "params.yaml", overrides=["methods.dualdann.conditional=false",
                                                              "methods.dualdann.adapt=false"])
    cfg = params.method("dualdann")
    assert cfg.conditional is False
    assert cfg.adapt is False
    model = DualDANN(cfg.model_copy(update=SMALL))
    module = model._build(10, 50)
    assert module.discriminator[0].in_features == SMALL["shared_dim"]  # no class probabilities


def test_configuration_errors(data: MultiomeData) -> None:
    with pytest.raises(ConfigError, match="scfoundation_path: set it"):
        _fit(data, source_encoder="scfoundation")
    with pytest.raises(ConfigError, match=r"geneformer_path: set it .*source_encoder: ensemble"):
        _fit(data, source_encoder="ensemble", scfoundation_path="anywhere")
    with pytest.raises(ConfigError, match="geneformer_path: set it"):
        _fit(data, source_encoder="geneformer")
    with pytest.raises(ConfigError, match="target_domain 'x'"):
        DualDANN(DualDANNConfig(**SMALL)).fit(data, target_domain="x")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            _fit(data, device="cuda")
    with pytest.raises(RuntimeError, match="not fitted"):
        DualDANN().predict(data.atac.X)


def test_adaptation_beats_the_source_only_ablation_on_a_planted_shift() -> None:
    """The second cell line's S-program chromatin is more open and its G2/M program less: a model trained on
    the first line reads its cells as S-like. Adapting to the line's unlabelled cells must recover > 0.10
    macro-F1 on its held-out test cells (the seed's defaults; generator seed 1, not the demo's 0).

    Measured over generator seeds 0-3 at these sizes: gains 0.198, 0.142, 0.107, 0.071; smaller data
    (500 cells per line, narrower networks, 60 epochs) gave 0.085, -0.098, 0.198: adaptation needs the
    seed's sizes and schedule to be reliable.
    """
    raw = synthetic_multiome(n_cells=800, domains=("a", "b"), program_shift=1.0, seed=1)
    data = preprocess_multiome(raw, cfg=MultiomePreprocessConfig())[0]
    train = without_test(data)
    scores = {adapt: evaluate_phases(DualDANN(DualDANNConfig(adapt=adapt)).fit(train, seed=0), data,
                                     split="test")["target_atac_macro_f1"] for adapt in (True, False)}
    assert scores[True] > scores[False] + 0.10, scores


def test_expression_side_classifier_learns_planted_phases_and_keeps_its_best_epoch() -> None:
    from xmodal.families.multiome._prep import normalize_cpm_log1p_l2
    from xmodal.methods.dualdann._expression import expression_phase_check, split_stratified

    raw = synthetic_multiome(n_cells=300, n_background_genes=60, n_background_peaks=10, domains=("a",), seed=5)
    x = normalize_cpm_log1p_l2(raw.rna.X)
    phases = raw.rna.obs["phase"].astype(str).to_numpy()
    split = split_stratified(phases, seed=0)
    cfg = DualDANNConfig(**{**SMALL, "epochs": 30, "eval_every": 5, "lr": 1e-3})
    check = expression_phase_check(x, phases, split, config=cfg, seed=0)
    assert check.test["macro_f1"] > 0.9
    assert check.test["n"] == (split == "test").sum()
    # test cells are only predicted: other test expression, the same kept epoch and validation score
    scrambled = x.toarray()
    scrambled[split == "test"] = 0.0
    again = expression_phase_check(scrambled, phases, split, config=cfg, seed=0)
    assert (again.best_epoch, again.best_validation) == (check.best_epoch, check.best_validation)


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(data: MultiomeData, tmp_path: Path) -> None:
    """Interrupted mid-training (the last checkpoint falls inside an epoch), resumed in a process whose RNG has
    moved on: the same weights, history, kept epoch and early-stopping state."""
    from xmodal.train import CHECKPOINT

    over = {"epochs": 5, "checkpoint_every": 2}
    full = _fit(data, **over)

    class Interrupt(Exception):
        pass

    def stop(epoch: int, record: dict[str, float]) -> None:
        if epoch == 3:
            raise Interrupt

    cfg = DualDANNConfig(**{**SMALL, **over})
    with pytest.raises(Interrupt):
        DualDANN(cfg).fit(data, seed=0, checkpoint_dir=tmp_path, callback=stop)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    position = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["step"]
    assert position % full.info["steps_per_epoch"] != 0  # resumed inside an epoch
    torch.manual_seed(1234)
    np.random.seed(1234)
    resumed = DualDANN(cfg).fit(data, seed=0, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(_weights(full), _weights(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.history == full.history
    assert {k: resumed.info[k] for k in ("best_epoch", "best_val_macro_f1", "epochs_run", "stopped")} == \
        {k: full.info[k] for k in ("best_epoch", "best_val_macro_f1", "epochs_run", "stopped")}
