"""`crmsync import`: a CSV file into one client's records, through the store's change API.

The file is read as a stream (`csv.DictReader`) and written in batches (`LocalRecords.
apply_rows`, one transaction each), so memory stays flat whatever its size. Each column maps
onto a canonical field (`email`, `amount`, …) or a property (`properties.<name>`): by
`--map COLUMN=TARGET` / a mapping file, else by a header that already is a field's name
("E-mail" and "First name" map themselves); other columns are ignored and listed. Cells are
parsed for their field (consent yes/no, amounts with a decimal comma, dates as YYYY-MM-DD or
DD.MM.YYYY) and validated by the change API; an empty cell leaves the field as it is.

Rows are numbered as a spreadsheet shows them: the header is row 1. A row that fails is
reported with its number and field, and written to the rejects file with the original
columns and an `_error` column; the other rows go in (unless it is a dry run, the default).
Encoding UTF-8 with or without a BOM; the delimiter (`,` `;` or tab) is read off the header.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from crmsync.errors import CrmsyncError, RecordError
from crmsync.keys import consent_value
from crmsync.store.local import WRITABLE_FIELDS, LocalRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path
    from typing import TextIO

    from crmsync.blueprint.models import Blueprint
    from crmsync.settings import Settings
    from crmsync.store.local import BatchResult
    from crmsync.store.store import Store

EXIT_OK, EXIT_REJECTED = 0, 3
PROPERTY_PREFIX = "properties."
_DELIMITERS = (",", ";", "\t")
_SHOWN_REJECTS = 20  # kept in memory for the report; the rejects file has them all


@dataclass(frozen=True)
class ColumnMapping:
    """Which CSV column feeds which target (a canonical field or `properties.<name>`)."""

    targets: dict[str, str]  # column → target, in file order
    ignored: tuple[str, ...] = ()

    def column_for(self, name: str) -> str | None:
        """The column behind a field or property name as the change API reports it."""
        for column, target in self.targets.items():
            if name in (target, target.removeprefix(PROPERTY_PREFIX)):
                return column
        return None


@dataclass(frozen=True)
class PreviewRow:
    row: int
    status: str  # new | updates #12 | unchanged #12 | rejected: E-Mail (email) — reason
    values: dict[str, Any]  # as they would be stored, by target


@dataclass(frozen=True)
class RejectedRow:
    row: int
    error: str  # "E-Mail (email): 'x' is not an email address; …"


@dataclass
class ImportResult:
    """What an import did (or, dry, would do)."""

    path: Path
    client: str
    object_type: str
    dry_run: bool
    mapping: ColumnMapping
    delimiter: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    preview: list[PreviewRow] = field(default_factory=list)
    rejects: list[RejectedRow] = field(default_factory=list)  # the first few, for the report
    rejects_path: Path | None = None  # where every rejected row was written, if anywhere

    @property
    def exit_code(self) -> int:
        return EXIT_REJECTED if self.rejected else EXIT_OK


# --- mapping ------------------------------------------------------------------------------------

def valid_targets(object_type: str) -> list[str]:
    """What a column may map to for this object type."""
    return [*WRITABLE_FIELDS[object_type], f"{PROPERTY_PREFIX}<name>"]


def parse_map_options(pairs: Sequence[str]) -> dict[str, str]:
    """`["E-Mail=email", …]` as {column: target}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise CrmsyncError(f"--map '{pair}' is not COLUMN=TARGET",
                               hint='e.g. --map "E-Mail=email" --map "Source=properties.source"')
        mapping[column.strip()] = target.strip()
    return mapping


def read_map_file(path: Path) -> dict[str, str]:
    """A YAML mapping file: `COLUMN: TARGET` per line (optionally under `columns:`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise CrmsyncError(f"cannot read the mapping file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CrmsyncError(f"the mapping file {path} is not valid YAML: "
                           f"{str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and isinstance(data.get("columns"), dict):
        data = data["columns"]
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise CrmsyncError(f"the mapping file {path} must map column names to targets",
                           hint='e.g. a line `"E-Mail": email` per column')
    return {k.strip(): v.strip() for k, v in data.items()}


def _normalised(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def resolve_mapping(header: Sequence[str], object_type: str,
                    explicit: Mapping[str, str]) -> ColumnMapping:
    """The mapping for a file with this header: explicit entries, then self-naming columns."""
    fields = WRITABLE_FIELDS[object_type]
    missing = [c for c in explicit if c not in header]
    if missing:
        raise CrmsyncError(
            f"the file has no column {', '.join(repr(c) for c in missing)}; its columns are: "
            f"{', '.join(repr(c) for c in header)}")
    for column, target in explicit.items():
        name = target.removeprefix(PROPERTY_PREFIX)
        if target not in fields and not (target.startswith(PROPERTY_PREFIX) and name.strip()):
            raise CrmsyncError(
                f"unknown mapping target '{target}' for column '{column}': {object_type} "
                f"take {', '.join(valid_targets(object_type))}")
        if target.startswith(PROPERTY_PREFIX) and name in fields:
            raise CrmsyncError(f"'{target}' is the field '{name}': map column '{column}' "
                               f"to {name}")
    targets: dict[str, str] = {}
    ignored: list[str] = []
    for column in header:
        chosen = explicit.get(column)
        if chosen is None and _normalised(column) in fields:
            chosen = _normalised(column)
        if chosen is None:
            ignored.append(column)
        else:
            targets[column] = chosen
    doubled = sorted({t for t in targets.values() if list(targets.values()).count(t) > 1})
    if doubled:
        raise CrmsyncError("several columns map to " + ", ".join(
            f"{t} ({', '.join(c for c, tt in targets.items() if tt == t)})" for t in doubled))
    if not targets:
        raise CrmsyncError(
            f"no column of the file maps to a field of {object_type}: its columns are "
            f"{', '.join(repr(c) for c in header)}",
            hint=f'Map them with --map "COLUMN=TARGET"; targets: '
                 f"{', '.join(valid_targets(object_type))}")
    return ColumnMapping(targets, tuple(ignored))


# --- typed parsing ------------------------------------------------------------------------------
# A cell that does not parse is passed on as text: the change API then refuses it with the
# field's own message, quoting what the file said.

def _amount(text: str) -> Any:
    cleaned = re.sub(r"[\s\u00a0']", "", text)
    if "," in cleaned and "." in cleaned:  # the later separator is the decimal one
        cleaned = (cleaned.replace(".", "").replace(",", ".")
                   if cleaned.rfind(",") > cleaned.rfind(".") else cleaned.replace(",", ""))
    elif "," in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        return float(decimal.Decimal(cleaned))
    except (decimal.InvalidOperation, ValueError):
        return text


def _date(text: str) -> Any:
    for form in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text[:10] if form == "%Y-%m-%d" else text, form).date()
        except ValueError:
            continue
    return text


def _consent(text: str) -> Any:
    value = consent_value(text)
    return text if value is None else value


_PARSERS: dict[str, Callable[[str], Any]] = {"amount": _amount, "close_date": _date,
                                             "consent": _consent}


def _row_change(record: Mapping[str | None, Any], mapping: ColumnMapping, label: str
                ) -> LocalRow:
    fields: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for column, target in mapping.targets.items():
        cell = record.get(column)
        if cell is None or not cell.strip():
            continue  # an empty cell leaves the field as it is
        text = cell.strip()
        if target.startswith(PROPERTY_PREFIX):
            properties[target.removeprefix(PROPERTY_PREFIX)] = text
        else:
            fields[target] = _PARSERS.get(target, str)(text)
    return LocalRow(fields, properties, label=label)


# --- the file -----------------------------------------------------------------------------------

def _open(path: Path) -> TextIO:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except IsADirectoryError:
        raise CrmsyncError(f"{path} is a folder, not a CSV file") from None
    except OSError as exc:
        raise CrmsyncError(f"cannot read {path}: {exc.strerror}") from None
    return handle


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class _Rejects:
    """The rejects file, opened at the first rejected row: original columns plus `_error`."""

    def __init__(self, path: Path | None, header: Sequence[str], delimiter: str) -> None:
        self.path = path
        self.header = [*header, "_error"]
        self.delimiter = delimiter
        self._handle: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None

    def write(self, record: Mapping[str | None, Any], error: str) -> None:
        if self.path is None:
            return
        if self._writer is None:
            try:
                self._handle = self.path.open("w", encoding="utf-8", newline="")
            except OSError as exc:
                raise CrmsyncError(f"cannot write the rejects file {self.path}: "
                                   f"{exc.strerror}") from None
            self._writer = csv.DictWriter(self._handle, self.header, delimiter=self.delimiter,
                                          extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow({**{k: v for k, v in record.items() if k is not None},
                               "_error": error})

    @property
    def written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _rows(reader: csv.DictReader[str], path: Path) -> Iterator[tuple[int, dict[str | None, Any]]]:
    number = 1
    try:
        for number, record in enumerate(reader, start=2):
            yield number, record
    except UnicodeDecodeError:
        raise CrmsyncError(f"{path} is not UTF-8 text (after row {number})",
                           hint="Save it as CSV UTF-8 from the spreadsheet") from None
    except csv.Error as exc:
        raise CrmsyncError(f"{path} is not a readable CSV file after row {number}: "
                           f"{exc}") from None


def import_csv(path: Path, *, store: Store, client: str, object_type: str,
               mapping: Mapping[str, str] | None = None, dry_run: bool = True,
               rejects_path: Path | None = None, batch_size: int = 500,
               preview_rows: int = 10) -> ImportResult:
    """Import (or, `dry_run`, preview) a CSV file of `object_type` records for `client`.

    Rejected rows go to `rejects_path` (default when writing: `NAME.rejects.csv` beside the
    file; a dry run writes one only when asked). Raises `CrmsyncError` for a file that
    cannot be read or a mapping that does not fit it.
    """
    if object_type not in WRITABLE_FIELDS:
        raise CrmsyncError(f"unknown object type '{object_type}': use one of "
                           f"{', '.join(WRITABLE_FIELDS)}")
    if rejects_path is None and not dry_run:
        rejects_path = path.with_name(f"{path.stem}.rejects.csv")
    local = store.local(client)
    with _open(path) as handle:
        try:
            first = handle.readline()
        except UnicodeDecodeError:
            raise CrmsyncError(f"{path} is not UTF-8 text",
                               hint="Save it as CSV UTF-8 from the spreadsheet") from None
        handle.seek(0)
        delimiter = _delimiter(first)
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = [h.strip() for h in reader.fieldnames or ()]
        if not any(header):
            raise CrmsyncError(f"{path} is empty: the first row must name the columns")
        reader.fieldnames = header
        doubled = sorted({h for h in header if header.count(h) > 1})
        if doubled:
            raise CrmsyncError(f"{path} has several columns named "
                               f"{', '.join(repr(h) for h in doubled)}")
        columns = resolve_mapping(header, object_type, mapping or {})
        result = ImportResult(path, client, object_type, dry_run, columns, delimiter)
        rejects = _Rejects(rejects_path, header, delimiter)
        try:
            batch: list[tuple[int, dict[str | None, Any], LocalRow]] = []
            for number, record in _rows(reader, path):
                batch.append((number, record, _row_change(record, columns, f"row {number}")))
                if len(batch) >= batch_size:
                    _flush(local, object_type, batch, result=result, rejects=rejects,
                           preview_rows=preview_rows)
                    batch = []
            _flush(local, object_type, batch, result=result, rejects=rejects,
                   preview_rows=preview_rows)
        finally:
            rejects.close()
        result.rejects_path = rejects_path if rejects.written else None
    return result


def _flush(local: Any, object_type: str, batch: list[tuple[int, dict[str | None, Any], LocalRow]],
           *, result: ImportResult, rejects: _Rejects, preview_rows: int) -> None:
    if not batch:
        return
    outcome: BatchResult = local.apply_rows(object_type, [change for _, _, change in batch],
                                            dry_run=result.dry_run)
    first_row = batch[0][0]
    for (number, record, _), row in zip(batch, outcome.outcomes, strict=True):
        result.rows += 1
        if row.status == "rejected":
            result.rejected += 1
            error = "; ".join(_describe(e, result.mapping) for e in row.errors)
            rejects.write(record, error)
            if len(result.rejects) < _SHOWN_REJECTS:
                result.rejects.append(RejectedRow(number, error))
            status = f"rejected: {error}"
        elif row.status == "new":
            result.new += 1
            status = "new"
        else:
            if row.status == "updated":
                result.updated += 1
            else:
                result.unchanged += 1
            status = (f"{'updates' if row.status == 'updated' else 'unchanged'} "
                      + (f"#{row.record_id}" if row.record_id is not None
                         else f"row {first_row + (row.same_as or 0)}"))
        if len(result.preview) < preview_rows:
            result.preview.append(PreviewRow(number, status, dict(row.values)))


def _describe(error: RecordError, mapping: ColumnMapping) -> str:
    column = mapping.column_for(error.field) if error.field else None
    where = (f"{column} ({error.field})" if column and column != error.field
             else error.field)
    return f"{where}: {error.reason}" if where else error.reason


# --- the client ---------------------------------------------------------------------------------

def client_blueprint(client: str, settings: Settings) -> Blueprint:
    """The blueprint of `client` in the configs folder; an error naming the known clients."""
    from crmsync.provision import load_blueprints

    entries = load_blueprints([], settings)
    for entry in entries:
        if entry.blueprint is not None and entry.blueprint.client == client:
            return entry.blueprint
    known = sorted(e.blueprint.client for e in entries if e.blueprint is not None)
    broken = [str(e.path) for e in entries if e.blueprint is None]
    hint = (f"Known clients: {', '.join(known)}" if known else
            f"Create one with `crmsync init {client} --crm hubspot`")
    if broken:
        hint += f". Some blueprints could not be read ({', '.join(broken)}): run crmsync validate"
    raise CrmsyncError(f"no blueprint for client '{client}' in {settings.configs_dir} "
                       "(CRMSYNC_CONFIGS_DIR): records are imported only for a known client",
                       hint=hint)
