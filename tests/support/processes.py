from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SBIN = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))  # not on a regular user's PATH
APPS = {
    "portal": "portal.main:app",
    "smarttab": "smarttab.main:app",
    "device-auth": "device_auth.main:app",
    "console": "console.main:app",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
            last = result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout}s (last: {last!r})")


class ServiceProcess:
    """A service as users run it: `uvicorn module:app` in its own process on a free port."""

    def __init__(self, service: str, env: Mapping[str, str]) -> None:
        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"{service}-", suffix=".log", delete=False)  # noqa: SIM115
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_healthy: bool = True) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                APPS[self.service],
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if wait_healthy:
            wait_for(self._healthy, 20, what=f"{self.service} /healthz")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.service} exited with {self.proc.returncode}:\n{self.output()}")
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        Path(self.log.name).unlink(missing_ok=True)


class PrivateRedis:
    """A redis-server of the test's own on a free port, stopped by its PID (never the machine's)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or shutil.which("redis-server", path=SBIN)
        assert binary, "redis-server is needed for fault tests (scripts/infra.py installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _port_open(self.port), 10, what="private redis listening")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        wait_for(lambda: not _port_open(self.port), 5, what="private redis stopped")


class PrivateNats:
    """A nats-server -js of the test's own on a free port, stopped by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="nats-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateNats:
        binary = (
            shutil.which("nats-server")
            or shutil.which("nats-server", path=SBIN)  # Debian's package puts it in /usr/sbin
            or shutil.which("nats-server", path=str(Path(sys.executable).parent))
        )
        assert binary, "nats-server is needed for fault tests (scripts/infra.py installs it)"
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _port_open(self.port), 10, what="private nats listening")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        wait_for(lambda: not _port_open(self.port), 5, what="private nats stopped")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False
