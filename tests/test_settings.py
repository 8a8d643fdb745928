"""Settings: environment over .env over defaults, and tokens that never leak."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.errors import SettingsError
from crmsync.settings import Settings, load_settings

TOKEN = "pat-na1-0000aaaa-1111-bbbb-2222-cccc3333dddd"
OTHER_TOKEN = "pd-api-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
REPO = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRMSYNC_ variables from the machine, and a CWD without a .env."""
    for name in list(os.environ):
        if name.startswith("CRMSYNC_") or name.endswith("_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_env(directory: Path, **values: str) -> None:
    lines = [f"CRMSYNC_{name.upper()}={value}" for name, value in values.items()]
    (directory / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


class TestPrecedence:
    def test_defaults(self) -> None:
        settings = Settings()
        assert settings.store_url == "sqlite:///crmsync.db"
        assert settings.configs_dir == Path("configs")
        assert settings.hubspot_base_url == "https://api.hubapi.com"
        assert settings.hubspot_token is None
        assert settings.log_level == "WARNING"

    def test_dotenv_in_the_working_directory_beats_defaults(self, isolated: Path) -> None:
        write_env(isolated, store_url="sqlite:///from-dotenv.db", max_retries="2")
        settings = Settings()
        assert settings.store_url == "sqlite:///from-dotenv.db"
        assert settings.max_retries == 2

    def test_environment_beats_dotenv(self, isolated: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
        write_env(isolated, store_url="sqlite:///from-dotenv.db", log_format="json")
        monkeypatch.setenv("CRMSYNC_STORE_URL", "sqlite:///from-env.db")
        settings = Settings()
        assert settings.store_url == "sqlite:///from-env.db"
        assert settings.log_format == "json"  # not in the environment: .env still applies

    def test_dotenv_of_another_directory_is_not_read(self, isolated: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        elsewhere = isolated / "elsewhere"
        elsewhere.mkdir()
        write_env(isolated, store_url="sqlite:///from-dotenv.db")
        monkeypatch.chdir(elsewhere)
        assert Settings().store_url == "sqlite:///crmsync.db"

    def test_every_setting_is_documented_in_env_example(self) -> None:
        example = (REPO / ".env.example").read_text(encoding="utf-8")
        documented = set(re.findall(r"^CRMSYNC_([A-Z_]+)=", example, re.MULTILINE))
        assert {name.upper() for name in Settings.model_fields} <= documented


class TestTokens:
    def test_default_token_from_dotenv(self, isolated: Path) -> None:
        write_env(isolated, hubspot_token=TOKEN)
        assert Settings().token("hubspot").get_secret_value() == TOKEN

    def test_blueprint_token_env_from_environment_then_dotenv(
        self, isolated: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (isolated / ".env").write_text(f"ACME_PIPEDRIVE_TOKEN={OTHER_TOKEN}\n", encoding="utf-8")
        settings = Settings()
        assert settings.token("pipedrive", "ACME_PIPEDRIVE_TOKEN").get_secret_value() == (
            OTHER_TOKEN)
        monkeypatch.setenv("ACME_PIPEDRIVE_TOKEN", TOKEN)
        assert settings.token("pipedrive", "ACME_PIPEDRIVE_TOKEN").get_secret_value() == TOKEN

    def test_missing_tokens_are_explained_without_values(self, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
        monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", OTHER_TOKEN)
        settings = Settings()
        with pytest.raises(SettingsError, match="CRMSYNC_HUBSPOT_TOKEN") as default:
            settings.token("hubspot")
        with pytest.raises(SettingsError, match=r"\$ACME_HUBSPOT_TOKEN") as named:
            settings.token("hubspot", "ACME_HUBSPOT_TOKEN")
        for caught in (default, named):
            assert OTHER_TOKEN not in str(caught.value)

    def test_tokens_never_show_in_repr_str_or_dump(self, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
        monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", TOKEN)
        monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", OTHER_TOKEN)
        settings = Settings()
        shown = [repr(settings), str(settings), settings.model_dump_json(),
                 repr(settings.token("hubspot")), str(settings.token("pipedrive")),
                 f"{settings.hubspot_token}"]
        for text in shown:
            assert TOKEN not in text
            assert OTHER_TOKEN not in text

    def test_invalid_settings_error_does_not_echo_values(self, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
        monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", TOKEN)
        monkeypatch.setenv("CRMSYNC_MAX_RETRIES", TOKEN)
        with pytest.raises(SettingsError, match="CRMSYNC_MAX_RETRIES") as caught:
            load_settings()
        assert TOKEN not in str(caught.value)

    def test_debug_validate_run_never_prints_or_logs_a_token(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", TOKEN)
        monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", OTHER_TOKEN)
        monkeypatch.setenv("CRMSYNC_CONFIGS_DIR", str(REPO / "configs"))
        caplog.set_level(logging.DEBUG)
        result = CliRunner().invoke(cli, ["--debug", "validate", "--strict"])
        assert result.exit_code == 0, result.output
        assert "loaded" in caplog.text  # debug logging was really on
        for text in (result.output, caplog.text):
            assert TOKEN not in text
            assert OTHER_TOKEN not in text


class TestTokenShape:
    @pytest.mark.parametrize("stray", ["\r\n", "\n", " ", "\t "])
    def test_surrounding_whitespace_is_stripped(self, monkeypatch: pytest.MonkeyPatch,
                                                isolated: Path, stray: str) -> None:
        monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", f"{stray}{TOKEN}{stray}")
        monkeypatch.setenv("ACME_PIPEDRIVE_TOKEN", f"{OTHER_TOKEN}{stray}")
        settings = load_settings()
        assert settings.token("hubspot").get_secret_value() == TOKEN
        assert settings.token("pipedrive", "ACME_PIPEDRIVE_TOKEN").get_secret_value() == (
            OTHER_TOKEN)

    def test_crlf_dotenv_token_is_stripped(self, isolated: Path) -> None:
        (isolated / ".env").write_bytes(f"CRMSYNC_PIPEDRIVE_TOKEN={OTHER_TOKEN}\r\n".encode())
        assert load_settings().token("pipedrive").get_secret_value() == OTHER_TOKEN

    @pytest.mark.parametrize("inner", [" ", "\t", "\r\n", "\x1b", "\u00a0"])
    def test_inner_whitespace_or_control_characters_are_refused_without_the_value(
            self, monkeypatch: pytest.MonkeyPatch, inner: str) -> None:
        half = len(TOKEN) // 2
        monkeypatch.setenv("CRMSYNC_HUBSPOT_TOKEN", TOKEN[:half] + inner + TOKEN[half:])
        with pytest.raises(SettingsError, match="CRMSYNC_HUBSPOT_TOKEN: the token contains"
                           ) as caught:
            load_settings()
        assert TOKEN[:half] not in str(caught.value)
        assert TOKEN[half:] not in str(caught.value)
        with pytest.raises(Exception) as raw:  # noqa: PT011 -- pydantic's own, never echoing
            Settings()
        assert TOKEN[half:] not in str(raw.value)

    def test_a_blueprint_token_with_inner_whitespace_names_its_variable(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ACME_HUBSPOT_TOKEN", f"{TOKEN} {TOKEN}")
        with pytest.raises(SettingsError, match=r"\$ACME_HUBSPOT_TOKEN: the token contains"
                           ) as caught:
            Settings().token("hubspot", "ACME_HUBSPOT_TOKEN")
        assert TOKEN not in str(caught.value)

    def test_settings_tokens_are_masked_in_any_message(self, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
        from crmsync.logs import mask_known

        monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", OTHER_TOKEN)
        load_settings()  # never asked for the token, yet it is known
        assert mask_known(f"header {OTHER_TOKEN!r} refused") == "header '***' refused"


class TestBaseUrls:
    @pytest.mark.parametrize("url", ["http://api.hubapi.com", "http://10.0.0.5:8765",
                                     "http://example.com/127.0.0.1", "http://localhost.evil.com"])
    @pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
    def test_plain_http_to_another_host_is_refused(self, monkeypatch: pytest.MonkeyPatch,
                                                   crm: str, url: str) -> None:
        monkeypatch.setenv(f"CRMSYNC_{crm.upper()}_BASE_URL", url)
        with pytest.raises(SettingsError, match=f"CRMSYNC_{crm.upper()}_BASE_URL: must be "
                           "https://") as caught:
            load_settings()
        assert "cleartext" in str(caught.value)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:8765/",
                                     "http://[::1]:8765", "http://127.0.0.2",
                                     "https://acme.pipedrive.com"])
    def test_loopback_and_https_are_accepted(self, monkeypatch: pytest.MonkeyPatch,
                                             url: str) -> None:
        monkeypatch.setenv("CRMSYNC_PIPEDRIVE_BASE_URL", url)
        assert load_settings().base_url("pipedrive") == url.rstrip("/")
