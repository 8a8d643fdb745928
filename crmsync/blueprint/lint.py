"""Lint rules of the sales-process method (see DESIGN.md), as a pure function over a blueprint.

Every rule has a short stable id. A finding can be silenced with its id, with a reason, at
file level (`silence:` at the top), for a pipeline, or for one stage. Findings of severity
`error` (duplicate labels, more stages than HubSpot takes) cannot be silenced: the CRM, or
matching by label when adopting an existing CRM, cannot work with them.

The wording rules run in English here and in Ukrainian and German (`crmsync.blueprint.wording`)
when the blueprint declares `language: uk` or `de`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from crmsync.blueprint import wording
from crmsync.blueprint.loader import SourceMap
from crmsync.blueprint.models import closest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from crmsync.blueprint.models import Blueprint, Loc, Pipeline, Silence, Stage
    from crmsync.errors import Finding


@dataclass(frozen=True)
class Rule:
    """One lint rule: its id, default severity and what it checks."""

    id: str
    severity: str
    summary: str
    wording: bool = False


RULES: dict[str, Rule] = {rule.id: rule for rule in (
    Rule("past-tense", "warning",
         "stage labels say what has happened, in the past tense from the buyer's side", True),
    Rule("imperative-stage", "warning",
         "stage labels are not to-dos ('Send proposal' -> 'Proposal sent')", True),
    Rule("passive-stage", "warning",
         "passive buyer statuses (thinking, comparing, waiting) are not stages", True),
    Rule("probability-order", "warning", "probabilities rise along the open stages"),
    Rule("outcome-count", "warning", "exactly one won and at most one lost stage per pipeline"),
    Rule("outcome-placement", "warning", "won and lost stages come after all open stages"),
    Rule("outcome-probability", "warning", "a won stage has probability 1, a lost stage 0"),
    Rule("duplicate-label", "error",
         "stage labels (and previous_labels) are unique within a pipeline, case-insensitively; "
         "pipeline labels are unique within a blueprint"),
    Rule("hubspot-probability-step", "warning", "HubSpot probabilities are steps of 0.1"),
    Rule("hubspot-stage-limit", "error", "HubSpot allows at most 100 stages per pipeline"),
    Rule("hubspot-rot-ignored", "info", "HubSpot has no rotting deals; rot_after_days is ignored"),
    Rule("pipedrive-probability-percent", "warning",
         "Pipedrive probabilities are whole percents"),
    Rule("non-english-labels", "info",
         "the wording rules are skipped for labels in a language they do not cover "
         "(they cover en, uk, de)"),
    Rule("unknown-silence-rule", "warning", "a silence entry names a rule that does not exist"),
)}

# Loader errors carry this id too (keys are identity, so duplicates are schema errors).
DUPLICATE_KEY_RULE = "duplicate-key"

HUBSPOT_MAX_STAGES = 100
# Languages the wording rules know; English is checked here, the others in `wording`.
WORDING_LANGUAGES = ("en", *wording.CHECKS)
LANGUAGE_NAMES = {"en": "English", "uk": "Ukrainian", "de": "German"}


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Irregular past participles (and a few regular ones not ending in -ed) that name a done event.
IRREGULAR_PARTICIPLES = _word_set("""
    arisen awoken been begun bought brought built caught chosen come cut dealt done drawn driven
    eaten fallen felt fought found forgotten given gone got gotten grown had heard held hit kept
    known laid led left lent let lost made meant met paid put quit read rung run said seen sent
    set shown shut sold sought spent spoken stood struck sworn taken taught told thrown
    undertaken understood upheld won withdrawn written
""")
# Words ending in -ed that are not participles.
NOT_PARTICIPLES = _word_set("bed breed embed feed hundred need red seed shed sled speed")

# Imperative openings and the participle for the suggested fix ("Send proposal" -> "Proposal
# sent"). Verbs that double as stage nouns ("contract", "demo", "quote") are left out.
IMPERATIVES: dict[str, str] = {
    "arrange": "arranged", "ask": "asked", "book": "booked", "call": "called",
    "check": "checked", "close": "closed", "collect": "collected", "confirm": "confirmed",
    "contact": "contacted", "create": "created", "deliver": "delivered", "discuss": "discussed",
    "do": "done", "draft": "drafted", "email": "emailed", "get": "received", "give": "given",
    "hold": "held", "invite": "invited", "make": "made", "meet": "met", "negotiate": "negotiated",
    "pitch": "pitched", "plan": "planned", "prepare": "prepared", "present": "presented",
    "qualify": "qualified", "remind": "reminded", "review": "reviewed", "run": "run",
    "schedule": "scheduled", "send": "sent", "sign": "signed", "submit": "submitted",
    "write": "written",
}
# Two-word openings: "Follow up" -> "Followed up".
PHRASAL_IMPERATIVES: dict[tuple[str, str], str] = {
    ("follow", "up"): "followed up", ("set", "up"): "set up", ("reach", "out"): "reached out",
    ("send", "out"): "sent out", ("check", "in"): "checked in",
}
# Buyer-side states nobody on the sales team can act on.
PASSIVE_STATUS = re.compile(
    r"\b(thinking|thinks|think it over|comparing|compares|waiting|awaiting|considering|"
    r"deciding|pondering|evaluating|on hold|pending|undecided|under review|in review|"
    r"reviewing|maybe|not sure)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+")


def words(label: str) -> list[str]:
    """Lower-case words of a label ("Follow-up call" -> ["follow", "up", "call"])."""
    return [w.lower() for w in _WORD.findall(label)]


def is_participle(word: str) -> bool:
    """True for a past participle by the English heuristic (regular -ed or listed irregular)."""
    word = word.lower()
    if word in IRREGULAR_PARTICIPLES:
        return True
    return len(word) >= 4 and word.endswith("ed") and word not in NOT_PARTICIPLES


def imperative_fix(label: str) -> str | None:
    """The past-tense rewording if `label` opens like a to-do ("Send proposal"), else None."""
    tokens = words(label)
    if not tokens:
        return None
    rest: list[str]
    if tuple(tokens[:2]) in PHRASAL_IMPERATIVES:
        participle, rest = PHRASAL_IMPERATIVES[(tokens[0], tokens[1])], tokens[2:]
    elif tokens[0] in IMPERATIVES:
        participle, rest = IMPERATIVES[tokens[0]], tokens[1:]
    else:
        return None
    # "Call scheduled" opens with a verb but is a noun phrase with a participle: fine.
    if any(is_participle(w) for w in rest):
        return None
    if rest and rest[0] in {"the", "a", "an"}:
        rest = rest[1:]
    if rest and rest[0] in {"with", "to", "on", "for", "about"}:
        text = " ".join([participle, *rest])  # "Follow up with buyer" -> "Followed up with …"
    else:
        text = " ".join([*rest, participle])
    return text[:1].upper() + text[1:]


def looks_non_english(blueprint: Blueprint) -> str | None:
    """A label showing the wording rules cannot check the blueprint's labels, or None.

    A declared `language:` decides: en, uk and de are checked, others are not. Without one we
    take letters outside ASCII (umlauts, Cyrillic, accents) as the sign of another language:
    English stage names practically never need them, and the English heuristics would only
    produce noise on such labels. We do not run the Ukrainian or German rules on a guess: the
    note's hint names the language to declare. ASCII-only labels in another language
    ("Angebot gesendet") are checked as English; declaring `language: de` stops that.
    """
    labels = [s.label for p in blueprint.pipelines for s in p.stages]
    if blueprint.language is not None:
        covered = blueprint.language in WORDING_LANGUAGES
        return None if covered else (labels[0] if labels else "")
    return next((label for label in labels if not label.isascii()), None)


def guess_language(labels: Iterable[str]) -> str | None:
    """uk or de when the labels' letters show it (і ї є ґ; ä ö ü ß), for a hint only."""
    text = "".join(labels).lower()
    if any(letter in text for letter in "іїєґ"):
        return "uk"
    if any(letter in text for letter in "äöüß") and not any("а" <= c <= "я" for c in text):
        return "de"
    return None


@dataclass(frozen=True)
class _Hit:
    """A raw finding before silencing, with the pipeline/stage it belongs to."""

    rule: str
    loc: Loc
    message: str
    hint: str | None = None
    pipeline: int | None = None
    stage: int | None = None


@dataclass(frozen=True)
class LintResult:
    """Reported findings, and those a `silence:` entry turned off (kept for counting)."""

    findings: list[Finding] = field(default_factory=list)
    silenced: list[Finding] = field(default_factory=list)


def lint(blueprint: Blueprint, source_positions: SourceMap | None = None) -> list[Finding]:
    """Findings of the method's lint rules for `blueprint`, silenced ones left out."""
    return run_lint(blueprint, source_positions).findings


def run_lint(blueprint: Blueprint, source_positions: SourceMap | None = None) -> LintResult:
    """Like `lint`, also returning the findings that were silenced."""
    source = source_positions or SourceMap(f"<{blueprint.client}>")
    non_english = looks_non_english(blueprint)
    language = None if non_english is not None else blueprint.language or "en"
    hits = list(_file_hits(blueprint, non_english))
    for p, pipeline in enumerate(blueprint.pipelines):
        hits.extend(_pipeline_hits(blueprint, p, pipeline, language=language))
    result = LintResult()
    for hit in sorted(hits, key=lambda h: source.position(h.loc)[0] or 0):
        rule = RULES[hit.rule]
        finding = source.finding(hit.loc, hit.message, severity=rule.severity, rule=rule.id,
                                 hint=hit.hint)
        silenced = rule.severity != "error" and _is_silenced(blueprint, hit)
        (result.silenced if silenced else result.findings).append(finding)
    return result


def strict(findings: Iterable[Finding]) -> list[Finding]:
    """`--strict`: warnings become errors (info stays info)."""
    return [replace(f, severity="error") if f.severity == "warning" else f for f in findings]


def _is_silenced(blueprint: Blueprint, hit: _Hit) -> bool:
    entries: list[Silence] = list(blueprint.silence)
    if hit.pipeline is not None:
        pipeline = blueprint.pipelines[hit.pipeline]
        entries.extend(pipeline.silence)
        if hit.stage is not None:
            entries.extend(pipeline.stages[hit.stage].silence)
    return any(entry.rule == hit.rule for entry in entries)


def _silence_entries(blueprint: Blueprint) -> Iterator[tuple[Loc, Silence]]:
    for i, entry in enumerate(blueprint.silence):
        yield ("silence", i, "rule"), entry
    for p, pipeline in enumerate(blueprint.pipelines):
        for i, entry in enumerate(pipeline.silence):
            yield ("pipelines", p, "silence", i, "rule"), entry
        for s, stage in enumerate(pipeline.stages):
            for i, entry in enumerate(stage.silence):
                yield ("pipelines", p, "stages", s, "silence", i, "rule"), entry


def _file_hits(blueprint: Blueprint, non_english: str | None) -> Iterator[_Hit]:
    for loc, entry in _silence_entries(blueprint):
        if entry.rule not in RULES:
            suggestion = closest(entry.rule, list(RULES))
            yield _Hit("unknown-silence-rule", loc, f"no lint rule is called '{entry.rule}'",
                       f"did you mean '{suggestion}'?" if suggestion else
                       f"rules: {', '.join(RULES)}")
    if non_english is not None:
        yield _non_english_hit(blueprint, non_english)
    rotting = [("pipelines", p, "stages", s, "rot_after_days")
               for p, pipeline in enumerate(blueprint.pipelines)
               for s, stage in enumerate(pipeline.stages) if stage.rot_after_days is not None]
    if blueprint.crm == "hubspot" and rotting:
        yield _Hit("hubspot-rot-ignored", rotting[0],
                   f"HubSpot has no rotting deals: rot_after_days is ignored "
                   f"({len(rotting)} stage(s) set it)",
                   "keep it if the client may move to Pipedrive; otherwise remove it")


def _non_english_hit(blueprint: Blueprint, example: str) -> _Hit:
    wording_rules = ", ".join(r.id for r in RULES.values() if r.wording)
    covered = ", ".join(f"`{code}`" for code in WORDING_LANGUAGES)
    loc: Loc
    if blueprint.language:
        reason, loc = f"the labels are declared as '{blueprint.language}'", ("language",)
        hint = (f"name each stage in the past tense from the buyer's side yourself; the checks "
                f"cover {covered}")
    else:
        reason = f"labels look non-English (e.g. '{example}')"
        loc = _label_loc(blueprint, example)
        guess = guess_language(s.label for p in blueprint.pipelines for s in p.stages)
        hint = (f"declare `language: {guess}` to run the {LANGUAGE_NAMES[guess]} checks"
                if guess else
                f"declare the labels' `language:` ({covered} are checked), or name each stage "
                "in the past tense from the buyer's side yourself")
    return _Hit("non-english-labels", loc,
                f"{reason}, so the wording checks ({wording_rules}) were skipped", hint)


def _label_loc(blueprint: Blueprint, label: str) -> Loc:
    for p, pipeline in enumerate(blueprint.pipelines):
        for s, stage in enumerate(pipeline.stages):
            if stage.label == label:
                return ("pipelines", p, "stages", s, "label")
    return ()


def _pipeline_hits(blueprint: Blueprint, p: int, pipeline: Pipeline, *, language: str | None
                   ) -> Iterator[_Hit]:
    for s, stage in enumerate(pipeline.stages):
        if language == "en":
            yield from _wording_hits(p, s, stage)
        elif language is not None:
            yield from _local_wording_hits(language, p, s, stage)
        yield from _crm_stage_hits(blueprint.crm, p, s, stage)
    yield from _outcome_hits(p, pipeline)
    yield from _order_hits(p, pipeline)
    yield from _duplicate_label_hits(p, pipeline)
    if p == 0:
        yield from _duplicate_pipeline_label_hits(blueprint)
    if blueprint.crm == "hubspot" and len(pipeline.stages) > HUBSPOT_MAX_STAGES:
        yield _Hit("hubspot-stage-limit", ("pipelines", p, "stages"),
                   f"{len(pipeline.stages)} stages; HubSpot allows at most "
                   f"{HUBSPOT_MAX_STAGES} per pipeline",
                   "merge stages, or split the process into two pipelines", p)


def _wording_hits(p: int, s: int, stage: Stage) -> Iterator[_Hit]:
    loc: Loc = ("pipelines", p, "stages", s, "label")
    label = stage.label
    passive = PASSIVE_STATUS.search(label) if stage.outcome is None else None
    if passive:
        yield _Hit("passive-stage", loc,
                   f"'{label}' is a passive buyer status ('{passive.group(0)}'): nobody can act "
                   "on it, so it should not be a stage",
                   "leave it out and keep the deal in the stage of the last step you took part "
                   "in, e.g. 'Proposal sent'; follow up with a task", p, s)
        return
    fix = imperative_fix(label)
    if fix:
        yield _Hit("imperative-stage", loc,
                   f"'{label}' reads as a to-do, not as something that has happened",
                   f"name it from the buyer's side in the past tense, e.g. '{fix}'", p, s)
        return
    if not any(is_participle(w) for w in words(label)):
        yield _Hit("past-tense", loc,
                   f"'{label}' does not say what has happened (no past-tense verb)",
                   "name what the buyer has done or received, e.g. 'Demo held', "
                   "'Proposal received'", p, s)


def _local_wording_hits(language: str, p: int, s: int, stage: Stage) -> Iterator[_Hit]:
    """The wording rules in Ukrainian or German, with hints in that language."""
    verdict = wording.check_wording(language, stage.label, outcome=stage.outcome is not None)
    if verdict is None:
        return
    label = stage.label
    word = f" ('{verdict.word}')" if verdict.word and verdict.word != label else ""
    if verdict.rule == "passive-stage":
        message = (f"'{label}' is a passive buyer status{word}: nobody can act on it, so it "
                   "should not be a stage")
    elif verdict.rule == "imperative-stage":
        message = f"'{label}' reads as a to-do{word}, not as something that has happened"
    elif verdict.word:  # German "wird …": in progress
        message = (f"'{label}' says what is in progress ('{verdict.word}'), not what has "
                   "happened")
    else:
        message = f"'{label}' does not say what has happened (no past-tense form)"
    yield _Hit(verdict.rule, ("pipelines", p, "stages", s, "label"), message,
               wording.hint(language, verdict), p, s)


def _crm_stage_hits(crm: str, p: int, s: int, stage: Stage) -> Iterator[_Hit]:
    loc: Loc = ("pipelines", p, "stages", s, "probability")
    value = stage.probability
    if crm == "hubspot" and not _is_multiple(value, 10):
        low, high = math.floor(value * 10) / 10, math.ceil(value * 10) / 10
        yield _Hit("hubspot-probability-step", loc,
                   f"HubSpot stores probabilities in steps of 0.1 (got {value:g})",
                   f"use {low:g} or {high:g}", p, s)
    if crm == "pipedrive" and not _is_multiple(value, 100):
        yield _Hit("pipedrive-probability-percent", loc,
                   f"Pipedrive stores probabilities as whole percents (got {value * 100:g}%)",
                   f"use {round(value * 100) / 100:g}", p, s)


def _is_multiple(value: float, steps: int) -> bool:
    return math.isclose(value * steps, round(value * steps), abs_tol=1e-9)


def _outcome_hits(p: int, pipeline: Pipeline) -> Iterator[_Hit]:
    stages = pipeline.stages
    for outcome, expected in (("won", 1.0), ("lost", 0.0)):
        indexes = [s for s, stage in enumerate(stages) if stage.outcome == outcome]
        if outcome == "won" and not indexes:
            yield _Hit("outcome-count", ("pipelines", p, "key"),
                       f"pipeline '{pipeline.key}' has no won stage",
                       "add a last stage with `outcome: won`, e.g. 'Contract signed'", p)
        for extra in indexes[1:]:
            yield _Hit("outcome-count", ("pipelines", p, "stages", extra, "outcome"),
                       f"a second {outcome} stage; a pipeline has exactly one won and at most "
                       "one lost stage", f"keep one {outcome} stage", p, extra)
        for s in indexes:
            if stages[s].probability != expected:
                yield _Hit("outcome-probability", ("pipelines", p, "stages", s, "probability"),
                           f"a {outcome} stage should have probability {expected:g} "
                           f"(got {stages[s].probability:g})",
                           f"set probability: {expected:g}", p, s)
    last_open = max((s for s, stage in enumerate(stages) if stage.outcome is None), default=-1)
    for s, stage in enumerate(stages[:last_open]):
        if stage.outcome is not None:
            yield _Hit("outcome-placement", ("pipelines", p, "stages", s, "outcome"),
                       f"the {stage.outcome} stage '{stage.label}' comes before the open stage "
                       f"'{stages[last_open].label}'",
                       "put the won and lost stages after all open stages", p, s)


def _order_hits(p: int, pipeline: Pipeline) -> Iterator[_Hit]:
    previous: tuple[int, Stage] | None = None
    for s, stage in enumerate(pipeline.stages):
        if stage.outcome is not None:
            continue
        # Equal neighbours are allowed: with HubSpot's 0.1 steps long pipelines need them.
        if previous and stage.probability < previous[1].probability:
            before = previous[1]
            yield _Hit("probability-order", ("pipelines", p, "stages", s, "probability"),
                       f"probability {stage.probability:g} is lower than {before.probability:g} "
                       f"of the stage before it ('{before.label}')",
                       "probabilities rise as a deal moves along the open stages", p, s)
        previous = (s, stage)


def _duplicate_label_hits(p: int, pipeline: Pipeline) -> Iterator[_Hit]:
    owner: dict[str, int] = {}
    for s, stage in enumerate(pipeline.stages):
        name = stage.label.casefold()
        if name in owner:
            yield _Hit("duplicate-label", ("pipelines", p, "stages", s, "label"),
                       f"label '{stage.label}' is already used by stages[{owner[name]}] "
                       "(labels are compared ignoring case)",
                       "give each stage its own label", p, s)
        owner.setdefault(name, s)
    for s, stage in enumerate(pipeline.stages):
        for i, old in enumerate(stage.previous_labels):
            other = owner.get(old.casefold())
            if other is not None and other != s:
                yield _Hit("duplicate-label", ("pipelines", p, "stages", s, "previous_labels", i),
                           f"previous label '{old}' is the label of stages[{other}]; a rename "
                           "could not tell the two stages apart",
                           "remove it from previous_labels", p, s)


def _duplicate_pipeline_label_hits(blueprint: Blueprint) -> Iterator[_Hit]:
    owner: dict[str, int] = {}
    for p, pipeline in enumerate(blueprint.pipelines):
        name = pipeline.label.casefold()
        if name in owner:
            yield _Hit("duplicate-label", ("pipelines", p, "label"),
                       f"pipeline label '{pipeline.label}' is already used by "
                       f"pipelines[{owner[name]}]", "give each pipeline its own label", p)
        owner.setdefault(name, p)
