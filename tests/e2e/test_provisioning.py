"""Issue 4 "Done when", end to end: the `crmsync` CLI against the sandbox over real HTTP.

Every test runs once per CRM (HubSpot, Pipedrive) with its own sandbox token, SQLite store and
configs folder (the `world` fixture, `conftest.py`). The CLI is driven through click's runner;
adapters are the real ones, built by `crmsync.session.default_adapter_factory` with a
recording sleeper so retries cost no time (and, for the kill test, wrapped so that a write
"dies" right after the CRM answered it).

Pipedrive and stage order: API v2 has no writable `order_nr` (POST/PATCH /stages take no
order), so a reorder there is a *blocked* change whose reason says so; every other edit of the
same plan is applied (apply exits 3), and once the blueprint lists the stages as Pipedrive
shows them the diff is clean (`test_edit_blueprint_diff_apply_diff`).

Done-when item → tests:
- example configs applied to an empty account, diff clean → `test_examples_apply_to_an_empty_
  account`, `test_many_clients_each_in_its_own_account`;
- rename / probability / add / remove / reorder show exactly those, apply, diff clean →
  `test_edit_blueprint_diff_apply_diff`;
- a rename is never delete + create → `test_rename_is_an_update_never_delete_and_create`;
- a stage holding deals is removed only with move_deals_to, deals first →
  `test_stage_with_deals_is_only_removed_with_move_deals_to`;
- 10% 429s and 5% 5xx: same end state, no step twice →
  `test_edit_sequence_with_faults_ends_in_the_same_state`;
- killed half-way, re-run converges without duplicates →
  `test_apply_killed_half_way_then_rerun_converges` (and `test_adopt_only_plan_records_ids`);
- export → diff round trip with Ukrainian and German labels →
  `test_export_diff_round_trip_with_non_ascii_labels`, `test_export_from_a_pristine_account`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from crmsync.adapters.base import RemotePipeline

    from .conftest import World


# --- helpers ---------------------------------------------------------------------------------


def change_set(client: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    """(action, target, field) of every change in a client's `diff --json`, blocked included."""
    found = set()
    for change in client["changes"]:
        target = change["target"]
        name = target.get("stage") or target.get("description") or target.get("pipeline")
        found.add((change["action"], name, change["field"]))
    return found


def shape(pipeline: RemotePipeline) -> list[tuple[str, float | None, str | None]]:
    """What a pipeline looks like to a salesperson: stage labels, probabilities, outcomes."""
    return [(s.label, s.probability, s.outcome) for s in pipeline.stages]


def assert_store_matches_remote(world: World, client: str, blueprint: dict[str, Any]) -> None:
    """Every key the blueprint names is recorded as the id of the remote object it labels,
    and the store holds no id the CRM no longer has."""
    known = world.known(client)
    remote = {p.label: p for p in world.pipelines()}
    assert set(known.pipelines.values()) <= {p.id for p in remote.values()}
    assert set(known.stages.values()) <= {s.id for p in remote.values() for s in p.stages}
    for pipeline in blueprint["pipelines"]:
        rp = remote[pipeline["label"]]
        assert known.pipelines[pipeline["key"]] == rp.id
        by_label = {s.label: s.id for s in rp.stages}
        for stage in pipeline["stages"]:
            if stage.get("outcome") and world.crm == "pipedrive":
                continue  # a deal status there, not a stage
            assert known.stages[(pipeline["key"], stage["key"])] == by_label[stage["label"]]


def assert_no_duplicates(world: World) -> None:
    pipelines = world.pipelines()
    labels = [p.label for p in pipelines]
    assert len(labels) == len(set(labels)), labels
    for pipeline in pipelines:
        stage_labels = [s.label for s in pipeline.stages]
        assert len(stage_labels) == len(set(stage_labels)), stage_labels


def expected_shape(world: World, pipeline: dict[str, Any]) -> list[tuple[str, float, Any]]:
    """The blueprint pipeline as the CRM should show it (Pipedrive: no outcome stages)."""
    return [(s["label"], s["probability"], s.get("outcome")) for s in pipeline["stages"]
            if not (world.crm == "pipedrive" and s.get("outcome"))]


# --- apply the example configs to an empty account → diff clean ------------------------------


@pytest.mark.parametrize("example", ["acme", "brightwave", "nordwind"])
def test_examples_apply_to_an_empty_account(world: World, example: str) -> None:
    blueprint = world.example(example)
    path = world.write(blueprint)

    before = world.cli("diff", str(path))
    assert before.exit_code == 2, before.output
    applied = world.cli("apply", "--yes", str(path))
    assert applied.exit_code == 0, applied.output
    after = world.cli("diff", str(path))
    assert after.exit_code == 0, after.output
    assert after.output.startswith(f"No changes. {example} ({world.crm}) matches its blueprint")

    for pipeline in blueprint["pipelines"]:
        got = shape(world.pipeline(pipeline["label"]))
        want = expected_shape(world, pipeline)
        assert [label for label, _, _ in got] == [label for label, _, _ in want]
        # the CRM's grid: HubSpot rounds to 0.1 (nordwind's 0.25 → 0.3, said in a note)
        step = 0.1 if world.crm == "hubspot" else 0.01
        assert all(abs(g[1] - w[1]) <= step / 2 + 1e-9 for g, w in zip(got, want, strict=True))
    assert_store_matches_remote(world, blueprint["client"], blueprint)
    assert_no_duplicates(world)


def test_many_clients_each_in_its_own_account(world: World) -> None:
    """The consultant's run: every config in the folder, each client with its own token."""
    tokens = {}
    for example in ("acme", "brightwave", "nordwind"):
        blueprint = world.example(example)
        tokens[example] = f"{world.token}-{example}" if blueprint.get("token_env") else (
            world.token)  # nordwind has no token_env: the default CRMSYNC_*_TOKEN
        world.write(blueprint, token=tokens[example])

    assert world.cli("diff").exit_code == 2
    applied = world.cli("apply", "--yes")
    assert applied.exit_code == 0, applied.output
    clean = world.cli("diff")
    assert clean.exit_code == 0, clean.output
    assert "Summary:" in clean.output
    for example in ("acme", "brightwave", "nordwind"):
        assert f"{example} ({world.crm}): no changes" in clean.output
    # Each account holds its own client's pipelines and nothing of the others'.
    # ... besides the default pipeline every new account has
    default = {"Sales Pipeline"} if world.crm == "hubspot" else {"Pipeline"}
    for example, token in tokens.items():
        wanted = {p["label"] for p in world.example(example)["pipelines"]}
        assert {p.label for p in world.pipelines(token)} == wanted | default


# --- edit: rename, probability, add, remove, reorder → exactly those → apply → clean ----------


def edited(blueprint: dict[str, Any]) -> dict[str, Any]:
    """acme with one of each edit: rename needs_assessed, proposal_sent 0.6 → 0.5, add
    terms_agreed, remove contract_sent, and demo_held moved before needs_assessed."""
    data = copy.deepcopy(blueprint)
    stages = {s["key"]: s for s in data["pipelines"][0]["stages"]}
    stages["needs_assessed"]["label"] = "Needs and budget assessed"
    stages["proposal_sent"]["probability"] = 0.5
    terms = {"key": "terms_agreed", "label": "Terms agreed", "probability": 0.8}
    order = ["meeting_booked", "demo_held", "needs_assessed", "proposal_sent", "terms_agreed",
             "contract_signed", "lost"]
    data["pipelines"][0]["stages"] = [stages.get(k, terms) for k in order]
    return data


EDIT_CHANGES = {
    ("update", "needs_assessed", "label"),
    ("update", "proposal_sent", "probability"),
    ("create", "terms_agreed", None),
    ("archive", "contract_sent", None),
}
# HubSpot writes displayOrder: the two stages that swapped places, nothing else.
HUBSPOT_REORDER = {("update", "demo_held", "order"), ("update", "needs_assessed", "order")}
PIPEDRIVE_ORDER_REASON = (
    "the blueprint lists 'Needs-assessment meeting booked', 'Demo held', "
    "'Needs and budget assessed', 'Proposal sent', 'Terms agreed'; Pipedrive will show "
    "'Needs-assessment meeting booked', 'Needs and budget assessed', 'Demo held', "
    "'Proposal sent', 'Terms agreed'. Pipedrive's API v2 has no writable order for pipelines "
    "or stages (order_nr is read-only; new ones are added last). Reorder them by dragging in "
    "Pipedrive: Deals > Pipeline > Edit pipeline."
)
END_LABELS = {
    "hubspot": ["Needs-assessment meeting booked", "Demo held", "Needs and budget assessed",
                "Proposal sent", "Terms agreed", "Contract signed", "Lost"],
    # Pipedrive cannot reorder: demo_held stays after needs_assessed; won/lost are statuses.
    "pipedrive": ["Needs-assessment meeting booked", "Needs and budget assessed", "Demo held",
                  "Proposal sent", "Terms agreed"],
}


def run_edit_sequence(world: World) -> dict[str, Any]:
    """apply acme → diff 0 → edit → diff shows exactly the edits (2) → apply → diff clean."""
    blueprint = world.example("acme")
    path = world.write(blueprint)
    assert world.cli("apply", "--yes", str(path)).exit_code == 0
    assert world.cli("diff", str(path)).exit_code == 0
    ids = world.known("acme")

    changed = edited(blueprint)
    world.write(changed)
    code, [client] = world.diff_json(str(path))
    assert code == 2
    if world.crm == "hubspot":
        assert change_set(client) == EDIT_CHANGES | HUBSPOT_REORDER
        assert client["status"] == "pending"
    else:
        assert change_set(client) == EDIT_CHANGES | {("blocked", "stage order", None)}
        [blocked] = [c for c in client["changes"] if c["action"] == "blocked"]
        assert blocked["reason"] == PIPEDRIVE_ORDER_REASON
        assert client["status"] == "blocked"

    applied = world.cli("apply", "--yes", str(path))
    after = world.cli("diff", str(path))
    if world.crm == "hubspot":
        assert applied.exit_code == 0, applied.output
        assert after.exit_code == 0, after.output
    else:
        # Everything but the order is applied; the order stays blocked, plainly.
        assert applied.exit_code == 3, applied.output
        assert "acme (pipedrive): 4 changes applied; 1 blocked" in applied.output
        code, [client] = world.diff_json(str(path))
        assert code == 2
        assert change_set(client) == {("blocked", "stage order", None)}
        # Listing the stages as Pipedrive shows them, the blueprint diffs clean.
        stages = {s["key"]: s for s in changed["pipelines"][0]["stages"]}
        changed["pipelines"][0]["stages"] = [stages[k] for k in (
            "meeting_booked", "needs_assessed", "demo_held", "proposal_sent", "terms_agreed",
            "contract_signed", "lost")]
        world.write(changed)
        clean = world.cli("diff", str(path))
        assert clean.exit_code == 0, clean.output

    # Each planned step reached the adapter exactly once (retries live below it).
    contract_sent = ids.stages[("new_business", "contract_sent")]
    first_apply = ([("create_pipeline", "New business")] if world.crm == "hubspot" else [
        *[("create_stage", s["label"]) for s in blueprint["pipelines"][0]["stages"]
          if not s.get("outcome")],
        ("create_pipeline", "New business")])  # Pipedrive adds the stages one by one
    edit_apply = [("create_stage", "Terms agreed"),
                  *([("update_stage", "Demo held")] if world.crm == "hubspot" else []),
                  ("update_stage", "Needs and budget assessed"),
                  ("update_stage", "Proposal sent"),
                  ("archive_stage", contract_sent)]
    assert world.writes == first_apply + edit_apply

    # Renamed, re-probabilised and moved stages kept their ids; only the new one is new.
    now = world.known("acme")
    for key in ("meeting_booked", "needs_assessed", "demo_held", "proposal_sent"):
        assert now.stages[("new_business", key)] == ids.stages[("new_business", key)]
    assert ("new_business", "contract_sent") not in now.stages
    assert now.stages[("new_business", "terms_agreed")] not in ids.stages.values()
    assert_store_matches_remote(world, "acme", changed)
    return changed


def test_edit_blueprint_diff_apply_diff(world: World) -> None:
    run_edit_sequence(world)
    pipeline = world.pipeline("New business")
    assert [s.label for s in pipeline.stages] == END_LABELS[world.crm]
    assert_no_duplicates(world)


def test_rename_is_an_update_never_delete_and_create(world: World) -> None:
    blueprint = world.example("acme")
    path = world.write(blueprint)
    assert world.cli("apply", "--yes", str(path)).exit_code == 0
    before = world.pipeline("New business")

    renamed = copy.deepcopy(blueprint)
    renamed["pipelines"][0]["stages"][1]["label"] = "Bedarf ermittelt – Größe geklärt"
    world.write(renamed)
    code, [client] = world.diff_json(str(path))
    assert code == 2
    assert change_set(client) == {("update", "needs_assessed", "label")}

    world.reset_stats()
    assert world.cli("apply", "--yes", str(path)).exit_code == 0
    routes = world.stats()["by_route"]
    assert world.cli("diff", str(path)).exit_code == 0

    writes = {route: n for route, n in routes.items() if not route.startswith("GET ")}
    stage_patch = ("PATCH /crm/v3/pipelines/{objectType}/{pipelineId}/stages/{stageId}"
                   if world.crm == "hubspot" else "PATCH /api/v2/stages/{id}")
    assert writes == {stage_patch: 1}  # no POST, no DELETE: one PATCH of the one stage
    after = world.pipeline("New business")
    assert after.id == before.id
    assert [s.id for s in after.stages] == [s.id for s in before.stages]
    assert after.stages[1].label == "Bedarf ermittelt – Größe geklärt"


# --- a stage holding deals ------------------------------------------------------------------


def test_stage_with_deals_is_only_removed_with_move_deals_to(world: World) -> None:
    blueprint = world.example("acme")
    path = world.write(blueprint)
    assert world.cli("apply", "--yes", str(path)).exit_code == 0
    pipeline = world.pipeline("New business")
    ids = {s.label: s.id for s in pipeline.stages}
    deal = world.create_deal(pipeline.id, ids["Contract sent"], "Hafenlogistik Nord")

    without = copy.deepcopy(blueprint)
    without["pipelines"][0]["stages"] = [s for s in without["pipelines"][0]["stages"]
                                         if s["key"] != "contract_sent"]
    world.write(without)
    code, [client] = world.diff_json(str(path))
    assert code == 2
    assert client["status"] == "blocked"
    [blocked] = client["changes"]
    assert blocked["action"] == "blocked"
    assert blocked["reason"] == ("stage 'Contract sent' still holds 1 deal; add it to "
                                 "retired_stages with move_deals_to")
    assert blocked["change"]["action"] == "archive"

    refused = world.cli("apply", "--yes", str(path))
    assert refused.exit_code == 3, refused.output
    assert "1 blocked" in refused.output
    assert world.pipeline("New business").stage_by_id(ids["Contract sent"]) is not None
    assert world.deal_stage(deal) == ids["Contract sent"]

    without["pipelines"][0]["retired_stages"] = [
        {"key": "contract_sent", "move_deals_to": "proposal_sent"}]
    world.write(without)
    code, [client] = world.diff_json(str(path))
    assert code == 2
    assert change_set(client) == {("move", "contract_sent", "deals"),
                                  ("archive", "contract_sent", None)}
    moved = world.cli("apply", "--yes", str(path))
    assert moved.exit_code == 0, moved.output
    lines = moved.output.splitlines()
    move_at = next(i for i, line in enumerate(lines) if "> move 1 deal from stage" in line)
    archive_at = next(i for i, line in enumerate(lines)
                      if "- stage 'Contract sent' (contract_sent): archive" in line)
    assert move_at < archive_at, moved.output  # deals first, then the stage

    assert world.deal_stage(deal) == ids["Proposal sent"]
    assert world.pipeline("New business").stage_by_id(ids["Contract sent"]) is None
    assert world.cli("diff", str(path)).exit_code == 0


# --- the same sequence through 10% 429s and 5% 5xx ------------------------------------------


@pytest.mark.parametrize("seed", [1, 7, 8])
def test_edit_sequence_with_faults_ends_in_the_same_state(world: World, seed: int) -> None:
    # Seeded: one client sending the same requests meets the same faults on every run; three
    # seeds put the faults on different steps (each run meets a handful of both kinds).
    world.faults(rate_429=0.10, rate_5xx=0.05, seed=seed)

    changed = run_edit_sequence(world)

    injected = world.stats()["faults_injected"]
    world.faults(rate_429=0.0, rate_5xx=0.0)
    five_xx = injected["500"] + injected["502"] + injected["503"]
    assert injected["429"] > 0, f"the run met no 429 ({injected}); pick another seed"
    assert five_xx > 0, f"the run met no 5xx ({injected}); pick another seed"
    assert len(world.sleeps) >= injected["total"]  # each fault retried, at no real cost
    pipeline = world.pipeline("New business")
    assert [s.label for s in pipeline.stages] == END_LABELS[world.crm]  # = fault-free end
    assert_no_duplicates(world)
    assert_store_matches_remote(world, "acme", changed)
    # No step ran twice: `run_edit_sequence` checked one adapter call per planned step, the
    # same list as without faults; the CRM shows each stage once, the store knows each id.


# --- killed half-way, run again ------------------------------------------------------------


@pytest.mark.parametrize(("phase", "kill_after"), [
    # HubSpot dies after its 2nd pipeline was created (unrecorded); Pipedrive, which adds
    # stages one by one, half-way through its first pipeline's stages.
    ("first apply", 2),
    # Both new stages created, the second unrecorded: found again by label, not re-created.
    ("edit apply", 2),
    # The stage is archived in the CRM, but the store still holds its id.
    ("edit apply", "archive_stage"),
])
def test_apply_killed_half_way_then_rerun_converges(world: World, phase: str,
                                                    kill_after: int | str) -> None:
    blueprint = world.example("brightwave")
    path = world.write(blueprint)
    if phase == "edit apply":
        assert world.cli("apply", "--yes", str(path)).exit_code == 0
        changed = edited_brightwave(blueprint)
        world.write(changed)
        blueprint = changed
    world.kill_after = kill_after if isinstance(kill_after, str) else (
        len(world.writes) + kill_after)
    killed = world.cli("apply", "--yes", str(path))
    assert world.killed
    assert killed.exit_code == 1  # Ctrl-C: an error, and how to resume
    assert "Interrupted." in killed.output
    assert "run the same apply again" in killed.output
    killed_after = list(world.writes)

    rerun = world.cli("apply", "--yes", str(path))
    assert rerun.exit_code == 0, rerun.output
    if kill_after == "archive_stage":  # only the store is behind: it forgets the stale id
        assert "= stage (trial_started): id " in rerun.output
        assert f"brightwave ({world.crm}): 1 stale id forgotten; the CRM matches" in rerun.output
    assert world.cli("diff", str(path)).exit_code == 0
    assert_no_duplicates(world)
    assert_store_matches_remote(world, "brightwave", blueprint)
    for pipeline in blueprint["pipelines"]:
        assert shape(world.pipeline(pipeline["label"])) == [
            (label, pytest.approx(p), o) for label, p, o in expected_shape(world, pipeline)]
    # Nothing the killed run did was done again.
    done = [w for w in killed_after if w[0].startswith("create")]
    redone = [w for w in world.writes[len(killed_after):] if w in done]
    assert redone == []


def edited_brightwave(blueprint: dict[str, Any]) -> dict[str, Any]:
    """A stage renamed, one replaced, one added, in both pipelines; new stages go after the
    open ones, where Pipedrive (order read-only) puts them too, so both CRMs converge."""
    data = copy.deepcopy(blueprint)
    new_business, renewals = data["pipelines"]
    new_business["stages"] = [s for s in new_business["stages"] if s["key"] != "trial_started"]
    new_business["retired_stages"] = []
    new_business["stages"][0]["label"] = "Discovery call booked"
    new_business["stages"].insert(3, {"key": "pilot_started", "label": "Pilot started",
                                      "probability": 0.8})
    renewals["stages"][1]["probability"] = 0.5
    renewals["stages"].insert(3, {"key": "upsell_discussed", "label": "Upsell discussed",
                                  "probability": 0.9})
    return data


# --- adopting a CRM that already matches --------------------------------------------------


def test_adopt_only_plan_records_ids(world: World) -> None:
    blueprint = world.example("acme")
    path = world.write(blueprint)
    assert world.cli("apply", "--yes", str(path)).exit_code == 0
    ids = world.known("acme")
    world.monkeypatch.setenv("CRMSYNC_STORE_URL", f"sqlite:///{world.root / 'fresh.db'}")

    shown = world.cli("diff", str(path))
    assert shown.exit_code == 2, shown.output
    assert "(matched by label)" in shown.output
    assert f"Nothing changes in {'HubSpot' if world.crm == 'hubspot' else 'Pipedrive'}" in (
        shown.output)
    code, [client] = world.diff_json(str(path))
    assert code == 2
    assert {c["action"] for c in client["changes"]} == {"adopt"}

    applied = world.cli("apply", "--yes", str(path))
    assert applied.exit_code == 0, applied.output
    assert "ids recorded" in applied.output
    assert world.known("acme") == ids
    assert world.cli("diff", str(path)).exit_code == 0


# --- export → diff round trip ---------------------------------------------------------------

KYIV = {
    "client": "kyivsoft",
    "pipelines": [
        {"key": "prodazhi", "label": "Продажі", "stages": [
            {"key": "zustrich", "label": "Зустріч призначено", "probability": 0.1},
            {"key": "potreby", "label": "Потреби з'ясовано", "probability": 0.3},
            {"key": "angebot", "label": "Angebot übermittelt – Größe geprüft",
             "probability": 0.6},
            {"key": "pidpysano", "label": "Договір підписано", "probability": 1.0,
             "outcome": "won"},
            {"key": "vtracheno", "label": "Втрачено", "probability": 0.0, "outcome": "lost"},
        ]},
        {"key": "bestandskunden", "label": "Bestandskunden Süd", "stages": [
            {"key": "verlaengerung", "label": "Verlängerung fällig", "probability": 0.5},
            {"key": "gespraech", "label": "Gespräch geführt", "probability": 0.7},
            {"key": "verlaengert", "label": "Verlängert", "probability": 1.0, "outcome": "won"},
            {"key": "gekuendigt", "label": "Gekündigt", "probability": 0.0, "outcome": "lost"},
        ]},
    ],
}


def test_export_diff_round_trip_with_non_ascii_labels(world: World) -> None:
    path = world.write({**KYIV, "crm": world.crm})
    assert world.cli("apply", "--yes", str(path)).exit_code == 0

    world.monkeypatch.setenv("KYIV_TOKEN", world.token)
    out = world.root / "exported" / "kyivsoft.yaml"
    exported = world.cli("export", "--client", "kyivsoft", "--crm", world.crm,
                         "--token-env", "KYIV_TOKEN", "--output", str(out))
    assert exported.exit_code == 0, exported.output
    text = out.read_text("utf-8")
    data = yaml.safe_load(text)
    assert data["token_env"] == "KYIV_TOKEN"
    for label in ("Продажі", "Потреби з'ясовано", "Angebot übermittelt – Größe geprüft",
                  "Bestandskunden Süd", "Verlängerung fällig"):
        assert label in text  # readable, not \u-escaped
    # The keys are those the store knows, so the file diffs clean against the same account.
    prodazhi = next(p for p in data["pipelines"] if p["label"] == "Продажі")
    assert prodazhi["key"] == "prodazhi"
    assert [s["key"] for s in prodazhi["stages"]][:3] == ["zustrich", "potreby", "angebot"]
    clean = world.cli("diff", str(out))
    assert clean.exit_code == 0, clean.output

    # Exported under a new client name (no state yet): keys from transliterated labels.
    fresh = world.root / "exported" / "adopted.yaml"
    assert world.cli("export", "--client", "adopted", "--crm", world.crm,
                     "--output", str(fresh)).exit_code == 0
    adopted = yaml.safe_load(fresh.read_text("utf-8"))
    prodazhi = next(p for p in adopted["pipelines"] if p["label"] == "Продажі")
    assert prodazhi["key"] == "prodazhi"
    assert [s["key"] for s in prodazhi["stages"]][:3] == [
        "zustrich_pryznacheno", "potreby_ziasovano", "angebot_uebermittelt_groesse_geprueft"]
    # Two clients of one store managing the same pipelines would undo each other: refused.
    shared = world.cli("diff", str(fresh))
    assert shared.exit_code == 1
    assert "'Продажі' is managed by client kyivsoft" in shared.output


def test_export_from_a_pristine_account(world: World) -> None:
    out = world.root / "exported" / "pristine.yaml"
    exported = world.cli("export", "--client", "pristine", "--crm", world.crm, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    data = yaml.safe_load(out.read_text("utf-8"))
    [pipeline] = data["pipelines"]  # the new account's default pipeline
    if world.crm == "hubspot":
        assert pipeline["label"] == "Sales Pipeline"
        assert any(s.get("outcome") == "won" for s in pipeline["stages"])
    else:
        # Pipedrive's default sales process; its won/lost are deal statuses, which the
        # export shows as the blueprint's outcome stages
        assert pipeline["label"] == "Pipeline"
        open_stages = [s["label"] for s in pipeline["stages"] if not s.get("outcome")]
        assert open_stages == ["Qualified", "Contact Made", "Demo Scheduled", "Proposal Made",
                               "Negotiations Started"]
        assert sorted(s["outcome"] for s in pipeline["stages"] if s.get("outcome")) == [
            "lost", "won"]
    clean = world.cli("diff", str(out))
    assert clean.exit_code == 0, clean.output
