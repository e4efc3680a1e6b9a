"""Where each stage reads and writes, relative to the project root (the DVC layout).

Every name that becomes part of a path is checked against :data:`xmodal._names.NAME_RULE` first, and
the folder it names is checked to lie inside its stage's folder under the project root (``data/ingested``,
``models``, ...). So no dataset or method name can make a stage write or replace anything outside its own
folder.

Symbolic links (the policy, the same for every stage):

* a stage folder and any folder above it inside the root (``data/``, ``data/processed``, ``models/``,
  ``checkpoints/``, ``reports/``, ``reports/tune`` ...) may be a link, e.g. to another disk: that is a set-up
  the user made, so xmodal follows it and logs it once per process (``models is a symbolic link to /mnt/x: ...``);
* below a stage folder, a link between it and the output (``models/<dataset> -> ...`` for
  ``models/<dataset>/<method>``) is refused: :class:`~xmodal.errors.ConfigError`, exit 2, naming the link;
* the output itself may be a link where the stage replaces it as a whole (a pipeline step links its input
  artifacts in): writers replace the link, never what it points to (:func:`xmodal._io.atomic_dir`);
  where a stage writes into the folder in place (``checkpoints/<dataset>/<method>``,
  ``reports/registry/<dataset>/<method>``) a link there is refused, so no write or delete follows it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from xmodal._io import restore_interrupted
from xmodal._names import check_name
from xmodal.errors import ConfigError

log = logging.getLogger(__name__)
_LINKS_LOGGED: set[str] = set()


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def stage_root(root: str | Path, *parts: str) -> Path:
    """The stage's own folder under the project root, e.g. ``<root>/data/ingested``.

    A folder of ``parts`` that is a symbolic link (``models`` on another disk) is allowed and followed; it is
    logged once per process, so a run's log says where its files went.
    """
    path = Path(root)
    for part in parts:
        path = path / part
        if path.is_symlink() and str(path) not in _LINKS_LOGGED:
            _LINKS_LOGGED.add(str(path))
            log.info("%s is a symbolic link to %s: xmodal reads and writes its files there (%s)", path,
                     _link_target(path), os.path.realpath(path))
    return path


def contained(base: Path, *names: tuple[str, str], in_place: bool = False) -> Path:
    """``base/<name>/...`` for ``(what, name)`` pairs, each name checked, the result checked to lie in ``base``.

    Parameters
    ----------
    base
        The stage folder (:func:`stage_root`); it may be a link.
    names
        ``(what, name)`` pairs, e.g. ``("dataset", "pbmc")``.
    in_place
        The stage writes into this folder in place (rather than replacing it as a whole), so the folder itself
        must not be a symbolic link either.

    Raises
    ------
    ConfigError
        A name breaks the naming rule; a folder between ``base`` and the last component is a symbolic link;
        the last component is one and ``in_place`` is set; or the folder holding the last component resolves
        to a place outside ``base``.

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
    probe = base
    for part in path.relative_to(base).parts[:-1]:
        probe = probe / part
        if probe.is_symlink():
            raise ConfigError(f"{probe} is a symbolic link (to {_link_target(probe)}); xmodal follows no link below "
                              f"{base}, so that no write or delete leaves the project: replace it with a real folder "
                              f"(a link is allowed for {base} itself, e.g. to another disk); nothing was written")
    if not path.exists() and not path.is_symlink() and parent.is_dir():
        restore_interrupted(path)  # a writer that died mid-swap (two-rename platforms) left it aside
    if in_place and path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link (to {_link_target(path)}); xmodal writes into this folder in "
                          "place, and follows no link there, so that no write or delete leaves the project: remove "
                          f"the link (a link is allowed for {base} itself, e.g. to another disk); nothing was written")
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
    """``checkpoints/<dataset>/<method>``: resumable training state (outside DVC and git), written in place (a
    link there is refused)."""
    return contained(stage_root(root, "checkpoints"), ("dataset", dataset), ("method", method), in_place=True)


def report_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/<dataset>/<method>``: ``metrics.json`` and plots."""
    return contained(stage_root(root, "reports"), ("dataset", dataset), ("method", method))


def registry_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/registry/<dataset>/<method>``: the promotion decision JSON (outside DVC), written in place (a
    link there is refused)."""
    return contained(stage_root(root, "reports", "registry"), ("dataset", dataset), ("method", method),
                     in_place=True)


def monitor_dir(root: str | Path, dataset: str) -> Path:
    """``reports/monitor/<dataset>``: the drift report (``drift.html``) and decision (``drift.json``)."""
    return contained(stage_root(root, "reports", "monitor"), ("dataset", dataset))


def tune_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/tune/<dataset>/<method>``: ``best_params.json``, ``trials.csv``, ``tune_history.png``."""
    return contained(stage_root(root, "reports", "tune"), ("dataset", dataset), ("method", method))


def summary_file(root: str | Path) -> Path:
    """``reports/summary.json``: every run's headline metrics and registry decision."""
    return stage_root(root, "reports") / "summary.json"
