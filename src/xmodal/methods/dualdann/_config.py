"""Parameters of :class:`~xmodal.methods.dualdann.DualDANN` (``params.yaml: methods.dualdann``).

Defaults are seed 001's training script (``train_dann.py``); where the seed's flag could not be
switched off (``store_true`` with ``default=True``) it is a plain boolean here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xmodal.train._config import EngineSettings


class DualDANNConfig(EngineSettings):
    """Dual-encoder class-conditional domain-adversarial network: RNA phases → ATAC (seed 001).

    Where and how it trains (device, precision, DDP, checkpoints) are the engine's fields,
    :class:`~xmodal.train.EngineSettings`.
    """

    # source (RNA) embeddings
    source_encoder: Literal["pca", "geneformer", "scfoundation", "ensemble"] = Field(
        "pca", description="how RNA becomes the fixed source embedding: pca (offline default), a local foundation "
        "model (geneformer, scfoundation) or both concatenated (ensemble)"
    )
    source_pcs: int = Field(50, ge=2, description="pca: components, fitted on the training cells only")
    geneformer_path: str | None = Field(
        None, description="geneformer/ensemble: local folder with the model (config + weights) and its token "
        "dictionary; nothing is downloaded"
    )
    geneformer_pooling: Literal["auto", "cls", "mean"] = Field(
        "auto", description="geneformer: the cell embedding is the <cls> state (V2; the seed's choice) or the mean "
        "over the gene tokens; auto: <cls> when the dictionary has it")
    embedding_cache: str | None = Field(
        ".cache/xmodal/embeddings", description="foundation-model embeddings are cached here (relative to the "
        "working directory), keyed by model and tokens; null: no cache")
    scfoundation_path: str | None = Field(
        None, description="scfoundation/ensemble: local folder with models.ckpt and OS_scRNA_gene_index.19264.tsv; "
        "nothing is downloaded"
    )
    scfoundation_key: Literal["cell", "rde", "gene"] = Field(
        "cell", description="scfoundation: which model of the released checkpoint (cell: cell embeddings)")
    scfoundation_pooling: Literal["max", "all"] = Field(
        "max", description="scfoundation: max over the tokens (768 for the released model, the seed's size) or "
        "[S, T, max, mean] (4×)")
    scfoundation_resolution: str = Field(
        "t4", pattern=r"^[tfa]\d+(\.\d+)?$", description="scfoundation: the target-resolution token (tgthighres): "
        "t<k> a fixed log10 depth, f<k> a fold of the cell's depth, a<k> added to its log10 depth")
    # target (peak) encoder
    peak_encoder: Literal["mlp", "dae", "vae", "contrastive", "hybrid"] = Field(
        "hybrid", description="the ATAC encoder; dae/vae/contrastive also train their own objective"
    )
    peak_hidden: int = Field(256, ge=4)
    peak_intermediate: int = Field(512, ge=4)
    peak_layers: int = Field(3, ge=2)
    peak_dropout: float = Field(0.2, ge=0, lt=1)
    noise_level: float = Field(0.1, ge=0, description="dae: input noise σ")
    beta_vae: float = Field(1.0, ge=0, description="vae: β of the KL term")
    contrastive_temperature: float = Field(0.1, gt=0, description="contrastive: NT-Xent τ")
    contrastive_augment: float = Field(0.2, ge=0, lt=1, description="contrastive: peak-dropout rate of each view")
    # shared space, heads
    shared_dim: int = Field(768, ge=4)
    cls_hidden: int = Field(256, ge=4)
    cls_layers: int = Field(2, ge=1)
    disc_hidden: int = Field(256, ge=4)
    disc_layers: int = Field(3, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    spectral_norm: bool = False
    conditional: bool = Field(True, description="CDANN: the discriminator also sees the detached class probabilities")
    # losses
    divergence: Literal["mmd", "coral", "kl", "js"] = Field(
        "kl", description="the balance term: kl/js between the source class prior and the mean target prediction "
        "(the seed's training-script default: kl), or mmd/coral between source and target features"
    )
    lambda_class: float = Field(1.0, ge=0)
    lambda_target_class: float = Field(1.0, ge=0, description="weight of the labelled ATAC cells' classification")
    target_class_warmup: int = Field(100, ge=0, description="epochs of linear warm-up of lambda_target_class")
    lambda_domain: float = Field(1.0, ge=0)
    lambda_contrastive: float = Field(0.5, ge=0)
    contrastive_tau: float = Field(0.1, gt=0)
    lambda_balance: float = Field(5.0, ge=0)
    lambda_entropy: float = Field(0.1, ge=0)
    confidence_threshold: float = Field(0.5, ge=0, le=1)
    lambda_peak: float = Field(1.0, ge=0, description="weight of the peak encoder's own objective")
    grl_gamma: float = Field(15.0, gt=0, description="α(p) = 2/(1+exp(−γp)) − 1 over training progress p")
    adapt: bool = Field(
        True, description="false: the source-only ablation — the target domain's cells are never seen in training"
    )
    target_labels: bool = Field(
        False, description="also train on the target domain's training labels (semi-supervised); by default the "
        "target domain's labels are read only on its validation cells, for early stopping and search"
    )
    # optimisation
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=4)
    lr: float = Field(1e-4, gt=0, description="AdamW; cosine annealing to 0.01·lr")
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(5, ge=1, description="epochs between validations (target-domain validation cells)")
    patience: int = Field(50, ge=1, description="stop after this many validations without improvement")
    selection_metric: Literal["macro_f1", "balanced_accuracy", "accuracy"] = Field(
        "macro_f1", description="target-validation metric that picks the kept model and drives early stopping "
        "(the seed: accuracy, which a majority-phase model games)"
    )
    collapse_share: float = Field(
        0.8, gt=0, le=1, description="a validation predicting one phase for more than this share of cells is "
        "'collapsed'; 5 collapsed validations in a row after epoch 25 stop training (the seed's rule)"
    )
    input: Literal["auto", "dense", "sparse"] = Field(
        "auto", description="peaks held dense in memory, or sparse and densified per batch; auto: dense up to 1 GiB"
    )
