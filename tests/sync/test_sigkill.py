"""A two-way sync killed by SIGKILL between the CRM's answer and the store's commit.

The CRM is the in-memory fake, saved to a file after every write so that it outlives the
killed process; the child reports each answer and then waits on its stdin, so the parent
kills it at exactly that point (no sleeps). The re-run must create nothing twice and lose no
local edit.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crmsync.store import open_store
from tests.sync import local_edits as local
from tests.sync.fake_records import FakeCrm
from tests.sync.test_two_way import account, ids, row, sync

if TYPE_CHECKING:
    from crmsync.store import Store

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent("""\
    import pickle, sys
    from crmsync.store import open_store
    from crmsync.sync.engine import pull_client
    from crmsync.sync.push import push_client
    from tests.sync.test_two_way import RULES, push_rules

    path, url = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        crm = pickle.load(f)

    def answered(object_type, results):
        with open(path, "wb") as f:
            pickle.dump(crm, f)  # the CRM has done it
        print("answered", object_type, flush=True)
        sys.stdin.readline()  # killed here, before the store hears of it

    with open_store(url) as store:
        pull_client("acme", crm.crm, crm, store, RULES, conflict_policy="remote_wins")
        push_client("acme", crm, store, push_rules(), on_answered=answered)
    print("finished", flush=True)
    """)


def _kill_at(answer: int, crm_file: Path, url: str) -> str:
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(crm_file), url], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None
    assert process.stdout is not None
    seen = 0
    where = ""
    for line in process.stdout:
        if line.startswith("answered"):
            seen += 1
            where = line.split()[1]
            if seen == answer:
                process.send_signal(signal.SIGKILL)
                break
            process.stdin.write("\n")
            process.stdin.flush()
    process.wait(timeout=60)
    process.stdin.close()
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "the child finished before it was killed"
    return where


@pytest.mark.parametrize("answer", [1, 2, 3])
def test_sigkill_between_answer_and_commit_then_rerun(tmp_path: Path, answer: int) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    crm = FakeCrm()
    account(crm)
    store: Store
    with open_store(url) as store:
        sync(store, crm)
        ann = ids(store, crm, "contacts")["2"]
        local.edit(store, "contacts", ann, first_name="Anna")
        nova = local.create(store, "companies", name="Nova", domain="nova.example")
        eve = local.create(store, "contacts", email="eve@nova.example", consent=True)
        deal = local.create(store, "deals", name="Nova deal", pipeline_key="sales",
                            stage_key="signed", status="open")
    crm_file = tmp_path / "crm.pickle"
    crm_file.write_bytes(pickle.dumps(crm))

    killed_in = _kill_at(answer, crm_file, url)
    assert killed_in == ["companies", "contacts", "deals"][answer - 1]

    crm = pickle.loads(crm_file.read_bytes())
    with open_store(url) as store:
        local.edit(store, "companies", nova, name="Nova GmbH")  # edited before the re-run
        sync(store, crm)
        sync(store, crm)
        assert len(crm.records["companies"]) == 2
        assert len(crm.records["contacts"]) == 2
        assert len(crm.records["deals"]) == 2
        for object_type, mine in (("companies", nova), ("contacts", eve), ("deals", deal)):
            assert mine in ids(store, crm, object_type).values()
            assert len(list(store.records("acme").live(object_type))) == 2
        remote_nova = ids(store, crm, "companies")
        by_store = {v: k for k, v in remote_nova.items()}
        assert crm.records["companies"][by_store[nova]].fields["name"] == "Nova GmbH"
        assert crm.records["contacts"]["2"].fields["first_name"] == "Anna"
        assert row(store, "contacts", ann)["first_name"] == "Anna"
        assert local.queue(store) == {}
