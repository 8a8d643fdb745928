"""Seeding the Pipedrive emulator from a synthetic account (`crmsync.sandbox.synthetic`).

Rows are built directly in their stored v2 shape and loaded with one sort per index, so
100,000 records take about a second; going through `create()` would validate and index
each record one by one.

What a seeded account holds, for sync to cope with:
- custom fields of every kind sync maps (text, double, date, enum, set, monetary and the
  persons' marketing consent), created as field definitions (`…Fields`, 40-char hash keys)
  when the account lacks them, and set on the records in their v2 `custom_fields` shapes;
- deals spread over every live pipeline that has stages (so seeding after `apply` fills the
  applied pipelines), by stage, with values in several currencies, expected close dates,
  open/won/lost with their times, and a few closed ones archived;
- persons linked to organizations, deals to persons and organizations;
- about 2 % of each type soft-deleted within the last 30 days (readable by id, listed by
  deals' `status=deleted` and by `/v1/recents`), unlinked first: nothing points at them;
- one "import" second that every tenth record of each type was last modified in.
The choices are functions of the record's position and `seed`, so a seed gives one account.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from crmsync.sandbox.pipedrive_store import format_time
from crmsync.sandbox.synthetic import SyntheticAccount, generate, stage_index

if TYPE_CHECKING:
    from datetime import datetime

    from crmsync.sandbox.pipedrive import PipedriveEmulator
    from crmsync.sandbox.pipedrive_fields import FieldCatalog
    from crmsync.sandbox.pipedrive_store import Row

_LEAD_SOURCES = ("Website", "Referral", "Event", "Outbound", "Partner")
_SERVICES = ("SEO", "Ads", "Content", "CRM setup", "Training")
_INTERESTS = ("Newsletter", "Webinars", "Case studies", "Product news")
_SEGMENTS = ("SMB", "Mid-market", "Enterprise")
# (entity, name, field_type, option labels) created on first seed when missing
SEED_FIELDS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("deal", "Services", "set", _SERVICES),
    ("deal", "Contract start", "date", ()),
    ("deal", "Seats", "double", ()),
    ("deal", "Deal notes", "text", ()),
    ("person", "Interests", "set", _INTERESTS),
    ("person", "Consent date", "date", ()),
    ("person", "Lead score", "double", ()),
    ("organization", "Segment", "enum", _SEGMENTS),
    ("organization", "Employees", "double", ()),
    ("organization", "Customer since", "date", ()),
    ("organization", "Annual budget", "monetary", ()),
    ("organization", "About", "text", ()),
)
# deal currencies, EUR most often (the account's default)
_CURRENCIES = ("EUR", "EUR", "EUR", "EUR", "USD", "USD", "GBP", "CHF")
DELETED_EVERY = 50  # about 2 % of each type deleted
TIED_EVERY = 10  # every tenth record shares the import second
ARCHIVED_EVERY = 29  # of the won and lost deals, one in this many is archived


def ensure_seed_fields(catalog: FieldCatalog, now: str) -> None:
    """Create the custom fields seeding sets (`SEED_FIELDS`) that the account lacks."""
    for entity, name, field_type, labels in SEED_FIELDS:
        try:
            catalog.key_of(entity, name)
        except KeyError:
            catalog.add_custom(entity, name, field_type,
                               [{"label": label} for label in labels] or None, now=now)


@dataclass
class _Seeding:
    """What every row builder needs: the account, its field catalog, the RNG, the times."""

    emulator: PipedriveEmulator
    account: SyntheticAccount
    rng: random.Random
    now: datetime
    seed: int

    @property
    def catalog(self) -> FieldCatalog:
        return self.emulator.fields

    def key(self, entity: str, name: str) -> str:
        return self.catalog.key_of(entity, name)

    def options(self, entity: str, name: str, labels: tuple[str, ...]) -> list[int]:
        return [self.catalog.option_id(entity, name, label) for label in labels]

    def __post_init__(self) -> None:
        self.import_second = format_time(self.now - timedelta(days=3, hours=5))

    def modified(self, position: int, moment: datetime) -> str:
        """The record's modification time; every TIED_EVERY-th shares the import second."""
        if position % TIED_EVERY == TIED_EVERY - 1:
            return self.import_second
        return _stamp(moment)

    def below(self, n: int) -> int:
        """A random int in [0, n): `int(random() * n)` is several times faster than randrange."""
        return int(self.rng.random() * n)

    def pick_two(self, position: int, choices: list[int]) -> list[int]:
        """One or two option ids, sorted, as a set field stores them."""
        first, second = choices[position % len(choices)], choices[self.below(len(choices))]
        return [first] if first == second else [min(first, second), max(first, second)]


def _stamp(moment: datetime) -> str:
    """`format_time` for the generator's UTC datetimes, without strftime (seeding speed)."""
    return moment.isoformat()[:19] + "Z"


def seed_account(
    emulator: PipedriveEmulator, *, contacts: int, companies: int, deals: int, seed: int,
    now: datetime,
) -> dict[str, int]:
    """Add organizations, persons and deals with their links; returns the counts added."""
    account = generate(seed=seed, contacts=contacts, companies=companies, deals=deals, now=now)
    rng = random.Random(seed * 7_919 + 17)  # noqa: S311 - reproducible test data
    ensure_seed_fields(emulator.fields, format_time(now))
    run = _Seeding(emulator, account, rng, now, seed)
    org_rows = _organizations(run, emulator.organizations.next_id)
    person_rows = _persons(run, emulator.persons.next_id, org_rows)
    deal_rows = _deals(run, emulator.deals.next_id, org_rows, person_rows)
    # a deleted organization or person was unlinked first: nothing live points at it
    gone = _delete_some(run, "organizations", org_rows)
    person_rows = _unlink(person_rows, "org_id", gone)
    deal_rows = _unlink(deal_rows, "org_id", gone)
    gone = _delete_some(run, "persons", person_rows)
    deal_rows = _unlink(deal_rows, "person_id", gone)
    _delete_some(run, "deals", deal_rows)
    for table, rows in ((emulator.organizations, org_rows), (emulator.persons, person_rows),
                        (emulator.deals, deal_rows)):
        table.load([*table.rows.values(), *rows])
    emulator.first_won.update({r["id"]: r["won_time"] for r in deal_rows if r["won_time"]})
    return {"contacts": len(person_rows), "companies": len(org_rows), "deals": len(deal_rows)}


def _unlink(rows: list[Row], field: str, ids: set[int]) -> list[Row]:
    if not ids:
        return rows
    return [{**r, field: None} if r[field] in ids else r for r in rows]


def _delete_some(run: _Seeding, name: str, rows: list[Row]) -> set[int]:
    """Soft-delete every DELETED_EVERY-th row (in place), within the last 20 days; their ids."""
    start = run.now - timedelta(days=20)
    deleted: set[int] = set()
    for position in range(DELETED_EVERY // 2, len(rows), DELETED_EVERY):
        row = rows[position]
        deleted.add(row["id"])
        when = max(format_time(start + timedelta(minutes=7 * (position // DELETED_EVERY))),
                   row["add_time"])
        when = min(when, format_time(run.now))
        rows[position] = {**row, "is_deleted": True, "update_time": when}
        run.emulator.deleted_at[name][row["id"]] = when
    return deleted


def _organizations(run: _Seeding, first_org: int) -> list[Row]:
    from crmsync.sandbox.pipedrive import DEFAULT_OWNER_ID, DEFAULT_VISIBLE_TO

    key = run.key
    domain_key, segment_key = key("organization", "Domain"), key("organization", "Segment")
    employees_key, since_key = key("organization", "Employees"), key("organization",
                                                                      "Customer since")
    budget_key, about_key = key("organization", "Annual budget"), key("organization", "About")
    segments = run.options("organization", "Segment", _SEGMENTS)
    org_rows: list[Row] = []
    for offset, company in enumerate(run.account.companies):
        custom: dict[str, Any] = {domain_key: company.domain,
                                  segment_key: segments[offset % len(segments)]}
        if offset % 3 == 0:
            custom[employees_key] = 5 + run.below(4_995)
            custom[since_key] = company.created_at.date().isoformat()
            custom[budget_key] = {"value": (10 + run.below(490)) * 1_000, "currency": "EUR"}
            custom[about_key] = f"{company.industry.replace('_', ' ').title()} in {company.city}"
        org_rows.append({
            "id": first_org + offset,
            "name": company.name,
            "owner_id": DEFAULT_OWNER_ID,
            "add_time": _stamp(company.created_at),
            "update_time": run.modified(offset, company.modified_at),
            "is_deleted": False,
            "visible_to": DEFAULT_VISIBLE_TO,
            "address": {"value": f"{company.city}, {company.country}",
                        "locality": company.city, "country": company.country},
            "label_ids": [],
            "website": f"https://{company.domain}",
            "linkedin": None,
            "industry": None,
            "annual_revenue": None,
            "employee_count": None,
            "custom_fields": custom,
        })
    return org_rows


def _persons(run: _Seeding, first_person: int, org_rows: list[Row]) -> list[Row]:
    from crmsync.sandbox.pipedrive import DEFAULT_OWNER_ID, DEFAULT_VISIBLE_TO

    key, rng, catalog = run.key, run.rng, run.catalog
    first_org = org_rows[0]["id"] if org_rows else 0
    consent_key = key("person", "Marketing consent")
    consent = {True: catalog.option_id("person", "Marketing consent", "Yes"),
               False: catalog.option_id("person", "Marketing consent", "No")}
    interests_key = key("person", "Interests")
    interests = run.options("person", "Interests", _INTERESTS)
    consent_date_key, score_key = key("person", "Consent date"), key("person", "Lead score")
    person_rows: list[Row] = []
    for offset, person in enumerate(run.account.people):
        name = f"{person.first_name} {person.last_name}"
        emails = ([{"value": person.email, "primary": True, "label": "work"}]
                  if person.email else [])
        custom: dict[str, Any] = {consent_key: consent[person.marketing_consent],
                  score_key: round(rng.random() * 100, 1)}
        if person.marketing_consent:
            custom[consent_date_key] = person.created_at.date().isoformat()
            custom[interests_key] = run.pick_two(offset, interests)
        person_rows.append({
            "id": first_person + offset,
            "name": name,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "owner_id": DEFAULT_OWNER_ID,
            "org_id": None if person.company_index is None else first_org + person.company_index,
            "add_time": _stamp(person.created_at),
            "update_time": run.modified(offset, person.modified_at),
            "emails": emails,
            "phones": [{"value": person.phone, "primary": True, "label": "work"}],
            "is_deleted": False,
            "visible_to": DEFAULT_VISIBLE_TO,
            "label_ids": [],
            "picture_id": None,
            "job_title": person.job_title,
            "marketing_status": "subscribed" if person.marketing_consent else "no_consent",
            "custom_fields": custom,
        })
    return person_rows


def _deals(run: _Seeding, first_deal: int, org_rows: list[Row],
           person_rows: list[Row]) -> list[Row]:
    from crmsync.sandbox.pipedrive import DEFAULT_OWNER_ID, DEFAULT_VISIBLE_TO, LOST_REASONS

    key, seed = run.key, run.seed
    owner, visible = DEFAULT_OWNER_ID, DEFAULT_VISIBLE_TO
    first_org = org_rows[0]["id"] if org_rows else 0
    first_person = person_rows[0]["id"] if person_rows else 0
    boards = _boards(run.emulator)
    fee_key, source_key = key("deal", "Monthly fee"), key("deal", "Lead source")
    sources = run.options("deal", "Lead source", _LEAD_SOURCES)
    services_key = key("deal", "Services")
    services = run.options("deal", "Services", _SERVICES)
    start_key, seats_key = key("deal", "Contract start"), key("deal", "Seats")
    notes_key = key("deal", "Deal notes")
    deal_rows: list[Row] = []
    for offset, deal in enumerate(run.account.deals):
        pipeline_id, stages = boards[offset % len(boards)]
        stage = stages[stage_index(deal.stage_fraction, len(stages))]
        currency = _CURRENCIES[(offset * 5 + seed) % len(_CURRENCIES)]
        added = _stamp(deal.created_at)
        changed = run.modified(offset, deal.modified_at)
        closed = _stamp(deal.modified_at) if deal.status != "open" else None
        archived = offset % ARCHIVED_EVERY == 7 and deal.status != "open"
        custom: dict[str, Any] = {
            fee_key: {"value": round(deal.amount / 12, 2), "currency": currency},
            source_key: sources[offset % len(sources)],
            services_key: run.pick_two(offset, services),
            seats_key: 1 + run.below(199),
        }
        if deal.status == "won":
            custom[start_key] = deal.close_date.date().isoformat()
        if offset % 4 == 0:
            custom[notes_key] = f"{deal.title}: follow up after the proposal"
        deal_rows.append({
            "id": first_deal + offset,
            "title": deal.title,
            "creator_user_id": owner,
            "owner_id": owner,
            "person_id": None if deal.person_index is None else first_person + deal.person_index,
            "org_id": None if deal.company_index is None else first_org + deal.company_index,
            "pipeline_id": pipeline_id,
            "stage_id": stage["id"],
            "value": deal.amount,
            "currency": currency,
            "add_time": added,
            "update_time": changed,
            "stage_change_time": None if stage is stages[0] else changed,
            "is_deleted": False,
            "is_archived": archived,
            "archive_time": closed if archived else None,
            "status": deal.status,
            "probability": None,
            "lost_reason": LOST_REASONS[offset % len(LOST_REASONS)]
            if deal.status == "lost" else None,
            "visible_to": visible,
            "close_time": closed,
            "won_time": closed if deal.status == "won" else None,
            "lost_time": closed if deal.status == "lost" else None,
            "expected_close_date": deal.close_date.date().isoformat(),
            "label_ids": [],
            "origin": "ManuallyCreated",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "arr": None,
            "mrr": None,
            "acv": None,
            "custom_fields": custom,
        })

    return deal_rows


def _boards(emulator: PipedriveEmulator) -> list[tuple[int, list[Row]]]:
    """(pipeline id, its stages in order) of every live pipeline with stages, in board
    order; the default pipeline is made when there is none."""
    live = sorted((r for r in emulator.pipelines.rows.values() if not r["is_deleted"]),
                  key=lambda r: (r["order_nr"], r["id"]))
    boards = [(p["id"], emulator.pipeline_stages(p["id"])) for p in live]
    boards = [(pipeline_id, stages) for pipeline_id, stages in boards if stages]
    if not boards:
        pipeline, stages = emulator.ensure_default_pipeline()
        boards = [(pipeline["id"], stages)]
    return boards
