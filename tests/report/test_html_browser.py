"""The HTML board in a real browser: Debian's chromium, headless.

It renders the file to screenshots (desktop and phone width), its DOM holds every stage
label and total, it logs no console error (a page with a deliberate error proves the check
sees one), and it asks for nothing from the network (every host name fails to resolve, and
the file names no http(s) address). Skipped, loudly, when chromium is not installed
(`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from html import unescape
from typing import TYPE_CHECKING

import pytest

from crmsync.report import board_for
from crmsync.report.html import render_html
from crmsync.store import open_store
from tests.report.seeding import AS_OF, blueprint, generate, seed

if TYPE_CHECKING:
    from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="!!! CHROMIUM NOT INSTALLED: the HTML report was not checked in a browser "
           "(apt-get install -y chromium) !!!")


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
               *extra, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.fixture
def page(tmp_path: Path) -> tuple[Path, object]:
    with open_store(f"sqlite:///{tmp_path / 'crmsync.db'}") as store:
        seed(store, "acme", generate("pipedrive"))
        board = board_for(blueprint("pipedrive", language="de"), store, AS_OF)
    path = tmp_path / "board.html"
    path.write_text(render_html([board]), encoding="utf-8")
    return path, board


def test_chromium_renders_the_board(page: tuple[Path, object], tmp_path: Path) -> None:
    path, board = page
    html = path.read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html

    dom = chromium(tmp_path, path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<sent>" not in dom.stdout  # the label came through escaped, as text
    text = unescape(dom.stdout)  # the DOM as chromium serialises it (&nbsp; and all)
    for pipeline in board.pipelines:  # type: ignore[attr-defined]
        assert f"<h2>{pipeline.label}</h2>" in text
        for stage in pipeline.stages:
            assert f"<h4>{stage.label}</h4>" in text
            assert board.money(stage.total_value) in text  # type: ignore[attr-defined]
        assert board.money(pipeline.total_value) in text  # type: ignore[attr-defined]
    assert board.money(board.weighted_value) in text  # type: ignore[attr-defined]
    assert "Die Übergabe" in text
    assert console_errors(dom.stderr) == []

    for name, size in (("desktop", "1280,2400"), ("phone", "390,3000")):
        shot = tmp_path / f"board-{name}.png"
        result = chromium(tmp_path, path, f"--screenshot={shot}", f"--window-size={size}",
                          "--hide-scrollbars")
        assert result.returncode == 0, result.stderr[-2000:]
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert len(data) > 20_000  # a rendered board, not a blank page
        assert console_errors(result.stderr) == []


def test_console_check_sees_an_error(tmp_path: Path) -> None:
    """The control: the console check above would catch a page's error."""
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script>"
                      "</body></html>", encoding="utf-8")
    result = chromium(tmp_path, broken, "--dump-dom")
    assert result.returncode == 0
    assert any("undefinedFunction" in line for line in console_errors(result.stderr))
