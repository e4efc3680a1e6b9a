"""The ``xmodal`` console script: signals are handled from its first line, not only once the CLI has loaded.

Python answers Ctrl-C with a ``KeyboardInterrupt`` traceback until a program installs its own handler, and the
CLI's modules take tens of milliseconds to import. This module installs a handler that only records SIGINT and
SIGTERM (the C-level ``_signal`` module: nothing else is imported first), then imports the CLI; a signal recorded
meanwhile ends the command as interrupted (exit 130 or 143, one message with what to do) before it starts. Only
the interpreter's own start-up, before this module runs, is left to Python.
"""

import _signal

_RECEIVED: list[int] = []


def _record(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)


for _sig in (_signal.SIGINT, _signal.SIGTERM):
    _signal.signal(_sig, _record)


def main() -> int:
    """Run :func:`xmodal.cli.main` with the signals that arrived while it loaded."""
    from xmodal.cli import main as cli_main

    return cli_main(early_signals=_RECEIVED)
