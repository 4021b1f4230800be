from __future__ import annotations

import time

import pytest

from smartpos_shared.ids import is_id, new_id


def test_ids_carry_their_type_prefix_and_validate() -> None:
    order_id = new_id("ord")
    assert order_id.startswith("ord_") and len(order_id) == 30
    assert is_id(order_id, "ord")
    assert not is_id(order_id, "bil")
    assert not is_id("ord_" + "0" * 25, "ord")
    assert not is_id("ord_' OR 1=1 --", "ord")


def test_ids_sort_by_creation_time() -> None:
    earlier = new_id("ord")
    time.sleep(0.002)
    later = new_id("ord")
    assert earlier < later


def test_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id("xyz")
