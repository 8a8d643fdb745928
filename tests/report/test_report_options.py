"""The blueprint's `report:` block: defaults per CRM, declared values, errors at their line."""

from __future__ import annotations

import pytest

from crmsync.blueprint.loader import parse_blueprint
from crmsync.errors import ConfigError

BASE = """\
client: acme
crm: {crm}
pipelines:
  - key: sales
    label: Sales
    stages:
      - {{key: booked, label: Meeting booked, probability: 0.1}}
"""


@pytest.mark.parametrize(("crm", "field", "values"), [
    ("hubspot", "lifecyclestage", ("salesqualifiedlead",)),
    ("pipedrive", "lifecycle_stage", ("Sales qualified lead", "SQL")),
])
def test_defaults_per_crm(crm: str, field: str, values: tuple[str, ...]) -> None:
    report = parse_blueprint(BASE.format(crm=crm)).blueprint.report
    rule = report.sales_qualified_for(crm)
    assert (rule.field, rule.values) == (field, values)
    assert report.handoff_days == 14


def test_declared_block() -> None:
    text = BASE.format(crm="pipedrive") + (
        "report:\n  sales_qualified:\n    field: lead_status\n    values: [Hot lead]\n"
        "  handoff_days: 7\n")
    report = parse_blueprint(text).blueprint.report
    assert report.sales_qualified_for("pipedrive").field == "lead_status"
    assert report.sales_qualified_for("pipedrive").values == ("Hot lead",)
    assert report.handoff_days == 7


def test_errors_point_at_their_line() -> None:
    text = BASE.format(crm="hubspot") + (
        "report:\n  sales_qualified:\n    field: lifecyclestage\n    values: []\n"
        "  handoff_dayz: 7\n")
    with pytest.raises(ConfigError) as caught:
        parse_blueprint(text, "acme.yaml")
    found = {(f.field, f.line) for f in caught.value.findings}
    assert ("report.sales_qualified.values", 11) in found
    assert ("report.handoff_dayz", 12) in found
