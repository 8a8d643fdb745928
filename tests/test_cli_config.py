"""`crmsync validate` and `crmsync init` through click, as a consultant would run them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmsync.cli import cli, main

REPO = Path(__file__).parents[1]
CONFIGS = REPO / "configs"
FIXTURES = REPO / "tests" / "blueprint" / "fixtures"

WARNING_BLUEPRINT = """\
client: warned
crm: pipedrive
language: en
pipelines:
  - key: sales
    label: Sales
    stages:
      - key: booked
        label: Meeting booked
        probability: 0.1
      - key: send_proposal
        label: Send proposal
        probability: 0.5
      - key: signed
        label: Contract signed
        probability: 1.0
        outcome: won
"""


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CRMSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class TestValidate:
    def test_example_configs_pass_strict(self) -> None:
        result = run("validate", str(CONFIGS), "--strict")
        assert result.exit_code == 0, result.output
        for name in ("acme", "brightwave", "nordwind"):
            assert f"{CONFIGS / name}.yaml: ok" in result.output

    def test_defaults_to_the_configs_dir_setting(self, isolated: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        write(isolated / "clients" / "warned.yaml", WARNING_BLUEPRINT)
        monkeypatch.setenv("CRMSYNC_CONFIGS_DIR", "clients")
        result = run("validate")
        assert result.exit_code == 0
        assert "clients/warned.yaml: ok (pipedrive, 1 pipeline, 3 stages), 1 warning" in (
            result.output)

    def test_warnings_exit_0_and_fail_with_strict(self, isolated: Path) -> None:
        write(isolated / "warned.yaml", WARNING_BLUEPRINT)
        relaxed = run("validate", "warned.yaml")
        assert relaxed.exit_code == 0
        assert "warning  warned.yaml:12:16 pipelines[0].stages[1].label:" in relaxed.output
        assert "hint: name it from the buyer's side in the past tense, e.g. 'Proposal sent'" in (
            relaxed.output)
        strict = run("validate", "warned.yaml", "--strict")
        assert strict.exit_code == 1
        assert "error    warned.yaml:12:16" in strict.output

    def test_errors_exit_1_and_every_file_is_still_checked(self) -> None:
        broken = FIXTURES / "many_errors.yaml"
        result = run("validate", str(broken), str(CONFIGS / "acme.yaml"))
        assert result.exit_code == 1
        assert f"{broken}: 5 errors" in result.output
        assert f"{broken}:13:22 pipelines[0].stages[1].probability: must be a number" in (
            result.output)
        assert f"{CONFIGS / 'acme.yaml'}: ok" in result.output
        assert "Checked 2 files: 1 with errors, 0 with warnings only." in result.output
        assert "Traceback" not in result.output

    def test_json_lists_findings(self, isolated: Path) -> None:
        write(isolated / "warned.yaml", WARNING_BLUEPRINT)
        result = run("validate", "--json", "warned.yaml", str(FIXTURES / "wrong_crm.yaml"))
        assert result.exit_code == 1
        rows = json.loads(result.stdout)
        assert rows[0] == {
            "path": "warned.yaml", "line": 12, "column": 16,
            "field": "pipelines[0].stages[1].label", "severity": "warning",
            "rule": "imperative-stage",
            "message": "'Send proposal' reads as a to-do, not as something that has happened",
            "hint": "name it from the buyer's side in the past tense, e.g. 'Proposal sent'",
        }
        assert rows[1]["field"] == "crm"
        assert rows[1]["severity"] == "error"
        assert (rows[1]["line"], rows[1]["column"]) == (2, 6)

    def test_json_of_clean_files_is_an_empty_list(self) -> None:
        result = run("validate", "--json", "--strict", str(CONFIGS / "acme.yaml"))
        assert result.exit_code == 0
        assert json.loads(result.stdout) == []

    def test_missing_path_is_reported_without_traceback(self) -> None:
        result = run("validate", "nope.yaml")
        assert result.exit_code == 1
        assert "error: nope.yaml: no such file or folder" in result.stderr
        assert isinstance(result.exception, SystemExit)

    def test_token_typed_into_a_blueprint_is_not_printed(self) -> None:
        result = run("--debug", "validate", str(FIXTURES / "token_in_token_env.yaml"))
        assert result.exit_code == 1
        assert "token_env: must be the NAME of an environment variable" in result.output
        assert "pat-na1" not in result.output

    def test_silenced_findings_are_counted(self) -> None:
        result = run("validate", str(CONFIGS / "brightwave.yaml"))
        assert "1 silenced" in result.output


class TestEntryPoint:
    """`main()` is what the console script runs: its exit status must match the outcome."""

    @pytest.mark.parametrize(("args", "code"), [
        (["validate", str(CONFIGS / "acme.yaml")], 0),
        (["validate", str(FIXTURES / "bad_key.yaml")], 1),
        (["validate", "--strict", "warned.yaml"], 1),
        (["validate", "warned.yaml"], 0),
    ])
    def test_exit_codes(self, isolated: Path, args: list[str], code: int,
                        capsys: pytest.CaptureFixture[str]) -> None:
        write(isolated / "warned.yaml", WARNING_BLUEPRINT)
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == code
        assert "Traceback" not in capsys.readouterr().err


class TestInit:
    @pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
    def test_scaffold_passes_strict_validation(self, isolated: Path, crm: str) -> None:
        result = run("init", "acme", "--crm", crm)
        assert result.exit_code == 0, result.output
        path = isolated / "configs" / "acme.yaml"
        text = path.read_text(encoding="utf-8")
        assert f"crm: {crm}" in text
        assert "label: Needs-assessment meeting booked" in text
        assert "outcome: won" in text
        assert "outcome: lost" in text
        assert text.count("\n#") > 10  # the fields are explained
        checked = run("validate", "--strict", str(path))
        assert checked.exit_code == 0, checked.output
        assert "ok (" in checked.output
        assert ", 1 note" not in checked.output

    def test_configs_dir_option_and_setting(self, isolated: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        assert run("init", "acme", "--crm", "hubspot", "--configs-dir", "elsewhere").exit_code == 0
        assert (isolated / "elsewhere" / "acme.yaml").is_file()
        monkeypatch.setenv("CRMSYNC_CONFIGS_DIR", "clients")
        assert run("init", "beta", "--crm", "pipedrive").exit_code == 0
        assert (isolated / "clients" / "beta.yaml").is_file()

    def test_refuses_to_overwrite(self, isolated: Path) -> None:
        path = write(isolated / "configs" / "acme.yaml", "# hand-edited\n")
        result = run("init", "acme", "--crm", "hubspot")
        assert result.exit_code == 1
        assert "configs/acme.yaml: already exists" in result.stderr
        assert path.read_text(encoding="utf-8") == "# hand-edited\n"

    def test_refuses_a_yml_twin(self, isolated: Path) -> None:
        write(isolated / "configs" / "acme.yml", "# hand-edited\n")
        assert run("init", "acme", "--crm", "hubspot").exit_code == 1
        assert not (isolated / "configs" / "acme.yaml").exists()

    def test_client_name_must_be_a_key(self, isolated: Path) -> None:
        result = run("init", "Acme GmbH", "--crm", "hubspot")
        assert result.exit_code == 1
        assert "try 'acme_gmbh'" in result.stderr
        assert not (isolated / "configs").exists()

    def test_crm_is_required_and_checked(self) -> None:
        # Usage errors exit 1, not click's 2 (which `diff` uses for "changes pending").
        assert run("init", "acme").exit_code == 1
        result = run("init", "acme", "--crm", "salesforce")
        assert result.exit_code == 1
        assert "hubspot" in result.output


@pytest.mark.parametrize("args", [[], ["validate"], ["init"]])
def test_help_explains_with_an_example(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert "crmsync" in result.output
    if args:
        assert "Examples:" in result.output
        assert f"crmsync {args[0]} " in result.output


def test_group_help_lists_the_commands() -> None:
    result = run("--help")
    assert "validate" in result.output
    assert "init" in result.output
