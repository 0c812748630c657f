"""Headless Chromium for the console and client.js tests (Playwright's Python package
driving Debian's ``chromium``; Playwright's own browser download is never used).

Without ``playwright`` or ``/usr/bin/chromium`` the tests are skipped with the reason,
except under ``CI=true``, where a missing browser is a failure: CI must run them.
Screenshots go to ``$ECRLINK_ARTIFACTS/console`` (else the test's ``tmp_path``), never
into the repository.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("ECRLINK_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
COUNTER = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, or a skip (a failure under ``CI=true``) saying what is missing."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def artifacts(tmp_path: Path) -> Path:
    """Where this test's screenshots go."""
    root = os.environ.get("ECRLINK_ARTIFACTS")
    where = Path(root) / "console" if root else tmp_path / "artifacts"
    where.mkdir(parents=True, exist_ok=True)
    return where


def shot(page: Page, where: Path, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot named ``name`` (the test's name is a good prefix)."""
    path = where / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class PageErrors:
    """Script errors and CSP violations of a page: a test fails on any."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and (
                "Content Security Policy" in text or "Uncaught" in text or "SyntaxError" in text):
            self.errors.append(f"console: {text}")

    def check(self) -> None:
        assert not self.errors, "\n".join(self.errors)
