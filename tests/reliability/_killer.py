"""Run ``xmodal <args>`` and SIGKILL the process at a chosen point of its work (a real, unclean death).

Usage: ``python _killer.py MODULE:ATTR:N:WHEN [--no-exchange] -- <xmodal args>``: the N-th call (1-based) of
``MODULE.ATTR`` kills the process ``before`` or ``after`` the call runs. ``--no-exchange`` makes the atomic
swap use its two-rename fallback (platforms without an atomic exchange).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


def _arm(spec: str) -> None:
    module_name, attr, nth, when = spec.split(":")
    owner = importlib.import_module(module_name)
    if "." in attr:  # a method: pathlib.Path.rename
        cls_name, attr = attr.split(".")
        owner = getattr(owner, cls_name)
    original = getattr(owner, attr)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        hit = calls["n"] == int(nth)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attr, wrapper)


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--")
    options, args = argv[:split], argv[split + 1:]
    os.umask(0o022)
    import xmodal._io

    if "--no-exchange" in options:
        xmodal._io._EXCHANGE = None
    _arm(options[0])
    from xmodal.cli import main as xmodal_main

    return xmodal_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
