"""geoadvae: the seed-000 fixes, the loss schedule, resume, unpaired training, and the ablation."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from xmodal.config import EvaluateConfig, SplitConfig
from xmodal.errors import TrainingDivergedError, XmodalInputError
from xmodal.families.paired._config import PairedPreprocessConfig
from xmodal.families.paired._data import LABEL, MATCH, PairedData
from xmodal.families.paired._evaluate import evaluate_alignment
from xmodal.families.paired._preprocess import assign_split, preprocess_paired
from xmodal.families.paired._synthetic import synthetic_paired
from xmodal.methods.geoadvae import GeoAdVAE, GeoAdVAEConfig
from xmodal.methods.geoadvae._lightning import active_losses, phase_of
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.train import CHECKPOINT

FAST = {"dim": 16, "latent_dim": 4, "max_iter": 12, "batch_size": 16, "phase_durations": [3, 3, 3],
        "prior_clusters": 4, "prior_loss_warmup": 3, "log_every": 1, "checkpoint_every": 5}


@pytest.fixture(scope="module")
def tiny() -> PairedData:
    """Training cells of a small planted dataset (8 PCs per modality)."""
    cfg = PairedPreprocessConfig(n_pcs=8)
    data, _ = preprocess_paired(assign_split(synthetic_paired(n_cells=120, dim_a=12, dim_b=40, n_clusters=3,
                                                              seed=2), split=SplitConfig()), cfg=cfg)
    return data.split("train")


def _weights(model: GeoAdVAE) -> dict[str, torch.Tensor]:
    assert model.module is not None
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def _same(w1: dict[str, torch.Tensor], w2: dict[str, torch.Tensor]) -> bool:
    return w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)


def test_phases_and_schedule() -> None:
    cfg = GeoAdVAEConfig(**FAST)
    assert [phase_of(s, [3, 3, 3]) for s in (0, 2, 3, 5, 6, 8, 9, 100)] == [1, 1, 2, 2, 3, 3, 3, 3]
    assert active_losses(0, cfg) == {"kl", "recon", "prior"}
    assert active_losses(3, cfg) == {"kl", "recon", "prior", "gan"}
    assert active_losses(6, cfg) == {"kl", "recon", "prior", "gan", "gw"}


def test_each_loss_enters_exactly_at_its_phase(tiny: PairedData) -> None:
    model = GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=0)
    terms = {int(h["step"]): {k[5:] for k in h if k.startswith("loss_") and k != "loss_total"}
             for h in model.history}
    assert len(terms) == FAST["max_iter"]
    for step, names in terms.items():
        expected = {"kl", "recon", "prior"} | ({"gan", "discriminator"} if step >= 3 else set()) | \
            ({"gw"} if step >= 6 else set())
        assert names == expected, step
    # the prior warms up linearly over its first 3 iterations, then stays at its full weight
    ratios = [h["weighted_prior"] / h["loss_prior"] for h in model.history[:5]]
    assert ratios == pytest.approx([1 / 3 * 1.0, 2 / 3, 1.0, 1.0, 1.0])


def test_history_is_recorded_every_log_every_iterations(tiny: PairedData) -> None:
    model = GeoAdVAE(GeoAdVAEConfig(**{**FAST, "log_every": 5})).fit(tiny, seed=0)
    assert [int(h["step"]) for h in model.history] == [0, 5, 10, 11]
    assert "loss_discriminator" in model.history[1]
    assert {"latent_mean_a", "latent_std_b", "latent_cos", "lr", "loss_total"} <= set(model.history[0])


def test_gw_term_has_a_real_gradient_to_the_encoders(tiny: PairedData) -> None:
    """Seed 000 computed GW on detached NumPy codes: its gradient to the encoders was None."""
    from xmodal.losses import gromov_wasserstein_loss

    torch.manual_seed(0)
    module = GeoAdVAEModule(tiny.a.n_vars, tiny.b.n_vars, GeoAdVAEConfig(**FAST)).train()
    x_a = torch.as_tensor(np.asarray(tiny.a.X[:16]))
    x_b = torch.as_tensor(np.asarray(tiny.b.X[:16]))
    z_a, _, _, _ = module.vae_a(x_a)
    z_b, _, _, _ = module.vae_b(x_b)
    loss = gromov_wasserstein_loss(z_a, z_b)
    loss.backward()
    grad_a = module.vae_a.encoder[0][0].weight.grad
    grad_b = module.vae_b.encoder[0][0].weight.grad
    assert loss.item() > 0
    assert grad_a is not None
    assert grad_a.abs().sum() > 0
    assert grad_b is not None
    assert grad_b.abs().sum() > 0


def test_gw_gradient_matches_pot_torch_backend() -> None:
    """Our value and gradient equal POT's own differentiable ``gromov_wasserstein2`` (PyTorch backend).

    Run in a fresh interpreter: in this one POT may already be imported without its PyTorch backend.
    """
    import subprocess
    import sys

    script = """
import json, torch, ot
from xmodal.losses import gromov_wasserstein_loss
g = torch.Generator().manual_seed(0)
za = torch.randn(20, 5, generator=g, dtype=torch.float64, requires_grad=True)
zb = torch.randn(24, 5, generator=g, dtype=torch.float64, requires_grad=True)
ours = gromov_wasserstein_loss(za, zb)
ga, gb = torch.autograd.grad(ours, (za, zb))
ref = ot.gromov_wasserstein2(torch.cdist(za, za), torch.cdist(zb, zb), loss_fun="square_loss")
ra, rb = torch.autograd.grad(ref, (za, zb))
print(json.dumps([ours.item(), ref.item(), (ga - ra).abs().max().item(), (gb - rb).abs().max().item(),
                  ga.abs().max().item()]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    ours, ref, diff_a, diff_b, scale = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours == pytest.approx(ref, rel=1e-6)
    assert scale > 0
    assert diff_a < 1e-6 * max(1.0, scale)
    assert diff_b < 1e-6 * max(1.0, scale)


def test_prior_is_of_the_order_of_the_other_terms_at_initialisation(tiny: PairedData) -> None:
    """Seed 000's prior, ``mean((S/τ − T/τ)²)``, was ~200× the other terms at initialisation (τ = 0.07)."""
    from xmodal import losses as L
    from xmodal.methods.geoadvae._prior import build_prior

    cfg = GeoAdVAEConfig(**{**FAST, "dim": 64, "latent_dim": 16})
    prior = build_prior(tiny, cfg, seed=0)
    assert prior is not None
    torch.manual_seed(0)
    module = GeoAdVAEModule(tiny.a.n_vars, tiny.b.n_vars, cfg).train()
    idx_a, idx_b = torch.arange(32), torch.arange(32)
    x_a, x_b = torch.as_tensor(np.asarray(tiny.a.X))[idx_a], torch.as_tensor(np.asarray(tiny.b.X))[idx_b]
    z_a, mu_a, lv_a, xh_a = module.vae_a(x_a)
    z_b, mu_b, lv_b, xh_b = module.vae_b(x_b)
    target = L.prior_target(torch.as_tensor(prior.corr), torch.as_tensor(prior.clusters_a[:32]),
                            torch.as_tensor(prior.clusters_b[:32]))
    ours = L.cluster_prior_mse(z_a, z_b, target).item()
    others = {
        "kl": (L.kl_per_latent_dim(mu_a, lv_a) + L.kl_per_latent_dim(mu_b, lv_b)).item(),
        "recon": (L.l1_reconstruction(xh_a, x_a) + L.l1_reconstruction(xh_b, x_b)).item(),
        "gan": L.generator_loss(module.disc(z_a), module.disc(z_b)).item(),
        "gw": L.gromov_wasserstein_loss(z_a, z_b).item(),
    }
    scale = max(others.values())
    seed_value = ours / cfg.prior_temperature**2  # the original formula on the same codes
    assert 0 < ours <= scale, others
    assert seed_value > 10 * scale  # the original swamped every other term
    assert seed_value == pytest.approx(
        ((F_cos(z_a, z_b) / cfg.prior_temperature - target / cfg.prior_temperature) ** 2).mean().item(), rel=1e-5)


def F_cos(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(z_a, dim=1) @ torch.nn.functional.normalize(z_b, dim=1).T


def test_infonce_prior_ignores_rows_without_positives() -> None:
    """Seed 000's Example prior charged −log(1e−8) ≈ 18.4 for cells with no positive in the batch."""
    from xmodal.losses import cluster_prior_infonce

    z_a, z_b = torch.eye(3, 4), torch.eye(3, 4)
    positives = torch.tensor([[True, False, False], [False, False, False], [False, False, True]])
    value = cluster_prior_infonce(z_a, z_b, positives, temperature=0.5).item()
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert value == pytest.approx(expected)
    assert cluster_prior_infonce(z_a, z_b, torch.zeros(3, 3, dtype=torch.bool)).item() == 0.0


def test_resumed_run_ends_with_the_same_weights(tiny: PairedData, tmp_path: Path) -> None:
    full = GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=3)

    class Interrupt(Exception):
        pass

    def stop_at_7(step: int, record: dict[str, float]) -> None:
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=3, checkpoint_dir=tmp_path, callback=stop_at_7)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"step": 5, "world": 1}]  # the last one
    torch.manual_seed(1234)  # whatever the process did in between must not matter
    resumed = GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=3, checkpoint_dir=tmp_path, resume=True)
    assert _same(_weights(full), _weights(resumed))
    assert resumed.history == full.history
    assert not list(tmp_path.glob(".*tmp*"))  # checkpoints are written atomically: no temporary file is left


def test_resume_refuses_a_checkpoint_of_other_settings(tiny: PairedData, tmp_path: Path) -> None:
    GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(XmodalInputError, match="other settings"):
        GeoAdVAE(GeoAdVAEConfig(**{**FAST, "gw_w": 3.0})).fit(tiny, seed=0, checkpoint_dir=tmp_path, resume=True)


def test_unpaired_mode_never_reads_the_pairing_or_labels(tiny: PairedData) -> None:
    a, b = tiny.a.copy(), tiny.b.copy()
    rng = np.random.default_rng(0)
    for adata in (a, b):
        del adata.obs[MATCH]
        adata.obs[LABEL] = rng.permutation(adata.obs[LABEL].to_numpy())
    blind = replace(tiny, a=a, b=b)
    assert not blind.has_pairing
    w1 = _weights(GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=0))
    w2 = _weights(GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(blind, seed=0))
    assert _same(w1, w2)
    # paired mode does read it, and says so when it is missing
    with pytest.raises(XmodalInputError, match="partner pairs"):
        GeoAdVAE(GeoAdVAEConfig(**{**FAST, "mode": "paired"})).fit(blind, seed=0)
    w3 = _weights(GeoAdVAE(GeoAdVAEConfig(**{**FAST, "mode": "paired"})).fit(tiny, seed=0))
    assert not _same(w1, w3)


def test_deterministic_and_round_trips(tiny: PairedData, tmp_path: Path) -> None:
    m1 = GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=5)
    m2 = GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=5)
    assert _same(_weights(m1), _weights(m2))
    assert not _same(_weights(m1), _weights(GeoAdVAE(GeoAdVAEConfig(**FAST)).fit(tiny, seed=6)))
    m1.save(tmp_path / "a")
    m2.save(tmp_path / "b")
    for name in ("model.json", "history.json", "weights.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "loss_curves.png").stat().st_size > 1000
    loaded = GeoAdVAE.load(tmp_path / "a")
    x = np.asarray(tiny.b.X)
    z = loaded.transform(x, modality="b")
    assert z.shape == (tiny.b.n_obs, FAST["latent_dim"])
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z, m1.transform(x, modality="b"))
    np.testing.assert_array_equal(z, loaded.transform(x, modality="b"))  # eval mode: no dropout, no sampling
    assert loaded.module is not None
    assert not loaded.module.training
    with pytest.raises(XmodalInputError, match="features"):
        loaded.transform(x[:, :3], modality="b")


def test_diverging_loss_stops_with_the_term_named(tiny: PairedData) -> None:
    a = tiny.a.copy()
    a.X = np.asarray(a.X).copy()
    a.X[0, 0] = np.inf
    bad = replace(tiny, a=a)
    cfg = GeoAdVAEConfig(**{**FAST, "prior_source": "none", "batch_size": len(a)})
    with pytest.raises(TrainingDivergedError, match=r"the (kl|recon) loss became .* at iteration 0"):
        GeoAdVAE(cfg).fit(bad, seed=0)


@pytest.mark.parametrize("gan_type", ["nsgan", "wgan-gp"])
def test_other_gan_losses_train(tiny: PairedData, gan_type: str) -> None:
    model = GeoAdVAE(GeoAdVAEConfig(**{**FAST, "gan_type": gan_type, "gw_mode": "groupwise",
                                       "gw_group_size": 4, "prior_form": "infonce", "shared_layer": True})).fit(
        tiny, seed=0)
    assert all(math.isfinite(v) for h in model.history for v in h.values())
    assert model.module is not None
    assert model.module.vae_a.mu is model.module.vae_b.mu


def test_beats_its_no_alignment_ablation_on_planted_structure() -> None:
    """VAEs alone (no adversary, GW or prior) leave the modalities unaligned; the full model aligns them."""
    cfg = PairedPreprocessConfig(n_pcs=8)
    data, _ = preprocess_paired(assign_split(synthetic_paired(n_cells=300, dim_a=12, dim_b=40, n_clusters=3,
                                                              seed=3), split=SplitConfig()), cfg=cfg)
    base = {"dim": 32, "latent_dim": 8, "max_iter": 300, "phase_durations": [50, 100, 100], "prior_clusters": 8,
            "lambda_p": 30.0, "prior_loss_warmup": 50, "checkpoint_every": 1000}
    scores = {}
    for name, over in (("full", {}), ("ablation", {"gan_w": 0.0, "gw_w": 0.0, "lambda_p": 0.0})):
        model = GeoAdVAE(GeoAdVAEConfig(**{**base, **over})).fit(data.split("train"), seed=0)
        scores[name] = evaluate_alignment(model, data.split("validation"), cfg=EvaluateConfig())
    assert scores["full"]["foscttm"] < scores["ablation"]["foscttm"] - 0.08, scores
    assert scores["full"]["label_transfer_accuracy"] > scores["ablation"]["label_transfer_accuracy"], scores


def test_cuda_without_a_device_is_a_config_error(tiny: PairedData) -> None:
    from xmodal.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        GeoAdVAE(GeoAdVAEConfig(**{**FAST, "device": "cuda"})).fit(tiny, seed=0)


def test_architecture_and_initialisation_follow_the_seed() -> None:
    from xmodal.nn import encoder_widths

    assert encoder_widths(2000, 256) == [1024, 512, 256]
    assert encoder_widths(1200, 256) == [512, 256, 256]
    assert encoder_widths(645, 256) == [512, 256]
    assert encoder_widths(30, 256) == [256]
    assert encoder_widths(300, 64) == [128, 64]
    torch.manual_seed(0)
    module = GeoAdVAEModule(645, 2000, GeoAdVAEConfig())
    first = module.vae_b.encoder[0][0]
    assert tuple(first.weight.shape) == (1024, 2000)
    # Kaiming-normal, fan-in: std sqrt(2 / fan_in); zero biases
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / 2000), rel=0.02)
    assert torch.count_nonzero(first.bias) == 0
    disc = [m for m in module.disc.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in disc] == [(256, 16), (128, 256), (64, 128), (1, 64)]
    assert disc[1].weight.std().item() == pytest.approx(0.02, rel=0.05)
    decoder_out = module.vae_a.decoder[-1]
    assert isinstance(decoder_out, torch.nn.Linear)
    assert decoder_out.out_features == 645  # plain linear output, no activation


def test_prior_from_the_datas_clusters_and_correlation_matrix(tiny: PairedData) -> None:
    """``prior_source: data`` is the seed's setting: cluster files plus ``Corr_matrix.csv``."""
    from xmodal.methods.geoadvae._prior import build_prior

    cfg = GeoAdVAEConfig(**{**FAST, "prior_source": "data"})
    prior = build_prior(tiny, cfg, seed=0)
    assert prior is not None
    assert prior.source == "data"
    names = list(tiny.corr_matrix.columns)
    assert [names[i] for i in prior.clusters_a] == list(tiny.a.obs["cluster"].astype(str))
    np.testing.assert_allclose(prior.corr, tiny.corr_matrix.to_numpy(), rtol=1e-6)
    GeoAdVAE(cfg).fit(tiny, seed=0)  # trains with it
    with pytest.raises(XmodalInputError, match="no cluster columns"):
        build_prior(replace(tiny, corr_matrix=None), cfg, seed=0)
    b = tiny.b.copy()
    b.obs["cluster"] = "unknown_type"
    with pytest.raises(XmodalInputError, match="unknown_type"):
        build_prior(replace(tiny, b=b), cfg, seed=0)
    # the unsupervised prior reads neither: it has its own clusters
    unsup = build_prior(tiny, GeoAdVAEConfig(**FAST), seed=0)
    assert unsup is not None
    assert unsup.source == "unsupervised"
    assert unsup.corr.shape == (4, 4)
    assert build_prior(tiny, GeoAdVAEConfig(**{**FAST, "prior_source": "none"}), seed=0) is None
