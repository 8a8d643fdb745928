"""`crmsync --help` stays fast: importing the CLI loads no heavy library a command may need."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic_settings", "sqlalchemy", "hubspot", "yaml", "requests", "tenacity")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = ("import sys, crmsync.cli; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
