"""Fixtures of the OpenAPI fuzzer (the running, seeded platform; one target per service and role) and its
summary: per service and role the requests sent, 5xx responses, schema violations and distinct findings, printed
at the end of the run and written to `.fuzz/report-<profile>.json` (next to `junit.xml` under `make fuzz`)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fuzz.harness import CHECKS, EXCLUDED, SEEDED, Finding, FuzzSettings, RunStats, Target
from tests.fuzz.stack import ROLES, SERVICES, Stack, Tokens, seed
from tests.support.processes import ROOT

SETTINGS = FuzzSettings.from_env(ROOT)
REPORT = SETTINGS.report_dir / f"report-{SETTINGS.profile}.json"
RUNS: dict[tuple[str, str], RunStats] = {}
STATE: dict[str, Any] = {}


class Platform:
    def __init__(self, stack: Stack, tokens: Tokens) -> None:
        self.stack = stack
        self.tokens = tokens
        self._targets: dict[tuple[str, str], Target] = {}
        self.item_findings: dict[tuple[str, ...], Finding] = {}  # of the test item running now

    def target(self, service: str, role: str) -> Target:
        key = (service, role)
        if key not in self._targets:
            stats = RUNS.setdefault(key, RunStats(service, role))
            self._targets[key] = Target(service, role, self.stack, self.tokens, stats, self._found)
        return self._targets[key]

    def _found(self, key: tuple[str, ...], finding: Finding) -> None:
        self.item_findings[key] = finding

    def close(self) -> None:
        for target in self._targets.values():
            target.session.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def fuzz_platform(service_env: dict[str, str]) -> Iterator[Platform]:
    from tests.fuzz.test_openapi_fuzz import DOCUMENTS

    stack = Stack(service_env)
    platform: Platform | None = None
    # SIGTERM (a CI timeout, `kill`) ends pytest without teardown, which would leave the three services running
    # on the test databases, their relays taking the next run's outbox rows. As KeyboardInterrupt it tears down.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        for service, document in DOCUMENTS.items():
            served = stack.http.get(f"{stack.url(service)}/openapi.json").json()
            assert served == document, f"{service}: the process serves another /openapi.json than the one fuzzed"
        tokens = Tokens(stack)
        SEEDED["seed"] = seed(stack, tokens)
        platform = Platform(stack, tokens)
        STATE["platform"] = platform
        yield platform
    finally:
        if platform is not None:
            platform.close()
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        SEEDED.clear()
        STATE.pop("platform", None)
        write_report()


def report() -> dict[str, Any]:
    return {
        "profile": SETTINGS.profile,
        "max_examples": SETTINGS.max_examples,
        "coverage_phase": SETTINGS.coverage,
        "seed": SETTINGS.seed,
        "checks": list(CHECKS),
        "excluded": [{"service": s, "method": m, "path": p, "why": why} for (s, m, p), why in EXCLUDED.items()],
        "problems": [
            {**vars(finding), "roles": roles, "occurrences": occurrences} for finding, roles, occurrences in problems()
        ],
        "runs": [run.as_dict() for _, run in sorted(RUNS.items(), key=lambda kv: _order(kv[0]))],
    }


def problems() -> list[tuple[Finding, list[str], int]]:
    """Findings grouped across roles (the same undocumented status seen as admin and as merchant is one problem),
    each with the smallest reproduction any role found, the roles that saw it and how often."""
    grouped: dict[tuple[str, ...], tuple[Finding, list[str], int]] = {}
    for (service, role), run in sorted(RUNS.items(), key=lambda kv: _order(kv[0])):
        for key, finding in run.findings.items():
            group = (service, *key)
            best, roles, occurrences = grouped.get(group, (finding, [], 0))
            if len(finding.curl) < len(best.curl):
                best = finding
            grouped[group] = (best, [*roles, role], occurrences + finding.occurrences)
    return list(grouped.values())


def _order(key: tuple[str, str]) -> tuple[int, int]:
    return SERVICES.index(key[0]), ROLES.index(key[1])


def write_report() -> None:
    SETTINGS.report_dir.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report(), indent=2, default=str) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RUNS:
        return
    write = terminalreporter.write_line
    terminalreporter.section(
        f"OpenAPI fuzz: {SETTINGS.profile} profile, max-examples {SETTINGS.max_examples}, "
        f"coverage phase {'on' if SETTINGS.coverage else 'off'}, seed {SETTINGS.seed}"
    )
    write(f"{'service':<12} {'role':<10} {'requests':>9} {'5xx':>6} {'schema':>7} {'findings':>9} {'seconds':>8}")
    runs = [run for _, run in sorted(RUNS.items(), key=lambda kv: _order(kv[0]))]
    for run in runs:
        write(
            f"{run.service:<12} {run.role:<10} {run.requests:>9} {run.server_errors:>6} "
            f"{run.schema_violations:>7} {len(run.findings):>9} {run.seconds:>8.1f}"
        )
    found = problems()
    for finding, roles, occurrences in found:
        cause = f"\n    cause: {finding.cause}" if finding.cause else ""
        write(
            f"PROBLEM {finding.service} {finding.operation} -> {finding.status} [{', '.join(finding.checks)}] "
            f"{finding.title}; as {', '.join(roles)} ({occurrences}x){cause}\n    {finding.curl}"
        )
    write(
        f"{len(found)} distinct problem(s), {sum(len(run.findings) for run in runs)} finding(s) by role; "
        f"report: {REPORT}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A fuzz item fails at its end with every distinct finding of its run (the run does not stop at the first)."""
    platform: Platform | None = STATE.get("platform") if item.nodeid.startswith("tests/fuzz/") else None
    if platform is not None:
        platform.item_findings.clear()
    result = yield
    if platform is not None and platform.item_findings:
        findings = list(platform.item_findings.values())
        platform.item_findings.clear()
        details = "\n\n".join(f"{finding.describe()}\n\n{finding.report}" for finding in findings)
        pytest.fail(f"{len(findings)} distinct finding(s):\n\n{details}", pytrace=False)
    return result


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fuzzer runs last: it leaves odd data and rotated signing keys in the test databases it shares."""
    fuzz = [item for item in items if item.nodeid.startswith("tests/fuzz/")]
    if fuzz:
        ids = {id(item) for item in fuzz}
        items[:] = [item for item in items if id(item) not in ids] + fuzz
