"""Lineage of a trained model: git commit, data hashes, DVC lock, package version, image tag."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from xmodal import __version__
from xmodal._io import read_json
from xmodal.stages._paths import ingested_dir, processed_dir

#: environment variable holding the container image a run executes in (set by the KFP components)
IMAGE_ENV = "XMODAL_IMAGE"
#: commit to record when the code runs outside a git work tree (a container): set by CI / the pipeline
COMMIT_ENV = "XMODAL_GIT_COMMIT"


def model_sha256(path: str | Path) -> str:
    """SHA-256 over the relative names and bytes of every file in a saved model folder.

    Saved models are byte-identical for identical fits, so equal hashes mean the same model.
    """
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def lineage_tags(root: str | Path, *, dataset: str) -> dict[str, str]:
    """Tags that tie a model to the code and data it came from.

    Parameters
    ----------
    root
        Project root (a git work tree, ideally, with ``dvc.lock``).
    dataset
        Dataset name; its ``schema.json`` content hashes are read from the ingested and processed folders.

    Returns
    -------
    dict
        ``xmodal.git_commit`` (outside git: ``$XMODAL_GIT_COMMIT`` or ``"unknown"``), ``xmodal.git_dirty``, ``xmodal.dvc_lock_sha256``,
        ``xmodal.data.<stage>.<modality>_sha256``, ``xmodal.version``, ``xmodal.image``.
    """
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    commit = commit or os.environ.get(COMMIT_ENV)
    tags = {
        "xmodal.git_commit": commit or "unknown",
        "xmodal.git_dirty": "unknown" if status is None else str(bool(status)).lower(),
        "xmodal.version": __version__,
        "xmodal.image": os.environ.get(IMAGE_ENV, "local"),
        "xmodal.dataset": dataset,
    }
    lock = root / "dvc.lock"
    tags["xmodal.dvc_lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "none"
    for stage, folder in (("ingested", ingested_dir(root, dataset)), ("processed", processed_dir(root, dataset))):
        schema_file = folder / "schema.json"
        if schema_file.is_file():
            schema = read_json(schema_file)
            for key, mod in schema.get("modalities", {}).items():
                tags[f"xmodal.data.{stage}.{key}_sha256"] = str(mod.get("sha256", "none"))
    return tags
