"""``Inbox``: the bounded hand-over from the transport to the ingest worker."""

from __future__ import annotations

import threading
import time

import pytest

from drivetrain.cloud.ingest.inbox import Inbox


def test_take_returns_items_in_order_up_to_most() -> None:
    inbox: Inbox[int] = Inbox(10)
    for i in range(5):
        assert inbox.put(i, timeout_s=0)
    assert inbox.take(3, timeout_s=0) == [0, 1, 2]
    assert len(inbox) == 2
    assert inbox.take(10, timeout_s=0) == [3, 4]
    assert inbox.take(10, timeout_s=0) == []


def test_a_full_inbox_refuses_after_the_timeout_and_accepts_once_taken() -> None:
    inbox: Inbox[int] = Inbox(2)
    assert inbox.put(1, timeout_s=0) and inbox.put(2, timeout_s=0)
    started = time.monotonic()
    assert not inbox.put(3, timeout_s=0.05)
    assert time.monotonic() - started >= 0.04
    assert len(inbox) == 2

    done = threading.Event()

    def put_when_room() -> None:
        assert inbox.put(3, timeout_s=5)
        done.set()

    threading.Thread(target=put_when_room).start()
    time.sleep(0.05)
    assert not done.is_set()
    assert inbox.take(1, timeout_s=0) == [1]
    assert done.wait(2)
    assert inbox.take(5, timeout_s=0) == [2, 3]


def test_a_waiting_taker_is_woken_by_a_put() -> None:
    inbox: Inbox[str] = Inbox(4)
    threading.Timer(0.05, lambda: inbox.put("x", timeout_s=1)).start()
    started = time.monotonic()
    assert inbox.take(4, timeout_s=5) == ["x"]
    assert time.monotonic() - started < 2


def test_many_putters_lose_nothing() -> None:
    inbox: Inbox[int] = Inbox(8)
    per_thread, threads = 2000, 4

    def put_all(base: int) -> None:
        for i in range(per_thread):
            assert inbox.put(base + i, timeout_s=10)

    workers = [threading.Thread(target=put_all, args=(t * per_thread,)) for t in range(threads)]
    for w in workers:
        w.start()
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < per_thread * threads and time.monotonic() < deadline:
        got.extend(inbox.take(5, timeout_s=0.05))
    for w in workers:
        w.join()
    assert sorted(got) == list(range(per_thread * threads))


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Inbox(0)
