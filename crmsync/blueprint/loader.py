"""Load blueprints from YAML, reporting every problem at once with its file:line:column.

PyYAML's composer gives a node tree with positions; we build the plain data from it ourselves
(so duplicate keys, which PyYAML silently accepts, are caught) and remember where each value
and key sits. Pydantic errors are then mapped back to those positions and reworded for the
consultant who wrote the file.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from crmsync.blueprint.models import (
    CURRENCY_PATTERN,
    ENV_NAME_PATTERN,
    KEY_PATTERN,
    LANGUAGE_PATTERN,
    SKIP_REFERENCE_CHECKS,
    Blueprint,
    Loc,
    closest,
    format_loc,
    reference_problems,
    to_key,
)
from crmsync.errors import ConfigError, Finding

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from pydantic.fields import FieldInfo

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")
Position = tuple[int | None, int | None]


@dataclass(frozen=True)
class SourceMap:
    """Where each value (and each mapping key) of a blueprint sits in its file, 1-based."""

    path: str
    values: Mapping[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: Mapping[Loc, tuple[int, int]] = field(default_factory=dict)

    def known_prefix(self, loc: Loc) -> Loc:
        """The longest leading part of `loc` that exists in the file."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.values or loc[:end] in self.keys:
                return loc[:end]
        return ()

    def position(self, loc: Loc, *, at_key: bool = False) -> Position:
        """Line and column of the value at `loc` (or of its key), else of its nearest parent."""
        if at_key and loc in self.keys:
            return self.keys[loc]
        prefix = self.known_prefix(loc)
        where = self.values.get(prefix) or self.keys.get(prefix)
        return where if where else (None, None)

    def finding(self, loc: Loc, message: str, *, at_key: bool = False, severity: str = "error",
                rule: str | None = None, hint: str | None = None) -> Finding:
        """A `Finding` about the field at `loc`, placed at its line and column."""
        line, column = self.position(loc, at_key=at_key)
        return Finding(self.path, line, column, format_loc(loc), message, severity, rule, hint)


@dataclass(frozen=True)
class LoadedBlueprint:
    """A valid blueprint together with the file it came from and its positions."""

    path: str
    blueprint: Blueprint
    source: SourceMap


def parse_blueprint(text: str, path: str = "<blueprint>") -> LoadedBlueprint:
    """Parse blueprint YAML text; raise `ConfigError` listing every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_finding(exc, path)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Finding(path, None, None, "", f"invalid YAML: {exc}")]) from None
    if root is None:
        raise ConfigError([Finding(
            path, None, None, "", "the file is empty",
            hint="start from a scaffold: crmsync init CLIENT --crm hubspot",
        )])
    builder = _DataBuilder(path)
    data = builder.build(root)
    source = SourceMap(path, builder.values, builder.keys)
    findings = list(builder.findings)
    if not isinstance(data, dict):
        findings.append(source.finding(
            (), f"the file must be a mapping of fields (client:, crm:, pipelines: …), "
            f"not {_describe_value(data)}",
        ))
        raise ConfigError(_sorted(findings))

    blueprint: Blueprint | None = None
    try:
        blueprint = Blueprint.model_validate(data, context={SKIP_REFERENCE_CHECKS: True})
    except ValidationError as exc:
        findings.extend(_validation_findings(exc, source))
    findings.extend(source.finding(p.loc, p.message, rule=p.rule)
                    for p in reference_problems(data))
    if findings or blueprint is None:
        raise ConfigError(_sorted(findings))
    return LoadedBlueprint(path, blueprint, source)


def read_blueprint(path: str | Path) -> LoadedBlueprint:
    """Read and parse one blueprint file; raise `ConfigError` listing every problem found."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Finding(name, None, None, "", "no such file")]) from None
    except UnicodeDecodeError as exc:
        raw = Path(path).read_bytes()[: exc.start]
        line = raw.count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n") + 1) + 1
        raise ConfigError([Finding(
            name, line, column, "", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
            hint="save the file as UTF-8 (most editors: File > Save with encoding)",
        )]) from None
    except IsADirectoryError:
        raise ConfigError([Finding(name, None, None, "", "is a folder, not a blueprint file",
                                   hint="name the folder itself to check every file in it")],
                          ) from None
    except OSError as exc:
        raise ConfigError([Finding(name, None, None, "", f"cannot read: {exc.strerror}")]) from None
    loaded = parse_blueprint(text, name)
    log.debug("loaded %s: client %s, %d pipeline(s)", name, loaded.blueprint.client,
              len(loaded.blueprint.pipelines))
    return loaded


def load_blueprint(path: str | Path) -> Blueprint:
    """The valid blueprint in `path`, or `ConfigError` with every problem in the file."""
    return read_blueprint(path).blueprint


def read_blueprints(paths: Iterable[str | Path]) -> list[LoadedBlueprint]:
    """Read every file (going on past broken ones); `ConfigError` with all problems found.

    Two files describing the same client are an error: the store keys state by client.
    """
    loaded: list[LoadedBlueprint] = []
    findings: list[Finding] = []
    for path in paths:
        try:
            loaded.append(read_blueprint(path))
        except ConfigError as exc:
            findings.extend(exc.findings)
    findings.extend(duplicate_client_findings(loaded))
    if findings:
        raise ConfigError(findings)
    return loaded


def load_blueprints(paths: Iterable[str | Path]) -> list[Blueprint]:
    """The valid blueprints in `paths`, or `ConfigError` with every problem in every file."""
    return [item.blueprint for item in read_blueprints(paths)]


def duplicate_client_findings(loaded: Sequence[LoadedBlueprint]) -> list[Finding]:
    """An error for each file that repeats a client already described by an earlier file."""
    first: dict[str, str] = {}
    findings: list[Finding] = []
    for item in loaded:
        client = item.blueprint.client
        if client in first:
            findings.append(item.source.finding(
                ("client",), f"client '{client}' is already described in {first[client]}; "
                "keep one file per client",
            ))
        first.setdefault(client, item.path)
    return findings


def expand_paths(paths: Iterable[str | Path], configs_dir: str | Path) -> list[Path]:
    """Blueprint files named by `paths`: none -> every YAML file in `configs_dir`; a folder ->
    its YAML files, sorted; a file -> itself. Missing paths raise one `ConfigError` naming each.
    """
    given = [Path(p) for p in paths] or [Path(configs_dir)]
    result: list[Path] = []
    missing: list[Finding] = []
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
            if not found:
                missing.append(Finding(
                    str(path), None, None, "", "no blueprint files (*.yaml, *.yml) in this folder",
                    hint="create one with: crmsync init CLIENT --crm hubspot",
                ))
            result.extend(found)
        elif path.is_file():
            result.append(path)
        else:
            missing.append(Finding(str(path), None, None, "", "no such file or folder"))
    if missing:
        raise ConfigError(missing)
    return list(dict.fromkeys(result))


# --- YAML nodes to plain data, with positions -------------------------------------------------


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _DataBuilder:
    """Turns a composed YAML node tree into dicts/lists/scalars, noting positions and problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.values: dict[Loc, tuple[int, int]] = {}
        self.keys: dict[Loc, tuple[int, int]] = {}
        self.findings: list[Finding] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()

    def _error(self, node: Node, loc: Loc, message: str) -> None:
        line, column = _mark(node)
        self.findings.append(Finding(self.path, line, column, format_loc(loc), message))

    def build(self, node: Node, loc: Loc = ()) -> Any:
        self.values.setdefault(loc, _mark(node))
        if id(node) in self._active:  # an alias pointing into itself
            self._error(node, loc, "a YAML alias refers to itself; write the value out")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, loc)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._error(key_node, loc, "a field name must be a plain word, "
                            "not a list or a mapping")
                continue
            name = str(key_node.value)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._error(key_node, loc, "YAML merge keys (<<) are not supported; "
                            "write the fields out")
                continue
            child = (*loc, name)
            line = _mark(key_node)[0]
            if name in first_line:
                self._error(key_node, child, f"duplicate field '{name}' (already set on line "
                            f"{first_line[name]}); YAML would silently keep only the last one")
            else:
                first_line[name] = line
                self.keys[child] = _mark(key_node)
            self.values[child] = _mark(value_node)
            result[name] = self.build(value_node, child)
        return result

    def _scalar(self, node: Node, loc: Loc) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self._error(node, loc, f"cannot read this value: {exc.problem}")
            return None


def _yaml_finding(exc: yaml.MarkedYAMLError, path: str) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    problem = exc.problem or "unreadable YAML"
    if "'\\t'" in problem:
        message = "tab character: indent with spaces, not tabs"
    elif problem.startswith("mapping values are not allowed"):
        message = ("unexpected ':' — put quotes around a value that contains ': ', "
                   "or check the indentation")
    elif problem.startswith("could not find expected ':'"):
        message = "expected 'field: value' here — a missing ':' or a wrong indentation?"
    elif problem.startswith("found undefined alias"):
        message = f"unknown YAML alias ({problem.removeprefix('found undefined alias ')})"
    elif problem.startswith("but ") and exc.context:
        message = f"invalid YAML: {exc.context}, {problem}"
    else:
        message = f"invalid YAML: {problem}"
        if exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            message += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        elif exc.context:
            message += f" ({exc.context})"
    return Finding(path, line, column, "", message)


# --- Pydantic errors in plain language -------------------------------------------------------


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType) or get_args(annotation):
        for arg in get_args(annotation):
            model = _find_model(arg)
            if model is not None:
                return model
    return None


def _field_at(loc: Loc) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model owning the last field named in `loc`, and that field's info."""
    model: type[BaseModel] | None = Blueprint
    names = [part for part in loc if isinstance(part, str)]
    for name in names[:-1]:
        info = model.model_fields.get(name) if model else None
        model = _find_model(info.annotation) if info else None
    if model is None or not names:
        return model, None
    return model, model.model_fields.get(names[-1])


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe_value(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a yes/no value"), (type(None), "nothing"), (dict, "a mapping"), (list, "a list"),
    ]
    for kind, text in kinds:
        if isinstance(value, kind):
            return text
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"the date {value}" if isinstance(value, dt.date) else "text"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "…"
        return f"'{text}'"
    if isinstance(value, dict | list):
        return _describe_value(value)
    return str(value)


_PATTERN_MESSAGES = {
    KEY_PATTERN: "must be a key: lowercase letters, digits and underscores, starting with a letter",
    CURRENCY_PATTERN: "must be a three-letter currency code in capitals, such as EUR or USD",
    LANGUAGE_PATTERN: "must be a two-letter language code, such as en, de or uk",
    ENV_NAME_PATTERN: ("must be the NAME of an environment variable that holds the token "
                       "(capitals, digits, underscores, e.g. ACME_HUBSPOT_TOKEN), "
                       "never the token itself"),
}


@dataclass(frozen=True)
class _Error:
    """One pydantic error with what is needed to explain it."""

    kind: str
    value: Any
    ctx: Mapping[str, Any]
    name: str
    model: type[BaseModel] | None
    info: FieldInfo | None
    msg: str

    @property
    def got(self) -> str:
        # Never echo what was typed into a token field: it may be the secret itself.
        return "" if "token" in self.name else f" (got {_shown(self.value)})"


Explained = tuple[str, str | None]


def _explain_extra(e: _Error) -> Explained:
    known = list(e.model.model_fields) if e.model else []
    suggestion = closest(e.name, known)
    if suggestion:
        return f"unknown field '{e.name}'; did you mean '{suggestion}'?", None
    return f"unknown field '{e.name}'", f"known fields here: {', '.join(known)}"


def _explain_literal(e: _Error) -> Explained:
    expected = str(e.ctx.get("expected", ""))
    options = re.findall(r"'([^']*)'", expected)
    suggestion = closest(e.value, options) if isinstance(e.value, str) else None
    did_you_mean = f"; did you mean '{suggestion}'?" if suggestion else ""
    return f"must be one of {expected}{e.got}{did_you_mean}", None


def _explain_pattern(e: _Error) -> Explained:
    pattern = str(e.ctx.get("pattern"))
    message = _PATTERN_MESSAGES.get(pattern, f"must match the pattern {pattern}") + e.got
    key = to_key(e.value) if pattern == KEY_PATTERN and isinstance(e.value, str) else None
    return message, (f"for example '{key}'" if key else None)


def _explain_number(e: _Error) -> Explained:
    low = high = None
    for meta in e.info.metadata if e.info else ():
        low = meta.ge if getattr(meta, "ge", None) is not None else low
        high = meta.le if getattr(meta, "le", None) is not None else high
    what = "a whole number" if e.kind.startswith("int") else "a number"
    if low is not None and high is not None:
        message = f"must be {what} between {_number(low)} and {_number(high)}"
    elif low is not None:
        message = f"must be {what} of at least {_number(low)}"
    else:
        message = f"must be {what}"
    hint = None
    if e.name == "probability" and isinstance(e.value, str):
        hint = "probability is a fraction: write 40% as 0.4"
    elif (e.name == "probability" and isinstance(e.value, int | float)
          and float(e.value).is_integer() and 1 < e.value <= 100):
        hint = f"probability is a fraction: write {_number(e.value)}% as {e.value / 100:g}"
    return message + e.got, hint


def _explain_string_type(e: _Error) -> Explained:
    if isinstance(e.value, bool):
        return ("must be text, but YAML reads this as a yes/no value",
                'put it in quotes, e.g. "no"')
    if e.value is None:
        return "must not be empty", None
    return f"must be text, not {_describe_value(e.value)}", "put it in quotes"


def _explain_too_short(e: _Error) -> Explained:
    noun = {"pipelines": "pipeline", "stages": "stage"}.get(e.name, "item")
    return f"needs at least {e.ctx.get('min_length', 1)} {noun}", None


def _explain_other(e: _Error) -> Explained:
    message = e.msg.removeprefix("Value error, ")
    return message[:1].lower() + message[1:] + e.got, None


_NUMBER_ERRORS = ("less_than_equal", "greater_than_equal", "less_than", "greater_than",
                  "float_parsing", "float_type", "int_parsing", "int_type", "int_from_float")
_EXPLAINERS: dict[str, Callable[[_Error], Explained]] = {
    "missing": lambda e: (f"missing required field '{e.name}'", None),
    "extra_forbidden": _explain_extra,
    "literal_error": _explain_literal,
    "string_pattern_mismatch": _explain_pattern,
    **dict.fromkeys(_NUMBER_ERRORS, _explain_number),
    "string_type": _explain_string_type,
    "string_too_short": lambda e: ("must not be empty", None),
    "string_too_long": lambda e: (
        f"must be at most {e.ctx.get('max_length')} characters (got {len(e.value)})", None),
    "too_short": _explain_too_short,
    **dict.fromkeys(("tuple_type", "list_type"), lambda e: (
        f"must be a list, not {_describe_value(e.value)}",
        "write each item on its own line starting with '- '")),
    **dict.fromkeys(("model_type", "model_attributes_type", "dict_type"), lambda e: (
        f"must be a mapping of fields, not {_describe_value(e.value)}", None)),
    **dict.fromkeys(("bool_type", "bool_parsing"), lambda e: (
        f"must be true or false{e.got}", None)),
}


def _explain(error: Mapping[str, Any], loc: Loc) -> Explained:
    """A consultant-friendly message (and hint) for one pydantic error."""
    model, info = _field_at(loc)
    e = _Error(
        kind=error["type"], value=error.get("input"), ctx=error.get("ctx") or {},
        name=next((p for p in reversed(loc) if isinstance(p, str)), ""),
        model=model, info=info, msg=str(error.get("msg", "is invalid")),
    )
    return _EXPLAINERS.get(e.kind, _explain_other)(e)


def _typo_targets(errors: list[Any]) -> set[Loc]:
    """Missing fields explained by a misspelt key next to them ("probabilty" -> "probability")."""
    targets: set[Loc] = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            *parent, name = error["loc"]
            model, _ = _field_at(tuple(error["loc"]))
            suggestion = closest(str(name), list(model.model_fields)) if model else None
            if suggestion:
                targets.add((*parent, suggestion))
    return targets


def _validation_findings(exc: ValidationError, source: SourceMap) -> list[Finding]:
    findings: list[Finding] = []
    errors = exc.errors()
    explained_by_typo = _typo_targets(errors)
    for error in errors:
        if error["type"] == "missing" and tuple(error["loc"]) in explained_by_typo:
            continue
        loc: Loc = tuple(error["loc"])
        value = error.get("input")
        # A list whose every item failed reports "at least 1 item, not 0" too: not the cause.
        if error["type"] == "too_short" and isinstance(value, list) and value:
            continue
        message, hint = _explain(error, loc)
        if error["type"] == "missing":
            # Point at the mapping that lacks the field: the field itself is not in the file.
            line, column = source.position(loc[:-1])
            findings.append(Finding(source.path, line, column, format_loc(loc), message,
                                    hint=hint))
            continue
        at_key = error["type"] == "extra_forbidden"
        if not at_key:
            loc = source.known_prefix(loc) or loc
        findings.append(source.finding(loc, message, at_key=at_key, hint=hint))
    return findings


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.path, f.line or 0, f.column or 0))
