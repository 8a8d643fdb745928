"""`Session`: one adapter per CRM account, and the account checks every command makes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crmsync.errors import AccountConflictError, AccountMismatchError
from crmsync.session import AccountKey, Session
from crmsync.settings import Settings
from crmsync.store import open_store
from tests.plan.plan_fakes import FakeCrm

if TYPE_CHECKING:
    from pathlib import Path

    from crmsync.adapters.base import CrmAdapter


def _session(tmp_path: Path, built: list[tuple[str, str | None]]) -> Session:
    def factory(crm: str, token_env: str | None) -> CrmAdapter:
        built.append((crm, token_env))
        return FakeCrm(crm)  # type: ignore[return-value]

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    return Session(Settings(store_url="sqlite://"), store=store, adapter_factory=factory)


def test_one_adapter_per_account_whatever_names_its_token_variable(tmp_path: Path) -> None:
    built: list[tuple[str, str | None]] = []
    with _session(tmp_path, built) as session:
        default = session.adapter("hubspot", None)
        assert session.adapter("hubspot", "CRMSYNC_HUBSPOT_TOKEN") is default
        assert session.adapter("hubspot", "ACME_TOKEN") is not default
        assert session.adapter("pipedrive", None) is not default
        assert session.account_key("hubspot", None) == AccountKey("hubspot",
                                                                  "CRMSYNC_HUBSPOT_TOKEN")
    assert built == [("hubspot", None), ("hubspot", "ACME_TOKEN"), ("pipedrive", None)]


def test_ids_recorded_in_another_account_are_refused(tmp_path: Path) -> None:
    with _session(tmp_path, []) as session:
        adapter = session.adapter("hubspot", None)
        assert session.check_account("acme", "hubspot", adapter) == "fake-hubspot-account"
        session.store.accounts("acme", "hubspot").record("another-portal")
        with pytest.raises(AccountMismatchError, match="forget acme --crm hubspot") as caught:
            session.check_account("acme", "hubspot", adapter)
        assert (caught.value.recorded, caught.value.current) == (
            "another-portal", "fake-hubspot-account")
        session.store.provisioning("acme", "hubspot").record_pipeline("sales", "7", "Sales")
        assert session.store.accounts("acme", "hubspot").forget() == 1
        assert session.check_account("acme", "hubspot", adapter) == "fake-hubspot-account"


def test_a_pipeline_another_client_manages_in_the_account_is_refused(tmp_path: Path) -> None:
    with _session(tmp_path, []) as session:
        session.store.accounts("acme", "hubspot").record("portal-1")
        session.store.provisioning("acme", "hubspot").record_pipeline("sales", "7", "Sales")
        session.store.accounts("elsewhere", "hubspot").record("portal-2")
        session.store.provisioning("elsewhere", "hubspot").record_pipeline("x", "8", "X")
        # Its own new pipeline, or an id in another portal: nobody else's.
        session.check_shared_account("rival", "hubspot", "portal-1",
                                     {"Rival": None, "X": "8"})
        with pytest.raises(AccountConflictError, match="'Sales' is managed by client acme"):
            session.check_shared_account("rival", "hubspot", "portal-1", {"Sales": "7"})
        session.check_shared_account("acme", "hubspot", "portal-1", {"Sales": "7"})  # its own
