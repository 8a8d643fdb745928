"""Lint rules: every rule fires on a bad case and stays quiet on a near, good one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmsync.blueprint.lint import (
    RULES,
    imperative_fix,
    is_participle,
    lint,
    run_lint,
    strict,
)
from crmsync.blueprint.loader import LoadedBlueprint, parse_blueprint
from crmsync.errors import Finding

Stage = tuple[Any, ...]  # (label, probability[, outcome[, extra fields]])

OPEN: list[Stage] = [("Meeting booked", 0.1), ("Needs assessed", 0.3), ("Proposal sent", 0.5)]
WON: Stage = ("Contract signed", 1.0, "won")
LOST: Stage = ("Lost", 0.0, "lost")
GOOD: list[Stage] = [*OPEN, WON, LOST]


def blueprint_text(stages: list[Stage], *, crm: str = "hubspot", language: str | None = "en",
                   head: str = "", pipeline: str = "", more_pipelines: str = "") -> str:
    """YAML of a one-pipeline blueprint; a stage is (label, probability, outcome?, extra?)."""
    lines = ["client: acme", f"crm: {crm}"]
    if language:
        lines.append(f"language: {language}")
    lines += [*filter(None, head.splitlines()), "pipelines:", "  - key: sales",
              "    label: Sales", *filter(None, pipeline.splitlines()), "    stages:"]
    for i, (label, probability, *rest) in enumerate(stages):
        lines += [f"      - key: s{i}", f"        label: {json.dumps(label, ensure_ascii=False)}",
                  f"        probability: {probability}"]
        if rest and rest[0]:
            lines.append(f"        outcome: {rest[0]}")
        if len(rest) > 1:
            lines += [f"        {line}" for line in rest[1].splitlines()]
    return "\n".join(lines) + "\n" + more_pipelines


def load(text: str) -> LoadedBlueprint:
    return parse_blueprint(text, "acme.yaml")


def findings_of(text: str) -> list[Finding]:
    loaded = load(text)
    return lint(loaded.blueprint, loaded.source)


def rules_of(text: str) -> list[str | None]:
    return [f.rule for f in findings_of(text)]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def with_stage(index: int, stage: Stage, stages: list[Stage] = GOOD) -> list[Stage]:
    return [stage if i == index else s for i, s in enumerate(stages)]


SECOND_PIPELINE = """\
  - key: renewals
    label: sales
    stages:
      - key: renewed
        label: Renewed
        probability: 1.0
        outcome: won
"""

# rule -> (blueprint that makes it fire, a near blueprint that must not)
CASES: dict[str, tuple[str, str]] = {
    "past-tense": (
        blueprint_text(with_stage(1, ("Onboarding", 0.3))),
        blueprint_text(with_stage(1, ("Onboarding completed", 0.3))),
    ),
    "imperative-stage": (
        blueprint_text(with_stage(2, ("Send proposal", 0.5))),
        blueprint_text(with_stage(1, ("Call scheduled", 0.3))),
    ),
    "passive-stage": (
        blueprint_text(with_stage(1, ("Thinking it over", 0.3))),
        blueprint_text(with_stage(1, ("Options compared", 0.3))),
    ),
    "probability-order": (
        blueprint_text([("Meeting booked", 0.1), ("Needs assessed", 0.5),
                        ("Proposal sent", 0.3), WON, LOST]),
        blueprint_text([("Meeting booked", 0.1), ("Needs assessed", 0.3),
                        ("Proposal sent", 0.3), WON, LOST]),
    ),
    "outcome-count": (
        blueprint_text([*OPEN, LOST]),
        blueprint_text([*OPEN, WON]),
    ),
    "outcome-placement": (
        blueprint_text([*OPEN[:2], LOST, OPEN[2], WON]),
        blueprint_text([*OPEN, LOST, WON]),
    ),
    "outcome-probability": (
        blueprint_text([*OPEN, ("Contract signed", 0.9, "won"), LOST]),
        blueprint_text(GOOD),
    ),
    "duplicate-label": (
        blueprint_text(with_stage(2, ("needs ASSESSED", 0.5))),
        blueprint_text(with_stage(2, ("Proposal sent", 0.5, None,
                                      "previous_labels: [Proposal Sent, Offer sent]"))),
    ),
    "hubspot-probability-step": (
        blueprint_text(with_stage(1, ("Needs assessed", 0.25))),
        blueprint_text(with_stage(1, ("Needs assessed", 0.25)), crm="pipedrive"),
    ),
    "hubspot-stage-limit": (
        blueprint_text([(f"Step {i} done", 0.5) for i in range(99)] + [WON, LOST]),
        blueprint_text([(f"Step {i} done", 0.5) for i in range(98)] + [WON, LOST]),
    ),
    "hubspot-rot-ignored": (
        blueprint_text(with_stage(0, ("Meeting booked", 0.1, None, "rot_after_days: 7"))),
        blueprint_text(with_stage(0, ("Meeting booked", 0.1, None, "rot_after_days: 7")),
                       crm="pipedrive"),
    ),
    "pipedrive-probability-percent": (
        blueprint_text(with_stage(1, ("Needs assessed", 0.255)), crm="pipedrive"),
        blueprint_text(with_stage(1, ("Needs assessed", 0.25)), crm="pipedrive"),
    ),
    "non-english-labels": (
        blueprint_text(with_stage(1, ("Besoins évalués", 0.3)), language="fr"),
        blueprint_text(GOOD, language=None),
    ),
    "unknown-silence-rule": (
        blueprint_text(GOOD, head="silence:\n  - {rule: past-tens, reason: own words}"),
        blueprint_text(GOOD, head="silence:\n  - {rule: past-tense, reason: own words}"),
    ),
}


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires(rule: str) -> None:
    assert rule in rules_of(CASES[rule][0])


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_stays_quiet_on_the_near_case(rule: str) -> None:
    assert rule not in rules_of(CASES[rule][1])


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive"])
def test_a_method_conform_pipeline_is_clean(crm: str) -> None:
    assert findings_of(blueprint_text(GOOD, crm=crm)) == []


def test_findings_point_at_the_offending_label_with_a_hint() -> None:
    text = blueprint_text(with_stage(2, ("Send proposal", 0.5)))
    (finding,) = findings_of(text)
    assert (finding.path, finding.line, finding.column) == (
        "acme.yaml", line_of(text, "Send proposal"), 16)
    assert finding.field == "pipelines[0].stages[2].label"
    assert finding.severity == "warning"
    assert finding.rule == "imperative-stage"
    assert finding.hint == "name it from the buyer's side in the past tense, e.g. 'Proposal sent'"


def test_only_the_most_specific_wording_rule_is_reported() -> None:
    text = blueprint_text(with_stage(1, ("Waiting for the decision", 0.3)))
    assert rules_of(text) == ["passive-stage"]


def test_passive_words_in_outcome_stages_are_not_flagged() -> None:
    text = blueprint_text([*OPEN, WON, ("Lost while comparing", 0.0, "lost")])
    assert "passive-stage" not in rules_of(text)


def test_probability_order_points_at_the_drop_only() -> None:
    text = CASES["probability-order"][0]
    (finding,) = findings_of(text)
    assert finding.field == "pipelines[0].stages[2].probability"
    assert finding.line == line_of(text, "probability: 0.3")
    assert "lower than 0.5" in finding.message


def test_outcome_count_missing_won_points_at_the_pipeline() -> None:
    text = CASES["outcome-count"][0]
    (finding,) = findings_of(text)
    assert finding.line == line_of(text, "- key: sales")
    assert "no won stage" in finding.message


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_outcome_count_flags_a_second_outcome(outcome: str) -> None:
    extra = WON if outcome == "won" else LOST
    second = (f"Also {extra[0].lower()}", extra[1], outcome)
    findings = findings_of(blueprint_text([*GOOD, second]))
    assert [(f.rule, f.field) for f in findings] == [
        ("outcome-count", "pipelines[0].stages[5].outcome")]


def test_lost_probability_must_be_zero() -> None:
    text = blueprint_text([*OPEN, WON, ("Lost", 0.1, "lost")])
    (finding,) = findings_of(text)
    assert finding.rule == "outcome-probability"
    assert finding.message == "a lost stage should have probability 0 (got 0.1)"


def test_duplicate_labels_are_errors_even_without_strict() -> None:
    (finding,) = findings_of(CASES["duplicate-label"][0])
    assert finding.severity == "error"
    assert "stages[1]" in finding.message


def test_previous_label_colliding_with_another_stage_is_a_duplicate() -> None:
    text = blueprint_text(with_stage(2, ("Proposal sent", 0.5, None,
                                         "previous_labels: [Needs Assessed]")))
    (finding,) = findings_of(text)
    assert finding.rule == "duplicate-label"
    assert finding.field == "pipelines[0].stages[2].previous_labels[0]"


def test_duplicate_pipeline_labels() -> None:
    text = blueprint_text(GOOD, more_pipelines=SECOND_PIPELINE)
    (finding,) = findings_of(text)
    assert (finding.rule, finding.field) == ("duplicate-label", "pipelines[1].label")


def test_hubspot_step_hint_names_the_neighbours() -> None:
    (finding,) = findings_of(CASES["hubspot-probability-step"][0])
    assert finding.hint == "use 0.2 or 0.3"


def test_floating_point_noise_is_not_a_step_violation() -> None:
    stages = [("Meeting booked", 0.1 + 0.2), ("Proposal sent", 0.7), WON, LOST]
    assert findings_of(blueprint_text(stages)) == []
    assert findings_of(blueprint_text([("Meeting booked", 0.29), WON], crm="pipedrive")) == []


def test_hubspot_rot_note_is_one_info_per_file() -> None:
    rot = "rot_after_days: 7"
    text = blueprint_text([("Meeting booked", 0.1, None, rot), ("Needs assessed", 0.3, None, rot),
                           WON, LOST])
    (finding,) = findings_of(text)
    assert finding.severity == "info"
    assert "2 stage(s)" in finding.message
    assert finding.line == line_of(text, rot)


def test_hubspot_stage_limit_is_an_error_that_cannot_be_silenced() -> None:
    text = blueprint_text([(f"Step {i} done", 0.5) for i in range(99)] + [WON, LOST],
                          head="silence:\n  - {rule: hubspot-stage-limit, reason: want them}")
    (finding,) = findings_of(text)
    assert (finding.rule, finding.severity) == ("hubspot-stage-limit", "error")
    assert finding.message == "101 stages; HubSpot allows at most 100 per pipeline"
    assert finding.line == line_of(text, "- key: s0")


def test_a_hundred_stages_fit_hubspot() -> None:
    stages = [(f"Step {i} done", 0.5) for i in range(98)] + [WON, LOST]
    assert findings_of(blueprint_text(stages)) == []


class TestNonEnglish:
    def test_declared_language_skips_wording_rules_with_one_note(self) -> None:
        stages = [("Envoyer la proposition", 0.1), ("Il réfléchit", 0.3), WON, LOST]
        text = blueprint_text(stages, language="fr")
        (finding,) = findings_of(text)
        assert (finding.rule, finding.severity) == ("non-english-labels", "info")
        assert finding.line == line_of(text, "language: fr")
        assert "the checks cover `en`, `uk`, `de`" in (finding.hint or "")

    def test_non_ascii_labels_without_language_are_taken_as_non_english(self) -> None:
        stages = [("Зустріч заплановано", 0.1), ("Пропозицію надіслано", 0.5),
                  ("Договір підписано", 1.0, "won"), ("Втрачено", 0.0, "lost")]
        text = blueprint_text(stages, language=None)
        (finding,) = findings_of(text)
        assert finding.rule == "non-english-labels"
        assert finding.line == line_of(text, "Зустріч заплановано")
        assert "Зустріч заплановано" in finding.message
        assert finding.hint == "declare `language: uk` to run the Ukrainian checks"

    @pytest.mark.parametrize(("label", "hint"), [
        ("Angebot übermittelt", "declare `language: de` to run the German checks"),
        ("Предложение отправлено", "declare the labels' `language:`"),
        ("Proposition envoyée", "declare the labels' `language:`"),
    ])
    def test_the_note_names_the_language_to_declare(self, label: str, hint: str) -> None:
        (finding,) = findings_of(blueprint_text(with_stage(1, (label, 0.3)), language=None))
        assert finding.rule == "non-english-labels"
        assert (finding.hint or "").startswith(hint)

    def test_umlauts_with_language_en_are_checked(self) -> None:
        text = blueprint_text(with_stage(1, ("Angebot übermittelt", 0.3)), language="en")
        assert rules_of(text) == ["past-tense"]

    def test_other_rules_still_run_for_non_english(self) -> None:
        stages = [("Besoins évalués", 0.5), ("Proposition envoyée", 0.3), WON, LOST]
        assert rules_of(blueprint_text(stages, language="fr")) == [
            "non-english-labels", "probability-order"]


WORDING_FIXTURES = Path(__file__).parent / "fixtures" / "wording"
WORDING_RULES = {"past-tense", "imperative-stage", "passive-stage"}
# Outcome stages to complete a pipeline, and the quote marks hints use, per language.
OUTCOMES = {"uk": (("Договір підписано", 1.0, "won"), ("Втрачено", 0.0, "lost")),
            "de": (("Vertrag unterschrieben", 1.0, "won"), ("Verloren", 0.0, "lost"))}
QUOTES = {"uk": "«{}»", "de": "„{}“"}


def wording_cases() -> list[Any]:
    cases = []
    for path in sorted(WORDING_FIXTURES.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")):
            cases.append(pytest.param(path.stem, entry, id=f"{path.stem}: {entry['label']}"))
    return cases


class TestWordingInUkrainianAndGerman:
    """The fixtures list labels that must pass and those each rule must flag."""

    @pytest.mark.parametrize(("language", "entry"), wording_cases())
    def test_fixture_label(self, language: str, entry: dict[str, Any]) -> None:
        outcome = entry.get("outcome")
        probability = {"won": 1.0, "lost": 0.0}.get(outcome, 0.1)
        stages = [(entry["label"], probability, outcome), *OUTCOMES[language]]
        findings = [f for f in findings_of(blueprint_text(stages, language=language))
                    if f.field == "pipelines[0].stages[0].label" and f.rule in WORDING_RULES]
        assert [f.rule for f in findings] == entry["expect"]
        if "fix" in entry:
            assert QUOTES[language].format(entry["fix"]) in (findings[0].hint or "")

    def test_fixtures_cover_every_rule_and_passing_labels(self) -> None:
        for language in ("uk", "de"):
            entries = [case.values[1] for case in wording_cases() if case.values[0] == language]
            expected = {rule for entry in entries for rule in entry["expect"]}
            assert expected == WORDING_RULES, language
            assert sum(1 for entry in entries if not entry["expect"]) >= 10, language

    def test_hints_are_in_the_files_language(self) -> None:
        stages = [("Думає", 0.1), ("Кваліфікація", 0.2), ("Надіслати пропозицію", 0.3),
                  *OUTCOMES["uk"]]
        findings = findings_of(blueprint_text(stages, language="uk"))
        assert [(f.rule, f.hint) for f in findings] == [
            ("passive-stage", "не робіть із цього етап: угода лишається на етапі останнього "
             "кроку, у якому ви брали участь (напр. «Пропозицію надіслано»); нагадайте про "
             "себе задачею"),
            ("past-tense", "назвіть етап у минулому часі з боку покупця — що вже сталося, напр. "
             "«Зустріч проведено», «Отримав пропозицію»"),
            ("imperative-stage", "назвіть етап у минулому часі з боку покупця, напр. "
             "«Пропозицію надіслано»"),
        ]
        assert findings[0].message == (
            "'Думає' is a passive buyer status: nobody can act on it, so it should not be a "
            "stage")
        assert "('Надіслати')" in findings[2].message

    def test_a_to_do_without_a_known_rewording_gets_the_example(self) -> None:
        stages = [("Referenzen einsammeln", 0.1), *OUTCOMES["de"]]
        (finding,) = findings_of(blueprint_text(stages, language="de"))
        assert finding.message == (
            "'Referenzen einsammeln' reads as a to-do ('einsammeln'), not as something that "
            "has happened")
        assert finding.hint == ("benennen Sie die Phase in der Vergangenheit aus Sicht des "
                                "Käufers, z. B. „Angebot übermittelt“")

    def test_german_in_progress_says_so(self) -> None:
        stages = [("Angebot wird erstellt", 0.1), *OUTCOMES["de"]]
        (finding,) = findings_of(blueprint_text(stages, language="de"))
        assert finding.message == (
            "'Angebot wird erstellt' says what is in progress ('wird'), not what has happened")

    def test_a_wording_rule_can_be_silenced_per_stage(self) -> None:
        silence = "silence: [{rule: past-tense, reason: the client's own word}]"
        stages = [("Кваліфікація", 0.1, None, silence), *OUTCOMES["uk"]]
        assert findings_of(blueprint_text(stages, language="uk")) == []

    @pytest.mark.parametrize("language", ["uk", "de"])
    def test_english_labels_are_not_checked_as_english(self, language: str) -> None:
        # The English rules do not run: "Send proposal" is not reworded as 'Proposal sent'.
        stages = [("Send proposal", 0.1), *OUTCOMES[language]]
        (finding,) = findings_of(blueprint_text(stages, language=language))
        assert "Proposal sent" not in (finding.hint or "")


class TestSilence:
    def test_file_level_silence_hides_the_rule_and_counts_it(self) -> None:
        text = blueprint_text(with_stage(1, ("Onboarding", 0.3)),
                              head="silence:\n  - {rule: past-tense, reason: client wording}")
        loaded = load(text)
        result = run_lint(loaded.blueprint, loaded.source)
        assert result.findings == []
        assert [f.rule for f in result.silenced] == ["past-tense"]

    def test_stage_level_silence_covers_only_that_stage(self) -> None:
        silence = "silence: [{rule: past-tense, reason: opened by a workflow}]"
        stages = [("Renewal due", 0.1, None, silence), ("Onboarding", 0.3), WON, LOST]
        findings = findings_of(blueprint_text(stages))
        assert [(f.rule, f.field) for f in findings] == [
            ("past-tense", "pipelines[0].stages[1].label")]

    def test_pipeline_level_silence(self) -> None:
        text = blueprint_text([*OPEN, LOST], pipeline=(
            "    silence: [{rule: outcome-count, reason: won deals move to delivery}]"))
        assert findings_of(text) == []

    def test_errors_cannot_be_silenced(self) -> None:
        text = blueprint_text(with_stage(2, ("Needs assessed", 0.5)),
                              head="silence:\n  - {rule: duplicate-label, reason: want it}")
        assert rules_of(text) == ["duplicate-label"]

    def test_a_silence_without_reason_is_a_schema_error(self) -> None:
        from crmsync.errors import ConfigError

        with pytest.raises(ConfigError, match="missing required field 'reason'"):
            load(blueprint_text(GOOD, head="silence:\n  - {rule: past-tense}"))

    def test_unknown_silence_rule_suggests_the_closest(self) -> None:
        (finding,) = findings_of(CASES["unknown-silence-rule"][0])
        assert finding.field == "silence[0].rule"
        assert finding.hint == "did you mean 'past-tense'?"


def test_strict_turns_warnings_into_errors_and_keeps_info() -> None:
    findings = [Finding("a", 1, 1, "f", "m", "warning"), Finding("a", 1, 1, "f", "m", "info"),
                Finding("a", 1, 1, "f", "m", "error")]
    assert [f.severity for f in strict(findings)] == ["error", "info", "error"]


def test_lint_works_without_positions() -> None:
    blueprint = load(blueprint_text(with_stage(1, ("Onboarding", 0.3)))).blueprint
    (finding,) = lint(blueprint)
    assert (finding.line, finding.field) == (None, "pipelines[0].stages[1].label")


@pytest.mark.parametrize(("label", "fix"), [
    ("Send proposal", "Proposal sent"),
    ("Schedule the demo call", "Demo call scheduled"),
    ("Follow up", "Followed up"),
    ("Follow-up with buyer", "Followed up with buyer"),
    ("Call client", "Client called"),
    ("Call scheduled", None),
    ("Contract signed", None),
    ("Proposal", None),
])
def test_imperative_fix(label: str, fix: str | None) -> None:
    assert imperative_fix(label) == fix


@pytest.mark.parametrize(("word", "expected"), [
    ("booked", True), ("sent", True), ("held", True), ("won", True), ("chosen", True),
    ("need", False), ("hundred", False), ("proposal", False), ("red", False), ("ed", False),
])
def test_is_participle(word: str, expected: bool) -> None:
    assert is_participle(word) is expected


@pytest.mark.parametrize("name", ["acme", "brightwave", "nordwind"])
def test_example_configs_pass_the_wording_rules_of_their_language(name: str) -> None:
    from crmsync.blueprint.loader import read_blueprint

    loaded = read_blueprint(Path(__file__).parents[2] / "configs" / f"{name}.yaml")
    result = run_lint(loaded.blueprint, loaded.source)
    assert result.findings == []
    assert loaded.blueprint.language in {"en", "de"}
