"""Pytest plugin: a real headless Chromium driven by Playwright, for the browser demo tests.

Playwright's own browser download cannot work on a closed network, so this uses the system's
Chromium and installs Debian's package when it is missing and we are allowed to. A missing browser
fails the test with the reason: a skipped browser test would hide a broken demo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ENV = "LIVEUPDATES_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# Without these Chromium keeps trying to reach Google's services, which fail slowly on a closed
# network and, with the sandbox, cannot run as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback: a name that is not localhost resolves to nothing (the push service
    # Chromium would register with included), so no test can reach the outside by accident.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

APT_INSTALL_TIMEOUT = 900.0


def find_chromium() -> str | None:
    """The first Chromium found: $LIVEUPDATES_CHROMIUM, the usual paths, then PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        # An explicit choice that does not exist is an error, not a reason to pick another one.
        return configured if Path(configured).is_file() else None
    for path in CHROMIUM_PATHS:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_chromium() -> str:
    """Install Debian's chromium with apt-get; the apt output when it fails."""
    command = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
    try:
        done = subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=APT_INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"apt-get did not finish within {APT_INSTALL_TIMEOUT:.0f}s"
    if done.returncode != 0:
        return (done.stdout + done.stderr)[-2000:]
    return ""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a Chromium executable; installs one with apt-get as root if none is found."""
    found = find_chromium()
    if found:
        return found
    if os.environ.get(CHROMIUM_ENV):
        pytest.fail(f"${CHROMIUM_ENV}={os.environ[CHROMIUM_ENV]} is not a file")
    can_install = (
        hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None
    )
    if not can_install:
        pytest.fail(
            "Chromium not found (looked in /usr/bin/chromium and for chromium/chromium-browser "
            f"on PATH). Install it (e.g. `apt-get install chromium`) or set ${CHROMIUM_ENV} "
            "to its path. `playwright install` cannot be used: it downloads from the internet."
        )
    problem = _install_chromium()
    found = find_chromium()
    if not found:
        pytest.fail(f"installing Chromium with apt-get failed:\n{problem or 'no chromium found'}")
    return found


@pytest.fixture(scope="module")
def chromium_browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium per test module; each test gets its own context and page.

    Module scope, not session: Playwright's sync API keeps an event loop of its own alive while
    it runs, which must be gone before pytest-asyncio runs the async tests of other modules.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh page (own cookies and storage) in the session's Chromium."""
    context = chromium_browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
