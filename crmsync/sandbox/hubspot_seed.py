"""Seeding a synthetic account into a HubSpot portal, and the portal's state as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmsync.sandbox import synthetic
from crmsync.sandbox.hubspot_catalog import STANDARD_GROUP, PropertyCatalog
from crmsync.sandbox.hubspot_merge import MergeApi
from crmsync.sandbox.hubspot_model import (
    Record,
    iso,
    truthy,
)

# Custom properties every seeded portal gets: (type, name, type, fieldType, options).
SEEDED_PROPERTIES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("contacts", "customer_tier", "enumeration", "select", synthetic.TIERS),
    ("contacts", "seats", "number", "number", ()),
    ("contacts", "renewal_date", "date", "date", ()),
    ("contacts", "lead_source_detail", "string", "text", ()),
    ("contacts", "marketing_consent", "bool", "booleancheckbox", ()),
    ("companies", "customer_tier", "enumeration", "select", synthetic.TIERS),
    ("deals", "deal_source", "enumeration", "select", synthetic.DEAL_SOURCES),
)


_SYSTEM = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate",
                     "hs_merged_object_ids", "hs_additional_emails"})


def _copied(props: dict[str, str], tag: str) -> dict[str, str]:
    """A record's values for a new record (emails made distinct: they are unique)."""
    out = {k: v for k, v in props.items() if k not in _SYSTEM}
    if out.get("email"):
        out["email"] = f"{tag}.{out['email']}"
    return out


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


_LIFECYCLE_MIX = ("lead", "lead", "marketingqualifiedlead", "lead", "salesqualifiedlead",
                  "opportunity", "customer", "lead", "marketingqualifiedlead", "subscriber")


class _PipelineStages:
    """One pipeline's stages as seeding uses them: open ones, won, lost."""

    def __init__(self, pipeline: dict[str, Any], stages: list[dict[str, Any]]) -> None:
        self.id: str = pipeline["id"]
        closed = [s for s in stages if truthy(s["metadata"].get("isClosed"))]
        self.open = [s for s in stages if s not in closed] or stages
        self.won = next((s for s in closed if s["metadata"].get("probability") == "1.0"),
                        None)
        self.lost = next((s for s in closed if s["metadata"].get("probability") == "0.0"),
                         None)

    def stage_for(self, deal: synthetic.SyntheticDeal) -> dict[str, Any]:
        if deal.status == "won" and self.won is not None:
            return self.won
        if deal.status == "lost" and self.lost is not None:
            return self.lost
        return self.open[synthetic.stage_index(deal.stage_fraction, len(self.open))]


class SeedingApi(MergeApi):
    """`seed`, `dump_state`, `load_state` of the sandbox's `Emulator` protocol."""

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]:
        """Add a synthetic account (see `synthetic.generate`), with associations.

        A person whose email differs from an earlier one only by case gets no email here:
        HubSpot keeps contact emails unique case-insensitively, so that duplicate cannot
        exist in a real portal (it can in Pipedrive). Custom properties (`SEEDED_PROPERTIES`)
        are defined through the property catalog first; deals spread over every active
        pipeline (so seeding after `apply` uses the applied ones); some records end up
        archived, some merged into an earlier record of their type.
        """
        now_s = self.clock()
        account = synthetic.generate(seed=seed, contacts=contacts, companies=companies,
                                     deals=deals, now=datetime.fromtimestamp(now_s, tz=UTC))
        self._last_ms = max(self._last_ms, int(now_s * 1000))
        self._define_seeded_properties()
        owners = [o["id"] for o in self.owners if not o["archived"]]
        stats = {"contacts": 0, "companies": 0, "deals": 0, "associations": 0, "archived": 0,
                 "merged": 0}
        company_ids = self._seed_companies(account.companies, owners, stats)
        person_ids = self._seed_people(account.people, company_ids, owners, stats)
        self._seed_deals(account.deals, company_ids, person_ids, owners, stats)
        self._seed_endings("companies", account.companies, company_ids, stats)
        self._seed_endings("contacts", account.people, person_ids, stats)
        self._seed_endings("deals", account.deals, self._deal_ids, stats)
        self._touch()
        return stats

    def _define_seeded_properties(self) -> None:
        now = self.now_ms()
        for object_type, name, kind, field_type, options in SEEDED_PROPERTIES:
            if name in self.catalog.definitions[object_type]:
                continue
            self.catalog.definitions[object_type][name] = self.catalog.new_definition(
                name=name, label=name.replace("_", " ").capitalize(), kind=kind,
                field_type=field_type, group=STANDARD_GROUP[object_type],
                options=[{"label": v.capitalize(), "value": v, "displayOrder": i,
                          "hidden": False} for i, v in enumerate(options)], created=now)
        self.catalog.changed()

    def _seed_companies(self, companies: list[synthetic.SyntheticCompany], owners: list[str],
                        stats: dict[str, int]) -> list[int]:
        ids = []
        for i, c in enumerate(companies):
            props = {"name": c.name, "domain": c.domain, "industry": c.industry,
                     "city": c.city, "country": c.country}
            if c.tier:
                props["customer_tier"] = c.tier
            if owners and i % 4:
                props["hubspot_owner_id"] = owners[i % len(owners)]
            ids.append(self._store_new("companies", props, _ms(c.created_at),
                                       _ms(c.modified_at)).id)
        stats["companies"] = len(ids)
        return ids

    def _seed_people(self, people: list[synthetic.SyntheticPerson], company_ids: list[int],
                     owners: list[str], stats: dict[str, int]) -> list[int]:
        ids = []
        emails = self.objects["contacts"].by_email
        for i, p in enumerate(people):
            props = {"firstname": p.first_name, "lastname": p.last_name, "phone": p.phone,
                     "jobtitle": p.job_title,
                     "marketing_consent": "true" if p.marketing_consent else "false"}
            if p.email and p.email.lower() not in emails:
                props["email"] = p.email
            if p.marketing_consent:
                props["hs_legal_basis"] = "Freely given consent from contact"
            if p.tier:
                props["customer_tier"] = p.tier
            if p.seats is not None:
                props["seats"] = str(p.seats)
            if p.renewal_date is not None:
                props["renewal_date"] = p.renewal_date.strftime("%Y-%m-%d")
            if p.lead_source:
                props["lead_source_detail"] = p.lead_source
            # Where each person stands in the funnel (HubSpot's own property), so the board's
            # handoff — sales-qualified contacts with no deal — has something to show.
            props["lifecyclestage"] = _LIFECYCLE_MIX[i % len(_LIFECYCLE_MIX)]
            if owners and i % 3:
                props["hubspot_owner_id"] = owners[i % len(owners)]
            record_id = self._store_new("contacts", props, _ms(p.created_at),
                                        _ms(p.modified_at)).id
            ids.append(record_id)
            if p.company_index is not None:
                # 1: the primary company (with its unlabeled 279, as HubSpot lists both)
                self._associate("contacts", record_id, "companies",
                                company_ids[p.company_index], 1)
                stats["associations"] += 1
            if p.other_company_index is not None and p.other_company_index != p.company_index:
                self._associate("contacts", record_id, "companies",
                                company_ids[p.other_company_index], 279)
                stats["associations"] += 1
        stats["contacts"] = len(ids)
        return ids

    def _seed_deals(self, deals: list[synthetic.SyntheticDeal], company_ids: list[int],
                    person_ids: list[int], owners: list[str], stats: dict[str, int]) -> None:
        pipelines = [_PipelineStages(p, self._ordered(self._active_stages(p)))
                     for p in self._ordered(v for v in self.pipelines.values()
                                            if not v["archived"])]
        self._deal_ids: list[int] = []
        for i, d in enumerate(deals):
            pipeline = pipelines[synthetic.stage_index(d.pipeline_fraction, len(pipelines))]
            stage = pipeline.stage_for(d)
            props = {"dealname": d.title, "amount": f"{d.amount:.2f}",
                     "pipeline": pipeline.id, "dealstage": stage["id"],
                     "closedate": iso(_ms(d.close_date))}
            closed = truthy(stage["metadata"].get("isClosed"))
            props["hs_is_closed"] = "true" if closed else "false"
            props["hs_is_closed_won"] = (
                "true" if closed and stage["metadata"].get("probability") == "1.0" else "false")
            # entered its current stage when last modified (HubSpot's calculated stage date)
            props["hs_date_entered_" + stage["id"]] = iso(_ms(d.modified_at))
            if d.source:
                props["deal_source"] = d.source
            if owners and i % 5:
                props["hubspot_owner_id"] = owners[i % len(owners)]
            record_id = self._store_new("deals", props, _ms(d.created_at),
                                        _ms(d.modified_at)).id
            self._deal_ids.append(record_id)
            if d.company_index is not None:
                self._associate("deals", record_id, "companies", company_ids[d.company_index], 5)
                stats["associations"] += 1
            if d.other_company_index is not None and d.other_company_index != d.company_index:
                self._associate("deals", record_id, "companies",
                                company_ids[d.other_company_index], 341)
                stats["associations"] += 1
            if d.person_index is not None:
                self._associate("deals", record_id, "contacts", person_ids[d.person_index], 3)
                stats["associations"] += 1
        stats["deals"] = len(deals)

    def _seed_endings(self, object_type: str, items: list[Any], ids: list[int],
                      stats: dict[str, int]) -> None:
        """Archived and merged-away records, added beside the requested ones (so a seed of N
        contacts still lists N): an archived copy of an item marked `archived`; for an item
        with `merged_into`, a duplicate of its target merged into that target."""
        records = self.objects[object_type].records
        for item, record_id in zip(items, ids, strict=True):
            archived = getattr(item, "archived", False)
            merged_into = getattr(item, "merged_into", None)
            if archived:
                source = records[record_id]
                copy = self._store_new(object_type, _copied(source.props, "archived"),
                                       source.created_ms, source.updated_ms)
                self._archive(object_type, copy, source.updated_ms)
                stats["archived"] += 1
            if merged_into is not None:
                target = records.get(ids[merged_into])
                if target is None:
                    continue
                when = max(target.updated_ms, records[record_id].updated_ms)
                duplicate = self._store_new(object_type, _copied(target.props, "dup"),
                                            target.created_ms, when)
                self.merge(object_type, target, duplicate, when)
                stats["merged"] += 1

    def dump_state(self) -> dict[str, Any]:
        return {
            "counters": [self._last_ms, self._next_object_id, self._next_pipeline_id,
                         self._next_stage_id],
            "pipelines": self.pipelines,
            "audit": self.audit,
            "gdpr_blocklist": sorted(self.gdpr_blocklist),
            "properties": self.catalog.dump(),
            "owners": self.owners,
            "merged_into": {t: [[old, new] for old, new in ids.items()]
                            for t, ids in self.merged_into.items()},
            "objects": {
                t: [[r.id, r.props, r.created_ms, r.updated_ms, r.archived, r.archived_ms]
                    for r in (store.records[i] for i in store.ids)]
                for t, store in self.objects.items()
            },
            "associations": [
                [from_type, from_id, to_type, to_id, sorted(type_ids)]
                for (from_type, from_id), by_type in self.associations.items()
                for to_type, targets in by_type.items()
                for to_id, type_ids in targets.items()
                if type_ids
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.reset()
        (self._last_ms, self._next_object_id, self._next_pipeline_id,
         self._next_stage_id) = state["counters"]
        self.pipelines = state["pipelines"]
        self.audit = state.get("audit", {})
        self.gdpr_blocklist = set(state.get("gdpr_blocklist", []))
        if "properties" in state:  # state files from before the properties API lack these
            self.catalog = PropertyCatalog.load(state["properties"], self._last_ms)
            self.owners = state["owners"]
            self.merged_into = {t: dict(pairs) for t, pairs in state["merged_into"].items()}
        for object_type, rows in state["objects"].items():
            store = self.objects[object_type]
            for record_id, props, created, updated, archived, archived_ms in rows:
                record = Record(record_id, props, created, updated)
                record.archived, record.archived_ms = archived, archived_ms
                store.add(record)
                if object_type == "contacts":
                    self._index_email(record, None)
        for from_type, from_id, to_type, to_id, type_ids in state["associations"]:
            self.associations.setdefault((from_type, from_id), {}).setdefault(
                to_type, {})[to_id] = set(type_ids)
        self._touch()
