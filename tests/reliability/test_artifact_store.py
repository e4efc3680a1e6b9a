"""``register`` runs no code from the artifact store, and refuses artifacts that differ from what was registered.

The champion (and the challenger) are read from their data artifacts with xmodal's own loaders once every file
matches the hashes recorded on the version at registration; a logged ``_pyfunc_entry.py`` that would leave a
marker when imported is never imported, and a changed, added or removed weight, config or preprocessor file is
a refusal (exit 2) naming it, with the registry as it was.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from _cli import assert_refused, tiny_params, tree, write_params, xmodal

NAME = "xmodal-gwot-tiny"
MANIFEST_TAG = "xmodal.artifacts_sha256"
HASH_TAG = "xmodal.model_sha256"
#: a model worse than the default fit (a near-uniform coupling): a challenger the champion must be compared with
WORSE = {"epsilon": 5.0}


def _client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _stored(root: Path, version: str) -> Path:
    """The folder of the version's logged model in the (local) artifact store."""
    uri = _client(root).get_model_version_download_uri(NAME, version)
    return Path(unquote(urlparse(uri).path))


def _registry(root: Path) -> tuple[list[str], dict[str, int]]:
    client = _client(root)
    versions = sorted(v.version for v in client.search_model_versions(f"name = '{NAME}'"))
    return versions, dict(client.get_registered_model(NAME).aliases)


def _decision(root: Path) -> dict:
    return json.loads((root / "reports/registry/tiny/gwot/decision.json").read_text())


def _use(root: Path, which: str) -> None:
    """Put model ``a`` (the default fit) or ``b`` (the worse one) and its evaluation in the project."""
    for kind, dest in (("model", root / "models/tiny/gwot"), ("reports", root / "reports/tiny/gwot")):
        shutil.rmtree(dest)
        shutil.copytree(root / f"alt/{which}_{kind}", dest)


@pytest.fixture(scope="module")
def _trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with two gwot fits of ``tiny`` saved aside (``alt/a_*``, ``alt/b_*``), fit ``a`` in place."""
    root = tmp_path_factory.mktemp("trained")
    params = tiny_params()
    params["register"] = {"live_training": False, "gates": {"gwot": {"foscttm": {"max": 0.9}}}}
    write_params(root, params)
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    for which, overrides in (("b", WORSE), ("a", {})):
        sets = [a for k, v in overrides.items() for a in ("--set", f"methods.gwot.{k}={v}")]
        for stage in ("train", "evaluate"):
            assert xmodal(root, stage, "--dataset", "tiny", "--method", "gwot", *sets).rc == 0
        shutil.copytree(root / "models/tiny/gwot", root / f"alt/{which}_model")
        shutil.copytree(root / "reports/tiny/gwot", root / f"alt/{which}_reports")
    return root


@pytest.fixture
def fresh(_trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained project, nothing registered."""
    return Path(shutil.copytree(_trained, tmp_path / "project", symlinks=True))


@pytest.fixture(scope="module")
def registered(_trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fit ``a`` registered (version 1, champion), then fit ``b`` in the project, not registered.

    Shared by the tests that must leave the registry as it was; each puts back what it changes."""
    root = Path(shutil.copytree(_trained, tmp_path_factory.mktemp("registered") / "project", symlinks=True))
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot")
    assert got.rc == 0, got.stderr[-2000:]
    assert _decision(root)["decision"] == "promoted"
    _use(root, "b")
    return root


@pytest.fixture
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marker") / "the-artifact-store-ran-code"


def _plant(entry: Path, marker: Path) -> None:
    """Make the logged entry file leave ``marker`` when it is imported (what ``mlflow.pyfunc`` does)."""
    entry.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n" + entry.read_text())


def test_register_runs_no_code_from_the_artifact_store(fresh: Path, marker: Path) -> None:
    root = fresh
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    _plant(_stored(root, "1") / "_pyfunc_entry.py", marker)
    _use(root, "b")
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot")
    assert got.rc == 0, got.stderr[-3000:]
    assert not marker.exists(), "register imported the champion's logged entry file"
    decision = _decision(root)
    assert decision["decision"] == "rejected"  # the worse model, compared with the champion it loaded
    assert decision["champion_before"]["version"] == "1"
    assert decision["champion_before"]["metrics"]["foscttm"] < decision["challenger"]["metrics"]["foscttm"]
    # the challenger's own stored entry file is not run either (the same model registered again is reused)
    _plant(_stored(root, "2") / "_pyfunc_entry.py", marker)
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot")
    assert got.rc == 0, got.stderr[-3000:]
    assert not marker.exists(), "register imported the challenger's logged entry file"
    assert _decision(root)["challenger"]["metrics"] == decision["challenger"]["metrics"]
    # the planted file is live: loading the model through mlflow.pyfunc (serving) runs it
    from xmodal.tracking import load_registered

    load_registered(f"models:/{NAME}/1", tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    assert marker.read_text() == "ran"


def _change_array(path: Path) -> None:
    value = np.load(path, allow_pickle=False)
    value.flat[0] += 1.0
    np.save(path, value, allow_pickle=False)


def _change_config(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["config"]["epsilon"] = 0.5
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def restored(registered: Path) -> Iterator[Path]:
    """The shared registered project; the champion's stored artifacts and tags are put back afterwards."""
    store = _stored(registered, "1")
    saved = registered / "saved-store"
    shutil.copytree(store, saved)
    version = _client(registered).get_model_version(NAME, "1")
    yield registered
    shutil.rmtree(store)
    shutil.copytree(saved, store)
    shutil.rmtree(saved)
    client = _client(registered)
    for key in (MANIFEST_TAG, HASH_TAG):
        if key in version.tags:
            client.set_model_version_tag(NAME, "1", key, version.tags[key])
    client.set_tag(version.run_id, HASH_TAG, version.tags[HASH_TAG])
    _use(registered, "b")


def _untag(root: Path, key: str) -> None:
    """Remove tag ``key`` from version 1 (as if it had been registered before xmodal recorded it)."""
    client = _client(root)
    version = client.get_model_version(NAME, "1")
    if key in version.tags:
        client.delete_model_version_tag(NAME, "1", key)
    if key == HASH_TAG:
        client.delete_tag(version.run_id, key)


def _refused_untouched(root: Path, *needles: str) -> str:
    """Register the project's model: refused with ``needles``, nothing in the registry or reports changed."""
    before, files = _registry(root), tree(root / "reports")
    decision = (root / "reports/registry/tiny/gwot/decision.json").read_bytes()
    message = assert_refused(xmodal(root, "register", "--dataset", "tiny", "--method", "gwot"), needle=needles)
    assert _registry(root) == before  # no version logged, no alias moved
    assert (root / "reports/registry/tiny/gwot/decision.json").read_bytes() == decision
    assert tree(root / "reports") == files
    return message


@pytest.mark.parametrize(("artifact", "change", "says"), [
    ("gwot/z_ref_a.npy", _change_array, "differs from the one registered"),  # a weight
    ("gwot/model.json", _change_config, "differs from the one registered"),  # the config
    ("preprocessor_b/components.npy", _change_array, "differs from the one registered"),
    ("gwot/extra.npy", lambda p: np.save(p, np.zeros(3)), "was not there at registration"),
    ("preprocessor_a/meta.json", Path.unlink, "is missing from the store"),
])
def test_a_changed_champion_artifact_is_refused_naming_it(restored: Path, artifact: str, change, says: str) -> None:
    change(_stored(restored, "1") / "artifacts" / artifact)
    message = _refused_untouched(restored, "the champion, version 1", f"artifact {artifact} {says}")
    assert "nothing was promoted" in message


def test_a_changed_challenger_version_is_refused_naming_it(restored: Path) -> None:
    _use(restored, "a")  # the champion's own model: its stored version is the challenger, read back to be scored
    _change_array(_stored(restored, "1") / "artifacts/preprocessor_a/mean.npy")
    _refused_untouched(restored, "the challenger, version 1", "artifact preprocessor_a/mean.npy differs")


@pytest.mark.parametrize("tags", [(MANIFEST_TAG,), (MANIFEST_TAG, HASH_TAG)])
def test_a_version_registered_without_hashes_is_checked_by_what_it_has(restored: Path, tags: tuple[str, ...]) -> None:
    """Without the manifest the model folder is still checked by its hash; with no hash at all, nothing is read."""
    for key in tags:
        _untag(restored, key)
    _change_array(_stored(restored, "1") / "artifacts/gwot/ref_b.npy")
    needle = "differs from the one registered" if HASH_TAG not in tags else "no hash was recorded for it"
    _refused_untouched(restored, "the champion, version 1", needle)


def test_a_champion_registered_before_the_manifest_is_compared_and_said_so(fresh: Path) -> None:
    root = fresh
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    _untag(root, MANIFEST_TAG)
    _use(root, "b")
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot")
    assert got.rc == 0, got.stderr[-3000:]
    decision = _decision(root)
    assert decision["champion_before"]["metrics"]["foscttm"] < decision["challenger"]["metrics"]["foscttm"]
    assert any("champion version 1: preprocessor_a, preprocessor_b registered before xmodal recorded their hashes"
               in reason for reason in decision["reasons"]), decision["reasons"]
    recorded = json.loads(_client(root).get_model_version(NAME, "2").tags[MANIFEST_TAG])
    assert {k.split("/")[0] for k in recorded} == {"model", "preprocessor_a", "preprocessor_b"}
