"""The two extractors the comparison runs, behind one small interface.

`AirbyteExtractor` runs an Airbyte connector's `read` in a fresh process per run, as an Airbyte
sync does, with its saved state; `CrmsyncExtractor` runs crmsync's `pull_client` in this process
into one SQLite file kept across runs. Each run says how many records it emitted and how many of
the records the bench changed or deleted before it the extractor reported.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "airbyte_launch.py"

# The three object types crmsync syncs, by each connector's stream names.
AIRBYTE_STREAMS = {
    "hubspot": {"contacts": "contacts", "companies": "companies", "deals": "deals"},
    "pipedrive": {"contacts": "persons", "companies": "organizations", "deals": "deals"},
}
AIRBYTE_CURSORS = {"hubspot": "updatedAt", "pipedrive": "update_time"}
# Streams the connector can only read whole (no incremental sync mode).
AIRBYTE_FULL_REFRESH_ONLY = {("pipedrive", "organizations")}
# The field `account_edits.change_contacts` sets, as each connector prints it.
AIRBYTE_CHANGED_FIELD = {"hubspot": "properties_jobtitle", "pipedrive": "name"}


@dataclass(frozen=True)
class Expectation:
    """What the bench did before a run: contacts it changed (to `value`) and deleted."""

    changed: frozenset[str] = frozenset()
    value: str = ""
    deleted: frozenset[str] = frozenset()


@dataclass
class RunOutput:
    records: int = 0  # records emitted (Airbyte) or pulled (crmsync), all three types
    by_type: dict[str, int] = field(default_factory=dict)
    distinct_contacts: int | None = None  # Airbyte: contacts emitted once or more
    changed_seen: int = 0  # of Expectation.changed, how many came out with the new value
    deleted_seen: int = 0  # of Expectation.deleted, how many came out marked deleted
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class Extractor(Protocol):
    name: str

    def run(self, expect: Expectation) -> RunOutput: ...

    def close(self) -> None: ...


class AirbyteExtractor:
    """One connector, one account: `read` with the state the previous run left."""

    def __init__(self, crm: str, base: str, token: str, workdir: Path,
                 timeout_s: float = 600.0) -> None:
        self.name = f"airbyte-source-{crm}"
        self.timeout_s = timeout_s
        self.crm, self.base, self.workdir = crm, base, workdir
        self.config = workdir / "config.json"
        self.catalog = workdir / "catalog.json"
        self.state = workdir / "state.json"
        self.config.write_text(json.dumps(_airbyte_config(crm, token)), encoding="utf-8")
        self.catalog.write_text(json.dumps(_airbyte_catalog(crm)), encoding="utf-8")
        self.runs = 0

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, str(LAUNCHER), self.crm, self.base, *args]

    def startup_s(self) -> float:
        """Wall time of `spec`, which makes no call: the price of starting the connector."""
        start = time.perf_counter()
        subprocess.run(self._command("spec"), capture_output=True, check=True)
        return time.perf_counter() - start

    def run(self, expect: Expectation) -> RunOutput:
        self.runs += 1
        out_path = self.workdir / f"read-{self.runs}.jsonl"
        args = ["read", "--config", str(self.config), "--catalog", str(self.catalog)]
        if self.state.exists():
            args += ["--state", str(self.state)]
        start = time.perf_counter()
        env = {**os.environ, "PEERS_LOG_REQUESTS": str(self.workdir / f"read-{self.runs}.calls")}
        timed_out = False
        with out_path.open("wb") as out, (self.workdir / f"read-{self.runs}.err").open(
                "wb") as err:
            try:
                subprocess.run(self._command(*args), stdout=out, stderr=err, check=False,
                               env=env, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:  # killed: counted as what it emitted so far
                timed_out = True
        wall = time.perf_counter() - start
        output, states = self._parse(out_path, expect)
        if timed_out:
            output.errors.insert(0, f"did not finish: killed after {self.timeout_s:.0f} s")
        output.wall_s = wall
        if states:
            previous = (json.loads(self.state.read_text(encoding="utf-8"))
                        if self.state.exists() else [])
            merged = {s["stream"]["stream_descriptor"]["name"]: s for s in previous}
            merged.update(states)
            self.state.write_text(json.dumps(list(merged.values())), encoding="utf-8")
        if not output.errors:
            out_path.unlink()  # tens of MB at 10k records per type; the counts are kept
        return output

    def _parse(self, path: Path, expect: Expectation) -> tuple[RunOutput, dict[str, Any]]:
        names = {stream: kind for kind, stream in AIRBYTE_STREAMS[self.crm].items()}
        changed_field = AIRBYTE_CHANGED_FIELD[self.crm]
        by_type: Counter[str] = Counter()
        changed_seen: set[str] = set()
        deleted_seen: set[str] = set()
        contact_ids: set[str] = set()
        states: dict[str, Any] = {}
        errors: list[str] = []
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run
                    continue
                kind = message.get("type")
                if kind == "RECORD":
                    record = message["record"]
                    object_type = names.get(record["stream"], record["stream"])
                    by_type[object_type] += 1
                    data = record["data"]
                    record_id = str(data.get("id"))
                    if object_type != "contacts":
                        continue
                    contact_ids.add(record_id)
                    if record_id in expect.changed and data.get(changed_field) == expect.value:
                        changed_seen.add(record_id)
                    if record_id in expect.deleted and _marked_deleted(data):
                        deleted_seen.add(record_id)
                elif kind == "STATE" and message["state"].get("type") == "STREAM":
                    stream = message["state"]["stream"]["stream_descriptor"]["name"]
                    states[stream] = message["state"]
                elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
                    errors.append(message["trace"]["error"].get("message", "")[:300])
                elif kind == "LOG" and message["log"]["level"] in ("ERROR", "FATAL"):
                    errors.append(message["log"]["message"][:300])
        output = RunOutput(records=sum(by_type.values()), by_type=dict(by_type),
                           distinct_contacts=len(contact_ids),
                           changed_seen=len(changed_seen), deleted_seen=len(deleted_seen),
                           errors=errors)
        return output, states

    def close(self) -> None:
        pass


def _marked_deleted(data: dict[str, Any]) -> bool:
    """HubSpot prints `archived: true`, Pipedrive v1 `active_flag: false` for a deleted one."""
    return data.get("archived") is True or data.get("active_flag") is False


def _airbyte_config(crm: str, token: str) -> dict[str, Any]:
    if crm == "hubspot":
        return {"credentials": {"credentials_title": "Private App Credentials",
                                "access_token": token}}
    return {"api_token": token, "replication_start_date": "2000-01-01T00:00:00Z"}


def _airbyte_catalog(crm: str) -> dict[str, Any]:
    """The three types, incremental where the connector allows it (append + dedup by id).

    `discover` is not used: the HubSpot connector's discover reads every stream's properties,
    and the sandbox answers 400 for `deal_split` (see README). A record's schema comes from the
    connector's own schema loader either way; the catalog only selects streams and modes.
    """
    streams = []
    cursor = AIRBYTE_CURSORS[crm]
    for stream in AIRBYTE_STREAMS[crm].values():
        full_only = (crm, stream) in AIRBYTE_FULL_REFRESH_ONLY
        modes = ["full_refresh"] if full_only else ["full_refresh", "incremental"]
        streams.append({
            "stream": {"name": stream, "json_schema": {"type": "object", "properties": {}},
                       "supported_sync_modes": modes, "source_defined_cursor": not full_only,
                       **({} if full_only else {"default_cursor_field": [cursor]}),
                       "source_defined_primary_key": [["id"]]},
            "sync_mode": "full_refresh" if full_only else "incremental",
            "cursor_field": [] if full_only else [cursor],
            "destination_sync_mode": "overwrite" if full_only else "append_dedup",
            "primary_key": [["id"]],
        })
    return {"streams": streams}


DLT_PYTHON = Path("/work/peer-venv-dlt/bin/python")
DLT_SOURCES = Path("/work/peer-dlt-sources/sources")


class DltExtractor:
    """dlt's verified HubSpot source, one pipeline (state and DuckDB file in `workdir`) run
    once per run in a fresh process of its own venv (dlt needs pendulum 3, Airbyte's CDK 2)."""

    def __init__(self, crm: str, base: str, token: str, workdir: Path,
                 timeout_s: float = 600.0) -> None:
        if crm != "hubspot":
            raise ValueError("only dlt's HubSpot source is wired here")
        self.name = "dlt"
        self.base, self.token, self.workdir, self.timeout_s = base, token, workdir, timeout_s
        self.runs = 0

    def run(self, expect: Expectation) -> RunOutput:
        self.runs += 1
        expect_path = self.workdir / f"expect-{self.runs}.json"
        expect_path.write_text(json.dumps({"changed": sorted(expect.changed),
                                           "value": expect.value,
                                           "deleted": sorted(expect.deleted)}), encoding="utf-8")
        env = {**os.environ, "PEERS_LOG_REQUESTS": str(self.workdir / f"run-{self.runs}.calls")}
        command = [str(DLT_PYTHON), str(HERE / "dlt_launch.py"), self.base, self.token,
                   str(self.workdir), str(DLT_SOURCES), str(expect_path)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                              timeout=self.timeout_s)
        wall = time.perf_counter() - start
        last = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or not last.startswith("{"):
            return RunOutput(wall_s=wall, errors=[done.stderr.strip()[-300:]])
        result = json.loads(last)
        return RunOutput(records=sum(result["by_type"].values()), by_type=result["by_type"],
                         changed_seen=result["changed_seen"],
                         deleted_seen=result["deleted_seen"], wall_s=wall)

    def close(self) -> None:
        pass


class CrmsyncExtractor:
    """crmsync's pull through its real adapter into one SQLite file, as bench/sync_pull.py."""

    def __init__(self, crm: str, base: str, token: str, workdir: Path,
                 timeout_s: float = 0.0) -> None:
        from crmsync.adapters.registry import create_adapter
        from crmsync.settings import Settings
        from crmsync.store import open_store

        self.name = "crmsync"  # timeout_s: not needed, crmsync's runs end
        self.crm = crm
        store_url = f"sqlite:///{workdir}/crmsync.db"
        settings = Settings(**{f"{crm}_base_url": base, f"{crm}_token": token,
                               "store_url": store_url,
                               "hubspot_search_lag_seconds": 0})  # type: ignore[arg-type]
        self.adapter = create_adapter(crm, settings)
        self.store = open_store(store_url)

    def run(self, expect: Expectation) -> RunOutput:
        from crmsync.sync.engine import REMOVAL_SCAN_INTERVAL, pull_client
        from crmsync.sync.mapping import MappingRules

        # crmsync looks for deletions at most once an hour by default; the bench's deletes
        # run comes seconds after the previous one, so it asks for the scan now.
        interval = dt.timedelta(0) if expect.deleted else REMOVAL_SCAN_INTERVAL
        start = time.perf_counter()
        result = pull_client("peers", self.crm, self.adapter, self.store,  # type: ignore[arg-type]
                             MappingRules(), removal_scan_interval=interval)
        wall = time.perf_counter() - start
        contacts = result.counts["contacts"]
        return RunOutput(
            records=result.total("pulled"),
            by_type={t: c.pulled for t, c in result.counts.items()},
            # the bench changed nothing else, so every updated contact is one it changed
            changed_seen=min(contacts.updated, len(expect.changed)),
            deleted_seen=min(contacts.tombstoned, len(expect.deleted)),
            wall_s=wall)

    def close(self) -> None:
        self.adapter.close()
        self.store.close()
