"""`crmsync import` and `crmsync.importer`: CSV files into the store, previewed, then written."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from crmsync.cli import cli
from crmsync.errors import CrmsyncError
from crmsync.importer import import_csv, parse_map_options, read_map_file
from crmsync.store import open_store

if TYPE_CHECKING:
    from crmsync.store import Store

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def read_rejects(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


CONTACTS = """\
E-Mail,First name,Last name,Opt-in,Source
ada@example.com,Ada,Lovelace,yes,fair
broken-address,Bob,,no,web
,Nobody,,,
ADA@EXAMPLE.COM ,,Byron,,
carl@example.com,Carl,,maybe,web
"""
MAP = {"E-Mail": "email", "Opt-in": "consent", "Source": "properties.lead_source"}


# --- the library --------------------------------------------------------------------------------

def test_dry_run_previews_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    existing = store.local("acme").create("contacts", {"email": "carl@example.com"})
    path = write(tmp_path / "leads.csv", CONTACTS)
    result = import_csv(path, store=store, client="acme", object_type="contacts", mapping=MAP)
    assert [(p.row, p.status) for p in result.preview] == [
        (2, "new"),
        (3, "rejected: E-Mail (email): 'broken-address' is not an email address"),
        (4, "new"),
        (5, "updates row 2"),
        (6, "rejected: Opt-in (consent): must be true or false, not 'maybe'"),
    ]
    assert result.preview[0].values == {
        "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "consent": True, "properties.lead_source": "fair"}
    assert (result.rows, result.new, result.updated, result.rejected) == (5, 2, 1, 2)
    assert result.exit_code == 3
    assert result.mapping.ignored == ()
    assert result.rejects_path is None  # a dry run writes no rejects file unless asked
    assert not (tmp_path / "leads.rejects.csv").exists()
    assert [q["record_id"] for q in store.local("acme").pending()] == [existing]
    assert [r["id"] for r in store.records("acme").live("contacts")] == [existing]


def test_import_writes_good_rows_queues_them_and_rejects_the_rest(store: Store,
                                                                   tmp_path: Path) -> None:
    existing = store.local("acme").create("contacts", {"email": "carl@example.com"})
    path = write(tmp_path / "leads.csv", CONTACTS.replace("maybe", "ja"))
    result = import_csv(path, store=store, client="acme", object_type="contacts", mapping=MAP,
                        dry_run=False)
    assert (result.new, result.updated, result.rejected) == (2, 2, 1)
    assert result.preview[4].status == f"updates #{existing}"
    local = store.local("acme")
    ada = local.find_contact("ada@example.com")
    assert ada is not None
    assert (ada["first_name"], ada["last_name"], ada["consent"], ada["properties"]) == (
        "Ada", "Byron", True, {"lead_source": "fair"})
    carl = local.get("contacts", existing)
    assert carl is not None
    assert (carl["first_name"], carl["consent"]) == ("Carl", True)
    queued = {r["record_id"]: r["fields"] for r in local.pending()}
    assert queued[ada["id"]] == ["consent", "email", "first_name", "last_name", "lead_source"]
    assert queued[existing] == ["consent", "email", "first_name", "lead_source"]
    assert result.rejects_path == tmp_path / "leads.rejects.csv"
    assert read_rejects(result.rejects_path) == [{
        "E-Mail": "broken-address", "First name": "Bob", "Last name": "", "Opt-in": "no",
        "Source": "web", "_error": "E-Mail (email): 'broken-address' is not an email address"}]
    assert [(r.row, r.error) for r in result.rejects] == [
        (3, "E-Mail (email): 'broken-address' is not an email address")]


def test_row_numbers_across_batches_and_every_error_of_a_row(store: Store,
                                                             tmp_path: Path) -> None:
    lines = ["name,amount,currency,status,close_date"]
    lines += [f"Deal {i},{i},EUR,open,2026-05-01" for i in range(1, 8)]
    lines[6] = "Deal 6,lots,EURO,open,someday"
    path = write(tmp_path / "deals.csv", "\n".join(lines) + "\n")
    rejects = tmp_path / "out" / "bad.csv"
    rejects.parent.mkdir()
    result = import_csv(path, store=store, client="acme", object_type="deals",
                        dry_run=False, batch_size=3, rejects_path=rejects)
    assert (result.new, result.rejected) == (6, 1)
    assert [r.row for r in result.rejects] == [7]
    assert read_rejects(rejects)[0]["_error"] == (
        "amount: must be a number, not 'lots'; currency: must be a 3-letter currency code "
        "such as EUR, not 'EURO'; close_date: must be a date (YYYY-MM-DD), not 'someday'")
    assert sorted(d["name"] for d in store.records("acme").live("deals")) == [
        f"Deal {i}" for i in (1, 2, 3, 4, 5, 7)]


def test_bom_semicolons_decimal_commas_and_dotted_dates(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "deals.csv",
                 "Name;Amount;Close date;Stage\n"
                 "Retainer;1.234,50;31.05.2026;proposal_sent\n"
                 '"Audit; phase 2";99,9;2026-06-01;Proposal Sent\n', bom=True)
    result = import_csv(path, store=store, client="acme", object_type="deals",
                        mapping={"Stage": "stage_key"}, dry_run=False)
    assert result.delimiter == ";"
    assert list(result.mapping.targets) == ["Name", "Amount", "Close date", "Stage"]
    assert result.preview[0].values == {"name": "Retainer", "amount": 1234.5,
                                        "close_date": dt.date(2026, 5, 31),
                                        "stage_key": "proposal_sent"}
    assert result.rejects[0].row == 3
    assert result.rejects[0].error.startswith("Stage (stage_key): 'Proposal Sent' is not a "
                                              "blueprint key")
    assert read_rejects(tmp_path / "deals.rejects.csv", ";")[0]["Name"] == "Audit; phase 2"


def test_tab_separated_companies_match_by_domain(store: Store, tmp_path: Path) -> None:
    firm = store.local("acme").create("companies", {"domain": "example.com"})
    path = write(tmp_path / "firms.tsv", "name\tdomain\tnotes\n"
                                         "Example\thttps://www.example.com/\tkey account\n"
                                         "Other\tother.example\t\n")
    result = import_csv(path, store=store, client="acme", object_type="companies")
    assert result.delimiter == "\t"
    assert result.mapping.ignored == ("notes",)
    assert [p.status for p in result.preview] == [f"updates #{firm}", "new"]
    assert result.exit_code == 0


@pytest.mark.parametrize(("text", "mapping", "message"), [
    ("email\na@b.co\n", {"email": "mail"},
     "unknown mapping target 'mail' for column 'email': contacts take email, first_name, "
     "last_name, phone, consent, owner_id, properties.<name>"),
    ("email\na@b.co\n", {"E-Mail": "email"}, "the file has no column 'E-Mail'"),
    ("Mail,Name\na@b.co,x\n", {}, "no column of the file maps to a field of contacts"),
    ("email,Mail\na@b.co,b@c.de\n", {"Mail": "email"}, "several columns map to email"),
    ("email,email\na@b.co,b@c.de\n", {}, "several columns named 'email'"),
    ("email\na@b.co\n", {"email": "properties.phone"}, "'properties.phone' is the field"),
    ("", {}, "is empty"),
])
def test_mapping_and_file_errors(store: Store, tmp_path: Path, text: str,
                                 mapping: dict[str, str], message: str) -> None:
    path = write(tmp_path / "in.csv", text)
    with pytest.raises(CrmsyncError) as caught:
        import_csv(path, store=store, client="acme", object_type="contacts", mapping=mapping)
    assert message in str(caught.value)


def test_unreadable_files(store: Store, tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,first_name\nmüller@example.com,Jörg\n".encode("latin-1"))
    with pytest.raises(CrmsyncError, match="is not UTF-8 text"):
        import_csv(latin, store=store, client="acme", object_type="contacts")
    with pytest.raises(CrmsyncError, match="cannot read"):
        import_csv(tmp_path / "missing.csv", store=store, client="acme",
                   object_type="contacts")
    with pytest.raises(CrmsyncError, match="is a folder"):
        import_csv(tmp_path, store=store, client="acme", object_type="contacts")


def test_map_options_and_files(tmp_path: Path) -> None:
    assert parse_map_options(["E-Mail = email", "A=b=c"]) == {"E-Mail": "email", "A": "b=c"}
    with pytest.raises(CrmsyncError, match="is not COLUMN=TARGET"):
        parse_map_options(["email"])
    plain = write(tmp_path / "m.yaml", '"E-Mail": email\nSource: properties.source\n')
    nested = write(tmp_path / "n.yaml", "columns:\n  E-Mail: email\n")
    assert read_map_file(plain) == {"E-Mail": "email", "Source": "properties.source"}
    assert read_map_file(nested) == {"E-Mail": "email"}
    with pytest.raises(CrmsyncError, match="must map column names to targets"):
        read_map_file(write(tmp_path / "bad.yaml", "- email\n"))


_MEASURE = """
import sys, tracemalloc
from pathlib import Path
from crmsync.importer import import_csv
from crmsync.store import open_store
with open_store(sys.argv[2]) as store:
    tracemalloc.start()
    result = import_csv(Path(sys.argv[1]), store=store, client="acme", object_type="contacts",
                        dry_run=False)
    print(tracemalloc.get_traced_memory()[1], result.rows, result.new, result.rejected)
"""


def test_fifty_thousand_rows_import_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "Last name"])
        writer.writerows([f"person{i}@example.com", f"Last{i}"] for i in range(50_000))
    url = f"sqlite:///{tmp_path / 'big.db'}"
    # In a fresh interpreter: tracemalloc counts every thread's allocations, and this
    # process runs others (the session's sandbox server) that would blur the peak.
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path), url], check=True,
                          capture_output=True, text=True, timeout=600)
    peak, rows, new, rejected = (int(v) for v in done.stdout.split())
    assert (rows, new, rejected) == (50_000, 50_000, 0)
    with open_store(url) as store:
        assert len(store.local("acme").pending()) == 50_000
    # Holding the 50,000 rows at once (a dict and a LocalRow each) would take tens of MB;
    # one batch of 500 at a time peaks at ~2.5 MB, for 5,000 rows as for 50,000.
    assert peak < 6_000_000, peak


# --- the command ----------------------------------------------------------------------------------

@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CRMSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "acme.yaml", tmp_path / "configs" / "acme.yaml")
    monkeypatch.setenv("CRMSYNC_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("CRMSYNC_CONFIGS_DIR", str(tmp_path / "configs"))
    write(tmp_path / "leads.csv", CONTACTS)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_command_previews_by_default(workdir: Path) -> None:
    result = run("import", "leads.csv", "--client", "acme", "--object", "contacts",
                 "--map", "E-Mail=email", "--map", "Opt-in=consent")
    assert result.exit_code == 3, result.output
    assert "contacts from leads.csv (dry run)" in result.output
    assert "ada@example.com" in result.output
    assert "updates row 2" in result.output
    assert "ignored columns (map them with --map COLUMN=TARGET): Source" in result.output
    assert "row 3: E-Mail (email): 'broken-address' is not an email address" in result.output
    assert ("dry run: 2 new, 1 updated, 0 unchanged, 2 rejected of 5 rows; nothing written"
            in result.output)
    with open_store(f"sqlite:///{workdir / 'store.db'}") as store:
        assert store.local("acme").pending() == []


def test_command_writes_with_yes(workdir: Path) -> None:
    write(workdir / "map.yaml", '"E-Mail": email\nOpt-in: consent\n')
    result = run("import", "leads.csv", "--client", "acme", "--object", "contacts",
                 "--map-file", "map.yaml", "--map", "Source=properties.lead_source", "--yes",
                 "--rejects", "rejected.csv")
    assert result.exit_code == 3, result.output
    assert "imported acme contacts: 2 new, 1 updated" in result.output
    assert "rejected rows written to rejected.csv" in result.output
    assert [r["E-Mail"] for r in read_rejects(workdir / "rejected.csv")] == [
        "broken-address", "carl@example.com"]
    with open_store(f"sqlite:///{workdir / 'store.db'}") as store:
        ada = store.local("acme").find_contact("ada@example.com")
        assert ada is not None
        assert ada["properties"] == {"lead_source": "fair"}
    good = write(workdir / "good.csv", "email\nzoe@example.com\n")
    again = run("import", str(good), "--client", "acme", "--object", "contacts", "--yes")
    assert again.exit_code == 0, again.output
    assert "1 new, 0 updated, 0 unchanged, 0 rejected of 1 rows" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--client", "nobody"], "no blueprint for client 'nobody'"),
    (["--client", "acme", "--map", "E-Mail=mail"], "unknown mapping target 'mail'"),
    (["--client", "acme", "--map-file", "missing.yaml"], "cannot read the mapping file"),
])
def test_command_errors_exit_1(workdir: Path, args: list[str], message: str) -> None:
    result = run("import", "leads.csv", "--object", "contacts", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
