"""crmsync: sales pipelines as code for HubSpot and Pipedrive, and a sync to a local store."""

from __future__ import annotations

__version__ = "0.1.0"
