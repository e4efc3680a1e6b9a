"""dualdann's hyper-parameter search space: seed 001's Optuna ranges (``xmodal tune``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """Draw one configuration from seed 001's ranges.

    Parameters
    ----------
    trial
        An ``optuna.Trial``.

    Returns
    -------
    dict
        Overrides of :class:`~xmodal.methods.dualdann.DualDANNConfig` fields.
    """
    return {
        "lr": trial.suggest_float("lr", 5e-6, 5e-4, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128]),
        "lambda_domain": trial.suggest_float("lambda_domain", 0.5, 5.0),
        "lambda_class": trial.suggest_float("lambda_class", 0.5, 2.0),
        "lambda_target_class": trial.suggest_float("lambda_target_class", 1.0, 15.0, log=True),
        "target_class_warmup": trial.suggest_int("target_class_warmup", 50, 200),
        "lambda_contrastive": trial.suggest_float("lambda_contrastive", 0.5, 2.0),
        "contrastive_tau": trial.suggest_float("contrastive_tau", 0.05, 0.5),
        "lambda_balance": trial.suggest_float("lambda_balance", 2.0, 15.0),
        "lambda_entropy": trial.suggest_float("lambda_entropy", 0.05, 0.5),
        "confidence_threshold": trial.suggest_float("confidence_threshold", 0.3, 0.7),
        "grl_gamma": trial.suggest_float("grl_gamma", 5.0, 15.0),
        "disc_hidden": trial.suggest_categorical("disc_hidden", [128, 256, 512]),
        "disc_layers": trial.suggest_int("disc_layers", 2, 4),
        "cls_hidden": trial.suggest_categorical("cls_hidden", [128, 256, 512]),
        "cls_layers": trial.suggest_int("cls_layers", 2, 3),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "spectral_norm": trial.suggest_categorical("spectral_norm", [True, False]),
        "peak_hidden": trial.suggest_categorical("peak_hidden", [128, 256, 512]),
        "peak_intermediate": trial.suggest_categorical("peak_intermediate", [256, 512, 1024]),
        "peak_layers": trial.suggest_int("peak_layers", 2, 5),
        "peak_dropout": trial.suggest_float("peak_dropout", 0.0, 0.6),
    }
