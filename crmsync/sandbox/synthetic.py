"""Deterministic synthetic CRM accounts for seeding both emulators.

`generate(seed=…, contacts=…, companies=…, deals=…, now=…)` returns plain frozen data — no
CRM shapes, no ids — so the HubSpot and Pipedrive emulators map the same account onto their
own records. The same arguments always give the same account (one `random.Random(seed)`, no
global state, no hash-order dependence). Built as flat lists with a handful of RNG calls per
record: 100,000 records take well under a few seconds.

Realism that sync code must cope with, on purpose:
- some people have no email (~6 %), some share an earlier person's email differing only by
  letter case (~2 %); a minority have no marketing consent;
- names include non-ASCII (Müller, Шевченко, Łukasz, Gonçalves) with ASCII email local parts;
- modification times spread over the last ~2 years, and deliberately some exact ties
  (same millisecond) so that incremental cursors must handle equal timestamps;
- deals are open, won or lost, with a `stage_fraction` in [0, 1) that each emulator maps onto
  its pipeline's open stages (`int(fraction * len(open_stages))`) and a `pipeline_fraction`
  that picks one of the account's pipelines the same way;
- custom-field values of each kind (a tier from a fixed option list, a seat count, a renewal
  date, a lead-source text), some records archived (deleted) and some merged into an earlier
  record of their type; a batch of records (~4 %) share one import instant to the
  millisecond and some more (~2 %) its second.

The attributes that came later (tier onwards, see `_Extras`) are drawn from a second RNG, so
the first stream — and every value it gave before — stays what it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

DealStatus = Literal["open", "won", "lost"]

# (display, ascii) pairs: the ASCII form builds email addresses and domains.
_FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Anna", "anna"), ("Jonas", "jonas"), ("Marie", "marie"), ("Lukas", "lukas"),
    ("Sofia", "sofia"), ("Elias", "elias"), ("Emma", "emma"), ("Noah", "noah"),
    ("Olivia", "olivia"), ("Liam", "liam"), ("Mia", "mia"), ("Ben", "ben"),
    ("Charlotte", "charlotte"), ("Paul", "paul"), ("Hannah", "hannah"), ("Finn", "finn"),
    ("Léa", "lea"), ("Jérôme", "jerome"), ("Zoë", "zoe"), ("Łukasz", "lukasz"),
    ("Søren", "soren"), ("Oleksandr", "oleksandr"), ("Олена", "olena"), ("Тарас", "taras"),
    ("María", "maria"), ("José", "jose"), ("Chloé", "chloe"), ("Björn", "bjorn"),
    ("Priya", "priya"), ("Wei", "wei"), ("Yuki", "yuki"), ("Fatima", "fatima"),
    ("David", "david"), ("Sarah", "sarah"), ("Michael", "michael"), ("Laura", "laura"),
)
_LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"),
    ("Fischer", "fischer"), ("Weber", "weber"), ("Meyer", "meyer"), ("Wagner", "wagner"),
    ("Becker", "becker"), ("Schulz", "schulz"), ("Hoffmann", "hoffmann"),
    ("Шевченко", "shevchenko"), ("Коваленко", "kovalenko"), ("Бондаренко", "bondarenko"),
    ("Novák", "novak"), ("Dvořák", "dvorak"), ("Kowalski", "kowalski"),
    ("Nowak", "nowak"), ("García", "garcia"), ("Martínez", "martinez"),
    ("Gonçalves", "goncalves"), ("Dubois", "dubois"), ("Lefèvre", "lefevre"),
    ("Rossi", "rossi"), ("Bianchi", "bianchi"), ("Jensen", "jensen"),
    ("Nielsen", "nielsen"), ("Andersson", "andersson"), ("Smith", "smith"),
    ("Johnson", "johnson"), ("Brown", "brown"), ("O'Brien", "obrien"), ("Tanaka", "tanaka"),
    ("Kim", "kim"), ("Patel", "patel"), ("Nguyen", "nguyen"), ("Öztürk", "ozturk"),
)
_COMPANY_FIRST: tuple[tuple[str, str], ...] = (
    ("Nord", "nord"), ("Blue", "blue"), ("Alpen", "alpen"), ("Silver", "silver"),
    ("Green", "green"), ("Bright", "bright"), ("Iron", "iron"), ("Summit", "summit"),
    ("Delta", "delta"), ("Polar", "polar"), ("Rhein", "rhein"), ("Baltic", "baltic"),
    ("Cedar", "cedar"), ("Harbor", "harbor"), ("Nova", "nova"), ("Vector", "vector"),
    ("Київ", "kyiv"), ("Süd", "sued"), ("Lumen", "lumen"), ("Orbit", "orbit"),
)
_COMPANY_SECOND: tuple[tuple[str, str], ...] = (
    ("Logistics", "logistics"), ("Software", "software"), ("Consulting", "consulting"),
    ("Werke", "werke"), ("Solutions", "solutions"), ("Analytics", "analytics"),
    ("Foods", "foods"), ("Energy", "energy"), ("Medical", "medical"), ("Systems", "systems"),
    ("Labs", "labs"), ("Партнери", "partnery"), ("Bau", "bau"), ("Design", "design"),
    ("Finance", "finance"), ("Robotics", "robotics"),
)
_COMPANY_SUFFIX: tuple[str, ...] = (
    "GmbH", "AG", "Ltd", "Inc.", "s.r.o.", "SE", "B.V.", "ТОВ", "LLC", "SARL", "",
)
_TLDS: tuple[str, ...] = ("com", "de", "io", "eu", "co.uk", "cz", "ua", "fr", "net")
_INDUSTRIES: tuple[str, ...] = (
    "COMPUTER_SOFTWARE", "LOGISTICS_AND_SUPPLY_CHAIN", "MANAGEMENT_CONSULTING",
    "MARKETING_AND_ADVERTISING", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE",
    "RENEWABLES_ENVIRONMENT", "FOOD_PRODUCTION", "CONSTRUCTION", "MACHINERY",
)
_PLACES: tuple[tuple[str, str], ...] = (
    ("Berlin", "Germany"), ("München", "Germany"), ("Hamburg", "Germany"), ("Wien", "Austria"),
    ("Zürich", "Switzerland"), ("Praha", "Czechia"), ("Brno", "Czechia"), ("Київ", "Ukraine"),
    ("Львів", "Ukraine"), ("Warszawa", "Poland"), ("Kraków", "Poland"), ("Paris", "France"),
    ("Lyon", "France"), ("London", "United Kingdom"), ("Manchester", "United Kingdom"),
    ("Amsterdam", "Netherlands"), ("København", "Denmark"), ("Stockholm", "Sweden"),
    ("Madrid", "Spain"), ("Lisboa", "Portugal"), ("Boston", "United States"),
    ("Austin", "United States"),
)
_JOB_TITLES: tuple[str, ...] = (
    "CEO", "Managing Director", "Head of Sales", "Sales Manager", "Marketing Manager",
    "Head of Marketing", "CFO", "Procurement Lead", "Operations Manager", "CTO",
    "Office Manager", "Account Executive", "Founder", "Product Manager", "HR Manager",
)
_DEAL_WHAT: tuple[str, ...] = (
    "Website relaunch", "Lead generation retainer", "CRM implementation", "SEO audit",
    "Marketing automation", "Annual licence", "Pilot project", "Sales training",
    "Content package", "Support contract", "Data migration", "Workshop series",
)
_EMAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "outlook.com", "web.de", "ukr.net", "seznam.cz")

_TWO_YEARS_MS = 2 * 365 * 24 * 3600 * 1000
TIERS: tuple[str, ...] = ("bronze", "silver", "gold", "platinum")
DEAL_SOURCES: tuple[str, ...] = ("inbound", "outbound", "referral", "partner")
_LEAD_SOURCES: tuple[str, ...] = (
    "Webinar spring", "Trade fair Hannover", "Newsletter", "Cold call", "LinkedIn ad",
    "Partner referral", "Website chat", "",
)
_IMPORT_AGO_MS = 30 * 86_400_000  # the shared import instant: 30 days before `now`


@dataclass(frozen=True, slots=True)
class SyntheticCompany:
    name: str
    domain: str
    industry: str
    city: str
    country: str
    created_at: datetime
    modified_at: datetime
    tier: str | None = None  # one of TIERS
    archived: bool = False
    merged_into: int | None = None  # an earlier company's index (this one merged into it)


@dataclass(frozen=True, slots=True)
class SyntheticPerson:
    first_name: str
    last_name: str
    email: str | None
    phone: str
    job_title: str
    marketing_consent: bool
    company_index: int | None  # index into SyntheticAccount.companies
    created_at: datetime
    modified_at: datetime
    tier: str | None = None  # one of TIERS
    seats: int | None = None
    renewal_date: datetime | None = None  # midnight UTC
    lead_source: str | None = None  # free text
    other_company_index: int | None = None  # a second, non-primary company
    archived: bool = False
    merged_into: int | None = None  # an earlier person's index (this one merged into it)


@dataclass(frozen=True, slots=True)
class SyntheticDeal:
    title: str
    amount: float
    status: DealStatus
    stage_fraction: float  # in [0, 1): position among the pipeline's open stages
    company_index: int | None
    person_index: int | None  # index into SyntheticAccount.people
    close_date: datetime
    created_at: datetime
    modified_at: datetime
    pipeline_fraction: float = 0.0  # in [0, 1): which of the account's pipelines
    source: str | None = None  # one of DEAL_SOURCES
    other_company_index: int | None = None  # a second, non-primary company
    archived: bool = False


@dataclass(frozen=True, slots=True)
class SyntheticAccount:
    companies: list[SyntheticCompany]
    people: list[SyntheticPerson]
    deals: list[SyntheticDeal]


def stage_index(fraction: float, open_stages: int) -> int:
    """Map a deal's `stage_fraction` onto one of `open_stages` stages (0-based)."""
    if open_stages <= 0:
        raise ValueError("a pipeline needs at least one open stage")
    return min(int(fraction * open_stages), open_stages - 1)


def _times(rng: random.Random, now_ms: int) -> tuple[int, int]:
    """(created_ms, modified_ms), both within the last ~2 years, created ≤ modified ≤ now.

    Times are whole seconds for one in eight records, so exact ties happen (real accounts
    have them after imports); the rest have millisecond resolution.
    """
    modified = now_ms - int(rng.random() ** 1.5 * _TWO_YEARS_MS)  # skewed towards recent
    if rng.random() < 0.125:
        modified -= modified % 1000
    created = modified - int(rng.random() * (now_ms - modified + _TWO_YEARS_MS) / 4)
    return created, modified


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class _Extras:
    """The second RNG stream: the attributes added after the first stream was fixed."""

    def __init__(self, seed: int, now_ms: int) -> None:
        self.rng = random.Random(f"crmsync-extras-{seed}")  # noqa: S311 - test data
        shared = now_ms - _IMPORT_AGO_MS
        self.import_ms = shared - shared % 1000 + 417  # one instant, to the millisecond

    def times(self, created: int, modified: int) -> tuple[int, int]:
        """Some records take the shared import instant (or its second) as modified time."""
        roll = self.rng.random()
        if roll < 0.04:
            modified = self.import_ms
        elif roll < 0.06:
            modified = self.import_ms - 417 + int(self.rng.random() * 1000)
        return min(created, modified), modified

    def pick(self, values: tuple[str, ...], share: float) -> str | None:
        rand = self.rng.random  # one draw for the share, one for the value (cheaper than choice)
        return values[int(rand() * len(values))] if rand() < share else None

    def earlier(self, index: int, share: float) -> int | None:
        """An earlier index, for a share of records (a merge target)."""
        if index == 0 or self.rng.random() >= share:
            return None
        return int(self.rng.random() * index)


def generate(
    *, seed: int, contacts: int, companies: int, deals: int, now: datetime | None = None
) -> SyntheticAccount:
    """A synthetic account, identical for identical arguments."""
    if min(contacts, companies, deals) < 0:
        raise ValueError("counts must be non-negative")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secret
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    choice = rng.choice
    rand = rng.random

    extras = _Extras(seed, now_ms)
    more = extras.rng.random
    company_list: list[SyntheticCompany] = []
    for i in range(companies):
        first, first_ascii = choice(_COMPANY_FIRST)
        second, second_ascii = choice(_COMPANY_SECOND)
        suffix = choice(_COMPANY_SUFFIX)
        name = f"{first} {second} {suffix}".strip()
        city, country = choice(_PLACES)
        created, modified = extras.times(*_times(rng, now_ms))
        company_list.append(
            SyntheticCompany(
                name=name,
                # the index keeps domains unique, as they would be in a real account
                domain=f"{first_ascii}-{second_ascii}-{i}.{choice(_TLDS)}",
                industry=choice(_INDUSTRIES),
                city=city,
                country=country,
                created_at=_dt(created),
                modified_at=_dt(modified),
                tier=extras.pick(TIERS, 0.5),
                archived=more() < 0.02,
                merged_into=extras.earlier(i, 0.01),
            )
        )

    people: list[SyntheticPerson] = []
    for i in range(contacts):
        first, first_ascii = choice(_FIRST_NAMES)
        last, last_ascii = choice(_LAST_NAMES)
        company_index = int(rand() * companies) if companies and rand() < 0.85 else None
        roll = rand()
        email: str | None
        if roll < 0.06:
            email = None
        elif roll < 0.08 and people:
            # an earlier person's address in other letter case (the same mailbox)
            earlier = people[int(rand() * len(people))].email
            email = earlier.upper() if earlier and earlier != earlier.upper() else None
            if email is None:
                email = f"{first_ascii}.{last_ascii}.{i}@{choice(_EMAIL_DOMAINS)}"
        elif company_index is not None:
            domain = company_list[company_index].domain
            email = f"{first_ascii}.{last_ascii}.{i}@{domain}"
        else:
            email = f"{first_ascii}.{last_ascii}.{i}@{choice(_EMAIL_DOMAINS)}"
        created, modified = extras.times(*_times(rng, now_ms))
        renewal = now_ms + int(more() * 365) * 86_400_000 if more() < 0.4 else None
        people.append(
            SyntheticPerson(
                first_name=first,
                last_name=last,
                email=email,
                phone=f"+49 {int(rand() * 900 + 100)} {int(rand() * 9_000_000 + 1_000_000)}",
                job_title=choice(_JOB_TITLES),
                marketing_consent=rand() < 0.8,
                company_index=company_index,
                created_at=_dt(created),
                modified_at=_dt(modified),
                tier=extras.pick(TIERS, 0.6),
                seats=int(more() * 200) + 1 if more() < 0.5 else None,
                renewal_date=_dt(renewal - renewal % 86_400_000) if renewal else None,
                lead_source=extras.pick(_LEAD_SOURCES, 0.7) or None,
                other_company_index=(int(more() * companies)
                                     if companies > 1 and more() < 0.1 else None),
                archived=more() < 0.02,
                merged_into=extras.earlier(i, 0.01),
            )
        )

    deal_list: list[SyntheticDeal] = []
    for _ in range(deals):
        company_index = int(rand() * companies) if companies and rand() < 0.9 else None
        person_index = int(rand() * contacts) if contacts and rand() < 0.8 else None
        roll = rand()
        status: DealStatus = "open" if roll < 0.6 else ("won" if roll < 0.8 else "lost")
        created, modified = extras.times(*_times(rng, now_ms))
        # open deals close in the coming months, closed ones closed when last modified
        close_ms = (
            now_ms + int(rand() * 180 * 86_400_000) if status == "open" else modified
        )
        who = company_list[company_index].name if company_index is not None else "Direct"
        deal_list.append(
            SyntheticDeal(
                title=f"{choice(_DEAL_WHAT)} – {who}",
                amount=round(500 + rand() ** 2 * 99_500, 2),
                status=status,
                stage_fraction=rand(),
                company_index=company_index,
                person_index=person_index,
                close_date=_dt(close_ms - close_ms % 86_400_000),
                created_at=_dt(created),
                modified_at=_dt(modified),
                pipeline_fraction=more(),
                source=extras.pick(DEAL_SOURCES, 0.8),
                other_company_index=(int(more() * companies)
                                     if companies > 1 and more() < 0.1 else None),
                archived=more() < 0.02,
            )
        )

    return SyntheticAccount(companies=company_list, people=people, deals=deal_list)
