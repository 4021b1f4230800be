#!/usr/bin/env python3
"""`make test-fresh`: what a newcomer gets on a fresh Debian 12 machine, for real.

For each phase it builds a fresh Debian 12 (bookworm) root with debootstrap (minbase plus only
`git make curl ca-certificates python3 python3-venv sudo`), clones the committed HEAD of this checkout into it,
and inside it, with every server and service on a free port of 127.0.0.1:

  1. `make run` until the four /readyz answer 200 (then stops it with Ctrl-C, as a person would),
  2. the README walkthrough (the sh blocks between the walkthrough markers of README.md), as written,
  3. `make test`.

Phase `root` runs all that as root; phase `user` as a non-root user with passwordless sudo, in a second fresh
root (so that its apt-get, pg_createcluster and uv installs all go through sudo or the user's own HOME too).

The root shares this machine's network, so nothing in it may use the default ports (5432, 6379, 4222, 8000-8002):
every URL and port variable is set to a free port, and /usr/sbin/policy-rc.d stops apt's maintainer scripts from
starting servers on their default ports (as in any chroot or container image). The machine's locally added CA
certificates are copied in, so HTTPS works behind a TLS-intercepting proxy as it does on the host.

Everything it starts runs inside the root and is stopped by PID (every process whose root is the fresh root:
PostgreSQL, redis-server, nats-server, honcho, uvicorn); mounts (/proc, /sys, /dev, /dev/pts, /dev/shm) are
unmounted and the root is deleted (--keep keeps it). The debootstrap tarball is cached under
/var/cache/smartpos-test-fresh. Times and pass counts are printed and written to docs/fresh-machine.md.

Needs root on a Debian host (debootstrap, chroot, mount). 30-60 minutes. Not part of `make test` or CI.

    python3 scripts/test_fresh.py [--phase root|user] [--keep] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
PACKAGES = ["git", "make", "curl", "ca-certificates", "python3", "python3-venv", "sudo"]
CACHE = Path(os.environ.get("SMARTPOS_TEST_FRESH_CACHE", "/var/cache/smartpos-test-fresh"))
WORK = Path(os.environ.get("SMARTPOS_TEST_FRESH_WORK", "/var/tmp/smartpos-test-fresh"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
RESERVED_PORTS = {5432, 6379, 4222, 8000, 8001, 8002, 8003, 8009}
USER = "dev"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's defaults (/etc/profile)
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
# The host's CA-bundle variables, when set, point at the system bundle, which the root has too.
TLS_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO")
MAKE_RUN_READY_SECONDS = 900
WALKTHROUGH_SECONDS = 300
MAKE_TEST_SECONDS = 3600


def say(message: str) -> None:
    print(f"[test-fresh {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


# --------------------------------------------------------------------------- host side


def detect_mirrors() -> tuple[str, str]:
    """The Debian mirror (and security mirror) the host's apt uses for bookworm, or deb.debian.org."""
    mirror, security = "", ""
    files = ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*")]
    for path in files:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        entries: list[tuple[list[str], list[str]]] = []
        for stanza in re.split(r"\n\s*\n", text):  # deb822 stanzas
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "URIs" in fields and "Suites" in fields:
                entries.append((fields["URIs"].split(), fields["Suites"].split()))
        for line in text.splitlines():  # one-line style
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb":
                entries.append(([parts[1]], [parts[2]]))
        for uris, suites in entries:
            for uri in uris:
                if SUITE in suites and not mirror:
                    mirror = uri.rstrip("/")
                if f"{SUITE}-security" in suites and not security:
                    security = uri.rstrip("/")
    mirror = mirror or DEFAULT_MIRROR
    return mirror, security or mirror.rsplit("/", 1)[0] + "/debian-security"


def ensure_debootstrap() -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    say("installing debootstrap (Debian package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], env=env)
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def debootstrap_args() -> list[str]:
    return ["--variant=minbase", f"--include={','.join(PACKAGES)}"]


def ensure_tarball(debootstrap: str, mirror: str) -> Path:
    """debootstrap's downloads for this package set, cached so later runs skip the download."""
    arch = run(["dpkg", "--print-architecture"], capture_output=True).stdout.strip()
    digest = hashlib.sha256(",".join(PACKAGES).encode()).hexdigest()[:8]
    tarball = CACHE / f"{SUITE}-{arch}-minbase-{digest}.tgz"
    if tarball.exists():
        say(f"debootstrap tarball: {tarball} (cached)")
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = CACHE / "tarball-work"
    shutil.rmtree(scratch, ignore_errors=True)
    say(f"downloading {SUITE} packages into {tarball} from {mirror}")
    run([debootstrap, *debootstrap_args(), f"--make-tarball={tarball}.part", SUITE, str(scratch), mirror])
    os.replace(f"{tarball}.part", tarball)
    shutil.rmtree(scratch, ignore_errors=True)
    return tarball


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    sockets = []
    while len(ports) < count:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        sockets.append(sock)
        if port not in RESERVED_PORTS and port not in ports:
            ports.append(port)
    for sock in sockets:
        sock.close()
    return ports


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def walkthrough(readme: str) -> str:
    """The sh blocks of README.md between `<!-- walkthrough` and `<!-- /walkthrough -->`."""
    start = readme.find("<!-- walkthrough")
    end = readme.find("<!-- /walkthrough -->", start)
    if start < 0 or end < 0:
        raise SystemExit("[test-fresh] README.md has no <!-- walkthrough --> … <!-- /walkthrough --> section")
    blocks = re.findall(r"^```sh\n(.*?)^```$", readme[start:end], re.M | re.S)
    if not blocks:
        raise SystemExit("[test-fresh] README.md's walkthrough section has no ```sh block")
    return "\n".join(blocks)


# --------------------------------------------------------------------------- the fresh root


class FreshRoot:
    """A debootstrapped Debian root with /proc, /sys, /dev mounted; stops what ran in it and removes it."""

    def __init__(self, path: Path, tarball: Path, mirror: str, security: str, keep: bool, logs: Path) -> None:
        self.path = path
        self.logs = logs
        self.tarball = tarball
        self.mirror = mirror
        self.security = security
        self.keep = keep
        self.mounts: list[Path] = []

    def __enter__(self) -> FreshRoot:
        if self.path.exists():
            self.cleanup(remove=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        debootstrap = ensure_debootstrap()
        try:
            unpack = [debootstrap, *debootstrap_args(), f"--unpack-tarball={self.tarball}", SUITE, str(self.path)]
            with (self.logs / f"{self.path.name}-debootstrap.log").open("w") as log:
                run([*unpack, self.mirror], stdout=log, stderr=subprocess.STDOUT)
            self.configure()
        except BaseException:
            self.cleanup(remove=not self.keep)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup(remove=not self.keep)

    def configure(self) -> None:
        root = self.path
        (root / "etc/apt/sources.list").write_text(
            f"deb {self.mirror} {SUITE} main\n"
            f"deb {self.mirror} {SUITE}-updates main\n"
            f"deb {self.security} {SUITE}-security main\n"
        )
        for name in ("etc/resolv.conf", "etc/hosts"):
            target = root / name
            target.unlink(missing_ok=True)
            shutil.copy(Path("/") / name, target)
        # Like any chroot or image: apt must not start servers (on the host's ports: the network is shared).
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# test-fresh: no daemons started by maintainer scripts\nexit 101\n")
        policy.chmod(0o755)
        for mount in (
            ["-t", "proc", "proc", "proc"],
            ["-t", "sysfs", "sysfs", "sys"],
            ["--bind", "/dev", "dev"],
            ["--bind", "/dev/pts", "dev/pts"],
            ["-t", "tmpfs", "-o", "mode=1777", "shm", "dev/shm"],
        ):
            target = root / mount[-1]
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", *mount[:-1], str(target)])
            self.mounts.append(target)
        extra_cas = sorted(glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True))
        if extra_cas:
            destination = root / "usr/local/share/ca-certificates"
            destination.mkdir(parents=True, exist_ok=True)
            for ca in extra_cas:
                shutil.copy(ca, destination / Path(ca).name)
            say(f"copied the host's {len(extra_cas)} locally added CA certificate(s) into the root")
            self.chroot(["update-ca-certificates"], capture_output=True)

    def chroot(
        self, command: list[str], user: str | None = None, env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return run(self.chroot_command(command, user, env), **kwargs)

    def chroot_command(
        self, command: list[str], user: str | None = None, env: dict[str, str] | None = None
    ) -> list[str]:
        if user is None:
            base = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "PATH": ROOT_PATH}
            spec: list[str] = []
        else:
            uid, gid, home = self.account(user)
            base = {"HOME": home, "USER": user, "LOGNAME": user, "PATH": USER_PATH}
            spec = [f"--userspec={uid}:{gid}", f"--groups={gid}"]
        full = {**base, "LANG": "C.UTF-8", "TERM": "dumb", "SHELL": "/bin/bash", **(env or {})}
        return ["chroot", *spec, str(self.path), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in full.items()), *command]

    def account(self, user: str) -> tuple[int, int, str]:
        for line in (self.path / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3]), fields[5]
        raise KeyError(user)

    def add_sudo_user(self, user: str) -> None:
        self.chroot(["useradd", "--create-home", "--shell", "/bin/bash", user])
        sudoers = self.path / "etc/sudoers.d" / user
        sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)

    def processes(self) -> list[int]:
        """PIDs of every process whose root directory is this root (what we started in it)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                root = os.readlink(entry / "root")
            except OSError:
                continue
            if root == str(self.path) or root.startswith(f"{self.path}/"):
                found.append(int(entry.name))
        return found

    def stop_processes(self, grace: float = 15) -> None:
        pids = self.processes()
        if not pids:
            return
        say(f"stopping {len(pids)} process(es) left in {self.path} by PID: {describe(pids)}")
        for pid in pids:
            signal_pid(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.processes():
            time.sleep(0.3)
        for pid in self.processes():
            signal_pid(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.processes():
            time.sleep(0.3)

    def mounted(self) -> list[str]:
        points = []
        for line in Path("/proc/mounts").read_text().splitlines():
            point = line.split()[1].replace("\\040", " ")
            if point == str(self.path) or point.startswith(f"{self.path}/"):
                points.append(point)
        return points

    def cleanup(self, remove: bool) -> None:
        self.stop_processes()
        for point in sorted(self.mounted(), key=len, reverse=True):
            if subprocess.run(["umount", point], check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], check=False)
        left = self.mounted()
        if left:
            raise SystemExit(f"[test-fresh] still mounted, not removing {self.path}: {left}")
        if remove and self.path.exists():
            run(["rm", "-rf", "--one-file-system", str(self.path)])
        elif self.path.exists():
            say(f"kept {self.path} (--keep)")


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def describe(pids: list[int]) -> str:
    names = []
    for pid in pids:
        try:
            names.append(f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}")
        except OSError:
            continue
    return ", ".join(names)


# --------------------------------------------------------------------------- one phase


@dataclass
class Phase:
    name: str
    user: str | None
    ports: dict[str, int] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def phase_env(ports: dict[str, int]) -> dict[str, str]:
    pg = f"postgresql+asyncpg://postgres@127.0.0.1:{ports['postgres']}"
    env = {
        "PORTAL_DATABASE_URL": f"{pg}/smartpos_portal",
        "SMARTTAB_DATABASE_URL": f"{pg}/smartpos_smarttab",
        "AUTH_DATABASE_URL": f"{pg}/smartpos_auth",
        "CONSOLE_DATABASE_URL": f"{pg}/smartpos_console",
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "PORTAL_PORT": str(ports["portal"]),
        "SMARTTAB_PORT": str(ports["smarttab"]),
        "AUTH_PORT": str(ports["auth"]),
        "CONSOLE_PORT": str(ports["console"]),
        "SCHEDULER_METRICS_PORT": str(ports["scheduler_metrics"]),
    }
    for name in TLS_VARIABLES:
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def in_checkout(command: str) -> list[str]:
    return ["/bin/bash", "-c", f"cd ~/smartpos && {command}"]


def run_phase(phase: Phase, fresh: FreshRoot, bundle: Path, logs: Path) -> None:
    user = phase.user
    env = phase_env(phase.ports)
    shutil.copy(bundle, fresh.path / "tmp/smartpos.bundle")
    (fresh.path / "tmp/smartpos.bundle").chmod(0o644)
    if user:
        fresh.add_sudo_user(user)
    fresh.chroot(["/bin/bash", "-c", "git -c advice.detachedHead=false clone -q /tmp/smartpos.bundle ~/smartpos"], user)
    checkout = fresh.path / (f"home/{user}" if user else "root") / "smartpos"

    # 1. make run, until the four /readyz answer 200
    log = logs / f"{phase.name}-make-run.log"
    say(f"[{phase.name}] make run (log: {log})")
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            fresh.chroot_command(in_checkout("exec make run"), user, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service_ports = [phase.ports[name] for name in ("portal", "smarttab", "auth", "console")]
    deadline = started + MAKE_RUN_READY_SECONDS
    while time.monotonic() < deadline and proc.poll() is None and not all(ready(p) for p in service_ports):
        time.sleep(1)
    if all(ready(p) for p in service_ports):
        phase.times["make run (to ready)"] = time.monotonic() - started
        phase.results["make run"] = "ready: the four /readyz answered 200"
        say(f"[{phase.name}] make run ready in {phase.times['make run (to ready)']:.0f} s")

        # 2. the README walkthrough, as written, against that make run
        script = walkthrough((checkout / "README.md").read_text())
        (fresh.path / "tmp/walkthrough.sh").write_text(script + "\n")
        wlog = logs / f"{phase.name}-walkthrough.log"
        say(f"[{phase.name}] README walkthrough (log: {wlog})")
        began = time.monotonic()
        with wlog.open("w") as out:
            result = subprocess.run(
                fresh.chroot_command(in_checkout("bash -euo pipefail /tmp/walkthrough.sh"), user, env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=WALKTHROUGH_SECONDS,
                check=False,
            )
        phase.times["README walkthrough"] = time.monotonic() - began
        text = wlog.read_text(errors="replace")
        if result.returncode == 0 and "checkout complete: order" in text:
            phase.results["README walkthrough"] = "passed: " + next(
                line for line in text.splitlines() if line.startswith("checkout complete")
            )
        else:
            phase.failed.append("README walkthrough")
            phase.results["README walkthrough"] = f"FAILED (exit {result.returncode})"
            say(f"[{phase.name}] walkthrough failed:\n{tail(wlog)}")
    else:
        phase.failed.append("make run")
        phase.results["make run"] = (
            f"FAILED: exited {proc.returncode}" if proc.poll() is not None else "FAILED: not ready in time"
        )
        say(f"[{phase.name}] make run failed:\n{tail(log)}")

    # Ctrl-C, as a person stops it; then whatever of honcho/uvicorn is left, by PID
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for pid in fresh.processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(word in cmdline for word in ("honcho", "uvicorn", "wait_ready", "make run")):
            say(f"[{phase.name}] stopping leftover {pid}: {cmdline[:80]}")
            signal_pid(pid, signal.SIGKILL)
    if "make run" in phase.failed:
        return

    # 3. make test
    tlog = logs / f"{phase.name}-make-test.log"
    say(f"[{phase.name}] make test (log: {tlog})")
    began = time.monotonic()
    with tlog.open("w") as out:
        try:
            result = subprocess.run(
                fresh.chroot_command(in_checkout("make test"), user, env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=MAKE_TEST_SECONDS,
                check=False,
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = -1
    phase.times["make test"] = time.monotonic() - began
    text = tlog.read_text(errors="replace")
    summary = re.findall(r"^=+ (.*(?:passed|failed|error).*) in [\d.]+s.*=+$", text, re.M)
    if "Success: no issues found" in text:
        lint = "ruff and mypy passed"
    elif summary and ("failed" in summary[-1] or "error" in summary[-1]):
        lint = "lint not reached (pytest failed first)"
    else:
        lint = "lint FAILED"
    phase.results["make test"] = f"{summary[-1] if summary else 'no pytest summary'}; {lint}; exit {code}"
    if code != 0:
        phase.failed.append("make test")
        failures = re.findall(r"^(?:FAILED|ERROR) .*$", text, re.M)
        say(f"[{phase.name}] make test failed (exit {code}):\n" + ("\n".join(failures) or tail(tlog)))
    say(f"[{phase.name}] make test: {phase.results['make test']} ({phase.times['make test']:.0f} s)")


# --------------------------------------------------------------------------- report


def report(phases: list[Phase], head: str, started: dt.datetime, total: float, mirror: str) -> str:
    lines = [
        "# A fresh machine (`make test-fresh`)",
        "",
        "`make test-fresh` (`scripts/test_fresh.py`, root on a Debian host, 30-60 minutes, not part of `make test`",
        "or CI) builds a fresh Debian 12 root with debootstrap (minbase plus only",
        f"`{' '.join(PACKAGES)}`), clones the committed HEAD into it and, with every server and",
        "service on a free port of 127.0.0.1, runs `make run` until the four `/readyz` answer 200, the README",
        "walkthrough as written (the `sh` blocks between its walkthrough markers) against it, then `make test`: once",
        f"as root, then as a user (`{USER}`, passwordless sudo) in a second fresh root. The root shares the host's",
        "network, so `/usr/sbin/policy-rc.d` keeps apt from starting servers on their default ports (as in any",
        "chroot or image), and the host's locally added CA certificates are copied in (for TLS-intercepting",
        "proxies). Everything started in the root is stopped by PID, mounts are undone and the root removed",
        "(`--keep` keeps it); the debootstrap tarball is cached in `/var/cache/smartpos-test-fresh`.",
        "",
        "## Last result",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {head[:12]}; mirror {mirror}",
        f"- result: {'PASSED' if all(p.ok for p in phases) else 'FAILED'} in {total / 60:.1f} min",
        "",
        "| phase | step | time | result |",
        "|---|---|---|---|",
    ]
    for phase in phases:
        who = "root" if phase.user is None else f"user `{phase.user}` with sudo"
        for step, seconds in phase.times.items():
            key = step.split(" (")[0]
            lines.append(f"| {phase.name} ({who}) | {step} | {seconds:.0f} s | {phase.results.get(key, '')} |")
        for step in phase.failed:
            if not any(s.startswith(step) for s in phase.times):
                lines.append(f"| {phase.name} ({who}) | {step} | | {phase.results.get(step, 'FAILED')} |")
    lines += [
        "",
        "Ports of the last run (all free ports on 127.0.0.1): "
        + "; ".join(f"{p.name}: " + ", ".join(f"{k} {v}" for k, v in p.ports.items()) for p in phases),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("root", "user"), action="append", help="run only this phase")
    parser.add_argument("--keep", action="store_true", help="keep the fresh roots (processes and mounts still go)")
    parser.add_argument("--no-record", action="store_true", help="do not write docs/fresh-machine.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("[test-fresh] needs root (debootstrap, chroot, mount): sudo make test-fresh")
    if not Path("/etc/debian_version").exists():
        raise SystemExit("[test-fresh] needs a Debian host (debootstrap from Debian's packages)")
    started_at = dt.datetime.now(dt.UTC)
    began = time.monotonic()
    head = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).stdout.strip()
    dirty = run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True).stdout.strip()
    if dirty:
        say("note: uncommitted changes are not tested (the fresh root clones the committed HEAD)")
    mirror, security = detect_mirrors()
    say(f"commit {head[:12]}; mirror {mirror} (security {security})")
    tarball = ensure_tarball(ensure_debootstrap(), mirror)

    WORK.mkdir(parents=True, exist_ok=True)
    logs = WORK / "logs"
    logs.mkdir(exist_ok=True)
    bundle = WORK / "smartpos.bundle"
    run(["git", "-C", str(REPO), "bundle", "create", "-q", str(bundle), "HEAD"], capture_output=True)

    phases = [Phase("root", None), Phase("user", USER)]
    phases = [p for p in phases if not args.phase or p.name in args.phase]
    interrupted = False
    for phase in phases:
        names = ("postgres", "redis", "nats", "portal", "smarttab", "auth", "console", "scheduler_metrics")
        phase.ports = dict(zip(names, free_ports(len(names)), strict=True))
        say(f"[{phase.name}] fresh root {WORK / phase.name}; ports {phase.ports}")
        t0 = time.monotonic()
        try:
            with FreshRoot(WORK / phase.name, tarball, mirror, security, args.keep, logs) as fresh:
                phase.times["fresh root (debootstrap from the cached tarball)"] = time.monotonic() - t0
                phase.results["fresh root"] = f"{SUITE} minbase + {', '.join(PACKAGES)}"
                run_phase(phase, fresh, bundle, logs)
        except KeyboardInterrupt:
            phase.failed.append("interrupted")
            interrupted = True
        except Exception as exc:  # report what we have, the root is cleaned up by the context manager
            phase.failed.append(f"error: {exc}")
            say(f"[{phase.name}] error: {exc}")
        if interrupted:
            break
    total = time.monotonic() - began
    bundle.unlink(missing_ok=True)

    text = report(phases, head, started_at, total, mirror)
    print(text)
    if not args.no_record and not interrupted:
        (REPO / "docs" / "fresh-machine.md").write_text(text)
        say("wrote docs/fresh-machine.md")
    say(f"logs in {logs}")
    passed = all(p.ok for p in phases)
    say(("PASSED" if passed else "FAILED") + f" in {total / 60:.1f} min")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
