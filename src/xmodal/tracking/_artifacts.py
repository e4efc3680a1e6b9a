"""A registered version's data artifacts, checked against the hashes recorded at registration, then loaded by
xmodal's own loaders.

``mlflow.pyfunc.load_model`` imports the ``_pyfunc_entry.py`` logged with a model, so whoever can write the
artifact store could run code in every process that loads a model that way. ``register`` never does: it
downloads the *data* of a version (the model folder and the ``preprocessor_<modality>`` folders, under the
logged model's ``artifacts/``), checks every file against what was recorded in the tracking store when the
version was registered, and reads them with :func:`xmodal.methods.load_model` and
:func:`xmodal.families.load_preprocessor` (JSON, ``.npy``/``.npz`` without pickle, ``torch.load`` with
``weights_only=True``). Nothing of the logged model is imported or run.

What is recorded, on the model version (the tracking store, not the artifact store):

* ``xmodal.model_sha256``: :func:`~xmodal.tracking.model_sha256` of the model folder (every version has it);
* ``xmodal.artifacts_sha256``: a JSON manifest, artifact file → SHA-256, of the model folder and of every
  preprocessor folder (``model/<file>``, ``preprocessor_<modality>/<file>``); versions registered before it
  existed lack it, and their preprocessors are loaded unchecked (still by the safe loaders), which
  :class:`LoadedVersion` reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)

#: the manifest's name for the model folder (its folder in the store is named after the trained model's folder)
MODEL_KEY = "model"
#: the prefix of a preprocessor folder, in the store and in the manifest
PREPROCESSOR_PREFIX = "preprocessor_"


@dataclass(frozen=True)
class LoadedVersion:
    """A registered version read from its checked artifacts.

    Attributes
    ----------
    model
        The model as its own class (e.g. :class:`~xmodal.methods.gwot.GWOT`).
    preprocessors
        Modality → the fitted preprocessor of the dataset's family.
    unverified
        Artifacts no recorded hash covered (the preprocessors of a version registered before the manifest was
        recorded); empty when every file was checked.
    """

    model: Any
    preprocessors: dict[str, Any]
    unverified: tuple[str, ...] = field(default=())


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_manifest(model_dir: str | Path, preprocessors: Mapping[str, str | Path]) -> dict[str, str]:
    """Artifact file → SHA-256 of a model folder and its preprocessor folders, as they will be logged.

    Parameters
    ----------
    model_dir
        The saved model folder (``models/<dataset>/<method>``).
    preprocessors
        Modality → saved ``preprocessor_<modality>`` folder.

    Returns
    -------
    dict
        ``model/<relative path>`` and ``preprocessor_<modality>/<relative path>`` → hex digest, sorted.
    """
    folders = {MODEL_KEY: Path(model_dir)} | {f"{PREPROCESSOR_PREFIX}{m}": Path(p) for m, p in preprocessors.items()}
    return _hash_tree(folders)


def encode_manifest(manifest: Mapping[str, str]) -> str:
    """The manifest as the compact JSON stored in a tag (keys sorted, so equal manifests give equal text)."""
    return json.dumps(dict(sorted(manifest.items())), separators=(",", ":"))


def decode_manifest(text: str, *, where: str) -> dict[str, str]:
    """Read a manifest tag; a damaged one is an :class:`XmodalInputError` naming ``where``."""
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise XmodalInputError("its recorded artifact hashes (tag xmodal.artifacts_sha256) are not a JSON object of "
                               "file → SHA-256", path=where,
                               fix="restore the tag from the version's registration, or remove the alias")
    return found


def stored_folders(folder: Path, *, where: str) -> dict[str, Path]:
    """The artifact folders of a downloaded ``artifacts/`` folder: ``model`` and ``preprocessor_<modality>``.

    Raises
    ------
    XmodalInputError
        No model folder, or an entry that is neither one model folder nor a preprocessor folder.
    """
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    out = {e.name: e for e in entries if e.name.startswith(PREPROCESSOR_PREFIX) and _plain_dir(e)}
    rest = [e for e in entries if e.name not in out]
    if len(rest) != 1 or not _plain_dir(rest[0]):
        names = ", ".join(repr(e.name) for e in rest) or "nothing"
        raise XmodalInputError(f"the stored artifacts hold {names} besides the preprocessors, where exactly one model "
                               "folder was logged", path=where, fix=_FIX)
    return {MODEL_KEY: rest[0], **out}


def check_artifacts(folders: Mapping[str, Path], *, manifest: Mapping[str, str] | None, model_sha256: str | None,
                    where: str) -> tuple[str, ...]:
    """Check downloaded artifact folders against the hashes recorded at registration.

    Parameters
    ----------
    folders
        ``model`` and ``preprocessor_<modality>`` → downloaded folder (:func:`stored_folders`).
    manifest
        The recorded manifest (:func:`artifact_manifest`), or ``None`` for a version registered before it.
    model_sha256
        The recorded :func:`~xmodal.tracking.model_sha256` of the model folder, or ``None`` when none was.
    where
        The store location, for messages (``<download uri>/artifacts``).

    Returns
    -------
    tuple of str
        The artifacts no recorded hash covers (without a manifest: the preprocessor folders).

    Raises
    ------
    XmodalInputError
        A file that differs from, is missing from or was added to what was registered (named), a link, or a
        version with no recorded hash at all.
    """
    from xmodal.tracking._lineage import model_sha256 as folder_sha256

    if manifest is None and model_sha256 is None:
        raise XmodalInputError("no hash was recorded for it at registration (tag xmodal.model_sha256), so its "
                               "artifacts cannot be checked", path=where,
                               fix="register it again with xmodal, or remove the alias")
    found = _hash_tree(folders, where=where)
    if manifest is not None:
        _compare(found, manifest, shown={k: v.name for k, v in folders.items()}, where=where)
    if model_sha256 is not None and folder_sha256(folders[MODEL_KEY]) != model_sha256:
        name = folders[MODEL_KEY].name
        raise XmodalInputError(f"the model folder {name!r} differs from the one registered (its hash is not the "
                               "recorded xmodal.model_sha256)", path=f"{where}/{name}", fix=_FIX)
    return () if manifest is not None else tuple(sorted(k for k in folders if k != MODEL_KEY))


def load_checked(folder: Path, *, manifest: Mapping[str, str] | None, model_sha256: str | None,
                 where: str) -> LoadedVersion:
    """Check a downloaded ``artifacts/`` folder (:func:`check_artifacts`) and load it with xmodal's own loaders.

    Raises
    ------
    XmodalInputError
        As :func:`check_artifacts`, or an artifact the safe loaders refuse.
    """
    from xmodal.families import load_preprocessor
    from xmodal.methods import load_model

    folders = stored_folders(folder, where=where)
    unverified = check_artifacts(folders, manifest=manifest, model_sha256=model_sha256, where=where)
    if unverified:
        log.warning("%s: %s recorded no hash at registration (registered before xmodal recorded them); loaded "
                    "unchecked by the safe loaders", where, ", ".join(unverified))
    model = load_model(folders[MODEL_KEY])
    preprocessors = {key.removeprefix(PREPROCESSOR_PREFIX): load_preprocessor(path)
                     for key, path in sorted(folders.items()) if key != MODEL_KEY}
    return LoadedVersion(model=model, preprocessors=preprocessors, unverified=unverified)


_FIX = "restore the version's artifacts from a trusted copy (or register the model again), or remove the alias"


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _hash_tree(folders: Mapping[str, Path], *, where: str | None = None) -> dict[str, str]:
    """``<key>/<relative path>`` → SHA-256 of every file under each folder (files as :func:`model_sha256` sees
    them). With ``where`` (a downloaded copy of the store), a link or special file is refused: the store holds
    plain files only."""
    out: dict[str, str] = {}
    for key, root in sorted(folders.items()):
        for path in sorted(root.rglob("*")):
            name = f"{key}/{path.relative_to(root).as_posix()}"
            if where is not None and (path.is_symlink() or not (path.is_file() or path.is_dir())):
                raise XmodalInputError(f"artifact {root.name}/{path.relative_to(root).as_posix()} is a link or a "
                                       "special file, where a plain file was logged", path=where, fix=_FIX)
            if path.is_file():
                out[name] = file_sha256(path)
    return out


def _compare(found: Mapping[str, str], manifest: Mapping[str, str], *, shown: Mapping[str, str],
             where: str) -> None:
    """Refuse the first difference between the files found and the manifest, naming the file as stored."""

    def name(key: str) -> str:
        folder, _, rest = key.partition("/")
        return f"{shown.get(folder, folder)}/{rest}"

    changed = sorted(k for k in found.keys() & manifest.keys() if found[k] != manifest[k])
    missing = sorted(manifest.keys() - found.keys())
    added = sorted(found.keys() - manifest.keys())
    problems = ([(k, f"artifact {name(k)} differs from the one registered (SHA-256 {found[k][:12]}…, recorded "
                     f"{manifest[k][:12]}…)") for k in changed]
                + [(k, f"artifact {name(k)} is missing from the store") for k in missing]
                + [(k, f"artifact {name(k)} was not there at registration") for k in added])
    if problems:
        key, first = problems[0]
        more = f" (and {len(problems) - 1} other difference{'s' if len(problems) > 2 else ''})" \
            if len(problems) > 1 else ""
        raise XmodalInputError(f"{first}{more}", path=f"{where}/{name(key)}", fix=_FIX)
