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
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, cast, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

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
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from pydantic.fields import FieldInfo
    from yaml.error import Mark

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")
# A blueprint nests eight levels at most (file > pipelines > [i] > stages > [i] > silence > [i]
# > value); far deeper input is a mistake or an attack on the recursive composer.
MAX_DEPTH = 32
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
    """Parse blueprint YAML text; raise `ConfigError` listing every problem found.

    Nothing else escapes: whatever the text holds, the caller gets findings for this file
    (so one odd file never stops the other clients).
    """
    try:
        return _parse(text, path)
    except ConfigError:
        raise
    except Exception as exc:  # the boundary: a file's content must never crash a run
        log.debug("unexpected failure reading %s", path, exc_info=True)
        raise ConfigError([Finding(
            path, None, None, "", f"cannot read this file ({type(exc).__name__}: "
            f"{_printable(str(exc), 120)})",
            hint="simplify the values this file holds; run with --debug to see where it failed",
        )]) from None


def _parse(text: str, path: str) -> LoadedBlueprint:
    try:
        root, anchored = _compose(text)
    except _TooDeep as exc:
        # Name the field the runaway value belongs to, not its hundred nested positions.
        named = [i for i, part in enumerate(exc.loc[:8]) if isinstance(part, str)]
        field_loc = exc.loc[: named[-1] + 1] if named else ()
        raise ConfigError([Finding(
            path, exc.mark.line + 1, exc.mark.column + 1, format_loc(field_loc),
            f"nested more than {MAX_DEPTH} levels deep; a blueprint needs far fewer",
        )]) from None
    except ReaderError as exc:
        raise ConfigError([_reader_finding(exc, text, path)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_finding(exc, path)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Finding(path, None, None, "", f"invalid YAML: {exc}")]) from None
    if root is None:
        raise ConfigError([Finding(
            path, None, None, "", "the file is empty",
            hint="start from a scaffold: crmsync init CLIENT --crm hubspot",
        )])
    builder = _DataBuilder(path, anchored)
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
        findings.extend(_validation_findings(exc, source, builder.unreadable))
    findings.extend(source.finding(p.loc, p.message, rule=p.rule)
                    for p in reference_problems(data) if p.loc not in builder.unreadable)
    if findings or blueprint is None:
        raise ConfigError(_sorted(findings))
    return LoadedBlueprint(path, blueprint, source)


def read_blueprint(path: str | Path) -> LoadedBlueprint:
    """Read and parse one blueprint file; raise `ConfigError` listing every problem found."""
    name = str(path)
    problem = _not_a_plain_file(Path(path))
    if problem:
        raise ConfigError([Finding(name, None, None, "", problem[0], hint=problem[1])])
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raw = Path(path).read_bytes()[: exc.start]
        line = raw.count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n") + 1) + 1
        raise ConfigError([Finding(
            name, line, column, "", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
            hint="save the file as UTF-8 (most editors: File > Save with encoding)",
        )]) from None
    except OSError as exc:
        raise ConfigError([Finding(name, None, None, "", f"cannot read: {exc.strerror}")]) from None
    loaded = parse_blueprint(text, name)
    log.debug("loaded %s: client %s, %d pipeline(s)", name, loaded.blueprint.client,
              len(loaded.blueprint.pipelines))
    return loaded


def _not_a_plain_file(path: Path) -> tuple[str, str | None] | None:
    """Why `path` cannot be a blueprint (message, hint), or None for a regular file.

    Checked before opening: reading a FIFO would wait forever for a writer.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return (f"a symbolic link to {path.readlink()}, which does not exist",
                    "point the link at an existing blueprint, or remove it")
        return "no such file", None
    except OSError as exc:
        return f"cannot read: {exc.strerror}", None
    if stat.S_ISDIR(mode):
        return ("is a folder, not a blueprint file",
                "name the folder itself to check every file in it, or rename it")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a special file"
        return (f"is {kind}, not a blueprint file; it was not read",
                "blueprints are plain YAML files: move this out of the folder")
    return None


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

    In a folder, every entry named `*.yaml`/`*.yml` (in any case: `ACME.YAML` counts) is
    listed, whatever it is: a broken symlink, a FIFO or a folder named like a blueprint is
    then reported by `read_blueprint` as that file's error instead of silently skipped.
    """
    given = [Path(p) for p in paths] or [Path(configs_dir)]
    result: list[Path] = []
    missing: list[Finding] = []
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if _looks_like_blueprint(p))
            if not found:
                missing.append(Finding(
                    str(path), None, None, "", "no blueprint files (*.yaml, *.yml) in this folder",
                    hint="create one with: crmsync init CLIENT --crm hubspot",
                ))
            result.extend(found)
        elif path.exists() or path.is_symlink():
            result.append(path)  # a file, or something read_blueprint will explain
        else:
            missing.append(Finding(str(path), None, None, "", "no such file or folder"))
    if missing:
        raise ConfigError(missing)
    return list(dict.fromkeys(result))


def _looks_like_blueprint(path: Path) -> bool:
    # Emacs keeps ".#NAME" lock files as dangling symlinks beside the file being edited.
    return path.suffix.lower() in YAML_SUFFIXES and not path.name.startswith(".#")


# --- YAML nodes to plain data, with positions -------------------------------------------------


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _compose(text: str) -> tuple[Node | None, dict[int, str]]:
    """The node tree of `text` (None if empty), aliases left unexpanded (see `_Composer`),
    and the anchor names by `id()` of the node that carries them."""
    loader = _Composer(text)  # raises ReaderError for a control character anywhere
    try:
        return cast("Node | None", loader.get_single_node()), loader.anchored
    finally:
        loader.dispose()


class _TooDeep(Exception):  # noqa: N818 -- internal signal, never leaves this module
    def __init__(self, mark: Mark, loc: Loc) -> None:
        super().__init__("nested too deeply")
        self.mark = mark
        self.loc = loc


_ALIAS_TAG = "!crmsync/alias"  # our own tag: an alias the composer left for the builder


class _Composer(yaml.SafeLoader):
    """PyYAML's safe loader, composing nodes only, that never expands an alias.

    Anchors and aliases add nothing to a pipeline file, and expanding them is how a few
    hundred bytes become gigabytes (a "billion laughs"). An alias becomes a placeholder node;
    anchored nodes are listed; `_DataBuilder` reports both at their field. Nesting deeper
    than `MAX_DEPTH` stops composing (PyYAML's composer is recursive).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.anchored: dict[int, str] = {}
        self._loc: list[str | int] = []
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        mark = cast("Mark", event.start_mark)
        if isinstance(event, AliasEvent):
            self.get_event()
            return ScalarNode(_ALIAS_TAG, str(event.anchor), mark, mark)
        if self._depth >= MAX_DEPTH:
            raise _TooDeep(mark, tuple(self._loc))
        # `index` is the key node for a mapping value, the position for a list item.
        part = index.value if isinstance(index, ScalarNode) else index
        named = isinstance(part, str | int) and not isinstance(part, bool)
        if named:
            self._loc.append(part)
        self._depth += 1
        try:
            node = cast("Node", super().compose_node(parent, index))
        finally:
            self._depth -= 1
            if named:
                self._loc.pop()
        if isinstance(event, NodeEvent) and event.anchor is not None:
            self.anchored[id(node)] = event.anchor
        return node


_TAG_KINDS = {
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "a date",
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NO_ALIASES = "anchors (&) and aliases (*) are not allowed in a blueprint"
_NO_ALIASES_HINT = "write the value out where it is used"


class _DataBuilder:
    """Turns a composed YAML node tree into dicts/lists/scalars, noting positions and problems."""

    def __init__(self, path: str, anchored: Mapping[int, str] | None = None) -> None:
        self.path = path
        self._anchored = anchored or {}
        self.values: dict[Loc, tuple[int, int]] = {}
        self.keys: dict[Loc, tuple[int, int]] = {}
        self.findings: list[Finding] = []
        self.unreadable: set[Loc] = set()  # reported here: no second finding from the model
        self._constructor = SafeConstructor()
        self._aliased: set[str] = set()

    def _error(self, node: Node, loc: Loc, message: str, hint: str | None = None, *,
               suppress: bool = True) -> None:
        """Note a finding at `node`; with `suppress`, none from the model for `loc` follows."""
        line, column = _mark(node)
        self.findings.append(Finding(self.path, line, column, format_loc(loc), message,
                                     hint=hint))
        if suppress:
            self.unreadable.add(loc)

    def build(self, node: Node, loc: Loc = ()) -> Any:
        # Aliases arrive as placeholders (see `_Composer`), so the tree is a tree: no cycles,
        # no shared subtrees, and building it is linear in the file's size.
        self.values.setdefault(loc, _mark(node))
        anchor = self._anchored.get(id(node))
        if anchor is not None:
            self._error(node, loc, f"YAML anchor &{anchor}: {_NO_ALIASES}", _NO_ALIASES_HINT,
                        suppress=False)
        if node.tag == _ALIAS_TAG:
            if node.value not in self._aliased:  # the first use of each name is enough
                self._aliased.add(node.value)
                self._error(node, loc, f"YAML alias *{node.value}: {_NO_ALIASES}",
                            _NO_ALIASES_HINT)
            else:
                self.unreadable.add(loc)
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

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
            if _SURROGATE.search(name) or len(name) > 100:  # no field name is near as long
                self._error(key_node, loc, f"{_shown(name)} is not a field name")
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
            value = self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self._error(node, loc, f"cannot read this value: {exc.problem}")
            return None
        except Exception as exc:  # noqa: BLE001 -- PyYAML raises ValueError, KeyError, ...
            self._unreadable(node, loc, exc)
            return None
        surrogate = _SURROGATE.search(value) if isinstance(value, str) else None
        if surrogate:
            # A lone surrogate ("\ud800") is no character at all: it cannot be printed,
            # stored as UTF-8 or sent to a CRM.
            self._error(node, loc, f"contains {_printable(surrogate.group())}, "
                        "half of a UTF-16 surrogate pair, which is not a character",
                        "write the character itself, or its \\U0001XXXX escape")
            return None
        return value

    def _unreadable(self, node: Node, loc: Loc, exc: Exception) -> None:
        """A finding for a scalar PyYAML cannot turn into a value (bad date, huge number, …)."""
        text = str(getattr(node, "value", ""))
        shown = "this value" if "token" in format_loc(loc) else _shown(text)
        kind = _TAG_KINDS.get(node.tag)
        if isinstance(exc, ValueError) and "digits" in str(exc):
            message = f"a number with {len(text)} digits is too long to read"
        elif node.tag == "tag:yaml.org,2002:timestamp" and isinstance(exc, ValueError):
            message = f"{shown} looks like a date but is not one ({exc})"
        elif kind:
            message = f"cannot read {shown} as {kind}"
        else:
            message = f"cannot read {shown} ({type(exc).__name__})"
        hint = ("put it in quotes to keep it as text" if node.tag != "tag:yaml.org,2002:str"
                else None)
        self._error(node, loc, message, hint)


def _reader_finding(exc: ReaderError, text: str, path: str) -> Finding:
    """PyYAML's reader gives a character index, not a line: work the line and column out."""
    position = exc.position if 0 <= exc.position <= len(text) else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Finding(path, line, column, "", f"control character {_printable(character)} is not "
                   "allowed in YAML", hint="delete it (it is often invisible in an editor); "
                   "in a double-quoted value write it as an escape if you mean it")


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


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str, limit: int | None = None) -> str:
    """`text` with control characters and lone surrogates as escapes, safe for any terminal."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xff
                            else f"\\x{ord(m.group()):02x}", text)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"'{_printable(value, 40)}'"
    if isinstance(value, dict | list):
        return _describe_value(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a number with {len(str(abs(value)))} digits"
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
          and 1 < e.value <= 100 and float(e.value).is_integer()):
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


def _validation_findings(exc: ValidationError, source: SourceMap,
                         reported: Collection[Loc] = ()) -> list[Finding]:
    """Findings for pydantic's errors, except at locations already `reported` by the loader."""
    findings: list[Finding] = []
    errors = exc.errors()
    explained_by_typo = _typo_targets(errors)
    for error in errors:
        if error["type"] == "missing" and tuple(error["loc"]) in explained_by_typo:
            continue
        loc: Loc = tuple(error["loc"])
        if any(loc[:len(done)] == done for done in reported):
            continue
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
