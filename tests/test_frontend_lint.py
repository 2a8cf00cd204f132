"""One style for the front-end code: ESLint (eslint.config.js) over every JavaScript file we ship
or document, and pages that load only ES modules, with no inline script or event handler (so a
Content-Security-Policy of `script-src 'self'` holds).

ESLint comes from the npm registry, pinned by package-lock.json; `npm ci` installs it into
node_modules/ the first time (and again when the lock changes). Node.js is needed for this test
only, never by the service.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ["liveupdates/static", "liveupdates/ops/static", "liveupdates/api/static", "docs/clients"]
PAGES = [
    ROOT / "liveupdates/static/index.html",
    ROOT / "liveupdates/ops/static/admin.html",
    ROOT / "liveupdates/api/static/docs.html",
]
INSTALL_TIMEOUT = 300.0


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: the front-end lint needs Node.js 18+ and npm on PATH")
    return found


@pytest.fixture(scope="module")
def eslint() -> list[str]:
    """The command that runs the pinned ESLint, installed with `npm ci` when missing or stale."""
    installed = ROOT / "node_modules" / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}{done.stderr}"
    return [_tool("node"), str(ROOT / "node_modules" / "eslint" / "bin" / "eslint.js")]


def test_front_end_code_passes_the_lint(eslint: list[str]) -> None:
    done = subprocess.run(
        [*eslint, "--max-warnings", "0", *LINTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_lint_refuses_globals_and_scripts(eslint: list[str]) -> None:
    """The config is really applied: a classic script with globals fails it."""
    bad = 'var count = 1;\nwindow.liveupdates = { count };\nif (count == "1") eval("x");\n'
    done = subprocess.run(
        [*eslint, "--stdin", "--stdin-filename", "liveupdates/static/bad.js"],
        cwd=ROOT,
        input=bad,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    for rule in ("no-var", "no-restricted-syntax", "eqeqeq", "no-eval"):
        assert rule in done.stdout, (rule, done.stdout)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline event handler {name} on <{tag}>")
        if tag == "script":
            self._in_script = True
            if names.get("type") != "module" or not names.get("src"):
                self.problems.append(f"<script {names}> is not an external module")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_load_only_external_modules(page: Path) -> None:
    parser = _Scripts()
    parser.feed(page.read_text())
    assert parser.problems == []
