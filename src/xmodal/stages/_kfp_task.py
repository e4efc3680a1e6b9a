"""Skip CPython's module teardown when a Kubeflow task process has done its work.

A pipeline task is one process (``python -m kfp.dsl.executor_main``) that imports the scientific stack,
runs one step and exits. Tearing down its ~2 000 modules at exit costs 0.5–1 s per task, paid again by
every task of every run, for nothing: the process is about to disappear. :func:`kfp_task` marks a step
function; in a KFP executor process (and only there) the process then ends with ``os._exit(0)`` once the
interpreter's exit handlers have run, provided the step returned normally and no exception escaped
afterwards. Anywhere else — ``xmodal`` commands, tests, notebooks — nothing changes.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: the module KFP runs a lightweight component with (``kfp.dsl.component_factory.EXECUTOR_MODULE``)
EXECUTOR_MODULE = "kfp.dsl.executor_main"
#: set to ``0`` to keep the normal interpreter exit in task processes
SWITCH = "XMODAL_FAST_EXIT"

_state = {"armed": False, "succeeded": False}


def in_kfp_executor() -> bool:
    """Whether this process is a KFP task: ``python -m kfp.dsl.executor_main`` with ``_KFP_RUNTIME=true``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) == EXECUTOR_MODULE and os.environ.get("_KFP_RUNTIME") == "true"


def should_exit_fast(*, succeeded: bool, in_executor: bool, uncaught: BaseException | None,
                     switch: str | None) -> bool:
    """The rule: only a KFP task whose step succeeded, with no uncaught exception, and not switched off."""
    return in_executor and succeeded and uncaught is None and switch != "0"


def _exit_now() -> None:
    if not should_exit_fast(succeeded=_state["succeeded"], in_executor=in_kfp_executor(),
                            uncaught=getattr(sys, "last_value", None), switch=os.environ.get(SWITCH)):
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def kfp_task(step: Callable[P, R]) -> Callable[P, R]:
    """Mark a step function as the body of a KFP task (see the module docstring).

    The exit handler is registered before the step imports anything, so it runs after every handler the
    step's libraries register (``atexit`` runs the last registered first): MLflow, logging and the rest
    still flush and close.
    """

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _state["armed"] and in_kfp_executor():
            atexit.register(_exit_now)
            _state["armed"] = True
        result = step(*args, **kwargs)
        _state["succeeded"] = True
        return result

    return run
