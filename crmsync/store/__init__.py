"""The local store: SQLAlchemy Core schema and queries; SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from crmsync.store.provisioning import ProvisioningState, StateRow
from crmsync.store.store import Store, describe_url, open_store

__all__ = ["ProvisioningState", "StateRow", "Store", "describe_url", "open_store"]
