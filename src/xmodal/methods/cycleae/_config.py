"""Parameters of :class:`~xmodal.methods.cycleae.CycleAE` (``params.yaml: methods.cycleae``).

Defaults are seed 002's (``template_main.py`` and ``trainer.py``) except where its defects are fixed
(``reference/seed-methods.md`` §3.6) or a measurement on the synthetic Census data showed its value does not train:
each such field says so, and ``faithful`` values reproduce the seed's choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xmodal.train._config import EngineSettings


class CycleAEConfig(EngineSettings):
    """The context-conditioned cycle autoencoder (seed 002): a tied base head plus one head set per field.

    Where and how it trains (device, precision, DDP, checkpoints) are the engine's fields,
    :class:`~xmodal.train.EngineSettings`.
    """

    latent: int = Field(256, ge=2, description="L, the width of every head (the seed's example: 128; on the synthetic "
                        "Census data per-cell change R² was 0.59 / 0.60–0.63 / 0.64–0.66 / 0.57 at 64 / 128 / 256 / 512)")
    classifier_width: int = Field(128, ge=2, description="the context classifier's hidden layer (the seed: 128)")
    cycles: bool = Field(True, description="the two cycles and the integration term (false: the ablation trained "
                         "beside it, reconstruction in the source context plus target consistency only)")
    field_init: Literal["identity", "seed"] = Field(
        "identity", description="field heads start as identity maps and encoders/decoders orthogonal (signed); seed: "
        "U(0,1) entries with unit columns, which makes every field map rank-1 along the mean profile, so fields never "
        "moved a counterfactual (measured)")
    field_gain: float = Field(0.1, gt=0, description="each field map's initial operator norm relative to the base "
                              "head's (learnable per-head output scales replace the seed's fixed 0.0159)")
    integration: Literal["relative", "mse"] = Field(
        "relative", description="relative: Σ_heads MSE(h¹, h²) / mean(h¹²), scale-free; mse: the seed's plain MSE, "
        "which the model lowers by shrinking every hidden code (measured: collapse)")
    target_weight: float = Field(1.0, ge=0, description="weight of the target-consistency term (the seed: 1)")
    shift_weight: float = Field(
        30.0, ge=0, description="weight of the mean-shift term: per field, cells moved from a to b against the "
        "targets of shift_targets (the class-reading term alone sets no size of a change: on held-out combinations "
        "of three synthetic experiments per-cell change R² was 0.714 / 0.795 / 0.523 without the term, 0.807 / "
        "0.799 / 0.687 with the adjusted targets at weight 10; with the count model's, experiment 1: 0.843 / 0.852 / "
        "0.850 at weight 10 / 30 / 100; measured); 0: the seed")
    shift_targets: Literal["auto", "glm", "adjusted", "means"] = Field(
        "auto", description="what the mean-shift term matches. glm: each moved cell's change from a Poisson GLM of "
        "the fields on a sample of training cells, read through log1p at the cell's context (count noise and the "
        "log-rate scale modelled; at most 160 indicator columns, Σ (K_f + 1)); adjusted: per pair of values, the "
        "difference of each value's effect fitted jointly with every other field's by least squares (plain means "
        "carry the other fields' mix, which held-out combinations unbalance); means: the plain per-value training "
        "means, which the mean-shift baseline uses; auto: glm where the columns fit, else adjusted (logged, and "
        "recorded in model.json). As predictions of their own on five synthetic experiments: per-cell change R² "
        "0.872 / 0.860 / 0.829 / 0.878 / 0.709 (glm), 0.820 / 0.806 / 0.702 / 0.829 / 0.609 (adjusted), 0.593 / "
        "0.749 / 0.620 / 0.734 / 0.471 (means)")
    glm_cells: int = Field(20000, ge=10, description="training cells the shift_targets glm count model is fitted on "
                           "(a seeded sample)")
    label_smoothing: float = Field(
        0.1, ge=0, lt=1, description="of the classifier's and the target-consistency cross-entropies: the generator is "
        "asked for a typical real cell's confidence, not for ever larger logits (0: the seed)")
    lr: float = Field(1.0e-3, gt=0, description="AdamW/Adam learning rate (the seed's example 1e-4 left the field "
                      "heads untrained in 10 epochs of 10⁴ cells; measured)")
    weight_decay_base: float = Field(1.0e-4, ge=0, description="AdamW weight decay of the base head (the seed)")
    weight_decay_metadata: float = Field(5.0e-4, ge=0, description="AdamW weight decay of the field heads (the seed)")
    weight_decay_classifier: float = Field(0.0, ge=0, description="weight decay of the context classifier (the seed: "
                                           "0, plain Adam)")
    grad_clip: float = Field(10.0, gt=0, description="generator gradient-norm clip (the seed)")
    batch_size: int = Field(128, ge=2, description="cells per step and process (the seed)")
    epochs: int = Field(10, ge=1, description="passes over the training cells (the seed)")
    buffer_chunks: int = Field(4, ge=1, description="chunks whose cells are shuffled together")
    workers: int = Field(0, ge=0, description="DataLoader worker processes reading chunks (started with spawn; "
                         "0 reads in the training process)")
    eval_every: int = Field(0, ge=0, description="validate every this many steps (0: at the end of every epoch)")
    max_validation_cells: int = Field(4000, ge=10, description="validation cells scored (a seeded sample)")
    selection_metric: Literal["auto", "loss", "recon", "cf_mean_r2"] = Field(
        "auto", description="what the kept state is chosen by on validation cells: cf_mean_r2 (R² of the "
        "counterfactual's per-gene mean change against the observed change between values of the counterfactual "
        "field within seen combinations, max), recon (reconstruction MSE, min) or loss (the generator's total, "
        "min: a sum of terms that trade against each other, measured to keep epoch 1 of 10 on one seed); auto: "
        "cf_mean_r2 where validation cells show such changes, else recon")
    patience: int | None = Field(None, ge=1, description="stop after this many validations without improvement")
    calibrate: bool = Field(
        True, description="after training, scale each field's counterfactual change by the least-squares factor that "
        "matches its predicted to its observed mean changes between seen contexts of validation cells (the seed's "
        "losses only ask the classifier to read the target, so the changes came out at 41 % of the true size on the "
        "synthetic data; measured); false: no scaling (the seed)")
