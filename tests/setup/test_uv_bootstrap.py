"""scripts/ensure-uv.sh, scripts/uv and the Makefile on a machine without uv: the wrapper runs the project's uv,
a uv installed in .infra/uv is found, and when uv cannot be installed make stops with a clear error instead of
running the system's `sync --frozen`. (The real install from PyPI runs in `make test-fresh`.)"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/bin:/bin"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The bootstrap files of this checkout in a directory of their own, with a HOME that has no uv."""
    if shutil.which("uv", path=SYSTEM_PATH):
        pytest.skip("uv is installed system-wide on this machine")
    project = tmp_path / "checkout"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    for name in ("ensure-uv.sh", "uv"):
        shutil.copy(ROOT / "scripts" / name, project / "scripts" / name)
    (tmp_path / "home").mkdir()
    return project


def bare_env(project: Path, **extra: str) -> dict[str, str]:
    """No uv anywhere, and a pip that cannot reach any index."""
    env = {
        "HOME": str(project.parent / "home"),
        "PATH": SYSTEM_PATH,
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.update(extra)
    return env


def test_the_wrapper_runs_uv() -> None:
    result = subprocess.run([str(ROOT / "scripts" / "uv"), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uv ")


def test_a_uv_installed_in_the_checkout_is_found(checkout: Path) -> None:
    fake = checkout / ".infra" / "uv" / "bin" / "uv"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "uv 0.0.0-fake $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    found = subprocess.run(
        ["scripts/ensure-uv.sh"], cwd=checkout, env=bare_env(checkout), capture_output=True, text=True, check=False
    )
    assert (found.returncode, found.stdout.strip()) == (0, str(fake))
    run = subprocess.run(
        ["scripts/uv", "run", "smartpos"], cwd=checkout, env=bare_env(checkout), capture_output=True, text=True
    )
    assert run.stdout.strip() == "uv 0.0.0-fake run smartpos"


@pytest.mark.skipif(
    subprocess.run(
        ["python3", "-c", "import ensurepip, venv"], capture_output=True, env={"PATH": SYSTEM_PATH}
    ).returncode
    != 0,
    reason="no venv module: the script would apt-get python3-venv",
)
def test_make_stops_loudly_when_uv_cannot_be_installed(checkout: Path) -> None:
    result = subprocess.run(
        ["make", "sync"], cwd=checkout, env=bare_env(checkout), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "uv could not be found or installed" in result.stderr
    assert "pip install uv==" in result.stderr  # what failed is said
    assert "sync --frozen" not in result.stderr + result.stdout  # make never ran a uv-less command
    assert not (checkout / ".infra" / "uv").exists()  # nothing half-installed left for the next run
    assert not any(
        p.name in {"site-packages", "dist-packages"} for p in (checkout.parent / "home").rglob("*")
    )  # nothing went to ~/.local either
