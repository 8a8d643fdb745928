"""Type-check a `match` over a union that leaves out its first member, as a change or
decision type nobody handles would: mypy must flag it at `assert_never`."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, get_args

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def mypy_on_a_dispatch_missing_one(tmp_path: Path, module: str, union_name: str,
                                   union: object) -> tuple[str, int, str]:
    """mypy's output and exit status for the sample, and the member left out."""
    mypy_api = pytest.importorskip("mypy.api")
    names = [t.__name__ for t in get_args(union)]
    cases = "".join(f"        case {n}():\n            pass\n" for n in names[1:])
    source = textwrap.dedent("""\
        from typing import assert_never
        from {module} import *
        from {module} import {union}

        def run(item: {union}) -> None:
            match item:
        {cases}        case _:
                    assert_never(item)
        """).format(cases=cases, module=module, union=union_name)
    sample = tmp_path / "dispatch_sample.py"
    sample.write_text(source, encoding="utf-8")
    out, _, status = mypy_api.run([str(sample), "--follow-imports=silent", "--no-incremental",
                                   "--disable-error-code=misc", "--ignore-missing-imports"])
    return out, status, names[0]
