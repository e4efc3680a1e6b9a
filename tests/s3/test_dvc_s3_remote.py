"""A DVC remote on S3: ``dvc push`` into the bucket, lose data and cache, ``dvc pull`` it back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("dvc_s3", reason="the S3 remote needs dvc-s3 (pip install 'xmodal[s3]')")


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def status(root: Path, *, cloud: bool = False) -> dict:
    """``dvc status [--cloud]`` through the Python API (in-process: no interpreter start-up)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status(cloud=cloud)


def files(folder: Path) -> dict[str, bytes]:
    """Relative path → content of every file below ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_then_pull_restores_the_data_byte_for_byte(s3_env, bucket: str, prefix: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    root = tmp_path / "repo"
    (root / "data/raw/nested").mkdir(parents=True)
    rng = np.random.default_rng(11)
    (root / "data/raw/morpho.csv").write_text("cell_id,depth\nc1,0.5\nc2,0.7\n")
    (root / "data/raw/nested/counts.npy").write_bytes(rng.integers(0, 255, 300_000, dtype=np.uint8).tobytes())
    (root / "data/raw/empty.txt").write_bytes(b"")
    original = files(root / "data/raw")
    assert len(original) == 3

    git(root, "init", "-q")
    dvc(root, "init", "-q")
    remote = f"s3://{bucket}/{prefix}/dvc"
    dvc(root, "remote", "add", "-d", "store", remote)
    dvc(root, "remote", "modify", "store", "endpointurl", s3_env.endpoint)
    dvc(root, "add", "data/raw")
    assert status(root, cloud=True), "before the push the remote lacks the data"
    dvc(root, "push")

    # every file's content is in the bucket under its md5, plus the .dir listing of the folder
    keys = set(s3_env.keys(bucket, f"{prefix}/dvc/"))
    for content in original.values():
        digest = hashlib.md5(content).hexdigest()
        assert f"{prefix}/dvc/files/md5/{digest[:2]}/{digest[2:]}" in keys
    dir_md5 = yaml.safe_load((root / "data/raw.dvc").read_text())["outs"][0]["md5"]
    assert dir_md5.endswith(".dir")
    assert f"{prefix}/dvc/files/md5/{dir_md5[:2]}/{dir_md5[2:]}" in keys

    shutil.rmtree(root / "data/raw")
    shutil.rmtree(root / ".dvc/cache")
    assert not (root / "data/raw").exists()
    assert not (root / ".dvc/cache").exists()
    dvc(root, "pull")

    assert files(root / "data/raw") == original
    assert yaml.safe_load((root / "data/raw.dvc").read_text())["outs"][0]["md5"] == dir_md5
    assert status(root) == {}
    assert status(root, cloud=True) == {}
