"""Provisioning state: which remote id each blueprint key was applied as, per client and CRM.

Implements `crmsync.plan.state.StateRecorder` structurally: the store imports nothing of the
planner (`KnownIds` lives in the neutral `crmsync.known_ids`). Every write is its own
transaction, so each step of an apply is durable the moment it is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, select

from crmsync.known_ids import KnownIds
from crmsync.store.dialects import upsert
from crmsync.store.schema import provisioning_state as table

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection

    from crmsync.store.store import Store

PIPELINE = "pipeline"
STAGE = "stage"


@dataclass(frozen=True)
class StateRow:
    kind: str
    pipeline_key: str
    key: str
    remote_id: str
    label: str


class ProvisioningState:
    """Read and record the ids of one client's pipelines and stages in one CRM."""

    def __init__(self, store: Store, client: str, crm: str) -> None:
        self.store = store
        self.client = client
        self.crm = crm

    def _mine(self) -> ColumnElement[bool]:
        return and_(table.c.client == self.client, table.c.crm == self.crm)

    def rows(self) -> list[StateRow]:
        """Every recorded id of this client's CRM, pipelines first, by key."""
        query = (
            select(table.c.kind, table.c.pipeline_key, table.c.key, table.c.remote_id,
                   table.c.label)
            .where(self._mine())
            .order_by(table.c.kind, table.c.pipeline_key, table.c.key)
        )
        with self.store.engine.connect() as conn:
            return [StateRow(*row) for row in conn.execute(query)]

    def known_ids(self) -> KnownIds:
        """The recorded ids (and the labels they were recorded with) as `diff` reads them."""
        pipelines: dict[str, str] = {}
        stages: dict[tuple[str, str], str] = {}
        pipeline_labels: dict[str, str] = {}
        stage_labels: dict[tuple[str, str], str] = {}
        for row in self.rows():
            if row.kind == PIPELINE:
                pipelines[row.key] = row.remote_id
                pipeline_labels[row.key] = row.label
            else:
                stages[(row.pipeline_key, row.key)] = row.remote_id
                stage_labels[(row.pipeline_key, row.key)] = row.label
        return KnownIds(pipelines, stages, pipeline_labels, stage_labels)

    def _record(self, conn: Connection, kind: str, *, pipeline_key: str, key: str,
                remote_id: str, label: str) -> None:
        # A remote object has one key: a key renamed in the blueprint takes the id over.
        conn.execute(delete(table).where(
            self._mine(), table.c.kind == kind, table.c.remote_id == remote_id,
            ~and_(table.c.pipeline_key == pipeline_key, table.c.key == key),
        ))
        conn.execute(upsert(conn, table, {
            "client": self.client, "crm": self.crm, "kind": kind,
            "pipeline_key": pipeline_key, "key": key, "remote_id": remote_id,
            "label": label, "updated_at": self.store.clock(),
        }, ["client", "crm", "kind", "pipeline_key", "key"]))

    def record_pipeline(self, key: str, remote_id: str, label: str) -> None:
        """Record the id a pipeline key was applied as."""
        self.record_many([(key, remote_id, label)], [])

    def record_stage(self, pipeline_key: str, key: str, remote_id: str, label: str) -> None:
        """Record the id a stage key was applied as."""
        self.record_many([], [(pipeline_key, key, remote_id, label)])

    def record_many(self, pipelines: list[tuple[str, str, str]],
                    stages: list[tuple[str, str, str, str]]) -> None:
        """Record several ids in one transaction: (key, id, label) and (pkey, key, id, label)."""
        with self.store.engine.begin() as conn:
            for key, remote_id, label in pipelines:
                self._record(conn, PIPELINE, pipeline_key=key, key=key, remote_id=remote_id,
                             label=label)
            for pipeline_key, key, remote_id, label in stages:
                self._record(conn, STAGE, pipeline_key=pipeline_key, key=key,
                             remote_id=remote_id, label=label)

    def forget_pipeline(self, key: str) -> None:
        """Drop a pipeline's id and the ids of every stage recorded under it."""
        with self.store.engine.begin() as conn:
            conn.execute(delete(table).where(self._mine(), table.c.pipeline_key == key))

    def forget_stage(self, pipeline_key: str, key: str) -> None:
        """Drop one stage's id."""
        with self.store.engine.begin() as conn:
            conn.execute(delete(table).where(
                self._mine(), table.c.kind == STAGE, table.c.pipeline_key == pipeline_key,
                table.c.key == key,
            ))
