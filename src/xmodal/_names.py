"""Names that become parts of output paths or registry entries, and the rule they must follow.

Dataset, method, domain and modality names come from ``params.yaml``, the command line and pipeline
parameters, so they are untrusted: a name such as ``/``, ``..`` or ``.`` would make a stage write or
replace a folder outside its own. Every such name must match :data:`NAME_RULE`:

* letters, digits, ``_``, ``-`` and ``.``, 1 to 100 characters;
* not starting with ``.`` (hidden files, ``.`` and ``..``) or ``-`` (it would read as a command-line option).

Registered-model names (``register.model_name_template`` filled in) follow the same rule with up to 200
characters. Dataset names must also not be ``registry``, ``monitor``, ``tune`` or ``summary.json`` (in any
case): those entries of ``reports/`` belong to other stages; and two dataset names must differ in more than
case (on a case-insensitive file system they would share their folders).
"""

from __future__ import annotations

import re

from xmodal.errors import ConfigError

NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.' or '-'"
"""The rule, as the error messages state it."""

_CHAR = re.compile(r"[A-Za-z0-9_.\-]")
MAX_NAME, MAX_MODEL_NAME = 100, 200
RESERVED_DATASETS = frozenset({"registry", "monitor", "tune", "summary.json"})
"""Entries of ``reports/`` that hold other stages' outputs (``reports/<dataset>/<method>`` is evaluate's)."""


def name_problem(value: object, *, what: str = "", max_length: int = MAX_NAME) -> str | None:
    """Why ``value`` is not an acceptable ``what`` name, or ``None`` when it is.

    Examples
    --------
    >>> name_problem("pbmc68k") is None
    True
    >>> name_problem("../x")
    "contains '/'"
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if value == "":
        return "is empty"
    if len(value) > max_length:
        return f"is {len(value)} characters long (at most {max_length})"
    if value[0] in ".-":
        return f"starts with {value[0]!r}"
    bad = sorted({c for c in value if not _CHAR.fullmatch(c)})
    if bad:
        return "contains " + ", ".join(repr(c) for c in bad)
    if what == "dataset" and value.lower() in RESERVED_DATASETS:
        return f"is reserved (reports/{value.lower()}/ holds another stage's outputs)"
    return None


def check_name(value: object, *, what: str, where: str = "", max_length: int = MAX_NAME) -> str:
    """Return ``value`` if it is an acceptable name, else raise :class:`~xmodal.errors.ConfigError`.

    Parameters
    ----------
    value
        The name.
    what
        What it names, for the message (``"dataset"``, ``"method"``, ...).
    where
        Where it came from (``"params.yaml: datasets"``, ``"--dataset"``), for the message.
    max_length
        Longest allowed name.

    Raises
    ------
    ConfigError
        One line: where, the name, why it is refused and the rule.
    """
    problem = name_problem(value, what=what, max_length=max_length)
    if problem is not None:
        head = f"{where}: " if where else ""
        raise ConfigError(f"{head}{what} name {value!r} {problem}; a {what} name may hold only {NAME_RULE} "
                          f"(at most {max_length} characters)")
    return str(value)


def name_validator(what: str, *, max_length: int = MAX_NAME):  # noqa: ANN201 - a pydantic AfterValidator
    """A pydantic ``AfterValidator`` function applying :func:`name_problem` (the error names the key path)."""

    def validate(value: str) -> str:
        problem = name_problem(value, what=what, max_length=max_length)
        if problem is not None:
            raise ValueError(f"{what} name {value!r} {problem}; use only {NAME_RULE}")
        return value

    return validate
