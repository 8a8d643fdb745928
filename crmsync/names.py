"""The shared vocabulary at the bottom of the house: names every layer may import.

Nothing here imports anything from crmsync; every other module may import this one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, get_args

CrmName = Literal["hubspot", "pipedrive"]
CRM_NAMES: tuple[CrmName, ...] = get_args(CrmName)
CRM_TITLES: dict[str, str] = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}

# The three kinds of CRM record of the method, by the names HubSpot uses for them
# (Pipedrive: persons, organizations, deals).
ObjectType = Literal["companies", "contacts", "deals"]
OBJECT_TYPES: tuple[ObjectType, ...] = get_args(ObjectType)

# How a deal ended. On HubSpot a closed stage, on Pipedrive a deal status.
StageOutcome = Literal["won", "lost"]
DealStatus = Literal["open", "won", "lost"]


def crm_title(crm: str) -> str:
    """The CRM's name as people write it ("HubSpot"), for messages; an unknown name as given."""
    return CRM_TITLES.get(crm, crm)


# Time, by what it measures. Every injectable clock or sleeper is typed with one of these.
MonotonicClock = Callable[[], float]  # seconds on a monotonic clock (time.monotonic): pacing
WallClock = Callable[[], datetime]  # an aware UTC datetime: what the store records
Sleep = Callable[[float], None]  # waits that many seconds (time.sleep; a recorder in tests)
