"""Every failure path a new consultant can hit: one paragraph, the right exit code, no
traceback (unless --debug), no token — through `crmsync.cli.main`, as the console script runs.

Exit codes: validate 0/1; diff 0/2/1; apply 0/3/1; every other command 0/1. A usage error
exits 1 (never 2, which `diff` uses for "changes pending"); so does Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from click.testing import CliRunner

from crmsync.adapters.http_policy import PIPEDRIVE, HttpPolicy, Reply
from crmsync.cli import cli, main
from crmsync.errors import RetriableRemoteError, TokenRefusedError
from crmsync.logs import mask_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "configs"
WRONG_TOKEN = "pat-na1-wrong-0000-aaaa-bbbb"
OTHER_WRONG = "pd-wrong-1111cccc2222dddd"

PIPEDRIVE_BLUEPRINT = """\
client: kyivsoft
crm: pipedrive
pipelines:
  - key: sales
    label: Sales
    stages:
      - key: booked
        label: Meeting booked
        probability: 0.1
      - key: signed
        label: Contract signed
        probability: 1.0
        outcome: won
"""
HUBSPOT_BLUEPRINT = PIPEDRIVE_BLUEPRINT.replace("kyivsoft", "acme").replace(
    "crm: pipedrive", "crm: hubspot\ntoken_env: ACME_HUBSPOT_TOKEN")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRMSYNC_ or *_TOKEN variables from the machine; a working directory without .env."""
    for name in list(os.environ):
        if name.startswith("CRMSYNC_") or name.endswith("_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRMSYNC_MAX_RETRIES", "0")  # no backoff sleeps in these tests
    return tmp_path


@pytest.fixture
def crm_env(monkeypatch: pytest.MonkeyPatch, sandbox: str) -> str:
    for name in ("HUBSPOT", "PIPEDRIVE"):
        monkeypatch.setenv(f"CRMSYNC_{name}_BASE_URL", sandbox)
        monkeypatch.setenv(f"CRMSYNC_{name}_TOKEN", "sandbox-token")
    monkeypatch.setenv("ACME_HUBSPOT_TOKEN", "sandbox-acme")
    return sandbox


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """`crmsync ARGS` through the console-script entry point; it must exit."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    code = exited.value.code
    return Run(code if isinstance(code, int) else 1, captured.out, captured.err)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused


def assert_clean_error(result: Run, *fragments: str, code: int = 1) -> None:
    assert result.code == code, result.all
    assert "Traceback" not in result.all
    for fragment in fragments:
        assert fragment in result.err, result.err


# --- the group itself ------------------------------------------------------------------------


def test_no_arguments_shows_the_help_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys)
    assert result.code == 0
    assert "Usage: crmsync" in result.out
    assert "Examples:" in result.out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "--version")
    assert result.code == 0
    assert result.out.startswith("crmsync, version ")


@pytest.mark.parametrize("args", [
    ["diff", "--bogus"], ["frobnicate"], ["export", "--client", "acme", "--crm", "zoho"],
    ["init", "acme"], ["sandbox", "--port", "99999"],
])
def test_usage_errors_exit_1_never_2(capsys: pytest.CaptureFixture[str], args: list[str]
                                     ) -> None:
    result = run(capsys, *args)
    assert_clean_error(result, "Usage: crmsync", "--help")


@pytest.mark.parametrize("command", ["validate", "init", "diff", "apply", "export", "sandbox",
                                     "demo"])
def test_every_help_explains_itself_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"crmsync {command}" in result.output


# --- configs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "diff", "apply"])
def test_no_configs_folder_says_where_it_looked(capsys: pytest.CaptureFixture[str],
                                                command: str) -> None:
    result = run(capsys, command)
    assert_clean_error(result, "error: configs: no such file or folder",
                       "CRMSYNC_CONFIGS_DIR", "crmsync init CLIENT")


@pytest.mark.parametrize("command", ["validate", "diff"])
def test_empty_configs_folder(capsys: pytest.CaptureFixture[str], isolated: Path,
                              command: str) -> None:
    (isolated / "configs").mkdir()
    result = run(capsys, command)
    assert_clean_error(result, "configs: no blueprint files", "hint: create one with")


BAD_CONFIGS: list[tuple[str, str | bytes, str]] = [
    ("typo", PIPEDRIVE_BLUEPRINT.replace("probability: 0.1", "probabilty: 0.1"),
     "typo.yaml:9:9 pipelines[0].stages[0].probabilty: unknown field 'probabilty'; did you "
     "mean 'probability'?"),
    ("wrong_type", PIPEDRIVE_BLUEPRINT.replace("probability: 0.1", "probability: high"),
     "wrong_type.yaml:9:22 pipelines[0].stages[0].probability: must be a number"),
    ("missing", PIPEDRIVE_BLUEPRINT.replace("        label: Meeting booked\n", ""),
     "missing.yaml:7:9 pipelines[0].stages[0].label: missing required field 'label'"),
    ("tabs", PIPEDRIVE_BLUEPRINT.replace("    label: Sales", "\tlabel: Sales"),
     "tabs.yaml:5:1: tab character: indent with spaces, not tabs"),
    ("duplicate", PIPEDRIVE_BLUEPRINT.replace("crm: pipedrive\n", "crm: pipedrive\ncrm: hubspot\n"),
     "duplicate.yaml:3:1 crm: duplicate field 'crm' (already set on line 2)"),
    ("latin1", PIPEDRIVE_BLUEPRINT.replace("Sales", "Verkäufe").encode("latin-1"),
     "latin1.yaml:5:16: not UTF-8 text (byte 0xe4)"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
@pytest.mark.parametrize("command", ["validate", "diff"])
def test_bad_configs_name_file_line_and_field(capsys: pytest.CaptureFixture[str],
                                              isolated: Path, name: str, text: str | bytes,
                                              message: str, command: str) -> None:
    path = write(isolated / "configs" / f"{name}.yaml", text)
    result = run(capsys, command, str(path))
    assert result.code == 1, result.all
    assert "Traceback" not in result.all
    assert message in result.all


def test_a_folder_named_like_a_yaml_file_is_not_a_blueprint(
        capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    (isolated / "configs" / "odd.yaml").mkdir(parents=True)
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    listed = run(capsys, "validate")  # reported as that entry's error, never skipped unsaid
    assert listed.code == 1
    assert "configs/odd.yaml: is a folder, not a blueprint file" in listed.out
    assert "configs/kyivsoft.yaml: ok" in listed.out
    assert_clean_error(run(capsys, "validate", "configs/odd.yaml"),
                       "configs/odd.yaml: no blueprint files")


# --- settings and tokens -------------------------------------------------------------------------


def test_no_token(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    result = run(capsys, "diff")
    assert_clean_error(result, "kyivsoft (pipedrive): no pipedrive token",
                       "CRMSYNC_PIPEDRIVE_TOKEN is not set", "token_env")
    exported = run(capsys, "export", "--client", "newco", "--crm", "hubspot")
    assert_clean_error(exported, "CRMSYNC_HUBSPOT_TOKEN", "--token-env")
    assert not (isolated / "crmsync.db").exists()  # nothing was touched


def test_token_env_named_but_unset(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    write(isolated / "configs" / "acme.yaml", HUBSPOT_BLUEPRINT)
    result = run(capsys, "diff")
    assert_clean_error(result, "asks for the hubspot token in $ACME_HUBSPOT_TOKEN",
                       "in the shell (`export`) or in .env")


def test_non_utf8_dotenv_and_bad_base_url_are_settings_errors(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    write(isolated / ".env", b"CRMSYNC_PIPEDRIVE_TOKEN=\xff\xfe\n")
    assert_clean_error(run(capsys, "diff"), ".env is not UTF-8 text", "Save it as UTF-8")
    (isolated / ".env").unlink()
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_BASE_URL", "api.pipedrive.com")
    assert_clean_error(run(capsys, "diff"), "CRMSYNC_PIPEDRIVE_BASE_URL: must be an http(s) URL")
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_BASE_URL", "https://api.pipedrive.com")
    monkeypatch.setenv("CRMSYNC_HTTP_TIMEOUT_SECONDS", "0")
    assert_clean_error(run(capsys, "diff"), "CRMSYNC_HTTP_TIMEOUT_SECONDS")


@pytest.fixture
def guarded_sandbox() -> Iterator[str]:
    """A sandbox that accepts only the token "secret" (`crmsync sandbox --token secret`)."""
    from crmsync.sandbox import start_sandbox

    server = start_sandbox(port=0, token="secret")
    try:
        yield server.base_url
    finally:
        server.stop()


def test_a_refused_token_names_its_variable_never_its_value(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch,
        guarded_sandbox: str) -> None:
    write(isolated / "configs" / "acme.yaml", HUBSPOT_BLUEPRINT)
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    for name in ("HUBSPOT", "PIPEDRIVE"):
        monkeypatch.setenv(f"CRMSYNC_{name}_BASE_URL", guarded_sandbox)
    monkeypatch.setenv("ACME_HUBSPOT_TOKEN", WRONG_TOKEN)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", OTHER_WRONG)

    for args in (["diff"], ["--debug", "diff"], ["apply", "--yes"]):
        result = run(capsys, *args)
        assert result.code == 1, result.all
        assert "error: acme (hubspot): hubspot answered 401" in result.err
        assert "HubSpot refused the token: check that $ACME_HUBSPOT_TOKEN holds" in result.err
        assert "Pipedrive refused the token: check that $CRMSYNC_PIPEDRIVE_TOKEN" in result.err
        assert WRONG_TOKEN not in result.all
        assert OTHER_WRONG not in result.all

    exported = run(capsys, "export", "--client", "newco", "--crm", "pipedrive")
    assert_clean_error(exported, "$CRMSYNC_PIPEDRIVE_TOKEN")
    assert OTHER_WRONG not in exported.all


# --- an unreachable CRM -------------------------------------------------------------------------


def test_connection_refused_names_the_setting_to_check(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_BASE_URL", url)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", "t")  # a one-letter token garbles nothing
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    result = run(capsys, "diff")
    assert_clean_error(result, f"connection refused by {url} (read the current user)",
                       f"Check CRMSYNC_PIPEDRIVE_BASE_URL (now {url})", "crmsync sandbox")
    assert "***" not in result.err


@dataclass
class FakeTime:
    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _refused() -> Reply[str]:
    raise requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))


def test_connection_refused_gives_up_after_three_attempts_not_seven() -> None:
    time = FakeTime()
    policy = HttpPolicy(PIPEDRIVE, max_retries=6, sleep=time.sleep, clock=time.clock)
    calls: list[int] = []

    def send() -> Reply[str]:
        calls.append(1)
        return _refused()

    with pytest.raises(RetriableRemoteError) as raised:
        policy.call(send, what="list stages")
    assert len(calls) == 3
    assert time.now < 5  # about 1.5-2.5 s of backoff, not the half minute of 6 retries
    assert "Gave up after 3 attempts" in str(raised.value)
    assert "connection refused by the server (list stages)" in str(raised.value)


def test_server_errors_still_get_every_retry() -> None:
    time = FakeTime()
    policy = HttpPolicy(PIPEDRIVE, max_retries=6, sleep=time.sleep, clock=time.clock)
    calls: list[int] = []

    def send() -> Reply[str]:
        calls.append(1)
        return Reply(503, {}, body=b'{"success": false, "error": "busy"}')

    with pytest.raises(RetriableRemoteError, match="Gave up after 7 attempts; Pipedrive may"):
        policy.call(send, what="list stages")
    assert len(calls) == 7


def test_a_401_is_a_token_refusal_and_not_retried() -> None:
    calls: list[int] = []

    def send() -> Reply[str]:
        calls.append(1)
        return Reply(401, {}, body=b'{"success": false, "error": "unauthorized access"}')

    with pytest.raises(TokenRefusedError, match="Pipedrive refused the token"):
        HttpPolicy(PIPEDRIVE).call(send, what="list stages")
    assert calls == [1]


def test_short_tokens_are_masked_only_as_whole_words() -> None:
    assert mask_secrets("connection refused; token t", ["t"]) == "connection refused; token ***"
    assert mask_secrets("Bearer pat-na1-x, url?api_token=pat-na1-x&a=1", ["pat-na1-x"]) == (
        "Bearer ***, url?api_token=***&a=1")


# --- the store -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "fragments"), [
    ("notaurl", ["invalid store URL", "Check CRMSYNC_STORE_URL"]),
    ("mysql://me@localhost/crm", ["unsupported store database 'mysql'", "SQLite or PostgreSQL"]),
    ("sqlite:///blocker/crmsync.db", ["blocker is a file, not a folder", "CRMSYNC_STORE_URL"]),
    ("postgresql+psycopg://postgres:hunter2@127.0.0.1:5499/test",
     ["cannot open the store at postgresql+psycopg://postgres:***@127.0.0.1:5499/test",
      "Is the PostgreSQL server running"]),
])
def test_store_errors_are_reported_once_for_the_command(
        capsys: pytest.CaptureFixture[str], isolated: Path, monkeypatch: pytest.MonkeyPatch,
        crm_env: str, url: str, fragments: list[str]) -> None:
    write(isolated / "blocker", "not a folder")
    write(isolated / "configs" / "acme.yaml", HUBSPOT_BLUEPRINT)
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    monkeypatch.setenv("CRMSYNC_STORE_URL", url)
    result = run(capsys, "diff")
    assert_clean_error(result, *fragments)
    assert result.err.count("error:") == 1  # the store, not once per client
    assert "hunter2" not in result.all
    exported = run(capsys, "export", "--client", "newco", "--crm", "hubspot", "-o", "new.yaml")
    assert_clean_error(exported, fragments[0])
    assert not (isolated / "new.yaml").exists()


# --- apply and export ---------------------------------------------------------------------------


def test_apply_without_yes_and_without_a_terminal_changes_nothing(
        capsys: pytest.CaptureFixture[str], isolated: Path, crm_env: str) -> None:
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    result = run(capsys, "apply")
    assert_clean_error(result, "input is not a terminal", "nothing was changed",
                       "pass --yes")
    assert run(capsys, "diff").code == 2  # still pending


@pytest.mark.parametrize("answer", ["n\n", "", "maybe\nno\n"])
def test_apply_answered_no_or_nothing_is_cancelled(
        isolated: Path, crm_env: str, monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    monkeypatch.setattr("crmsync.cli.provision_commands._stdin_is_terminal", lambda: True)
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    result = CliRunner().invoke(cli, ["apply"], input=answer)
    assert result.exit_code == 1, result.output
    assert "Apply cancelled; nothing was changed." in result.stderr
    assert "Traceback" not in result.output
    assert CliRunner().invoke(cli, ["diff"]).exit_code == 2


def test_a_failed_proving_diff_keeps_what_was_applied_and_says_when_it_failed(
        capsys: pytest.CaptureFixture[str], isolated: Path, crm_env: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync import provision
    from crmsync.errors import FatalRemoteError

    real_plan = provision.plan_client
    calls: list[int] = []

    def plan_then_fail(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # the diff after applying (after the diff and its re-check)
            raise FatalRemoteError("pipedrive", "Pipeline not found (list stages)", status=404)
        return real_plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(provision, "plan_client", plan_then_fail)
    write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT)
    result = run(capsys, "apply", "--yes")
    assert_clean_error(result, "error: kyivsoft (pipedrive): diff after apply: pipedrive "
                               "answered 404: Pipeline not found")
    assert "kyivsoft (pipedrive): 1 change applied; error: diff after apply" in result.out
    monkeypatch.setattr(provision, "plan_client", real_plan)
    assert run(capsys, "diff").code == 0  # what ran was kept


def test_export_never_overwrites_without_force(capsys: pytest.CaptureFixture[str],
                                               isolated: Path, crm_env: str) -> None:
    target = write(isolated / "configs" / "acme.yaml", "# mine\n")
    result = run(capsys, "export", "--client", "acme", "--crm", "hubspot", "-o", str(target))
    assert_clean_error(result, f"{target} already exists; pass --force to overwrite it")
    assert target.read_text(encoding="utf-8") == "# mine\n"


@pytest.mark.parametrize(("args", "fragment"), [
    (["--client", "Acme-1"], "--client 'Acme-1' must be a key"),
    (["--client", "acme", "--token-env", WRONG_TOKEN], "--token-env must be an environment"),
])
def test_export_checks_its_options_first(capsys: pytest.CaptureFixture[str], args: list[str],
                                         fragment: str) -> None:
    result = run(capsys, "export", "--crm", "hubspot", *args)
    assert_clean_error(result, fragment)
    assert WRONG_TOKEN not in result.all


def test_init_existing_and_invalid_name(capsys: pytest.CaptureFixture[str], isolated: Path
                                        ) -> None:
    assert run(capsys, "init", "acme", "--crm", "hubspot").code == 0
    assert_clean_error(run(capsys, "init", "acme", "--crm", "hubspot"),
                       "configs/acme.yaml: already exists")
    assert_clean_error(run(capsys, "init", "Acme Corp", "--crm", "hubspot"), "try 'acme_corp'")


# --- --debug, and bugs ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["validate"], ["diff"], ["init", "Bad Name", "--crm", "hubspot"],
    ["export", "--client", "x", "--crm", "hubspot"],
])
def test_debug_shows_the_traceback_and_nothing_else_does(
        capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    quiet = run(capsys, *args)
    loud = run(capsys, "--debug", *args)
    assert quiet.code == loud.code == 1
    assert "Traceback" not in quiet.all
    assert "Traceback (most recent call last)" in loud.err
    assert quiet.err.strip().splitlines()[0] in loud.err  # the same message, after it


def test_an_unexpected_exception_is_called_a_bug_without_a_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("crmsync.provision.diff_clients", broken)
    result = run(capsys, "diff")
    assert_clean_error(result, "unexpected RuntimeError: boom", "This is a bug in crmsync",
                       "--debug")
    assert "Traceback" in run(capsys, "--debug", "diff").err


def test_ctrl_c_exits_1_with_a_word_not_a_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("crmsync.provision.diff_clients", interrupted)
    result = run(capsys, "diff")
    assert result.code == 1
    assert "Interrupted." in result.err
    assert "Traceback" not in result.all


# --- sandbox -------------------------------------------------------------------------------------


def test_sandbox_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(capsys, "sandbox", "--port", str(port))
    assert_clean_error(result, f"cannot listen on 127.0.0.1:{port}", "--port 0 for a free one")


@pytest.mark.parametrize(("content", "fragment"), [
    ("garbage", "it is not a state file that crmsync sandbox saved"),
    ("[1, 2]", "it is not a state file that crmsync sandbox saved"),
])
def test_sandbox_state_that_cannot_be_loaded(capsys: pytest.CaptureFixture[str],
                                             isolated: Path, content: str, fragment: str
                                             ) -> None:
    state = write(isolated / "state.json", content)
    result = run(capsys, "sandbox", "--port", "0", "--state", str(state))
    assert_clean_error(result, fragment, "Move the file away")
    assert state.read_text(encoding="utf-8") == content  # left as it was


def test_sandbox_refuses_a_state_file_it_could_not_save(capsys: pytest.CaptureFixture[str],
                                                        isolated: Path) -> None:
    write(isolated / "blocker", "a file")
    result = run(capsys, "sandbox", "--port", "0", "--state", "blocker/state.json")
    assert_clean_error(result, "cannot save the sandbox state to blocker/state.json",
                       "blocker is not a folder")


def _serve(state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from crmsync.cli import main; main()", "sandbox", "--port", "0",
         "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A child of a non-interactive shell may inherit an ignored SIGINT: restore Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert " at http://" in first, first
    return process, first.rsplit(" at ", 1)[1].strip()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_sandbox_stops_cleanly_on_signals_and_saves_its_state(isolated: Path,
                                                              stop: signal.Signals) -> None:
    state = isolated / "sandbox.json"
    process, url = _serve(state)
    try:
        created = requests.post(f"{url}/api/v2/pipelines", json={"name": "Saved"},
                                headers={"x-api-token": "sandbox-token"}, timeout=10)
        assert created.status_code == 200, created.text
        process.send_signal(stop)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, out
    assert "Traceback" not in out
    assert f"sandbox stopped; state saved to {state}" in out
    assert state.is_file()

    again, url = _serve(state)  # the saved state loads
    try:
        listed = requests.get(f"{url}/api/v2/pipelines",
                              headers={"x-api-token": "sandbox-token"}, timeout=10)
        assert "Saved" in {p["name"] for p in listed.json()["data"]}
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=20)
    finally:
        again.kill()
    assert again.returncode == 0


# --- demo ----------------------------------------------------------------------------------------


def test_demo_never_replaces_real_configs_in_its_workdir(capsys: pytest.CaptureFixture[str],
                                                          isolated: Path) -> None:
    mine = write(isolated / "configs" / "kyivsoft.yaml", PIPEDRIVE_BLUEPRINT + "# my edits\n")
    result = run(capsys, "demo", "--workdir", ".")
    assert_clean_error(result, "configs exists and is not a copy an earlier demo made",
                       "Pass another --workdir")
    assert mine.read_text(encoding="utf-8").endswith("# my edits\n")
