"""Fan-out never waits for a socket: a slow subscriber overflows its own bounded queue and is marked for
closing; the others get every event; buffered (resuming) subscribers release only what was not replayed."""

from __future__ import annotations

from smarttab.hub.hub import CLOSE_SLOW, Subscriber


def test_a_slow_subscriber_overflows_alone() -> None:
    slow = Subscriber("mer_a", None, max_queue=2)
    fast = Subscriber("mer_a", None, max_queue=100)
    for seq in range(1, 11):
        slow.offer(seq, "sto_1", f"m{seq}")
        fast.offer(seq, "sto_1", f"m{seq}")
    assert slow.overflowed.is_set()
    assert [slow.queue.get_nowait()[1] for _ in range(3)] == ["m1", "m2", CLOSE_SLOW]  # then it is closed
    assert not fast.overflowed.is_set() and fast.queue.qsize() == 10


def test_store_filter_drops_other_stores() -> None:
    device = Subscriber("mer_a", "sto_1", max_queue=10)
    device.offer(1, "sto_2", "other")
    device.offer(2, "sto_1", "mine")
    assert device.queue.qsize() == 1 and device.queue.get_nowait() == (2, "mine")


def test_release_after_replay_skips_what_was_replayed() -> None:
    resuming = Subscriber("mer_a", None, max_queue=10, buffering=True)
    for seq in (5, 6, 7):
        resuming.offer(seq, "sto_1", f"m{seq}")
    assert resuming.queue.qsize() == 0  # held during the replay
    resuming.release(after_seq=6)  # the replay covered up to 6
    assert resuming.queue.get_nowait() == (7, "m7") and resuming.queue.empty()
    resuming.offer(8, "sto_1", "m8")
    assert resuming.queue.get_nowait() == (8, "m8")
