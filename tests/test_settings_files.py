"""The default settings and feeds files: shipped inside the package, and a real non-editable
install (a wheel in a fresh venv, run from another directory) finding them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from liveupdates.settings import PACKAGE_CONFIG_DIR, REPO_CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 420.0
START_TIMEOUT = 30.0


@pytest.mark.parametrize("name", ["liveupdates.toml", "feeds.toml"])
def test_the_packaged_defaults_are_the_documented_ones(name: str) -> None:
    documented = (REPO_CONFIG_DIR / name).read_bytes()
    assert (PACKAGE_CONFIG_DIR / name).read_bytes() == documented, (
        f"liveupdates/defaults/{name} differs from config/{name}: copy config/{name} over it"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*cmd: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
    )
    assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(2 * INSTALL_TIMEOUT + 60)
def test_a_wheel_installed_elsewhere_serves_the_demo_page(tmp_path: Path) -> None:
    """Builds a wheel, installs it (and its dependencies, from pip's cache or PyPI) into a fresh
    venv, and runs `liveupdates serve` from a directory with no config/ until / answers."""
    dist, elsewhere, source = tmp_path / "dist", tmp_path / "elsewhere", tmp_path / "source"
    elsewhere.mkdir()
    # Built from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("liveupdates", "workers", "config"):
        shutil.copytree(ROOT / part, source / part, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", dist, cwd=source)
    (wheel,) = dist.glob("liveupdates-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "liveupdates", "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while status != 200:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet: poll with a deadline
        # The packaged feeds file seeded the demo feed, in a data dir under the working directory.
        assert (elsewhere / "data" / "liveupdates.sqlite3").exists()
        text = (tmp_path / "serve.log").read_text()
        assert "seeded 1 feed(s) from" in text and "liveupdates/defaults/feeds.toml" in text, text
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
