"""One small hierarchy of errors; the CLI alone turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class CrmsyncError(Exception):
    """Base of every error crmsync reports to a user (never with a traceback unless --debug).

    The message says what is wrong; `hint`, when set, says what to do about it. `str()` gives
    both as one paragraph, which is all the CLI prints.
    """

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        """What is wrong, without the hint."""
        return super().__str__()

    def __str__(self) -> str:
        return join_sentences(self.message, self.hint)


def join_sentences(first: str, second: str | None) -> str:
    """`first. Second` as one paragraph (no doubled full stop)."""
    if not second:
        return first
    if not first:
        return second
    return f"{first}{'' if first.endswith(('.', '!', '?')) else '.'} {second}"


@dataclass(frozen=True)
class Finding:
    """One problem found in a config file, pointing at the line that caused it."""

    path: str
    line: int | None
    column: int | None
    field: str
    message: str
    severity: str = "error"  # error | warning | info
    rule: str | None = None
    hint: str | None = None

    def location(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = f"{self.location()} {self.field}: {self.message}" if self.field else (
            f"{self.location()}: {self.message}"
        )
        if self.rule:
            text += f" [{self.rule}]"
        return text


class ConfigError(CrmsyncError):
    """A config file (blueprint) is unreadable or invalid; carries every finding at once."""

    def __init__(self, findings: list[Finding] | None = None, message: str | None = None, *,
                 hint: str | None = None) -> None:
        self.findings = list(findings or [])
        text = message or "\n".join(str(f) for f in self.findings) or "invalid configuration"
        super().__init__(text, hint=hint)


class SettingsError(CrmsyncError):
    """Runtime settings (environment, .env) are missing or invalid."""


class UnknownAdapterError(CrmsyncError):
    """A CRM name that no adapter is registered for."""


class RemoteError(CrmsyncError):
    """The CRM answered with an error (or did not answer)."""

    def __init__(self, crm: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None, hint: str | None = None) -> None:
        self.crm = crm
        self.status = status
        self.retry_after = retry_after
        prefix = f"{crm} answered {status}" if status else f"{crm} request failed"
        super().__init__(f"{prefix}: {message}", hint=hint)


class RetriableRemoteError(RemoteError):
    """Rate limited, a 5xx, a timeout or a dropped connection: worth trying again."""


class FatalRemoteError(RemoteError):
    """Any other 4xx: the request itself is wrong; retrying cannot help."""


class BudgetExhaustedError(RemoteError):
    """The run has spent its share of the CRM's daily budget (`CRMSYNC_SYNC_MAX_DAILY_SHARE`):
    stopped before the next request, so the client's own team keeps the rest for today."""

    exit_code = 3

    def __init__(self, crm: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(crm, message, hint=hint)
        # Not an answer from the CRM: say so instead of "request failed".
        self.args = (f"{crm}: {message}",)


class TokenRefusedError(FatalRemoteError):
    """401: the CRM does not accept the token (wrong, expired, revoked, another account's)."""


class PlanBlocked(CrmsyncError):  # noqa: N818 -- named in STYLE.md; a state, not a failure
    """Some planned changes cannot be applied (reason given per change)."""

    exit_code = 3


class StoreError(CrmsyncError):
    """The local store cannot be opened or migrated."""


class LeaseHeldError(CrmsyncError):
    """Another run holds the lease of one client's CRM (`Store.lease`): this one must not write.

    `holder` describes that run ("apply by pid 123 on host h since 10:02:03").
    """

    exit_code = 4

    def __init__(self, client: str, crm: str, purpose: str, holder: str) -> None:
        self.client = client
        self.crm = crm
        self.purpose = purpose
        self.holder = holder
        super().__init__(
            f"cannot {purpose} {client} ({crm}): another run holds its lease ({holder})",
            hint="Wait for that run to finish and try again; a lease left by a run that "
                 "died is taken over once it expires",
        )


class PlanStaleError(CrmsyncError):
    """Another run changed the client's CRM between this run's plan and its lease."""

    exit_code = 4

    def __init__(self, client: str, crm: str) -> None:
        self.client = client
        self.crm = crm
        super().__init__(
            f"{client} ({crm}) changed since the plan was made (another run applied in "
            "between, or someone edited its pipelines); nothing was changed",
            hint="Run the same command again to see and apply the current plan",
        )


class AccountMismatchError(CrmsyncError):
    """The token reaches another CRM account than the one the store's ids were recorded in."""

    def __init__(self, client: str, crm: str, recorded: str, current: str) -> None:
        self.client = client
        self.crm = crm
        self.recorded = recorded
        self.current = current
        super().__init__(
            f"the store's ids for {client} ({crm}) belong to account {recorded}, but its token "
            f"reaches account {current}; nothing was changed, as applying ids recorded for "
            "another account would rename and archive that account's own pipelines",
            hint=f"If {client} has deliberately moved to account {current}, run `crmsync "
                 f"forget {client} --crm {crm}` to drop the recorded ids (its pipelines then "
                 "match by label, as for a new client); otherwise check the token",
        )


class AccountConflictError(CrmsyncError):
    """A pipeline of one client's blueprint is managed by another client in the same account."""

    def __init__(self, client: str, crm: str, conflicts: dict[str, str]) -> None:
        self.client = client
        self.crm = crm
        self.conflicts = dict(conflicts)  # pipeline label -> the client that manages it
        listed = "; ".join(f"'{label}' is managed by client {other}"
                           for label, other in sorted(conflicts.items()))
        super().__init__(
            f"{client} ({crm}) shares its CRM account with other clients of this store: "
            f"{listed}. Nothing was changed: two clients managing one pipeline would undo "
            "each other's stages on every run",
            hint="Give each client its own pipelines (distinct labels), or manage the "
                 "pipeline from one client's blueprint only",
        )


class RecordError(CrmsyncError):
    """One record cannot be written to the store as given (`crmsync.store.local`).

    `record` names it ("contacts #12", "new contact", "row 7"), `field` the field at fault
    ("" when the record as a whole is), `reason` what is wrong with it.
    """

    def __init__(self, record: str, field: str, message: str) -> None:
        self.record = record
        self.field = field
        self.reason = message
        super().__init__(f"{record}: {field}: {message}" if field else f"{record}: {message}")
