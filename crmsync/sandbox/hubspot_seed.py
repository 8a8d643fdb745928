"""Seeding a synthetic account into a HubSpot portal, and the portal's state as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmsync.sandbox import synthetic
from crmsync.sandbox.hubspot_catalog import PropertyCatalog
from crmsync.sandbox.hubspot_model import (
    DEFAULT_PIPELINE_ID,
    Record,
    iso,
    truthy,
)
from crmsync.sandbox.hubspot_objects import ObjectsApi


class SeedingApi(ObjectsApi):
    """`seed`, `dump_state`, `load_state` of the sandbox's `Emulator` protocol."""

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]:
        """Add a synthetic account (see `synthetic.generate`), with associations.

        A person whose email differs from an earlier one only by case gets no email here:
        HubSpot keeps contact emails unique case-insensitively, so that duplicate cannot
        exist in a real portal (it can in Pipedrive).
        """
        now_s = self.clock()
        account = synthetic.generate(seed=seed, contacts=contacts, companies=companies,
                                     deals=deals, now=datetime.fromtimestamp(now_s, tz=UTC))
        pipeline = self.pipelines[DEFAULT_PIPELINE_ID]
        stages = self._ordered(self._active_stages(pipeline))
        open_stages = [s["id"] for s in stages if not truthy(s["metadata"].get("isClosed"))]
        won = next((s["id"] for s in stages if s["metadata"].get("probability") == "1.0"),
                   stages[-1]["id"])
        lost = next((s["id"] for s in stages if s["metadata"].get("probability") == "0.0"),
                    stages[-1]["id"])
        self._last_ms = max(self._last_ms, int(now_s * 1000))

        def ms(when: datetime) -> int:
            return int(when.timestamp() * 1000)

        company_ids = []
        for c in account.companies:
            props = {"name": c.name, "domain": c.domain, "industry": c.industry,
                     "city": c.city, "country": c.country}
            company_ids.append(self._store_new("companies", props, ms(c.created_at),
                                               ms(c.modified_at)).id)
        person_ids = []
        links = 0
        emails = self.objects["contacts"].by_email
        for p in account.people:
            props = {"firstname": p.first_name, "lastname": p.last_name, "phone": p.phone,
                     "jobtitle": p.job_title}
            if p.email and p.email.lower() not in emails:
                props["email"] = p.email
            if p.marketing_consent:
                props["hs_legal_basis"] = "Freely given consent from contact"
            record_id = self._store_new("contacts", props, ms(p.created_at), ms(p.modified_at)).id
            person_ids.append(record_id)
            if p.company_index is not None:
                self._associate("contacts", record_id, "companies",
                                company_ids[p.company_index], 1)
                links += 1
        for d in account.deals:
            if d.status == "won":
                stage = won
            elif d.status == "lost":
                stage = lost
            else:
                stage = open_stages[synthetic.stage_index(d.stage_fraction, len(open_stages))]
            props = {"dealname": d.title, "amount": f"{d.amount:.2f}", "pipeline": pipeline["id"],
                     "dealstage": stage, "closedate": iso(ms(d.close_date))}
            record_id = self._store_new("deals", props, ms(d.created_at), ms(d.modified_at)).id
            if d.company_index is not None:
                self._associate("deals", record_id, "companies", company_ids[d.company_index], 5)
                links += 1
            if d.person_index is not None:
                self._associate("deals", record_id, "contacts", person_ids[d.person_index], 3)
                links += 1
        self._touch()
        return {"contacts": len(person_ids), "companies": len(company_ids),
                "deals": len(account.deals), "associations": links}

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
