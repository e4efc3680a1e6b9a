"""Load ``params.yaml`` with CLI overrides into :class:`~xmodal.config.Params`."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xmodal.config._models import Params
from xmodal.errors import ConfigError

_TYPE_WORDS = {
    "float": "expected float",
    "int": "expected int",
    "bool": "expected bool",
    "string": "expected string",
    "dict": "expected a mapping",
    "list": "expected a list",
    "tuple": "expected a list",
}


def load_params(path: str | Path = "params.yaml", *, overrides: Iterable[str] = ()) -> Params:
    """Read, override and validate the parameter file.

    Parameters
    ----------
    path
        The YAML file. A missing file is an error; an empty file means all defaults.
    overrides
        ``dotted.key=value`` strings; values are parsed as YAML (``1e-3``, ``true``, ``[1, 2]``).

    Returns
    -------
    Params
        Validated parameters; ``params.methods[name]`` holds each method's typed config.

    Raises
    ------
    ConfigError
        Naming the dotted key and what was expected, e.g. ``methods.gwot.epsilon: expected float``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found (run from the project root or pass --params)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); give the YAML params file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the parameter file ({exc.strerror})") from None
    raw = parse_yaml(text, source=str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return params_from_dict(apply_overrides(raw, overrides), source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: let PyYAML's own check report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} a second time "
                    f"(first on line {seen[key].line + 1}); remove one of them", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text safely (no Python objects), refusing duplicate keys.

    Raises
    ------
    ConfigError
        ``<source>: not valid YAML (line L, column C): <problem>``.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}" + (f", {context}" if context else "")) from None


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` override set (values parsed as YAML)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        if any(not part.strip() for part in parts):
            raise ConfigError(f"override {item!r}: an empty part in the dotted key")
        node[parts[-1]] = parse_yaml(value, source=f"override {item!r}") if value.strip() else None
    return out


def params_from_dict(raw: Mapping[str, Any], *, source: str = "params") -> Params:
    """Validate a parameter mapping (what :func:`load_params` does after reading the file).

    Each ``datasets.<name>`` entry is validated by its family's config class, each ``preprocess.<family>`` by the
    family's preprocessing config and each ``methods.<name>`` by the method's config (the registries say which).
    """
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source)) from None
    datasets = {name: _validate_dataset(name, cfg, source=source) for name, cfg in params.datasets.items()}
    preprocess = {name: _validate_preprocess(name, cfg, source=source) for name, cfg in params.preprocess.items()}
    methods = {name: _validate_method(name, cfg, source=source) for name, cfg in params.methods.items()}
    params = params.model_copy(update={"datasets": datasets, "preprocess": preprocess, "methods": methods})
    _check_runs(params, source=source)
    return params


def _validate_dataset(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.families import FAMILIES

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{source}: datasets.{name}: expected a mapping (got {cfg!r})")
    family = cfg.get("family")
    if family is None:
        raise ConfigError(f"{source}: datasets.{name}.family: required key is missing (one of: {sorted(FAMILIES)})")
    if family not in FAMILIES:
        raise ConfigError(f"{source}: datasets.{name}.family: unknown data family {family!r} (known: "
                          f"{sorted(FAMILIES)})")
    cls = FAMILIES[family].dataset_config_cls()
    try:
        return cls.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("datasets", name), tags=_kinds(cls))) from None


def _validate_preprocess(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.families import FAMILIES

    if name not in FAMILIES:
        raise ConfigError(f"{source}: preprocess.{name}: unknown data family (known: {sorted(FAMILIES)}); the "
                          "shares of the split are under `split:`")
    try:
        return FAMILIES[name].preprocess_config_cls().model_validate(cfg or {})
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("preprocess", name))) from None


def _validate_method(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.methods import METHODS, get_method

    if name not in METHODS:
        raise ConfigError(f"{source}: methods.{name}: unknown method (known: {sorted(METHODS)})")
    try:
        return get_method(name).config_cls().model_validate(cfg or {})
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("methods", name))) from None


def _check_runs(params: Params, *, source: str) -> None:
    from xmodal.methods import METHODS

    seen: dict[tuple[str, str], str] = {}
    for name, run in params.runs.items():
        where = f"{source}: runs.{name}"
        if run.dataset not in params.datasets:
            raise ConfigError(f"{where}.dataset: {run.dataset!r} is not in datasets (known: {sorted(params.datasets)})")
        if run.method not in METHODS:
            raise ConfigError(f"{where}.method: unknown method {run.method!r} (known: {sorted(METHODS)})")
        family = params.datasets[run.dataset].family
        if METHODS[run.method].family != family:
            raise ConfigError(f"{where}: method {run.method!r} works on family {METHODS[run.method].family!r}, but "
                              f"dataset {run.dataset!r} is of family {family!r}")
        other = seen.setdefault((run.dataset, run.method), name)
        if other != name:
            raise ConfigError(f"{where}: runs {other!r} and {name!r} both train {run.method!r} on {run.dataset!r} "
                              "(they would write the same model folder): remove one")


def _kinds(cls: Any) -> frozenset[str]:
    """The ``kind`` tags of the discriminated union in ``cls``'s ``source`` field (pydantic puts them in error
    locations)."""
    import typing

    field = getattr(cls, "model_fields", {}).get("source")
    tags: set[str] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            kind = annotation.model_fields.get("kind")
            if kind is not None and isinstance(kind.default, str):
                tags.add(kind.default)
            return
        for arg in typing.get_args(annotation):
            walk(arg)

    if field is not None:
        walk(field.annotation)
    return frozenset(tags)


def _format(exc: ValidationError, *, source: str, prefix: tuple[str, ...] = (),
            tags: frozenset[str] = frozenset()) -> str:
    """One line per problem: ``params.yaml: methods.gwot.epsilon: expected float (got 'abc')``."""
    lines = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        loc = prefix + tuple(p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] == "source" and p in tags))
        if loc and loc[-1] == "[key]":  # a bad mapping key: name the mapping, then the key
            path = f"{'.'.join(loc[:-2]) or '<top>'}: key {loc[-2]!r}"
        else:
            path = ".".join(loc) or "<top>"
        lines.append(f"{source}: {path}: {_describe(err)}")
    return "\n".join(lines)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the defaults in xmodal.config)"
    if kind == "missing":
        return "required key is missing"
    for word, text in _TYPE_WORDS.items():
        if kind.startswith(word):
            return f"{text} (got {got!r})"
    msg = err.get("msg", kind)
    if kind == "value_error":  # our own validators
        msg = msg.removeprefix("Value error, ")
        if repr(got) in msg:  # the message already names the value
            return msg
    return f"{msg} (got {got!r})" if got is not None and not isinstance(got, dict) else msg
