"""Runtime settings: environment variables with the CRMSYNC_ prefix, then `.env`, then defaults.

Tokens are `SecretStr` so that they never show in a repr, a log line or an error message.
A blueprint may name its own token variable (`token_env:`) for a client whose CRM account
differs from the default one; the value is read here, never stored in the blueprint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmsync.errors import SettingsError

DEFAULT_BASE_URLS: dict[str, str] = {
    "hubspot": "https://api.hubapi.com",
    # Pipedrive recommends https://{COMPANYDOMAIN}.pipedrive.com; api.pipedrive.com also routes.
    "pipedrive": "https://api.pipedrive.com",
}


class Settings(BaseSettings):
    """Everything crmsync reads from its environment. Mirrored in `.env.example`."""

    model_config = SettingsConfigDict(
        env_prefix="CRMSYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        hide_input_in_errors=True,  # a token set in the wrong variable must never be echoed
    )

    store_url: str = "sqlite:///crmsync.db"
    configs_dir: Path = Path("configs")
    hubspot_base_url: str = DEFAULT_BASE_URLS["hubspot"]
    pipedrive_base_url: str = DEFAULT_BASE_URLS["pipedrive"]
    hubspot_token: SecretStr | None = None
    pipedrive_token: SecretStr | None = None
    http_timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_format: Literal["text", "json"] = "text"
    # How often `sync` looks for records deleted in the CRM where that costs a listing
    # (HubSpot's archived records, Pipedrive's recents): 0 = every run.
    sync_removal_scan_minutes: float = Field(default=60.0, ge=0)
    # How long HubSpot's search index may trail a write: an increment leaves records
    # modified that recently for the next run. 0 for the sandbox (no lag unless asked).
    hubspot_search_lag_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The share of what is left of the CRM's daily budget one sync may spend (the rest stays
    # for the client's own team); reaching it stops the run cleanly (exit 3, resumes next run).
    sync_max_daily_share: float = Field(default=0.5, gt=0, le=1)
    # How a HubSpot full pass reads: `export` (Exports API, needs the crm.export scope),
    # `list` (objects list API), `auto` (export for big accounts when the token may).
    sync_initial_load: Literal["export", "list", "auto"] = "auto"
    # Requests one sync keeps in flight at once per CRM account (object types in parallel,
    # concurrent pages and writes); every thread shares the account's one rate limiter.
    sync_concurrency: int = Field(default=4, ge=1, le=16)
    # The account's plan, when known: the rate limiter starts from its window instead of
    # waiting for the first response's headers (which always win once seen). HubSpot:
    # free|starter (100 requests per 10 s) or professional|enterprise (190). Pipedrive:
    # lite|growth|premium|ultimate (a burst of 20/40/100/120 requests per 2 s).
    hubspot_tier: Literal["free", "starter", "professional", "enterprise"] | None = None
    pipedrive_plan: Literal["lite", "growth", "premium", "ultimate"] | None = None

    @field_validator("hubspot_tier", "pipedrive_plan", mode="before")
    @classmethod
    def _plan_name(cls, value: object) -> object:
        if isinstance(value, str):  # "Professional", " growth", "" (unset)
            return value.strip().lower() or None
        return value

    def plan(self, crm: str) -> str | None:
        """The named tier or plan of `crm`'s account (None: learnt from the headers)."""
        return {"hubspot": self.hubspot_tier, "pipedrive": self.pipedrive_plan}.get(crm)

    @field_validator("hubspot_base_url", "pipedrive_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError("must be an http(s) URL such as https://api.hubapi.com or, for "
                             "the sandbox, http://127.0.0.1:8765")
        if scheme == "http" and not _is_loopback(value):
            # The token would cross the network in cleartext: only this machine may be plain.
            raise ValueError("must be https:// (plain http:// would send the token in "
                             "cleartext); http:// is only for this machine: 127.0.0.1, "
                             "localhost or [::1], as `crmsync sandbox` prints")
        return value

    @field_validator("hubspot_token", "pipedrive_token", mode="before")
    @classmethod
    def _clean_token(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            problem = token_problem(value)
            if problem:  # never the value: a message may end up in a shared log
                raise ValueError(problem)
            return value.strip() or None
        return value

    def base_url(self, crm: str) -> str:
        return str(getattr(self, f"{crm}_base_url")).rstrip("/")

    def token_source(self, crm: str, token_env: str | None = None) -> str:
        """The name of the variable `token()` reads for `crm` (for messages; never the value)."""
        return token_env or f"CRMSYNC_{crm.upper()}_TOKEN"

    def token(self, crm: str, token_env: str | None = None) -> SecretStr:
        """The token for `crm`: the blueprint's own variable if it names one, else the default."""
        from crmsync.logs import remember_secret

        if token_env:
            value = os.environ.get(token_env)
            if value is None:
                env_file = Path(str(self.model_config.get("env_file") or ".env"))
                if env_file.is_file():
                    value = _read_env_file(env_file).get(token_env)
            value = (value or "").strip()
            if not value:
                raise SettingsError(
                    f"the blueprint asks for the {crm} token in ${token_env}, but that variable "
                    "is not set in the environment or in .env",
                    hint=f"Set it to this client's {crm} token, in the shell (`export`) or in .env",
                )
            problem = token_problem(value)
            if problem:
                raise SettingsError(f"${token_env}: {problem}", hint=_STRAY_CHARACTERS_HINT)
            remember_secret(value)
            return SecretStr(value)
        default: SecretStr | None = getattr(self, f"{crm}_token")
        if default is None or not default.get_secret_value():
            raise SettingsError(
                f"no {crm} token: CRMSYNC_{crm.upper()}_TOKEN is not set in the environment or "
                "in .env",
                hint=f"Set it to the {crm} token (`export CRMSYNC_{crm.upper()}_TOKEN=...`), or "
                     "read a client's own token from another variable: `token_env: NAME` in "
                     "its blueprint, `--token-env NAME` for export",
            )
        remember_secret(default.get_secret_value())
        return default


_STRAY_CHARACTERS_HINT = ("Set the variable to the token alone, as the CRM shows it (a value "
                          "read from a file or piped through base64 may carry a stray line "
                          "break)")


def token_problem(value: str) -> str | None:
    """Why `value` cannot be a token (None if it can): whitespace or control characters
    inside it. Surrounding whitespace is stripped, not refused. Never quotes the value."""
    if any(c.isspace() or not c.isprintable() for c in value.strip()):
        return ("the token contains whitespace or control characters; an HTTP header cannot "
                "carry it (the value is not shown)")
    return None


def _is_loopback(url: str) -> bool:
    """Does `url` point at this machine (the sandbox): 127.0.0.0/8, ::1 or localhost?"""
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _read_env_file(path: Path) -> dict[str, str | None]:
    try:
        return dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path} is not UTF-8 text (byte {exc.start})",
                            hint="Save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into a one-paragraph SettingsError."""
    from pydantic import ValidationError

    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    if env_file.exists():
        _read_env_file(env_file)  # an unreadable .env: our message, not pydantic's traceback
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Never the values: a token pasted into the wrong variable must not be echoed.
        problems = "; ".join(
            f"CRMSYNC_{'_'.join(str(p) for p in err['loc']).upper()}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise SettingsError(
            f"invalid settings: {problems}",
            hint="Fix the variable in the environment or in .env (.env.example lists them all)",
        ) from None
    from crmsync.logs import remember_secret

    for token in (settings.hubspot_token, settings.pipedrive_token):
        if token is not None:  # masked in every message from now on, not only in logs
            remember_secret(token.get_secret_value())
    return settings
