"""The explicit method registry: name → where its config and model live, and how it is judged.

Adding a method is one entry here plus a ``methods.<name>`` section in ``params.yaml``; nothing
in ``components/``, ``pipelines/``, ``docker/`` or ``k8s/`` changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmodal._targets import import_target
from xmodal.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    """How to find and judge one method.

    Attributes
    ----------
    name
        Registry key, also the ``params.yaml`` section ``methods.<name>``.
    family
        The data family it works on (``paired``, ``multiome``, ``census``, ``visium``).
    config
        ``module:Class`` of its pydantic config (cheap to import).
    model
        ``module:Class`` of its model (may import torch or POT).
    primary_metric
        The metric promotion compares against the champion.
    greater_is_better
        Direction of ``primary_metric``.
    summary_metrics
        Metrics shown in the demo's summary table.
    description
        One line for ``--help`` and the README.
    resumable
        Whether its ``fit`` takes ``checkpoint_dir`` and ``resume`` (``xmodal train --resume``).
    ablation
        Config overrides of the method's own baseline (e.g. ``{"adapt": False}``): ``train`` fits it with
        the same settings into ``models/<dataset>/<method>/ablation`` and ``evaluate`` reports the gain.
    search_space
        ``module:function`` drawing config overrides from an ``optuna.Trial`` (``xmodal tune``); the
        model's ``fit`` then takes ``callback(epoch, record)`` with ``val_<selection_metric>`` in the
        validated records, and ``info["best_val_<selection_metric>"]``.
    divergence_fix
        What to change when a fit ends with non-finite parameters or embeddings (``train`` refuses to save
        such a model and says this).
    """

    name: str
    family: str
    config: str
    model: str
    primary_metric: str
    greater_is_better: bool
    summary_metrics: tuple[str, ...]
    description: str = ""
    resumable: bool = False
    ablation: dict[str, Any] | None = None
    search_space: str | None = None
    divergence_fix: str = "lower the learning rate, or check the input for extreme values"

    def config_cls(self) -> Any:
        """Import and return the config class."""
        return import_target(self.config)

    def model_cls(self) -> Any:
        """Import and return the model class."""
        return import_target(self.model)

    def search_space_fn(self) -> Any:
        """Import and return the search-space function (``None`` when the method has none)."""
        return None if self.search_space is None else import_target(self.search_space)


METHODS: dict[str, MethodSpec] = {
    "gwot": MethodSpec(
        name="gwot",
        family="paired",
        config="xmodal.methods.gwot._config:GWOTConfig",
        model="xmodal.methods.gwot._model:GWOT",
        primary_metric="foscttm",
        greater_is_better=False,
        summary_metrics=("foscttm", "label_transfer_accuracy", "label_transfer_macro_f1", "matching_top1"),
        description="SCOT-style entropic Gromov–Wasserstein alignment (the alignment baseline)",
        divergence_fix="raise methods.gwot.epsilon (an entropic regularisation this small underflows the "
        "Sinkhorn iterations on these costs; 5e-3 to 5e-2 is typical)",
    ),
    "geoadvae": MethodSpec(
        name="geoadvae",
        family="paired",
        config="xmodal.methods.geoadvae._config:GeoAdVAEConfig",
        model="xmodal.methods.geoadvae._model:GeoAdVAE",
        primary_metric="foscttm",
        greater_is_better=False,
        summary_metrics=("foscttm", "label_transfer_accuracy", "label_transfer_macro_f1", "matching_top1"),
        description="per-modality VAEs + latent adversary + differentiable Gromov–Wasserstein + cluster prior "
        "(seed 000)",
        resumable=True,
        divergence_fix="lower methods.geoadvae.lr or the loss weights (gw_w, gan_w), or check the input for "
        "extreme values",
    ),
    "dualdann": MethodSpec(
        name="dualdann",
        family="multiome",
        config="xmodal.methods.dualdann._config:DualDANNConfig",
        model="xmodal.methods.dualdann._model:DualDANN",
        primary_metric="target_atac_macro_f1",
        greater_is_better=True,
        summary_metrics=("target_atac_macro_f1", "target_atac_accuracy", "target_atac_cohen_kappa",
                         "source_rna_macro_f1", "adaptation_gain_macro_f1"),
        description="dual-encoder class-conditional DANN: cell-cycle phases from RNA to ATAC across domains "
        "(seed 001)",
        resumable=True,
        ablation={"adapt": False},
        search_space="xmodal.methods.dualdann._search:search_space",
        divergence_fix="lower methods.dualdann.lr or the adversary's weight, or check the input for extreme values",
    ),
    "cycleae": MethodSpec(
        name="cycleae",
        family="census",
        config="xmodal.methods.cycleae._config:CycleAEConfig",
        model="xmodal.methods.cycleae._model:CycleAE",
        primary_metric="cf_mean_change_r2",
        greater_is_better=True,
        summary_metrics=("cf_mean_change_r2", "cf_cell_change_r2", "mean_shift_cell_change_r2",
                         "additive_shift_cell_change_r2", "target_accuracy",
                         "recon_mse"),
        description="context-conditioned cycle autoencoder: counterfactual expression and additive per-field "
        "contributions (seed 002)",
        resumable=True,
        ablation={"cycles": False},
        divergence_fix="lower methods.cycleae.lr, or check the counts for extreme values",
    ),
}


def get_method(name: str) -> MethodSpec:
    """Return the registry entry ``name`` or raise :class:`ConfigError` listing the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} (known: {sorted(METHODS)})") from None
