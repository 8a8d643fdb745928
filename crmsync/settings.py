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
        env_prefix="CRMSYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
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

    @field_validator("hubspot_base_url", "pipedrive_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError("must be an http(s) URL such as https://api.hubapi.com or, for "
                             "the sandbox, http://127.0.0.1:8765")
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
            if not value:
                raise SettingsError(
                    f"the blueprint asks for the {crm} token in ${token_env}, but that variable "
                    "is not set in the environment or in .env",
                    hint=f"Set it to this client's {crm} token, in the shell (`export`) or in .env",
                )
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
        return Settings(**overrides)  # type: ignore[arg-type]
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
