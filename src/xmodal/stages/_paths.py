"""Where each stage reads and writes, relative to the project root (the DVC layout).

Every name that becomes part of a path is checked against :data:`xmodal._names.NAME_RULE` first, and
the folder it names is checked to lie inside its stage's folder under the project root (``data/ingested``,
``models``, ...) after resolving symbolic links of every folder above it. So no dataset or method name can
make a stage write or replace anything outside its own folder. The last component itself may be a
symbolic link (a pipeline step links its input artifacts in); writers replace such a link, never what it
points to (:func:`xmodal._io.atomic_dir`).
"""

from __future__ import annotations

from pathlib import Path

from xmodal._io import restore_interrupted
from xmodal._names import check_name
from xmodal.errors import ConfigError


def stage_root(root: str | Path, *parts: str) -> Path:
    """The stage's own folder under the project root, e.g. ``<root>/data/ingested``."""
    return Path(root).joinpath(*parts)


def contained(base: Path, *names: tuple[str, str]) -> Path:
    """``base/<name>/...`` for ``(what, name)`` pairs, each name checked, the result checked to lie in ``base``.

    Raises
    ------
    ConfigError
        A name breaks the naming rule, or the folder holding the last component resolves (through symbolic
        links) to a place outside ``base``.

    Where a writer died while swapping this folder (platforms without an atomic exchange), the previous
    folder is put back first, so readers never find it missing.
    """
    path = base
    for what, name in names:
        path = path / check_name(name, what=what)
    anchor = base.resolve()
    parent = path.parent.resolve()
    if parent != anchor and anchor not in parent.parents:
        raise ConfigError(f"{path}: resolves to {parent / path.name}, outside {anchor}; a symbolic link under "
                          f"{base} points elsewhere: remove it")
    if not path.exists() and not path.is_symlink() and parent.is_dir():
        restore_interrupted(path)  # a writer that died mid-swap (two-rename platforms) left it aside
    return path


def ingested_dir(root: str | Path, dataset: str) -> Path:
    """``data/ingested/<dataset>``: canonical ``data.h5mu`` + ``schema.json``."""
    return contained(stage_root(root, "data", "ingested"), ("dataset", dataset))


def processed_dir(root: str | Path, dataset: str) -> Path:
    """``data/processed/<dataset>``: preprocessed data with the split, plus the fitted preprocessor."""
    return contained(stage_root(root, "data", "processed"), ("dataset", dataset))


def model_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``models/<dataset>/<method>``: the saved model."""
    return contained(stage_root(root, "models"), ("dataset", dataset), ("method", method))


ABLATION = "ablation"
"""Sub-folder of a model folder holding the method's ablation (its registry entry's ``ablation``)."""


def checkpoint_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``checkpoints/<dataset>/<method>``: resumable training state (outside DVC and git)."""
    return contained(stage_root(root, "checkpoints"), ("dataset", dataset), ("method", method))


def report_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/<dataset>/<method>``: ``metrics.json`` and plots."""
    return contained(stage_root(root, "reports"), ("dataset", dataset), ("method", method))


def registry_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/registry/<dataset>/<method>``: the promotion decision JSON (outside DVC)."""
    return contained(stage_root(root, "reports", "registry"), ("dataset", dataset), ("method", method))


def monitor_dir(root: str | Path, dataset: str) -> Path:
    """``reports/monitor/<dataset>``: the drift report (``drift.html``) and decision (``drift.json``)."""
    return contained(stage_root(root, "reports", "monitor"), ("dataset", dataset))


def tune_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/tune/<dataset>/<method>``: ``best_params.json``, ``trials.csv``, ``tune_history.png``."""
    return contained(stage_root(root, "reports", "tune"), ("dataset", dataset), ("method", method))


def summary_file(root: str | Path) -> Path:
    """``reports/summary.json``: every run's headline metrics and registry decision."""
    return stage_root(root, "reports") / "summary.json"
