"""Loader errors: each invalid fixture file with the exact finding (line, column, field, text)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.blueprint.check import check_files
from crmsync.blueprint.loader import (
    expand_paths,
    load_blueprint,
    load_blueprints,
    parse_blueprint,
    read_blueprint,
)
from crmsync.blueprint.models import Blueprint
from crmsync.cli import cli
from crmsync.errors import ConfigError, Finding

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = Path(__file__).parents[2] / "configs"

# fixture file -> (line, column, field, message) of its one finding
SINGLE_ERRORS = [
    ("invalid_yaml.yaml", 8, 24, "",
     "unexpected ':' — put quotes around a value that contains ': ', or check the indentation"),
    ("tab_indent.yaml", 5, 1, "", "tab character: indent with spaces, not tabs"),
    ("unclosed_bracket.yaml", 7, 11, "",
     "invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence started on "
     "line 6)"),
    ("duplicate_field.yaml", 10, 9, "pipelines[0].stages[0].probability",
     "duplicate field 'probability' (already set on line 9); YAML would silently keep only the "
     "last one"),
    ("unknown_field.yaml", 9, 9, "pipelines[0].stages[0].probabilty",
     "unknown field 'probabilty'; did you mean 'probability'?"),
    ("unknown_field_no_match.yaml", 3, 1, "colour", "unknown field 'colour'"),
    ("missing_field.yaml", 10, 9, "pipelines[0].stages[1].label",
     "missing required field 'label'"),
    ("probability_range.yaml", 16, 22, "pipelines[0].stages[2].probability",
     "must be a number between 0 and 1 (got 1.5)"),
    ("wrong_crm.yaml", 2, 6, "crm",
     "must be one of 'hubspot' or 'pipedrive' (got 'hubspt'); did you mean 'hubspot'?"),
    ("bad_key.yaml", 7, 14, "pipelines[0].stages[0].key",
     "must be a key: lowercase letters, digits and underscores, starting with a letter "
     "(got 'Proposal Sent')"),
    ("yes_no_label.yaml", 8, 16, "pipelines[0].stages[0].label",
     "must be text, but YAML reads this as a yes/no value"),
    ("not_mapping.yaml", 1, 1, "",
     "the file must be a mapping of fields (client:, crm:, pipelines: …), not a list"),
    ("bad_move_deals_to.yaml", 12, 24, "pipelines[0].retired_stages[0].move_deals_to",
     "must name a stage key of this pipeline ('proposal_snt' is not one); did you mean "
     "'proposal_sent'?"),
    ("retired_without_key.yaml", 11, 9, "pipelines[0].retired_stages[0]",
     "a retired stage needs a key or a label, so its deals can be found"),
    ("duplicate_stage_key.yaml", 10, 14, "pipelines[0].stages[1].key",
     "stage key 'proposal_sent' is already used by stages[0] of this pipeline; keys must be "
     "unique within a pipeline"),
    ("no_stages.yaml", 6, 13, "pipelines[0].stages", "needs at least 1 stage"),
    ("empty.yaml", None, None, "", "the file is empty"),
    ("two_documents.yaml", 3, 1, "",
     "invalid YAML: expected a single document in the stream, but found another document"),
    # Odd values: each one a finding of its own file, never a crash (issue 7).
    ("impossible_date.yaml", 11, 22, "pipelines[0].stages[0].description",
     "'2025-02-29' looks like a date but is not one (day is out of range for month)"),
    ("tagged_int.yaml", 9, 22, "pipelines[0].stages[0].probability",
     "cannot read 'abc' as a whole number"),
    ("tagged_bool.yaml", 11, 22, "pipelines[0].stages[0].description",
     "cannot read 'maybe' as true or false"),
    ("tagged_timestamp.yaml", 11, 22, "pipelines[0].stages[0].description",
     "cannot read 'nope' as a date"),
    ("huge_integer.yaml", 11, 22, "pipelines[0].stages[0].description",
     "a number with 4301 digits is too long to read"),
    ("huge_probability.yaml", 9, 22, "pipelines[0].stages[0].probability",
     "must be a number between 0 and 1 (got a number with 401 digits)"),
    ("lone_surrogate.yaml", 8, 16, "pipelines[0].stages[0].label",
     "contains \\ud800, half of a UTF-16 surrogate pair, which is not a character"),
    ("deep_nesting.yaml", 11, 49, "pipelines[0].stages[0].description",
     "nested more than 32 levels deep; a blueprint needs far fewer"),
    ("control_character.yaml", 8, 25, "", "control character \\x1b is not allowed in YAML"),
]


def _findings(name: str) -> list[Finding]:
    with pytest.raises(ConfigError) as caught:
        read_blueprint(FIXTURES / name)
    return caught.value.findings


@pytest.mark.parametrize(("name", "line", "column", "field", "message"), SINGLE_ERRORS,
                         ids=[row[0] for row in SINGLE_ERRORS])
def test_each_error_class_points_at_its_line_and_column(
    name: str, line: int | None, column: int | None, field: str, message: str
) -> None:
    findings = _findings(name)
    assert [(f.line, f.column, f.field, f.message) for f in findings] == [
        (line, column, field, message)
    ]
    assert findings[0].path == str(FIXTURES / name)
    assert findings[0].severity == "error"


def test_message_reads_file_line_column_field_reason() -> None:
    (finding,) = _findings("probability_range.yaml")
    assert str(finding) == (
        f"{FIXTURES / 'probability_range.yaml'}:16:22 pipelines[0].stages[2].probability: "
        "must be a number between 0 and 1 (got 1.5)"
    )


def test_unknown_field_without_close_match_lists_known_fields() -> None:
    (finding,) = _findings("unknown_field_no_match.yaml")
    assert finding.hint is not None
    assert "client, crm, currency" in finding.hint


def test_misspelt_field_is_not_also_reported_missing() -> None:
    messages = [f.message for f in _findings("unknown_field.yaml")]
    assert not any("missing" in m for m in messages)


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    findings = _findings("many_errors.yaml")
    assert [(f.line, f.column, f.field) for f in findings] == [
        (1, 9, "client"),
        (3, 11, "currency"),
        (10, 9, "pipelines[0].stages[0].probabilty"),
        (13, 22, "pipelines[0].stages[1].probability"),
        (14, 25, "pipelines[0].stages[1].rot_after_days"),
    ]
    assert findings[3].hint == "probability is a fraction: write 50% as 0.5"
    assert findings[0].hint == "for example 'acme'"
    assert findings[4].message == "must be a whole number between 1 and 3650 (got 2.5)"


def test_config_error_text_lists_every_finding() -> None:
    with pytest.raises(ConfigError) as caught:
        read_blueprint(FIXTURES / "many_errors.yaml")
    assert str(caught.value).count("\n") == 4


def test_a_token_typed_into_token_env_is_never_echoed() -> None:
    (finding,) = _findings("token_in_token_env.yaml")
    assert (finding.line, finding.column, finding.field) == (3, 12, "token_env")
    assert "never the token itself" in finding.message
    assert "pat-na1" not in str(finding)
    assert "pat-na1" not in (finding.hint or "")


def test_missing_top_level_field_points_at_the_document() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_blueprint("crm: hubspot\npipelines:\n  - key: p\n    label: P\n"
                        "    stages: [{key: won, label: Won, probability: 1}]\n", "x.yaml")
    (finding,) = caught.value.findings
    assert (finding.line, finding.column, finding.field) == (1, 1, "client")
    assert finding.message == "missing required field 'client'"


def test_model_rejects_duplicate_keys_even_without_the_loader() -> None:
    stage = {"key": "a", "label": "A", "probability": 1, "outcome": "won"}
    data = {"client": "x", "crm": "hubspot",
            "pipelines": [{"key": "p", "label": "P", "stages": [stage, stage]}]}
    with pytest.raises(ValueError, match="stage key 'a' is already used"):
        Blueprint.model_validate(data)


def test_valid_file_loads_with_positions() -> None:
    loaded = read_blueprint(CONFIGS / "acme.yaml")
    assert loaded.blueprint.client == "acme"
    assert loaded.blueprint.pipelines[0].stages[0].label == "Needs-assessment meeting booked"
    line, column = loaded.source.position(("pipelines", 0, "stages", 0, "label"))
    assert line is not None
    assert column is not None
    text_line = (CONFIGS / "acme.yaml").read_text(encoding="utf-8").splitlines()[line - 1]
    assert text_line[column - 1:] == "Needs-assessment meeting booked"


def test_load_blueprint_returns_the_model() -> None:
    assert isinstance(load_blueprint(CONFIGS / "nordwind.yaml"), Blueprint)


def test_load_blueprints_collects_errors_of_every_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_blueprints([FIXTURES / "wrong_crm.yaml", CONFIGS / "acme.yaml",
                         FIXTURES / "bad_key.yaml"])
    paths = {Path(f.path).name for f in caught.value.findings}
    assert paths == {"wrong_crm.yaml", "bad_key.yaml"}


def test_load_blueprints_rejects_one_client_in_two_files(tmp_path: Path) -> None:
    copy = tmp_path / "acme_copy.yaml"
    copy.write_text((CONFIGS / "acme.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_blueprints([CONFIGS / "acme.yaml", copy])
    (finding,) = caught.value.findings
    assert finding.path == str(copy)
    assert finding.field == "client"
    assert "already described in" in finding.message


def test_load_blueprints_of_the_examples() -> None:
    clients = [b.client for b in load_blueprints(expand_paths([], CONFIGS))]
    assert clients == sorted(clients)
    assert {"acme", "nordwind", "brightwave"} <= set(clients)


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_blueprint(tmp_path / "nope.yaml")
    assert caught.value.findings[0].path == str(tmp_path / "nope.yaml")


def test_non_utf8_file_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("client: acme\ncrm: hubspot\n# M\xfcller\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        read_blueprint(path)
    finding = caught.value.findings[0]
    assert (finding.line, finding.column) == (3, 4)
    assert "0xfc" in finding.message


def test_a_folder_read_as_a_file_is_named_as_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "acme.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        read_blueprint(folder)


class TestExpandPaths:
    def test_no_paths_means_every_yaml_in_the_configs_dir(self, tmp_path: Path) -> None:
        for name in ("b.yaml", "a.yml", "notes.txt", "c.yaml"):
            (tmp_path / name).write_text("", encoding="utf-8")
        assert [p.name for p in expand_paths([], tmp_path)] == ["a.yml", "b.yaml", "c.yaml"]

    def test_a_folder_expands_to_its_yaml_files_and_a_file_to_itself(self, tmp_path: Path
                                                                     ) -> None:
        folder = tmp_path / "clients"
        folder.mkdir()
        (folder / "z.yaml").write_text("", encoding="utf-8")
        single = tmp_path / "single.yaml"
        single.write_text("", encoding="utf-8")
        assert expand_paths([single, folder], tmp_path / "unused") == [single, folder / "z.yaml"]

    def test_missing_paths_are_named_all_at_once(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            expand_paths([tmp_path / "a.yaml", tmp_path / "b.yaml"], tmp_path)
        assert [Path(f.path).name for f in caught.value.findings] == ["a.yaml", "b.yaml"]
        assert "no such file" in str(caught.value)

    def test_empty_configs_dir_is_an_error_with_a_hint(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            expand_paths([], tmp_path)
        assert "crmsync init" in (caught.value.findings[0].hint or "")

    def test_duplicates_are_listed_once(self, tmp_path: Path) -> None:
        path = tmp_path / "a.yaml"
        path.write_text("", encoding="utf-8")
        assert expand_paths([path, tmp_path], tmp_path) == [path]


# --- hostile or odd input (issue 7): findings, never a crash, never a hang ----------------------


def test_anchors_and_aliases_are_refused_at_their_fields() -> None:
    findings = _findings("anchor_and_alias.yaml")
    assert [(f.line, f.column, f.field, f.message) for f in findings] == [
        (8, 16, "pipelines[0].stages[0].label",
         "YAML anchor &won: anchors (&) and aliases (*) are not allowed in a blueprint"),
        (11, 22, "pipelines[0].stages[0].description",
         "YAML alias *won: anchors (&) and aliases (*) are not allowed in a blueprint"),
    ]
    assert findings[1].hint == "write the value out where it is used"


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    # 9 levels of 9 references: expanded, 9**9 strings (gigabytes); refused, a few findings.
    findings = _findings("alias_bomb.yaml")
    refused = [f for f in findings if "anchors (&) and aliases (*)" in f.message]
    assert [(f.line, f.message.split(":")[0]) for f in refused[:3]] == [
        (1, "YAML anchor &a0"), (2, "YAML anchor &a1"), (2, "YAML alias *a0")]
    assert len(refused) == 19  # ten anchors, and the first use of each of nine names
    assert len(findings) < 40


def test_a_bomb_big_enough_to_exhaust_memory_is_a_finding_too() -> None:
    # The 519-byte shape from issue 7: expanded, 10**10 strings; a MemoryError before.
    lines = ['a0: &a0 ["' + '","'.join(["lol"] * 10) + '"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(lines)
    with pytest.raises(ConfigError) as caught:
        parse_blueprint(text, "bomb.yaml")
    assert any(f.message.startswith("YAML alias *a8") for f in caught.value.findings)


def test_a_self_referencing_alias_is_a_finding() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_blueprint("client: &me [*me]\n", "loop.yaml")
    assert [(f.field, f.message.split(":")[0]) for f in caught.value.findings
            if f.message.startswith("YAML")] == [
        ("client", "YAML anchor &me"), ("client[0]", "YAML alias *me")]


def test_a_control_character_is_placed_on_its_line_even_in_a_long_file() -> None:
    text = "client: acme\ncrm: hubspot\n" + "# note\n" * 40 + "currency: E\x07UR\n"
    with pytest.raises(ConfigError) as caught:
        parse_blueprint(text, "bell.yaml")
    (finding,) = caught.value.findings
    assert (finding.line, finding.column) == (43, 12)
    assert finding.message == "control character \\x07 is not allowed in YAML"


def test_a_lone_surrogate_in_a_field_name_is_not_echoed_raw() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_blueprint('client: acme\n"bad\\udc00": 1\n', "key.yaml")
    (finding, *_) = caught.value.findings
    assert (finding.line, finding.column) == (2, 1)
    assert finding.message == "'bad\\udc00' is not a field name"
    str(caught.value).encode("utf-8")  # printable: no surrogate left in the message


def test_a_value_the_checks_did_not_foresee_still_becomes_a_finding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Blueprint, "model_validate", explode)
    with pytest.raises(ConfigError) as caught:
        read_blueprint(CONFIGS / "acme.yaml")
    (finding,) = caught.value.findings
    assert finding.path == str(CONFIGS / "acme.yaml")
    assert finding.message.startswith("cannot read this file (RecursionError: maximum recursion")


@pytest.mark.parametrize("name", ["impossible_date.yaml", "tagged_bool.yaml", "huge_integer.yaml",
                                  "huge_probability.yaml", "lone_surrogate.yaml",
                                  "deep_nesting.yaml", "control_character.yaml",
                                  "alias_bomb.yaml"])
def test_one_odd_file_never_stops_the_others(name: str) -> None:
    reports = check_files([FIXTURES / name, CONFIGS / "acme.yaml"])
    assert [r.failed for r in reports] == [True, False]
    assert reports[0].findings[0].line is not None
    assert reports[1].loaded is not None
    "\n".join(str(f) for f in reports[0].findings).encode("utf-8")  # printable as it stands
    with pytest.raises(ConfigError) as caught:
        load_blueprints([FIXTURES / name, CONFIGS / "acme.yaml"])
    assert {f.path for f in caught.value.findings} == {str(FIXTURES / name)}


def test_validate_reports_the_bad_file_at_its_line_and_still_checks_the_good_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "acme.yaml").write_text((CONFIGS / "acme.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    (configs / "broken.yaml").write_text(
        (FIXTURES / "impossible_date.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "configs"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "configs/acme.yaml: ok" in result.output
    assert ("configs/broken.yaml:11:22 pipelines[0].stages[0].description: '2025-02-29' looks "
            "like a date but is not one") in result.output
    assert "Checked 2 files: 1 with errors" in result.output


class TestOddEntriesInAFolder:
    """Whatever sits in configs/ under a blueprint's name is checked or reported, never
    skipped without a word."""

    def test_upper_case_suffixes_are_blueprints_too(self, tmp_path: Path) -> None:
        for name in ("UPPER.YAML", "Mixed.Yml", "notes.txt"):
            (tmp_path / name).write_text("", encoding="utf-8")
        assert [p.name for p in expand_paths([], tmp_path)] == ["Mixed.Yml", "UPPER.YAML"]

    def test_a_dangling_symlink_is_reported_with_its_target(self, tmp_path: Path) -> None:
        (tmp_path / "gone.yaml").symlink_to(tmp_path / "moved" / "gone.yaml")
        (path,) = expand_paths([], tmp_path)
        assert path.name == "gone.yaml"
        with pytest.raises(ConfigError) as caught:
            read_blueprint(path)
        (finding,) = caught.value.findings
        assert finding.message == (
            f"a symbolic link to {tmp_path / 'moved' / 'gone.yaml'}, which does not exist")

    def test_a_dangling_symlink_named_on_the_command_line_is_not_called_missing(
            self, tmp_path: Path) -> None:
        link = tmp_path / "acme.yaml"
        link.symlink_to(tmp_path / "nowhere.yaml")
        assert expand_paths([link], tmp_path) == [link]

    def test_a_folder_named_like_a_blueprint_is_an_error_of_its_own(self, tmp_path: Path
                                                                    ) -> None:
        (tmp_path / "dir.yaml").mkdir()
        (tmp_path / "acme.yaml").write_text(
            (CONFIGS / "acme.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        reports = check_files(expand_paths([], tmp_path))
        assert [(Path(r.path).name, r.failed) for r in reports] == [
            ("acme.yaml", False), ("dir.yaml", True)]
        assert reports[1].findings[0].message == "is a folder, not a blueprint file"

    def test_emacs_lock_files_are_not_blueprints(self, tmp_path: Path) -> None:
        (tmp_path / "acme.yaml").write_text("", encoding="utf-8")
        (tmp_path / ".#acme.yaml").symlink_to("user@host.1234:1700000000")
        assert [p.name for p in expand_paths([], tmp_path)] == ["acme.yaml"]

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
    def test_a_fifo_is_reported_without_being_opened(self, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe.yaml"
        os.mkfifo(fifo)
        # Should the loader open the FIFO after all, this writer gives it something to read
        # (so the test fails on the message instead of hanging).
        writer = threading.Thread(target=fifo.write_text, args=("client: acme\n",), daemon=True)
        writer.start()
        try:
            assert expand_paths([], tmp_path) == [fifo]
            with pytest.raises(ConfigError) as caught:
                read_blueprint(fifo)
            (finding,) = caught.value.findings
            assert finding.message == (
                "is a FIFO (named pipe), not a blueprint file; it was not read")
        finally:
            # Release the writer: open the read end without blocking, then drain it.
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(timeout=10)
            os.close(reader)
        assert not writer.is_alive()


@pytest.mark.parametrize("name", ["alias_bomb.yaml", "impossible_date.yaml", "huge_integer.yaml"])
def test_diff_still_plans_the_other_clients_when_one_file_is_odd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str, name: str) -> None:
    for variable in [v for v in os.environ if v.startswith("CRMSYNC_") or v.endswith("_TOKEN")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_BASE_URL", sandbox)
    monkeypatch.setenv("CRMSYNC_PIPEDRIVE_TOKEN", "sandbox-token")
    monkeypatch.setenv("CRMSYNC_MAX_RETRIES", "0")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "nordwind.yaml").write_text(
        (CONFIGS / "nordwind.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (configs / name).write_text((FIXTURES / name).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["diff"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "+ pipeline 'Neukunden' (neukunden) with 5 stages" in result.stdout
    assert "nordwind (pipedrive): 1 change pending" in result.stdout
    assert f"configs/{name}:1" in result.output  # the odd file, at a line
