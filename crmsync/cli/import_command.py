"""`crmsync import`: a thin command over `crmsync.importer.import_csv`.

Exit codes: 0 every row is good, 3 some rows were rejected (listed, and written to the
rejects file), 1 an error (unreadable file, a mapping that does not fit, unknown client).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crmsync.cli import App, pass_app
from crmsync.cli.failures import exit_with

if TYPE_CHECKING:
    from crmsync.importer import ImportResult


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--client", required=True, help="The client (its blueprint must exist).")
@click.option("--object", "object_type", required=True,
              type=click.Choice(["contacts", "companies", "deals"]),
              help="What each row of the file is.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=TARGET",
              help="Map a column onto a field (email, amount, …) or properties.NAME; repeat.")
@click.option("--map-file", type=click.Path(path_type=Path), metavar="FILE.yaml",
              help="A YAML file of `COLUMN: TARGET` lines (--map entries win).")
@click.option("--yes", is_flag=True, help="Write the good rows (without it: a dry run).")
@click.option("--rejects", "rejects_path", type=click.Path(path_type=Path), metavar="FILE.csv",
              help="Where rejected rows go (default with --yes: NAME.rejects.csv beside FILE).")
@click.option("--preview", "preview_rows", type=click.IntRange(0), default=10,
              show_default=True, help="Rows shown in the preview table.")
@pass_app
def import_command(app: App, *, file: Path, client: str, object_type: str,
                   maps: tuple[str, ...], map_file: Path | None, yes: bool,
                   rejects_path: Path | None, preview_rows: int) -> None:
    """Import contacts, companies or deals from a CSV file into the local store.

    A dry run by default: shows the first rows as they would be stored (new, or which
    record each updates: contacts match by email, companies by domain) and the counts.
    With --yes the good rows are written and queued for the next `crmsync sync`; rejected
    rows are listed with their row number and field, and written to a rejects file (the
    original columns plus `_error`). Columns named like a field map themselves; others
    need --map. UTF-8 (with or without BOM), separated by `,`, `;` or tabs.

    \b
    Examples:
      crmsync import leads.csv --client acme --object contacts --map "E-Mail=email"
      crmsync import leads.csv --client acme --object contacts \\
          --map "Source=properties.lead_source" --yes

    \b
    Exit codes:
      0  every row is good (imported with --yes)
      1  an error: unreadable file, a mapping that does not fit, unknown client
      3  some rows were rejected (the good ones went in with --yes)
    """
    from crmsync.importer import client_blueprint, import_csv, parse_map_options, read_map_file
    from crmsync.session import Session

    client_blueprint(client, app.settings)
    mapping = {**(read_map_file(map_file) if map_file else {}), **parse_map_options(maps)}
    with Session(app.settings) as session:
        result = import_csv(file, store=session.store, client=client, object_type=object_type,
                            mapping=mapping, dry_run=not yes, rejects_path=rejects_path,
                            preview_rows=preview_rows)
    _render(result)
    exit_with(result.exit_code)


def _render(result: ImportResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    if result.preview:
        targets = list(result.mapping.targets.values())
        table = Table(title=f"{result.object_type} from {result.path.name}"
                            + (" (dry run)" if result.dry_run else ""))
        table.add_column("row", justify="right")
        table.add_column("status")
        for target in targets:
            table.add_column(target)
        for row in result.preview:
            table.add_row(str(row.row), row.status, *(_cell(row.values.get(t)) for t in targets))
        console.print(table)
    if result.mapping.ignored:
        click.echo("ignored columns (map them with --map COLUMN=TARGET): "
                   + ", ".join(result.mapping.ignored))
    for rejected in result.rejects:
        click.echo(f"row {rejected.row}: {rejected.error}")
    if result.rejected > len(result.rejects):
        click.echo(f"… and {result.rejected - len(result.rejects)} more rejected rows")
    counts = (f"{result.new} new, {result.updated} updated, {result.unchanged} unchanged, "
              f"{result.rejected} rejected of {result.rows} rows")
    if result.dry_run:
        click.echo(f"dry run: {counts}; nothing written. Run again with --yes to import.")
    else:
        click.echo(f"imported {result.client} {result.object_type}: {counts}; queued for the "
                   "next `crmsync sync`.")
    if result.rejects_path is not None:
        click.echo(f"rejected rows written to {result.rejects_path}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


COMMANDS = [import_command]
