"""Errors that reach the user: each says what is wrong, where, and how to fix it.

The CLI turns :class:`XmodalInputError` and :class:`ConfigError` into exit code 2 with one
message on stderr; every stage writes atomically, so nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class XmodalError(Exception):
    """Base class of the errors xmodal raises on purpose."""


class ConfigError(XmodalError):
    """A parameter is unknown, mistyped or inconsistent.

    Parameters
    ----------
    message
        One line naming the dotted key path and what was expected.
    """


class PipelineRunError(XmodalError):
    """A pipeline run finished with a failed task; the task's own output (printed above it) says why.

    The CLI prints the one-line message and exits with code 1.
    """


class TrainingDivergedError(XmodalError):
    """A loss term became NaN or infinite during training.

    The message names the term, the iteration and the parameter to change; the CLI prints it and
    exits with code 1 (no model is written).
    """


class XmodalInputError(XmodalError):
    """An input file does not satisfy the data contract.

    Parameters
    ----------
    problem
        What is wrong, e.g. ``"value is NaN"``.
    path
        The offending file.
    row, column
        Where in the file (1-based data row as a user would count it in a spreadsheet, and the
        column header or 1-based column index), when it applies.
    fix
        What the user should do about it.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        row: int | str | None = None,
        column: int | str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        """Return the one-line message: ``file: row R, column C: problem. Fix: ...``."""
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}" if isinstance(self.column, str) else f"column {self.column}")
        head = [self.path] if self.path else []
        if where:
            head.append(", ".join(where))
        msg = ": ".join([*head, self.problem])
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg

    def at(self, path: str | Path) -> XmodalInputError:
        """The same error, placed in ``path`` when it names no file yet."""
        if self.path is not None:
            return self
        return XmodalInputError(self.problem, path=path, row=self.row, column=self.column, fix=self.fix)


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Inside the block, an :class:`XmodalInputError` that names no file is placed in ``path``.

    A stage wraps the work on one input in it, so that errors raised by code that sees only arrays
    (a preprocessor, a model) still name the file the bad data came from.
    """
    try:
        yield
    except XmodalInputError as exc:
        if exc.path is not None:
            raise
        raise exc.at(path) from None
