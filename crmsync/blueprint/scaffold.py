"""`init` as a library function: a commented starting blueprint that follows the method."""

from __future__ import annotations

import re
from pathlib import Path

from crmsync.blueprint.models import KEY_PATTERN, to_key
from crmsync.errors import ConfigError, Finding
from crmsync.names import CRM_NAMES, crm_title

CRMS = CRM_NAMES

_HEADER = """\
# Sales process of {client}, as code. Check it with:  crmsync validate {path}
#
# The method: a deal opens at an agreed starting point (here a booked needs-assessment
# meeting), and only the steps the sales team acts on or takes part in become stages.
# Name every stage in the past tense from the buyer's side ("Proposal sent", not
# "Send proposal"); leave passive states ("thinking it over", "comparing") out.

# Stable identifier of this client: lowercase letters, digits, underscores. Keep it equal to
# the file name; crmsync remembers what it applied under this key.
client: {client}

# Target CRM: hubspot or pipedrive. The same stages work for both.
crm: {crm}

# Currency of deal values (ISO code, capitals).
currency: EUR

# Language of the stage labels. With `en`, `uk` or `de` the wording rules (past tense, no
# to-dos, no passive states) are checked; for other languages they are skipped with a note.
language: en

# The {crm_title} token comes from CRMSYNC_{crm_upper}_TOKEN (environment or .env). Only if
# this client's account needs its own token, name the variable that holds it (never the
# token itself):
# token_env: {client_upper}_{crm_upper}_TOKEN

# Record sync only: which side wins when a record changed both in the store and in the CRM
# (remote_wins, local_wins or newest_wins). Pipelines always follow this file; see README.
conflict_policy: remote_wins

# Turn a lint rule off for the whole file, with the reason written down, e.g.:
# silence:
#   - rule: past-tense
#     reason: labels follow the client's own wording

pipelines:
  # key: stable identifier (renaming the label later is an update, not a new pipeline).
  # label: the name shown in {crm_title}.
  - key: new_business
    label: New business
    # Stages in board order. Each has a stable key, a label, and a probability between 0
    # and 1 that rises from stage to stage (the weighted value on the board uses it).
    # {probability_note}
    stages:
      - key: meeting_booked
        label: Needs-assessment meeting booked
        probability: 0.1
        # description: what the buyer has done to reach this stage.
        description: The buyer booked a needs-assessment meeting; the deal opens here.
{rot_first}      - key: needs_assessed
        label: Needs assessed
        probability: 0.3
        description: The meeting took place and the buyer's needs are written down.
{rot}      - key: proposal_sent
        label: Proposal sent
        probability: 0.5
        description: The buyer received a proposal that answers those needs.
{rot}      - key: contract_sent
        label: Contract sent
        probability: 0.7
        description: The buyer accepted the proposal in principle and received the contract.
        # previous_labels: older names of this stage, so a renamed stage is recognised in
        # the CRM instead of created anew, e.g.:
        # previous_labels: [Negotiation started]
{rot}      # The outcomes come last: exactly one won stage (probability 1) and at most one
      # lost stage (probability 0).
      - key: contract_signed
        label: Contract signed
        probability: 1.0
        outcome: won
        description: The buyer signed the contract.
      - key: lost
        label: Lost
        probability: 0.0
        outcome: lost
        description: The buyer decided against us; note the reason on the deal.
    # A stage removed from the design names the stage that takes over its deals:
    # retired_stages:
    #   - key: demo_held
    #     move_deals_to: needs_assessed
"""

_ROT_EXPLAINED = """\
        # rot_after_days: a deal left here longer than this is marked rotten on the board.
        rot_after_days: {days}
"""
_ROT = """\
        rot_after_days: {days}
"""

_PROBABILITY_NOTES = {
    "hubspot": "HubSpot stores probabilities in steps of 0.1.",
    "pipedrive": "Pipedrive stores probabilities as whole percents (0.35 = 35%).",
}


def scaffold_blueprint(client: str, crm: str, path: str = "configs/CLIENT.yaml") -> str:
    """The commented YAML text of a starting blueprint for `client` on `crm`."""
    check_client_name(client)
    if crm not in CRMS:
        raise ConfigError(message=f"unknown CRM '{crm}'; choose one of: {', '.join(CRMS)}")
    # HubSpot has no rotting deals, so its scaffold leaves rot_after_days out.
    rotting = crm == "pipedrive"
    return _HEADER.format(
        client=client, client_upper=client.upper(), crm=crm, crm_upper=crm.upper(),
        crm_title=crm_title(crm), path=path,
        probability_note=_PROBABILITY_NOTES[crm],
        rot_first=_ROT_EXPLAINED.format(days=7) if rotting else "",
        rot=_ROT.format(days=14) if rotting else "",
    )


def check_client_name(client: str) -> None:
    """Raise `ConfigError` unless `client` is a valid key (it names the file and the state)."""
    if re.match(KEY_PATTERN, client) and len(client) <= 64:
        return
    suggestion = to_key(client)
    hint = f"; try '{suggestion}'" if suggestion else ""
    raise ConfigError(message=(
        f"'{client}' cannot be a client name: use lowercase letters, digits and underscores, "
        f"starting with a letter{hint}"
    ))


def write_scaffold(client: str, crm: str, configs_dir: str | Path) -> Path:
    """Write `configs_dir/CLIENT.yaml`; refuse (`ConfigError`) if it already exists."""
    check_client_name(client)
    directory = Path(configs_dir)
    path = directory / f"{client}.yaml"
    existing = next((p for p in (path, path.with_suffix(".yml")) if p.exists()), None)
    if existing is not None:
        raise ConfigError([Finding(
            str(existing), None, None, "",
            "already exists; crmsync init never overwrites a blueprint",
            hint="edit it, or move it away first",
        )])
    text = scaffold_blueprint(client, crm, str(path))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:  # created between the check and the write
        raise ConfigError(message=f"{path} already exists; not overwritten") from None
    return path
