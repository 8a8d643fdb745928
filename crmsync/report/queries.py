"""Read-only queries behind the board: one client's live deals and contacts as plain rows.

SQLAlchemy Core over the store's record tables; rows are streamed in id order in batches, so
memory stays flat whatever the account size. Everything the board computes happens in
`board.py` over these rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select

from crmsync.store.schema import associations, companies, contacts, deals

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from sqlalchemy import ColumnElement, Select

    from crmsync.store import Store


@dataclass(frozen=True)
class DealRow:
    """One live deal, as the board needs it."""

    id: int
    name: str | None
    amount: float | None
    currency: str | None
    pipeline_key: str | None
    stage_key: str | None
    status: str | None  # open | won | lost (None: the CRM said neither)
    owner_id: str | None = None
    stage_changed_at: dt.datetime | None = None
    remote_created_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    has_contact: bool = False
    has_company: bool = False
    remote_pipeline_id: str | None = None
    remote_stage_id: str | None = None


@dataclass(frozen=True)
class ContactRow:
    """One live contact, as the handoff needs it."""

    id: int
    email: str | None
    consent: bool | None
    first_name: str | None = None
    last_name: str | None = None
    owner_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None  # when the store first saw it
    has_open_deal: bool = False  # an open deal names it, or its company


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite gives naive datetimes back for timezone-aware columns; the store writes UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _live(table: Any) -> ColumnElement[bool]:
    return and_(table.c.deleted_at.is_(None), table.c.stub.is_(False))


def _linked(client: str, owner: Any, to_type: str, target: Any) -> ColumnElement[bool]:
    # A target known only as a stub still exists in the CRM (its page has not come yet), so
    # it counts as linked; a deleted one does not.
    return exists().where(
        associations.c.client == client, associations.c.from_type == owner.name,
        associations.c.from_id == owner.c.id, associations.c.to_type == to_type,
        target.c.id == associations.c.to_id, target.c.deleted_at.is_(None))


def _batched(store: Store, query: Select[Any], id_column: Any, batch: int
             ) -> Iterator[Mapping[str, Any]]:
    last = 0
    while True:
        with store.engine.connect() as conn:
            rows: list[Mapping[str, Any]] = [dict(r._mapping) for r in conn.execute(
                query.where(id_column > last).order_by(id_column).limit(batch))]
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1]["id"]


def deal_rows(store: Store, client: str, *, batch: int = 2000) -> Iterator[DealRow]:
    """Every live deal of `client`, with whether it is linked to a contact and a company."""
    query = select(
        deals.c.id, deals.c.name, deals.c.amount, deals.c.currency, deals.c.pipeline_key,
        deals.c.stage_key, deals.c.status, deals.c.owner_id, deals.c.stage_changed_at,
        deals.c.remote_created_at, deals.c.closed_at, deals.c.remote_pipeline_id,
        deals.c.remote_stage_id,
        _linked(client, deals, "contacts", contacts).label("has_contact"),
        _linked(client, deals, "companies", companies).label("has_company"),
    ).where(deals.c.client == client, _live(deals))
    for row in _batched(store, query, deals.c.id, batch):
        yield DealRow(
            id=row["id"], name=row["name"],
            amount=None if row["amount"] is None else float(row["amount"]),
            currency=row["currency"], pipeline_key=row["pipeline_key"],
            stage_key=row["stage_key"], status=row["status"], owner_id=row["owner_id"],
            stage_changed_at=_aware(row["stage_changed_at"]),
            remote_created_at=_aware(row["remote_created_at"]),
            closed_at=_aware(row["closed_at"]),
            has_contact=bool(row["has_contact"]), has_company=bool(row["has_company"]),
            remote_pipeline_id=row["remote_pipeline_id"],
            remote_stage_id=row["remote_stage_id"],
        )


def contact_rows(store: Store, client: str, *, batch: int = 2000) -> Iterator[ContactRow]:
    """Every live contact of `client`, with whether an open deal names it or its company."""
    open_deal = and_(deals.c.client == client, _live(deals),
                     or_(deals.c.status == "open", deals.c.status.is_(None)))
    by_contact = exists().where(
        associations.c.client == client, associations.c.from_type == "deals",
        associations.c.to_type == "contacts", associations.c.to_id == contacts.c.id,
        deals.c.id == associations.c.from_id, open_deal)
    # Companies with an open deal, as one uncorrelated subquery (evaluated once): correlated
    # through both association hops, SQLite's planner scans every deal link per contact.
    deal_link = associations.alias("deal_link")
    open_companies = select(deal_link.c.to_id).join(deals, deals.c.id == deal_link.c.from_id).where(
        deal_link.c.client == client, deal_link.c.from_type == "deals",
        deal_link.c.to_type == "companies", open_deal)
    company_link = associations.alias("company_link")
    by_company = exists().where(
        company_link.c.client == client, company_link.c.from_type == "contacts",
        company_link.c.from_id == contacts.c.id, company_link.c.to_type == "companies",
        company_link.c.to_id.in_(open_companies),
        companies.c.id == company_link.c.to_id, companies.c.deleted_at.is_(None))
    query = select(
        contacts.c.id, contacts.c.email, contacts.c.consent, contacts.c.first_name,
        contacts.c.last_name, contacts.c.owner_id, contacts.c.properties,
        contacts.c.created_at, or_(by_contact, by_company).label("has_open_deal"),
    ).where(contacts.c.client == client, _live(contacts))
    for row in _batched(store, query, contacts.c.id, batch):
        yield ContactRow(
            id=row["id"], email=row["email"], consent=row["consent"],
            first_name=row["first_name"], last_name=row["last_name"],
            owner_id=row["owner_id"], properties=row["properties"] or {},
            created_at=_aware(row["created_at"]), has_open_deal=bool(row["has_open_deal"]),
        )
