"""Run dlt's verified HubSpot source once against the sandbox, into DuckDB; print one JSON line.

    /work/peer-venv-dlt/bin/python bench/peers/dlt_launch.py SANDBOX_BASE TOKEN WORKDIR \
        SOURCES_DIR EXPECT_JSON

SOURCES_DIR holds `hubspot/` of github.com/dlt-hub/verified-sources (what `dlt init hubspot
duckdb` copies into a project). The pipeline's state and its DuckDB file live in WORKDIR, so
successive runs are one pipeline's successive runs. EXPECT_JSON: `{"changed": [ids], "value":
str, "deleted": [ids]}`, what the bench did before this run. The source reads
`https://api.hubapi.com`, swapped for the sandbox as in airbyte_launch.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from airbyte_launch import point_requests_at

RESOURCES = ("contacts", "companies", "deals")


def main() -> None:
    base, token, workdir, sources_dir, expect_path = sys.argv[1:]
    expect = json.loads(Path(expect_path).read_text(encoding="utf-8"))
    point_requests_at(base)
    sys.path.insert(0, sources_dir)
    import dlt
    from hubspot import hubspot
    from hubspot.settings import ENTITY_PROPERTIES

    # The default contact properties leave out `jobtitle`, the field the bench changes.
    properties = {**ENTITY_PROPERTIES,
                  "contact": [*ENTITY_PROPERTIES["contact"], "jobtitle"]}
    pipeline = dlt.pipeline(pipeline_name="peers_hubspot", pipelines_dir=f"{workdir}/pipelines",
                            destination=dlt.destinations.duckdb(f"{workdir}/peers.duckdb"),
                            dataset_name="crm")
    # soft_delete: also read the archived list and mark those rows `is_deleted`, the
    # source's only way to learn of a deletion.
    source = hubspot(api_key=token, soft_delete=True, properties=properties)
    pipeline.run(source.with_resources(*RESOURCES))
    row_counts = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({"by_type": {r: row_counts.get(r, 0) for r in RESOURCES},
                      **_seen(pipeline, expect)}))


def _seen(pipeline: Any, expect: dict[str, Any]) -> dict[str, int]:
    """How many of the changed (deleted) contacts the destination holds changed (deleted)."""
    with pipeline.sql_client() as client:
        columns = {row[0] for row in client.execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'contacts' "
            "AND table_schema = 'crm'")}
        changed = deleted = 0
        if expect["changed"] and "jobtitle" in columns:
            rows = client.execute_sql("SELECT id FROM contacts WHERE jobtitle = ?",
                                      expect["value"])
            changed = len({str(r[0]) for r in rows} & set(expect["changed"]))
        if expect["deleted"] and "is_deleted" in columns:
            rows = client.execute_sql("SELECT id FROM contacts WHERE is_deleted")
            deleted = len({str(r[0]) for r in rows} & set(expect["deleted"]))
    return {"changed_seen": changed, "deleted_seen": deleted}


if __name__ == "__main__":
    main()
