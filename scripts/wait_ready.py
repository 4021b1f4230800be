"""Wait until the four services answer /readyz 200, then print where they are.

With --announce (the Procfile's `ready` process) it then stays up, so the process runner keeps running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx

SERVICES = (
    ("portal", "PORTAL_PORT", 8000),
    ("smarttab", "SMARTTAB_PORT", 8001),
    ("device-auth", "AUTH_PORT", 8002),
    ("console", "CONSOLE_PORT", 8003),
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--announce", action="store_true")
    args = parser.parse_args()
    urls = {name: f"http://127.0.0.1:{os.environ.get(var, default)}" for name, var, default in SERVICES}
    deadline = time.monotonic() + args.timeout
    pending = dict(urls)
    last: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            try:
                response = httpx.get(f"{url}/readyz", timeout=2)
                if response.status_code == 200:
                    del pending[name]
                else:
                    last[name] = response.json().get("detail", str(response.status_code))
            except httpx.HTTPError as exc:
                last[name] = type(exc).__name__
        if pending:
            time.sleep(0.5)
    if pending:
        for name in pending:
            print(f"{name}: not ready ({last.get(name, 'no answer')})", file=sys.stderr)
        return 1
    print("SmartPOS core is ready:")
    for name, url in urls.items():
        print(f"  {name:<12} {url}   API docs: {url}/docs   readiness: {url}/readyz")
    sys.stdout.flush()
    if args.announce:
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
