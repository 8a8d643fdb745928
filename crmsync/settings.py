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
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmsync.errors import SettingsError

CrmName = Literal["hubspot", "pipedrive"]

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
    http_timeout_seconds: float = 30.0
    max_retries: int = 6
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_format: Literal["text", "json"] = "text"

    def base_url(self, crm: str) -> str:
        return str(getattr(self, f"{crm}_base_url")).rstrip("/")

    def token(self, crm: str, token_env: str | None = None) -> SecretStr:
        """The token for `crm`: the blueprint's own variable if it names one, else the default."""
        if token_env:
            value = os.environ.get(token_env)
            if value is None:
                env_file = Path(str(self.model_config.get("env_file") or ".env"))
                if env_file.is_file():
                    value = dotenv_values(env_file).get(token_env)
            if not value:
                raise SettingsError(
                    f"the blueprint asks for the {crm} token in ${token_env}, but that variable is "
                    "not set in the environment or in .env"
                )
            return SecretStr(value)
        default: SecretStr | None = getattr(self, f"{crm}_token")
        if default is None or not default.get_secret_value():
            raise SettingsError(
                f"no {crm} token: set CRMSYNC_{crm.upper()}_TOKEN in the environment or in .env "
                "(or name a variable with `token_env:` in the client's blueprint)"
            )
        return default


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into a one-paragraph SettingsError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"CRMSYNC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
