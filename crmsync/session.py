"""A `Session`: the store and one CRM adapter per account, shared by the commands of one run.

Provisioning (`provision.py`) and record sync both work through it, so neither depends on the
other. It also holds what is true of a whole run: which CRM account each token reaches
(asked once per adapter) and whether that is the account a client's ids were recorded in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmsync.errors import AccountConflictError, AccountMismatchError, StoreError

if TYPE_CHECKING:
    from crmsync.adapters.base import CrmAdapter
    from crmsync.names import MonotonicClock, Sleep
    from crmsync.settings import Settings
    from crmsync.store import Store

log = logging.getLogger(__name__)

AdapterFactory = Callable[[str, "str | None"], "CrmAdapter"]  # (crm, token_env) -> adapter


@dataclass(frozen=True)
class AccountKey:
    """One CRM account as this run reaches it: the CRM and the variable its token comes from.

    Two blueprints naming the same variable (or none: the CRM's default variable) share one
    adapter, one connection pool and one rate-limit pacer.
    """

    crm: str
    token_source: str


def default_adapter_factory(
    settings: Settings, *, sleep: Sleep = time.sleep, clock: MonotonicClock = time.monotonic
) -> AdapterFactory:
    """Adapters from the registry, with the blueprint's own token variable if it names one.

    `sleep` and `clock` reach every adapter's retry and pacing policy: the one seam where a
    test (or a notebook) swaps in a fast sleeper without touching the commands.
    """

    def factory(crm: str, token_env: str | None) -> CrmAdapter:
        from crmsync.adapters.registry import create_adapter

        return create_adapter(crm, settings, token_env=token_env, sleep=sleep, clock=clock)

    return factory


class Session:
    """The store and the CRM adapters that commands share, opened on first use and closed
    together (`with Session(settings) as session:`).

    One adapter per CRM account (`AccountKey`): `apply`, sharing its session with the `diff`
    it shows first, opens the store once and connects to each account once, and clients on
    one account share its rate-limit pacing. A `store` passed in is the caller's to close.
    """

    def __init__(self, settings: Settings, *, store: Store | None = None,
                 adapter_factory: AdapterFactory | None = None) -> None:
        self.settings = settings
        self._store = store
        self._own_store = store is None
        self._store_error: StoreError | None = None
        self._factory = adapter_factory or default_adapter_factory(settings)
        self._adapters: dict[AccountKey, CrmAdapter] = {}

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The store, opened on first use; a store that cannot be opened is tried only once."""
        if self._store_error is not None:
            raise self._store_error
        if self._store is None:
            from crmsync.store import open_store

            try:
                self._store = open_store(self.settings.store_url)
            except StoreError as exc:
                self._store_error = exc
                raise
        return self._store

    def account_key(self, crm: str, token_env: str | None) -> AccountKey:
        return AccountKey(crm, self.settings.token_source(crm, token_env))

    def adapter(self, crm: str, token_env: str | None) -> CrmAdapter:
        """The adapter for one CRM account, built on first use."""
        key = self.account_key(crm, token_env)
        if key not in self._adapters:
            self._adapters[key] = self._factory(crm, token_env)
        return self._adapters[key]

    def check_account(self, client: str, crm: str, adapter: CrmAdapter) -> str:
        """The account `adapter` reaches, after making sure the client's ids belong to it.

        Raises `AccountMismatchError` when the store recorded the client's ids in another
        account. Ids recorded before accounts were (store schema 1) are taken as this
        account's; the caller records it at its first write.
        """
        current = adapter.account_id()
        recorded = self.store.accounts(client, crm).recorded()
        if recorded is not None and recorded != current:
            raise AccountMismatchError(client, crm, recorded, current)
        return current

    def check_shared_account(self, client: str, crm: str, account_id: str,
                             pipelines: dict[str, str | None]) -> None:
        """Refuse pipelines that another client of this store manages in the same account.

        `pipelines` maps each of the client's pipeline labels to the remote id it will act
        on (its recorded id, or the id of the live pipeline it would adopt by label); a label
        with no remote id is a new pipeline and conflicts with nobody.
        """
        elsewhere = self.store.accounts(client, crm).managed_elsewhere(account_id)
        conflicts = {label: elsewhere[remote_id] for label, remote_id in pipelines.items()
                     if remote_id is not None and remote_id in elsewhere}
        if conflicts:
            raise AccountConflictError(client, crm, conflicts)

    def close(self) -> None:
        """Close every adapter, and the store if this session opened it."""
        for adapter in self._adapters.values():
            try:
                adapter.close()
            except Exception:
                log.debug("closing %s adapter failed", adapter.crm, exc_info=True)
        if self._own_store and self._store is not None:
            self._store.close()


@contextmanager
def session_for(settings: Settings, session: Session | None) -> Iterator[Session]:
    """The caller's `session` (the caller closes it), else a new one closed at the end."""
    if session is not None:
        yield session
        return
    with Session(settings) as own:
        yield own
