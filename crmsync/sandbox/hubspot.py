"""The HubSpot emulator (work in progress: pipelines list, reset, seed)."""

from __future__ import annotations

import uuid
from typing import Any

from crmsync.sandbox.clock import Clock, system_clock
from crmsync.sandbox.http import Request, Response, Router

DEFAULT_STAGES = (
    ("appointmentscheduled", "Appointment scheduled", "0.2"),
    ("qualifiedtobuy", "Qualified to buy", "0.4"),
    ("presentationscheduled", "Presentation scheduled", "0.6"),
    ("decisionmakerboughtin", "Decision maker bought-in", "0.8"),
    ("contractsent", "Contract sent", "0.9"),
    ("closedwon", "Closed won", "1.0"),
    ("closedlost", "Closed lost", "0.0"),
)


class HubSpotEmulator:
    crm = "hubspot"
    path_prefixes = ("/crm/",)

    def __init__(self, token: str | None = None, clock: Clock | None = None) -> None:
        self.token = token
        self.clock = clock or system_clock
        self.reset()

    def register(self, router: Router) -> None:
        router.add("GET", "/crm/v3/pipelines/{objectType}", self.list_pipelines, crm=self.crm)

    def authenticate(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or (self.token is not None and token != self.token):
            return self.error(401, "Authentication credentials not found.",
                              category="INVALID_AUTHENTICATION")
        return None

    def error(self, status: int, message: str, **extra: Any) -> Response:
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": extra.pop("category", "VALIDATION_ERROR"), **extra}
        return Response(status, body)

    def reset(self) -> None:
        self.pipelines: dict[str, dict[str, Any]] = {}

    def list_pipelines(self, request: Request) -> Response:
        return Response(200, {"results": list(self.pipelines.values())})

    def seed(self, *, contacts: int, companies: int, deals: int, seed: int) -> dict[str, int]:
        return {"contacts": 0, "companies": 0, "deals": 0}

    def dump_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass
