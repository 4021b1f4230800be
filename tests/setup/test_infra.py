"""scripts/infra.py's decisions, with the machine faked: which PostgreSQL cluster it creates or reuses, what it
runs through sudo when it is not root, where it finds server binaries, and that it installs the binaries the
fault tests need even when the servers themselves run elsewhere (docker-compose.test.yml)."""

from __future__ import annotations

import importlib.util
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def infra() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smartpos_infra_script", ROOT / "scripts" / "infra.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Machine:
    """Records the commands infra.py runs; answers pg_lsclusters from `clusters`."""

    def __init__(self, clusters: list[dict[str, str]]) -> None:
        self.clusters = clusters
        self.commands: list[list[str]] = []
        self.inputs: list[str | None] = []

    def run(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        self.inputs.append(kwargs.get("input"))
        plain = [c for c in command if c not in ("sudo", "-n")]
        if plain[0] == "pg_createcluster":
            version, name, _, port = plain[1:5]
            self.clusters.append({"version": version, "name": name, "port": port, "status": "down"})
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    def ran(self, program: str) -> list[list[str]]:
        return [c for c in self.commands if program in c]


def fake_machine(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch, clusters: list[dict[str, str]], *, uid: int = 0
) -> Machine:
    machine = Machine(clusters)
    monkeypatch.setattr(infra.subprocess, "run", machine.run)
    monkeypatch.setattr(infra, "debian_clusters", lambda: list(machine.clusters))
    monkeypatch.setattr(infra.glob, "glob", lambda pattern: ["/usr/lib/postgresql/15/bin/postgres"])
    monkeypatch.setattr(infra, "port_open", lambda host, port, timeout=0.5: False)
    monkeypatch.setattr(infra, "wait_port", lambda *args, **kwargs: None)
    monkeypatch.setattr(infra, "asks_for_password", lambda host, port: False)
    monkeypatch.setattr(infra.os, "geteuid", lambda: uid)
    real_which = infra.shutil.which
    known = {"pg_createcluster", "pg_lsclusters", "pg_ctlcluster", "sudo", "apt-get"}
    monkeypatch.setattr(
        infra.shutil, "which", lambda name, path=None: f"/usr/bin/{name}" if name in known else real_which(name, path)
    )
    return machine


def test_the_cluster_is_named_after_its_port_so_a_second_port_gets_its_own(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another checkout already made the cluster for 5433; this one is configured for 5434.
    machine = fake_machine(
        infra, monkeypatch, [{"version": "15", "name": "smartpos_5433", "port": "5433", "status": "online"}]
    )
    infra.ensure_postgres("127.0.0.1", 5434)
    assert machine.ran("pg_createcluster") == [["pg_createcluster", "15", "smartpos_5434", "-p", "5434"]]
    assert machine.ran("pg_ctlcluster") == [
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "smartpos_5434", "start"]
    ]


def test_a_cluster_already_configured_for_the_port_is_reused_whatever_its_name(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = fake_machine(infra, monkeypatch, [{"version": "15", "name": "main", "port": "5433", "status": "down"}])
    infra.ensure_postgres("127.0.0.1", 5433)
    assert machine.ran("pg_createcluster") == []
    assert machine.ran("pg_ctlcluster") == [["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"]]


def test_as_a_user_what_needs_root_goes_through_sudo(infra: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_machine(infra, monkeypatch, [], uid=1000)
    monkeypatch.setattr(infra, "asks_for_password", lambda host, port: True)
    hba = {"text": "host all all 127.0.0.1/32 scram-sha-256\n"}
    monkeypatch.setattr(infra, "read_as_root", lambda path: hba["text"])
    monkeypatch.setattr(infra, "write_as_root", lambda path, text: hba.update(text=text))
    infra.ensure_postgres("127.0.0.1", 5433)
    assert machine.ran("pg_createcluster") == [["sudo", "-n", "pg_createcluster", "15", "smartpos_5433", "-p", "5433"]]
    assert all(c[:2] == ["sudo", "-n"] for c in machine.ran("pg_ctlcluster")), machine.commands
    assert [c[-1] for c in machine.ran("pg_ctlcluster")] == ["start", "reload"]
    assert hba["text"].startswith("# smartpos: local development trust\nhost all postgres 127.0.0.1/32 trust\n")

    infra.apt_install("redis-server")
    assert machine.ran("apt-get")[-1][:4] == ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]


def test_as_a_user_pg_hba_conf_is_written_through_sudo_tee(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    machine = fake_machine(infra, monkeypatch, [], uid=1000)
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("local all postgres peer\n")
    monkeypatch.setattr(infra.os, "access", lambda path, mode: False)  # owned by postgres, mode 640
    infra.write_as_root(hba, "new rules\n")
    assert machine.commands == [["sudo", "-n", "tee", str(hba)]]
    assert machine.inputs == ["new rules\n"]
    infra.read_as_root(hba)
    assert machine.commands[-1] == ["sudo", "-n", "cat", str(hba)]


def test_server_binaries_in_sbin_are_found_off_a_users_path(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    nats = sbin / "nats-server"
    nats.write_text("#!/bin/sh\n")
    nats.chmod(nats.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a user's PATH: no sbin
    monkeypatch.setattr(infra, "SBIN_DIRS", (str(sbin),))
    monkeypatch.setattr(infra.sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert infra.find_binary("nats-server") == str(nats)
    assert infra.nats_server_binary() == str(nats)


def test_binaries_for_the_fault_tests_are_installed_even_when_the_servers_run_elsewhere(
    infra: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed: set[str] = set()
    apt: list[tuple[str, ...]] = []

    def apt_install(*packages: str) -> None:
        apt.append(packages)
        installed.update(packages)

    async def no_databases(urls: list[str]) -> None:
        return None

    monkeypatch.setattr(infra, "port_open", lambda host, port, timeout=0.5: True)  # compose servers answer
    monkeypatch.setattr(infra, "nats_info", lambda host, port: {"jetstream": True})
    monkeypatch.setattr(infra, "create_databases", no_databases)
    monkeypatch.setattr(infra, "apt_install", apt_install)
    monkeypatch.setattr(infra, "find_binary", lambda name: f"/usr/sbin/{name}" if name in installed else None)
    monkeypatch.setattr(sys, "argv", ["infra.py"])
    assert infra.main() == 0
    assert ("redis-server",) in apt and ("nats-server",) in apt
