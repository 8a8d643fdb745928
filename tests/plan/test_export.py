"""Export: keys from labels (with transliteration), YAML that loads and diffs clean."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from plan_fakes import HUBSPOT, PIPEDRIVE, FakeCrm

from crmsync.adapters.base import RemotePipeline, RemoteStage
from crmsync.blueprint.loader import load_blueprint, parse_blueprint
from crmsync.errors import ConfigError
from crmsync.plan.export import blueprint_from_remote, slug_key, to_yaml, transliterate
from crmsync.plan.state import KnownIds, MemoryState
from crmsync.provision import export_blueprint, plan_client
from crmsync.settings import Settings
from crmsync.store import open_store

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(("label", "key"), [
    ("Proposal sent", "proposal_sent"),
    ("Angebot überprüft", "angebot_ueberprueft"),
    ("Größe geklärt", "groesse_geklaert"),
    ("Зустріч призначено", "zustrich_pryznacheno"),
    ("Юридична перевірка", "yurydychna_perevirka"),
    ("Пропозицію надіслано", "propozytsiiu_nadislano"),
    ("Зголошено", "zgholosheno"),
    ("Обов'язкова їжа", "oboviazkova_yizha"),
    ("Знам'янка", "znamianka"),  # the resolution's own example: no word start after '
    ("Потреби з’ясовано", "potreby_ziasovano"),
    ("'Ялта'", "yalta"),
    ("Négociation terminée", "negociation_terminee"),
    ("1st call held", "stage_1st_call_held"),
    ("🎉", "stage_4"),
    ("   ", "stage_4"),
])
def test_slug_keys(label: str, key: str) -> None:
    assert slug_key(label, prefix="stage", taken=(), position=4) == key


def test_slug_keys_are_unique_and_short() -> None:
    assert slug_key("Won", prefix="stage", taken={"won", "won_2"}, position=1) == "won_3"
    long = slug_key("x" * 100, prefix="stage", taken={"x" * 64}, position=1)
    assert len(long) == 64
    assert long.endswith("_2")
    assert transliterate("Ägypten") == "aegypten"


def test_pipedrive_export_adds_outcome_stages_and_keeps_rotting() -> None:
    remote = [RemotePipeline("7", "Продажі", 0, (
        RemoteStage("71", "Зустріч призначено", 0, 0.2, None, 7),
        RemoteStage("72", "Won", 1, 0.9),
    ))]
    export = blueprint_from_remote("acme", "pipedrive", remote, KnownIds(), PIPEDRIVE)
    [pipeline] = export.data["pipelines"]
    assert pipeline["key"] == "prodazhi"
    assert [(s["key"], s["label"], s.get("outcome")) for s in pipeline["stages"]] == [
        ("zustrich_pryznacheno", "Зустріч призначено", None),
        ("won", "Won", None),
        ("won_2", "Deal won", "won"),  # 'Won' is taken by a real stage
        ("lost", "Lost", "lost"),
    ]
    assert pipeline["stages"][0]["rot_after_days"] == 7
    assert export.stages == [("prodazhi", "zustrich_pryznacheno", "71", "Зустріч призначено"),
                             ("prodazhi", "won", "72", "Won")]


def test_export_reuses_keys_the_store_knows() -> None:
    remote = [RemotePipeline("p1", "New business", 0, (
        RemoteStage("s1", "Offer received", 0, 0.6),
    ))]
    known = KnownIds({"sales": "p1"}, {("sales", "proposal_sent"): "s1"})
    export = blueprint_from_remote("acme", "hubspot", remote, known, HUBSPOT)
    assert export.data["pipelines"][0]["key"] == "sales"
    assert export.data["pipelines"][0]["stages"][0]["key"] == "proposal_sent"


def test_yaml_keeps_unicode_and_loads() -> None:
    remote = [RemotePipeline("p1", "Vertrieb", 0, (
        RemoteStage("s1", "Gespräch geführt", 0, 0.2),
        RemoteStage("s2", "Yes", 1, 0.5),  # would be a boolean unless quoted
        RemoteStage("s3", "Gewonnen", 2, 1.0, "won"),
        RemoteStage("s4", "Verloren", 3, 0.0, "lost"),
    ))]
    export = blueprint_from_remote("acme", "hubspot", remote, KnownIds(), HUBSPOT)
    text = to_yaml(export.data, crm="hubspot")
    assert "Gespräch geführt" in text
    assert text.startswith("# acme: exported from HubSpot")
    loaded = parse_blueprint(text, "export.yaml").blueprint
    assert [s.label for s in loaded.pipelines[0].stages] == [
        "Gespräch geführt", "Yes", "Gewonnen", "Verloren"]
    assert "  - key: gespraech_gefuehrt" in text  # list items indented under their key


@pytest.mark.parametrize("crm_name", ["hubspot", "pipedrive"])
def test_export_then_diff_is_clean(crm_name: str, tmp_path: Path) -> None:
    crm = FakeCrm(crm_name)
    crm.seed("Продажі", [("Зустріч призначено", 0.2), ("Пропозицію надіслано", 0.55),
                         ("Won", 1.0), ("Lost", 0.0)])
    crm.seed("Partner & Co. (DACH)", [("Erstgespräch geführt", 0.1), ("Vertrag geprüft", 0.7)])
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    settings = Settings(store_url="sqlite://", configs_dir=tmp_path)
    out = tmp_path / "configs" / "acme.yaml"
    text = export_blueprint("acme", crm_name, settings, output=out, store=store, adapter=crm)
    assert out.read_text(encoding="utf-8") == text
    bp = load_blueprint(out)
    state = store.provisioning("acme", crm_name)
    plan = plan_client(bp, crm, state.known_ids())
    assert plan.is_clean, plan
    # Without the store too: labels alone match everything (adopt only, no writes).
    fresh = plan_client(bp, crm, KnownIds())
    assert {c.action for c in fresh.changes} == {"adopt"}
    # And a later rename in the file is an update of the same id.
    renamed = text.replace("label: Зустріч призначено", "label: Зустріч відбулася")
    out.write_text(renamed, encoding="utf-8")
    plan = plan_client(load_blueprint(out), crm, state.known_ids())
    assert [(c.action, c.field) for c in plan.changes] == [("update", "label")]  # type: ignore[union-attr]
    memory = MemoryState(state.known_ids())
    assert memory.known_ids() == state.known_ids()
    store.close()


def test_export_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "acme.yaml"
    out.write_text("keep me", encoding="utf-8")
    settings = Settings(store_url="sqlite://")
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        export_blueprint("acme", "hubspot", settings, output=out, adapter=FakeCrm())
    assert out.read_text(encoding="utf-8") == "keep me"
    with pytest.raises(ConfigError, match="must be a key"):
        export_blueprint("Acme Corp", "hubspot", settings, adapter=FakeCrm())


def test_export_writes_the_token_variable_it_read(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    crm = FakeCrm("pipedrive")
    crm.seed("Vertrieb", [("Erstgespräch geführt", 0.1)])
    monkeypatch.setenv("NORDWIND_TOKEN", "secret")
    settings = Settings(store_url="sqlite://")
    out = tmp_path / "nordwind.yaml"
    text = export_blueprint("nordwind", "pipedrive", settings, output=out, adapter=crm,
                            token_env="NORDWIND_TOKEN")
    assert "\ntoken_env: NORDWIND_TOKEN\n" in text
    assert "secret" not in text
    assert load_blueprint(out).token_env == "NORDWIND_TOKEN"
    with pytest.raises(ConfigError, match="environment variable name"):
        export_blueprint("nordwind", "pipedrive", settings, adapter=crm, token_env="lower-case")
