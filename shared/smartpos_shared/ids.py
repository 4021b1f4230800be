"""Prefixed, time-sortable identifiers (`ord_01JD…`): a ULID under a type prefix.

ULIDs sort by creation time (millisecond precision, then random), so ids index with locality and keyset
pagination can order by id alone.
"""

from __future__ import annotations

import re

from ulid import ULID

# API.md v1.1 names the round-2 prefixes too: ref refund, shf shift, zrp Z report, cra credit account, cre credit
# entry, int integration, crt certification run, rol rollout, chg change request, clk test clock; and ours: cmv cash
# movement (paid in / paid out of a shift's drawer), crp credit programme.
PREFIXES = frozenset(
    {"mer", "sto", "prd", "ord", "bil", "pay", "dev", "cli", "evt", "key"}
    | {"ref", "shf", "zrp", "cra", "cre", "int", "crt", "rol", "chg", "clk"}
    | {"cmv", "crp", "usr", "rtf"}
)
_ID_RE = re.compile(r"^(?P<prefix>[a-z]{3})_(?P<ulid>[0-9A-HJKMNP-TV-Z]{26})$")


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ULID()}"


def is_id(value: str, prefix: str) -> bool:
    """True when `value` is a well-formed id of the given type (cheap check before any query)."""
    match = _ID_RE.match(value)
    return match is not None and match.group("prefix") == prefix
