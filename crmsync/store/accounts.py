"""Which CRM account one client's recorded ids belong to (HubSpot portal, Pipedrive company).

Remote ids mean something only in the account they came from: Pipedrive numbers pipelines
per company from 1, so the same ids exist in every account. The account is recorded at a
client's first apply or export; later runs compare it with the account their token reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, select

from crmsync.store.dialects import upsert
from crmsync.store.schema import crm_accounts, provisioning_state

if TYPE_CHECKING:
    from crmsync.store.store import Store

_PIPELINE = "pipeline"  # provisioning_state.kind of a pipeline row


class AccountRecord:
    """The recorded account of one client's CRM, and the other clients sharing it."""

    def __init__(self, store: Store, client: str, crm: str) -> None:
        self.store = store
        self.client = client
        self.crm = crm

    def recorded(self) -> str | None:
        """The account id the client's ids belong to; None before the first apply or export."""
        query = select(crm_accounts.c.account_id).where(
            crm_accounts.c.client == self.client, crm_accounts.c.crm == self.crm)
        with self.store.engine.connect() as conn:
            return conn.scalar(query)

    def record(self, account_id: str) -> None:
        """Record (or replace) the account the client's ids belong to."""
        with self.store.engine.begin() as conn:
            conn.execute(upsert(conn, crm_accounts, {
                "client": self.client, "crm": self.crm, "account_id": account_id,
                "recorded_at": self.store.clock(),
            }, ["client", "crm"]))

    def has_ids(self) -> bool:
        """Whether any pipeline or stage id is recorded for the client's CRM."""
        query = select(func.count()).select_from(provisioning_state).where(
            provisioning_state.c.client == self.client, provisioning_state.c.crm == self.crm)
        with self.store.engine.connect() as conn:
            return bool(conn.scalar(query))

    def forget(self) -> int:
        """Drop the recorded account and every recorded id; returns how many ids were dropped.

        The client's blueprint keys then match the CRM's pipelines by label, as for a new
        client, and the next apply or export records the account its token reaches.
        """
        with self.store.engine.begin() as conn:
            dropped = conn.execute(delete(provisioning_state).where(
                provisioning_state.c.client == self.client,
                provisioning_state.c.crm == self.crm)).rowcount
            conn.execute(delete(crm_accounts).where(
                crm_accounts.c.client == self.client, crm_accounts.c.crm == self.crm))
        return int(dropped or 0)

    def managed_elsewhere(self, account_id: str) -> dict[str, str]:
        """Pipeline ids that other clients of this store manage in the same account:
        remote pipeline id -> that client."""
        query = (
            select(provisioning_state.c.remote_id, provisioning_state.c.client)
            .join(crm_accounts, and_(crm_accounts.c.client == provisioning_state.c.client,
                                     crm_accounts.c.crm == provisioning_state.c.crm))
            .where(crm_accounts.c.crm == self.crm, crm_accounts.c.account_id == account_id,
                   crm_accounts.c.client != self.client,
                   provisioning_state.c.kind == _PIPELINE)
            .order_by(provisioning_state.c.client)
        )
        with self.store.engine.connect() as conn:
            return {str(row.remote_id): str(row.client) for row in conn.execute(query)}
