"""An interrupt while the CLI starts ends as interrupted, not with a traceback; the resume hint of an interrupted
training, run exactly as printed, resumes it (issue 28, point 10)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from _cli import ENV, XMODAL, tiny_params, write_params

TINY_GEOADVAE = {"dim": 16, "latent_dim": 4, "batch_size": 16, "phase_durations": [10, 10, 10], "prior_clusters": 4,
                 "prior_loss_warmup": 5, "checkpoint_every": 5, "log_every": 50}


def _slow_module(folder: Path, name: str, marker: Path) -> dict[str, str]:
    """An environment whose Python imports ``name`` through a shim that touches ``marker`` and sleeps 3 s first.

    ``argparse`` is imported by the CLI and by nothing Python itself loads at start-up, so the shim holds the
    process inside the CLI's own imports: where a Ctrl-C used to end in a ``KeyboardInterrupt`` traceback.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""\
        import os, sys, time
        open({str(marker)!r}, "w").close()
        time.sleep(3)
        here = os.path.dirname(os.path.abspath(__file__))
        del sys.modules[{name!r}]
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        import {name}  # noqa: E402 - the standard library's own
        """))
    return {**ENV, "PYTHONPATH": os.pathsep.join(p for p in (str(folder), ENV.get("PYTHONPATH", "")) if p)}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_while_the_cli_loads_ends_as_interrupted(tiny_project: Path, sig: int, code: int) -> None:
    marker = tiny_project / "importing"
    env = _slow_module(tiny_project / "shim", "argparse", marker)
    proc = subprocess.Popen([str(XMODAL), "ingest", "--dataset", "tiny"], cwd=tiny_project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode == code, (proc.returncode, stderr[-2000:])
    assert "xmodal ingest: error: interrupted; nothing was written" in stderr
    assert not (tiny_project / "data").exists()


def test_the_resume_hint_run_as_printed_resumes(tiny_project: Path) -> None:
    """The hint keeps --params and --set: without them it read another params file (or none) and failed."""
    root = tiny_project
    params = tiny_params()
    params["methods"]["geoadvae"] = TINY_GEOADVAE
    (root / "conf").mkdir()
    write_params(root / "conf", params, "experiment.yaml")
    (root / "params.yaml").unlink()  # the default file is not there: the hint must name the one used
    common = ["--params", "conf/experiment.yaml", "--set", "methods.geoadvae.max_iter=600"]
    for stage in ("ingest", "preprocess"):
        assert subprocess.run([str(XMODAL), stage, "--dataset", "tiny", *common], cwd=root, env=ENV,
                              capture_output=True, check=False).returncode == 0
    proc = subprocess.Popen([str(XMODAL), "train", "--dataset", "tiny", "--method", "geoadvae", *common], cwd=root,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = root / "checkpoints/tiny/geoadvae/checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint.is_file(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    hint = stderr.split("resume with `", 1)[1].split("`", 1)[0]
    words = shlex.split(hint)
    assert (words[0], words[-1]) == ("xmodal", "--resume"), hint
    assert {"conf/experiment.yaml", "methods.geoadvae.max_iter=600"} <= set(words), hint
    done = subprocess.run([str(XMODAL), *words[1:]], cwd=root, env=ENV, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr
    model = yaml.safe_load((root / "models/tiny/geoadvae/model.json").read_text())
    assert model["config"]["max_iter"] == 600


def test_the_hint_quotes_what_the_shell_would_split(tiny_project: Path) -> None:
    from xmodal import cli

    args = cli._parser().parse_args(["train", "--dataset", "tiny", "--method", "geoadvae", "--params",
                                     "my params.yaml", "--set", "datasets.tiny.description=two words"])
    args.argv = ["train", "--dataset", "tiny", "--method", "geoadvae", "--params", "my params.yaml", "--set",
                 "datasets.tiny.description=two words"]
    hint = cli._after_interrupt(args)
    assert "'my params.yaml'" in hint, hint
    assert "'datasets.tiny.description=two words'" in hint, hint
    assert hint.split("`")[1].endswith(" --resume"), hint
