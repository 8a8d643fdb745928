"""Seeded store data for the board's tests, in each CRM's shape, with an independent oracle.

`generate(crm)` makes a deterministic account as plain specs; `seed(store, client, crm, …)`
writes it through `RecordStore.commit_page` as sync would; `Oracle` recomputes every figure
from the specs alone (never from the store, never with the code under test).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.blueprint.models import Blueprint
from crmsync.store.records import AssociationRow, RecordRow, RemovalRow

if TYPE_CHECKING:
    from crmsync.store import Store

AS_OF = dt.date(2026, 3, 1)
NOON = dt.time(12, tzinfo=dt.UTC)

BLUEPRINT: dict[str, Any] = {
    "client": "acme",
    "currency": "EUR",
    "pipelines": [
        {"key": "new_business", "label": "New business", "stages": [
            {"key": "meeting_booked", "label": "Meeting booked", "probability": 0.1,
             "rot_after_days": 10},
            {"key": "needs_assessed", "label": "Needs assessed", "probability": 0.3},
            {"key": "proposal_sent", "label": "Proposal <sent> & co", "probability": 0.6,
             "rot_after_days": 14},
            {"key": "contract_sent", "label": "Contract sent", "probability": 0.8,
             "rot_after_days": 7},
            {"key": "won", "label": "Contract signed", "probability": 1.0, "outcome": "won"},
            {"key": "lost", "label": "Lost", "probability": 0.0, "outcome": "lost"},
        ]},
        {"key": "renewals", "label": "Renewals", "stages": [
            {"key": "renewal_due", "label": "Renewal due", "probability": 0.5,
             "rot_after_days": 30},
            {"key": "renewal_agreed", "label": "Renewal agreed", "probability": 0.9},
            {"key": "renewed", "label": "Renewed", "probability": 1.0, "outcome": "won"},
        ]},
    ],
}


def blueprint(crm: str, **extra: Any) -> Blueprint:
    return Blueprint.model_validate({**BLUEPRINT, "crm": crm, **extra})


def at(days_before: float) -> dt.datetime:
    """A moment `days_before` days before AS_OF's noon (UTC)."""
    return dt.datetime.combine(AS_OF, NOON) - dt.timedelta(days=days_before)


@dataclass
class SeedCompany:
    remote_id: str
    deleted: bool = False


@dataclass
class SeedContact:
    remote_id: str
    email: str | None
    consent: bool | None
    first_name: str
    properties: dict[str, Any] = field(default_factory=dict)
    company: str | None = None
    deleted: bool = False


@dataclass
class SeedDeal:
    remote_id: str
    name: str
    amount: float | None
    currency: str | None
    pipeline_key: str | None
    stage_key: str | None
    status: str
    owner: str | None
    created: dt.datetime
    stage_changed: dt.datetime | None
    closed: dt.datetime | None
    contact: str | None = None
    company: str | None = None
    deleted: bool = False


@dataclass
class Account:
    crm: str
    companies: list[SeedCompany]
    contacts: list[SeedContact]
    deals: list[SeedDeal]


OPEN_STAGES = {"new_business": ["meeting_booked", "needs_assessed", "proposal_sent",
                                "contract_sent"],
               "renewals": ["renewal_due", "renewal_agreed"]}
OUTCOME = {("new_business", "won"): "won", ("new_business", "lost"): "lost",
           ("renewals", "won"): "renewed"}


def generate(crm: str, *, seed: int = 11, deals: int = 160, contacts: int = 90) -> Account:
    """A deterministic account in `crm`'s shape (see `_sq_props` and the deal stages)."""
    rng = random.Random(seed)
    companies = [SeedCompany(f"co{i}", deleted=i % 13 == 12) for i in range(12)]
    people = []
    for i in range(contacts):
        email = None if i % 9 == 4 else f"person{i}@example.com"
        consent = [True, True, False, None][i % 4]
        people.append(SeedContact(
            f"p{i}", email, consent, f"Person{i}",
            properties=_sq_props(crm, rng, i),
            company=rng.choice([None, *(c.remote_id for c in companies)]),
            deleted=i % 17 == 16))
    deal_specs = []
    for i in range(deals):
        pipeline = rng.choice(["new_business", "new_business", "renewals", None])
        status = rng.choice(["open", "open", "open", "won", "lost"])
        if pipeline == "renewals" and status == "lost":
            status = "open"
        created = at(rng.uniform(1, 200))
        stage: str | None
        if pipeline is None:
            stage = None
        elif status == "open":
            stage = rng.choice(OPEN_STAGES[pipeline])
            if rng.random() < 0.05:
                stage = None  # a stage no blueprint manages (added in the CRM by hand)
        elif crm == "hubspot":  # HubSpot: a closed deal sits in the outcome stage
            stage = OUTCOME[(pipeline, status)]
        else:  # Pipedrive: won/lost is a status; the deal keeps its open stage
            stage = rng.choice(OPEN_STAGES[pipeline])
        age = (dt.datetime.combine(AS_OF, NOON) - created).days
        changed = created + dt.timedelta(days=rng.uniform(0, age)) if rng.random() < 0.9 \
            else None
        closed = (created + dt.timedelta(days=rng.uniform(0, age + 5))
                  if status != "open" else None)
        currency = ("USD" if rng.random() < 0.06 else "EUR") if crm == "pipedrive" else None
        deal_specs.append(SeedDeal(
            remote_id=f"d{i}", name=f"Deal {i}",
            amount=None if i % 23 == 0 else round(rng.uniform(500, 40000), 2),
            currency=currency, pipeline_key=pipeline, stage_key=stage, status=status,
            owner=rng.choice(["u1", "u2", "u3", None]), created=created,
            stage_changed=changed, closed=closed,
            contact=rng.choice([None, *(p.remote_id for p in people[:40])]),
            company=rng.choice([None, *(c.remote_id for c in companies)]),
            deleted=i % 29 == 28))
    deal_specs.extend(_boundaries(crm))
    people.extend(_waiting_boundaries(crm))
    return Account(crm, companies, people, deal_specs)


def _boundaries(crm: str) -> list[SeedDeal]:
    """Deals exactly at each limit: a figure that is off by one day fails a test."""
    won_stage = "won" if crm == "hubspot" else "contract_sent"
    lost_stage = "lost" if crm == "hubspot" else "proposal_sent"

    def deal(name: str, stage: str, status: str, *, entered: float = 3,
             closed: float | None = None) -> SeedDeal:
        return SeedDeal(f"edge-{name}", name, 1000.0, None, "new_business", stage, status,
                        "u9", at(300), at(entered), at(closed) if closed is not None else None,
                        contact="p1", company="co1")

    return [
        deal("At the limit", "proposal_sent", "open", entered=14),  # 14 days: not stuck
        deal("Past the limit", "proposal_sent", "open", entered=15),  # stuck
        deal("Closed today", won_stage, "won", closed=0),  # in both windows
        deal("Closed 29 days ago", lost_stage, "lost", closed=29),  # in the 30-day window
        deal("Closed 30 days ago", won_stage, "won", closed=30),  # only in the 90-day one
        deal("Closed 89 days ago", won_stage, "won", closed=89),
        deal("Closed 90 days ago", lost_stage, "lost", closed=90),  # in neither
        deal("Closed tomorrow", won_stage, "won", closed=-1),  # after as_of: in neither
    ]


def _waiting_boundaries(crm: str) -> list[SeedContact]:
    """Sales-qualified contacts without a deal, qualified exactly 14 and 15 days ago."""
    people = []
    for days in (14, 15):
        props = _sq_props(crm, random.Random(days), 1)
        created = at(days)
        if crm == "hubspot":
            props["createdate"] = created.isoformat()
            props["hs_lifecyclestage_salesqualifiedlead_date"] = str(
                int(created.timestamp() * 1000))
        else:
            props["add_time"] = created.strftime("%Y-%m-%d %H:%M:%S")
        people.append(SeedContact(f"edge{days}", f"edge{days}@example.com", True,
                                  f"Edge{days}", props))
    return people


def _sq_props(crm: str, rng: random.Random, i: int) -> dict[str, Any]:
    """HubSpot: lifecyclestage with its SQL date (epoch ms), createdate ISO. Pipedrive: the
    "Lifecycle stage" custom field by label, add_time as Pipedrive prints it."""
    created = at(rng.uniform(0, 120))
    qualified = created + dt.timedelta(days=rng.uniform(0, 30))
    is_sql = i % 3 != 0
    if crm == "hubspot":
        props: dict[str, Any] = {"createdate": created.isoformat().replace("+00:00", "Z"),
                                 "lifecyclestage": "salesqualifiedlead" if is_sql else "lead"}
        if is_sql and i % 5 != 0:  # some SQLs lack the date: creation time counts
            props["hs_lifecyclestage_salesqualifiedlead_date"] = str(
                int(qualified.timestamp() * 1000))
        return props
    return {"add_time": created.strftime("%Y-%m-%d %H:%M:%S"),
            "lifecycle_stage": "Sales qualified lead" if is_sql else "Lead"}


def seed(store: Store, client: str, account: Account) -> None:
    """Write the account through `commit_page` (companies, contacts, deals, then removals)."""
    records = store.records(client)
    crm = account.crm

    def row(remote_id: str, columns: dict[str, Any], props: dict[str, Any],
            assoc: tuple[AssociationRow, ...] | None) -> RecordRow:
        return RecordRow(remote_id, at(0), columns, props, {"columns": remote_id}, assoc)

    records.commit_page(crm, "companies", [
        row(c.remote_id, {"name": c.remote_id}, {}, None) for c in account.companies], [], None)
    records.commit_page(crm, "contacts", [
        row(p.remote_id, {"email": p.email, "consent": p.consent, "first_name": p.first_name},
            p.properties,
            tuple(AssociationRow("companies", p.company) for _ in [0] if p.company))
        for p in account.contacts], [], None)
    records.commit_page(crm, "deals", [
        row(d.remote_id, {
            "name": d.name, "amount": d.amount, "currency": d.currency,
            "pipeline_key": d.pipeline_key, "stage_key": d.stage_key, "status": d.status,
            "owner_id": d.owner, "remote_created_at": d.created,
            "stage_changed_at": d.stage_changed, "closed_at": d.closed,
            "remote_pipeline_id": d.pipeline_key or "p-other",
        }, {}, tuple(a for a in (
            AssociationRow("contacts", d.contact) if d.contact else None,
            AssociationRow("companies", d.company) if d.company else None) if a))
        for d in account.deals], [], None)
    for object_type, gone in (("companies", [c.remote_id for c in account.companies
                                             if c.deleted]),
                              ("contacts", [p.remote_id for p in account.contacts if p.deleted]),
                              ("deals", [d.remote_id for d in account.deals if d.deleted])):
        if gone:
            records.commit_page(crm, object_type, [],
                                [RemovalRow(r, "deleted", at(0)) for r in gone], None)
