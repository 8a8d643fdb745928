"""CRM accounts: one emulator per (CRM, token), as the real services have.

A HubSpot private-app token belongs to one portal and a Pipedrive API token to one company,
so an agency's clients each have an account of their own. The sandbox does the same: per CRM
it keeps one account — an `Emulator` built by that CRM's factory — per token, created the
first time the token is served or seeded, so a new account looks exactly like a new real
one. Ids are per account, as in the real CRMs. `Accounts` is the one place that maps
(crm, token) to an account.

Accounts are keyed by the SHA-256 of their token, never by the token itself, so the state
file (`state.py`) and anything else that names an account hold no credential.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from crmsync.sandbox.server import Emulator

    EmulatorFactory = Callable[[], Emulator]

# The token `crmsync sandbox` prints, the demo's default and `POST /_sandbox/seed`'s default.
DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - a fake token, only the sandbox accepts it


@lru_cache(maxsize=1024)  # a handful of tokens make every request
def account_key(token: str) -> str:
    """The key of `token`'s account: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Crm:
    """One emulated CRM: its factory, its prototype and its accounts by key."""

    def __init__(self, factory: EmulatorFactory) -> None:
        self.factory = factory
        # Answers for the CRM before an account is involved (its routes, how a request
        # carries its token, the 401 and error shapes); never serves any account's data.
        self.prototype = factory()
        self.accounts: dict[str, Emulator] = {}

    def account(self, key: str) -> Emulator:
        account = self.accounts.get(key)
        if account is None:
            account = self.accounts[key] = self.factory()
        return account


class Accounts:
    """Every CRM's accounts, by token. Not locked: callers hold the sandbox's lock."""

    def __init__(self, factories: Iterable[EmulatorFactory]) -> None:
        self._crms: dict[str, _Crm] = {}
        for factory in factories:
            crm = _Crm(factory)
            if crm.prototype.crm in self._crms:
                raise ValueError(f"two emulators for {crm.prototype.crm}")
            self._crms[crm.prototype.crm] = crm

    # -- the CRMs ------------------------------------------------------------------------
    @property
    def crms(self) -> list[str]:
        return list(self._crms)

    def prototypes(self) -> Iterator[Emulator]:
        """One emulator per CRM that stands for the CRM as a whole (see `_Crm`)."""
        return (crm.prototype for crm in self._crms.values())

    def prototype_for(self, path: str) -> Emulator | None:
        """The CRM serving `path`, by its path prefixes."""
        for crm in self._crms.values():
            if path.startswith(crm.prototype.path_prefixes):
                return crm.prototype
        return None

    def _crm(self, crm: str) -> _Crm:
        try:
            return self._crms[crm]
        except KeyError:
            raise KeyError(f"no {crm} emulator (known: {', '.join(self._crms)})") from None

    # -- accounts ------------------------------------------------------------------------
    def get(self, crm: str, token: str) -> Emulator:
        """`token`'s account on `crm`, created (fresh) the first time."""
        return self._crm(crm).account(account_key(token))

    def counts(self) -> dict[str, int]:
        """How many accounts each CRM holds."""
        return {name: len(crm.accounts) for name, crm in self._crms.items()}

    def clear(self) -> None:
        """Drop every account: the next request of any token meets a new account."""
        for crm in self._crms.values():
            crm.accounts.clear()

    # -- persistence (see state.py) --------------------------------------------------------
    def dump(self) -> dict[str, dict[str, Any]]:
        """``{crm: {account key: the emulator's dump_state()}}``."""
        return {
            name: {key: account.dump_state() for key, account in crm.accounts.items()}
            for name, crm in self._crms.items()
        }

    def load(self, crm: str, key: str, state: dict[str, Any]) -> None:
        """Replace the account `key` of `crm` with one loaded from `state`."""
        target = self._crm(crm)
        emulator = target.factory()
        emulator.load_state(state)
        target.accounts[key] = emulator
