"""Parameters of :class:`~xmodal.methods.geoadvae.GeoAdVAE` (``params.yaml: methods.geoadvae``).

Defaults are seed 000's main configuration (``attempt_1.yaml``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from xmodal.train._config import EngineSettings

LOSSES = ("kl", "recon", "gan", "gw", "prior")


class GeoAdVAEConfig(EngineSettings):
    """Per-modality VAEs, a latent adversary, differentiable GW and a cluster prior (seed 000).

    Where and how it trains (device, precision, DDP, checkpoints) are the engine's fields,
    :class:`~xmodal.train.EngineSettings`.
    """

    mode: Literal["paired", "unpaired"] = Field(
        "unpaired", description="paired: batches take partner rows together (needs known pairs); unpaired: each "
        "modality is shuffled on its own and the pairing is never read"
    )
    # architecture
    latent_dim: int = Field(16, ge=2, description="shared latent size")
    dim: int = Field(256, ge=4, description="base hidden width of the VAEs (depth adapts to the input width)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout of the VAE blocks")
    shared_layer: bool = Field(False, description="share the mu head and first decoder layer across modalities")
    dis_dim: int = Field(128, ge=2, description="discriminator width (layers 2·dim → dim → dim/2)")
    dis_dropout: float = Field(0.3, ge=0, lt=1)
    dis_norm: Literal["none", "batch", "layer"] = "none"
    gan_type: Literal["lsgan", "nsgan", "wgan-gp"] = "lsgan"
    label_smoothing: float = Field(0.1, ge=0, lt=0.5, description="targets 1−s and s (lsgan/nsgan)")
    gp_w: float = Field(10.0, ge=0, description="gradient-penalty weight (wgan-gp)")
    # losses
    kl_w: float = Field(0.1, ge=0)
    recon_x_w: float = Field(5.0, ge=0)
    gan_w: float = Field(2.0, ge=0, description="weights the encoders' GAN loss and the discriminator's loss")
    gw_w: float = Field(1.0, ge=0)
    lambda_p: float = Field(1.0, ge=0, description="weight of the cluster prior")
    gw_mode: Literal["global", "groupwise"] = "global"
    gw_group_size: int = Field(16, ge=4)
    prior_form: Literal["mse", "infonce"] = Field(
        "mse", description="mse: cosine similarities regress on cluster correlations; infonce: contrast positives"
    )
    prior_temperature: float = Field(0.07, gt=0, description="InfoNCE temperature")
    prior_loss_warmup: int = Field(200, ge=0, description="linear warm-up of the prior over this many iterations")
    prior_source: Literal["unsupervised", "data", "none"] = Field(
        "unsupervised", description="unsupervised: k-means clusters of each modality, matched through an entropic GW "
        "coupling of the training cells (no labels, no pairing); data: the data's `cluster` columns and correlation "
        "matrix (the seed's CSV set); none: no prior"
    )
    prior_clusters: int = Field(24, ge=2, description="k-means clusters per modality (unsupervised prior)")
    positive_threshold: float = Field(0.5, description="infonce: clusters with correlation above this are positives")
    loss_schedule: dict[str, int] = Field(
        default_factory=lambda: {"kl": 1, "recon": 1, "prior": 1, "gan": 2, "gw": 3},
        description="loss → the phase (1-based) from which it is on",
    )
    phase_durations: list[int] = Field(
        default_factory=lambda: [200, 400, 400], description="iterations of each phase; the last lasts to the end"
    )
    # optimisation
    max_iter: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=4)
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    step_size: int = Field(800, ge=1, description="StepLR: decay the learning rate every this many iterations")
    gamma: float = Field(0.8, gt=0, le=1)
    num_disc: int = Field(2, ge=0, description="discriminator updates per iteration (while the GAN loss is on)")
    num_gen: int = Field(1, ge=1, description="encoder/decoder updates per iteration")
    # bookkeeping
    log_every: int = Field(10, ge=1, description="record losses and latent statistics every this many iterations")

    @field_validator("loss_schedule")
    @classmethod
    def _known_losses(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(LOSSES))
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}; known: {list(LOSSES)}")
        if any(v < 1 for v in value.values()):
            raise ValueError("phases are numbered from 1")
        return value

    @model_validator(mode="after")
    def _phases_exist(self) -> GeoAdVAEConfig:
        if not self.phase_durations or any(d < 1 for d in self.phase_durations):
            raise ValueError("phase_durations: give at least one phase, each ≥ 1 iteration")
        late = {k: v for k, v in self.loss_schedule.items() if v > len(self.phase_durations)}
        if late:
            raise ValueError(f"loss_schedule {late} names phases beyond the {len(self.phase_durations)} "
                             "in phase_durations")
        return self
