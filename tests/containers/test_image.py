"""The CPU image, built for real (``make image``) and run: non-root, ``pip check``, ``xmodal`` works, the user can
write where the stages write, nothing of the build (CA bundle, wheelhouse, credentials) is left in it, and a change
to ``src/`` alone rebuilds only the last layer."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from _engine import REPO, BuiltImage, layers_of, rebuild_with_a_source_change

#: paths that must not be in any layer of the runtime image: the build's extras and pip/registry credentials
FORBIDDEN_NAMES = ("build-extras", "wheelhouse", ".netrc", ".pypirc", "pip.conf", ".docker/config.json")
#: the wheels a base's Python bundles for ``ensurepip`` (Debian's python3.11-venv, the official image's own)
ENSUREPIP_WHEELS = ("usr/share/python-wheels/", "/ensurepip/_bundled/")
#: the base's own CA bundle, which may equal the host's where the host adds no CA of its own
SYSTEM_BUNDLES = ("etc/ssl/certs/ca-certificates.crt",)
#: words that must not appear in the image's configuration or history
FORBIDDEN_WORDS = ("build-extras", "wheelhouse", "PIP_CERT", "ca.crt", "PASSWORD", "TOKEN", "SECRET")


def _run(image: BuiltImage, *args: str, entrypoint: str | None = None, stdin: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    flags = ["--rm", "--network", "none"] + (["-i"] if stdin is not None else [])
    flags += ["--entrypoint", entrypoint] if entrypoint else []
    return image.engine.docker("run", *flags, image.tag, *args, input=stdin, check=check)


def test_the_image_runs_as_the_unprivileged_user(image: BuiltImage) -> None:
    config = json.loads(image.engine.docker("image", "inspect", image.tag).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert _run(image, "-c", "id -u; id -g", entrypoint="sh").stdout.split() == ["10001", "10001"]


def test_pip_check_passes_and_xmodal_imports(image: BuiltImage) -> None:
    assert "No broken requirements found" in _run(image, "check", entrypoint="pip").stdout
    out = _run(image, "-c", "import torch, xmodal; print(xmodal.__version__, torch.__version__, torch.version.cuda)",
               entrypoint="python").stdout.split()
    assert out == [image.tag.rsplit(":", 1)[1], "2.13.0+cpu", "None"]


def test_the_default_command_is_xmodal_help(image: BuiltImage) -> None:
    done = _run(image)
    assert done.returncode == 0
    assert "usage: xmodal" in done.stdout


def test_a_lifecycle_runs_as_the_user_in_the_workspace(image: BuiltImage, tiny_project: Path) -> None:
    """ingest → preprocess → train → evaluate in /workspace, as uid 10001, with no network: every folder a stage
    writes (data/, models/, reports/, checkpoints/, matplotlib's and numba's caches under /tmp) is writable."""
    script = ("set -e; cat > params.yaml; "
              "for stage in ingest preprocess; do xmodal $stage --dataset tiny; done; "
              "xmodal train --dataset tiny --method gwot; xmodal evaluate --dataset tiny --method gwot; "
              "cat reports/tiny/gwot/metrics.json")
    done = _run(image, "-c", script, entrypoint="sh", stdin=(tiny_project / "params.yaml").read_text(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout[done.stdout.index("{"):])
    assert 0.0 <= metrics["test"]["foscttm"] <= 1.0


def _layer_members(engine, tag: str):  # noqa: ANN001, ANN202 - a generator of (layer, member, file object)
    """Every file of every layer of ``tag``, streamed from ``docker save`` (no copy of the image on disk)."""
    proc = subprocess.Popen(["docker", "save", tag], env=engine.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for entry in outer:
                if not entry.isfile():
                    continue
                handle = outer.extractfile(entry)
                assert handle is not None
                if entry.name.endswith("layer.tar") or entry.name.startswith("blobs/"):
                    try:
                        with tarfile.open(fileobj=handle, mode="r|") as layer:
                            for member in layer:
                                yield entry.name, member, (layer.extractfile(member) if member.isfile() else None)
                    except tarfile.ReadError:
                        continue  # a blob that is not a layer (a config or manifest)
    finally:
        proc.stdout.close()
        proc.wait()


def _leftovers(engine, tag: str, ca_bundle: Path | None) -> list[str]:  # noqa: ANN001
    """What of the build is left in ``tag``: forbidden paths, any wheel, a file equal to the host's CA bundle, and
    forbidden words in the image's configuration and history."""
    found = []
    ca = ca_bundle.read_bytes() if ca_bundle and ca_bundle.is_file() else None
    ca_digest = hashlib.sha256(ca).hexdigest() if ca else None
    for layer, member, handle in _layer_members(engine, tag):
        name = member.name
        if any(part in name for part in FORBIDDEN_NAMES) or (
                name.endswith(".whl") and not any(place in name for place in ENSUREPIP_WHEELS)):
            found.append(f"{layer}: {name}")
        elif ca and handle is not None and member.size == len(ca) and name not in SYSTEM_BUNDLES and \
                hashlib.sha256(handle.read()).hexdigest() == ca_digest:
            found.append(f"{layer}: {name} (the host's CA bundle)")
    inspect = engine.docker("image", "inspect", tag).stdout
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout
    for word in FORBIDDEN_WORDS:
        for where, text in (("configuration", inspect), ("history", history)):
            if word.lower() in text.lower():
                found.append(f"{where}: {word}")
    return found


def test_nothing_of_the_build_is_left_in_the_image(image: BuiltImage, tmp_path: Path) -> None:
    ca = REPO / "docker" / "build-extras" / "ca.crt"
    assert _leftovers(image.engine, image.tag, ca) == []
    # the check itself: an image that keeps the CA bundle, a wheel and the word in its history is caught
    if not ca.is_file():
        ca.write_text("-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n")
    shutil.copy(ca, tmp_path / "ca.crt")
    (tmp_path / "torch-0-py3-none-any.whl").write_bytes(b"PK")
    # on the image's small base, not on the image: each layer over the 3 GB venv would be a copy of it (vfs)
    base = json.loads(image.engine.docker("image", "inspect", image.tag).stdout)[0]["Config"]["Labels"][
        "org.opencontainers.image.base.name"]
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nCOPY ca.crt /build-extras/ca.crt\n"
                                         "COPY torch-0-py3-none-any.whl /tmp/\nCOPY ca.crt /etc/pip-ca\n")
    leaky = "localhost/xmodal-leaky:test"
    image.engine.docker("build", "-q", "-t", leaky, str(tmp_path))
    try:
        found = _leftovers(image.engine, leaky, tmp_path / "ca.crt")
    finally:
        image.engine.docker("rmi", "-f", leaky, check=False)
    assert any("/build-extras/ca.crt" in f or "build-extras/ca.crt" in f for f in found), found
    assert any(f.endswith(".whl") for f in found), found
    assert any("etc/pip-ca (the host's CA bundle)" in f for f in found), found
    assert any(f.startswith("history: build-extras") for f in found), found


def test_a_change_to_src_alone_rebuilds_only_the_last_layer(image: BuiltImage, tmp_path: Path) -> None:
    """The same build from a copy of the context with one source file changed: every layer but the last is reused."""
    rebuilt = f"{image.tag}-rebuilt"
    rebuild_with_a_source_change(image.engine, image.tag, rebuilt, tmp_path / "context")
    try:
        before, after = layers_of(image.engine, image.tag), layers_of(image.engine, rebuilt)
        assert len(before) == len(after)
        assert before[:-1] == after[:-1], "a layer below the project's was rebuilt"
        assert before[-1] != after[-1], "the project's layer did not change"
    finally:
        image.engine.docker("rmi", "-f", rebuilt, check=False)


def test_the_gpu_image_builds_the_cpu_images_wheel_stage(image: BuiltImage) -> None:
    """The GPU image cannot be built here (its CUDA base cannot be pulled); the stage it shares with the CPU image
    can: built from either Dockerfile on the same base, it is the same image (every layer from the build cache)."""
    base = json.loads(image.engine.docker("image", "inspect", image.tag).stdout)[0]["Config"]["Labels"][
        "org.opencontainers.image.base.name"]
    version = image.tag.rsplit(":", 1)[1]
    ids = {}
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        ids[dockerfile] = image.engine.docker(
            "build", "-q", "--network", "host", "--target", "wheel", "-f", str(REPO / "docker" / dockerfile),
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"XMODAL_VERSION={version}", str(REPO),
            timeout=1800).stdout.strip().splitlines()[-1]
    assert ids["Dockerfile"].startswith("sha256:")
    assert ids["Dockerfile.gpu"] == ids["Dockerfile"]
