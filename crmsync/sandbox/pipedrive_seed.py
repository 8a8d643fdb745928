"""Seeding the Pipedrive emulator from a synthetic account (`crmsync.sandbox.synthetic`).

Rows are built directly in their stored v2 shape and loaded with one sort per index, so
100,000 records take about a second; going through `create()` would validate and index
each record one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive_store import format_time
from crmsync.sandbox.synthetic import generate, stage_index

if TYPE_CHECKING:
    from datetime import datetime

    from crmsync.sandbox.pipedrive import PipedriveEmulator

_LEAD_SOURCES = ("Website", "Referral", "Event", "Outbound", "Partner")


def seed_account(
    emulator: PipedriveEmulator, *, contacts: int, companies: int, deals: int, seed: int,
    now: datetime,
) -> dict[str, int]:
    """Add organizations, persons and deals with their links; returns the counts added."""
    from crmsync.sandbox.pipedrive import (
        DEFAULT_CURRENCY,
        DEFAULT_OWNER_ID,
        DEFAULT_VISIBLE_TO,
        LOST_REASONS,
    )

    account = generate(seed=seed, contacts=contacts, companies=companies, deals=deals, now=now)
    pipeline, stages = emulator.ensure_default_pipeline()
    catalog = emulator.fields
    domain_key = catalog.key_of("organization", "Domain")
    consent_key = catalog.key_of("person", "Marketing consent")
    consent = {True: catalog.option_id("person", "Marketing consent", "Yes"),
               False: catalog.option_id("person", "Marketing consent", "No")}
    fee_key = catalog.key_of("deal", "Monthly fee")
    source_key = catalog.key_of("deal", "Lead source")
    sources = [catalog.option_id("deal", "Lead source", s) for s in _LEAD_SOURCES]
    owner, visible = DEFAULT_OWNER_ID, DEFAULT_VISIBLE_TO

    orgs = emulator.organizations
    first_org = orgs.next_id
    org_rows: list[dict[str, Any]] = []
    for offset, company in enumerate(account.companies):
        org_rows.append({
            "id": first_org + offset,
            "name": company.name,
            "owner_id": owner,
            "add_time": format_time(company.created_at),
            "update_time": format_time(company.modified_at),
            "is_deleted": False,
            "visible_to": visible,
            "address": {"value": f"{company.city}, {company.country}",
                        "locality": company.city, "country": company.country},
            "label_ids": [],
            "website": f"https://{company.domain}",
            "linkedin": None,
            "industry": None,
            "annual_revenue": None,
            "employee_count": None,
            "custom_fields": {domain_key: company.domain},
        })
    orgs.load([*orgs.rows.values(), *org_rows])

    persons = emulator.persons
    first_person = persons.next_id
    person_rows: list[dict[str, Any]] = []
    for offset, person in enumerate(account.people):
        name = f"{person.first_name} {person.last_name}"
        emails = ([{"value": person.email, "primary": True, "label": "work"}]
                  if person.email else [])
        person_rows.append({
            "id": first_person + offset,
            "name": name,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "owner_id": owner,
            "org_id": None if person.company_index is None else first_org + person.company_index,
            "add_time": format_time(person.created_at),
            "update_time": format_time(person.modified_at),
            "emails": emails,
            "phones": [{"value": person.phone, "primary": True, "label": "work"}],
            "is_deleted": False,
            "visible_to": visible,
            "label_ids": [],
            "picture_id": None,
            "job_title": person.job_title,
            "custom_fields": {consent_key: consent[person.marketing_consent]},
        })
    persons.load([*persons.rows.values(), *person_rows])

    table = emulator.deals
    first_deal = table.next_id
    deal_rows: list[dict[str, Any]] = []
    for offset, deal in enumerate(account.deals):
        stage = stages[stage_index(deal.stage_fraction, len(stages))]
        added = format_time(deal.created_at)
        modified = format_time(deal.modified_at)
        closed = modified if deal.status != "open" else None
        deal_rows.append({
            "id": first_deal + offset,
            "title": deal.title,
            "creator_user_id": owner,
            "owner_id": owner,
            "person_id": None if deal.person_index is None else first_person + deal.person_index,
            "org_id": None if deal.company_index is None else first_org + deal.company_index,
            "pipeline_id": pipeline["id"],
            "stage_id": stage["id"],
            "value": deal.amount,
            "currency": DEFAULT_CURRENCY,
            "add_time": added,
            "update_time": modified,
            "stage_change_time": None if stage is stages[0] else modified,
            "is_deleted": False,
            "is_archived": False,
            "archive_time": None,
            "status": deal.status,
            "probability": None,
            "lost_reason": LOST_REASONS[offset % len(LOST_REASONS)]
            if deal.status == "lost" else None,
            "visible_to": visible,
            "close_time": closed,
            "won_time": closed if deal.status == "won" else None,
            "lost_time": closed if deal.status == "lost" else None,
            "expected_close_date": deal.close_date.date().isoformat()
            if deal.status == "open" else None,
            "label_ids": [],
            "origin": "ManuallyCreated",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "arr": None,
            "mrr": None,
            "acv": None,
            "custom_fields": {
                fee_key: {"value": round(deal.amount / 12, 2), "currency": DEFAULT_CURRENCY},
                source_key: sources[offset % len(sources)],
            },
        })
    table.load([*table.rows.values(), *deal_rows])
    emulator.first_won.update({r["id"]: r["won_time"] for r in deal_rows if r["won_time"]})
    return {"contacts": len(person_rows), "companies": len(org_rows), "deals": len(deal_rows)}
