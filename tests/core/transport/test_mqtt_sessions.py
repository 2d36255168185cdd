"""Persistent sessions and manual acknowledgement against the shared Mosquitto: what a vehicle
or an ingest worker misses while away arrives when it returns; what it never acknowledged is
delivered again (MQTT 5 §4.4)."""

from __future__ import annotations

import threading

from mqtt_helpers import Clients, Inbox, settle, wait_until

from drivetrain.core.transport import InProcessTransport, Message
from drivetrain.core.transport.testing import unique_name

SESSION_S = 60  # long enough for the test, short enough not to leave sessions behind


def test_qos1_messages_sent_while_a_persistent_subscriber_is_away_arrive_when_it_returns(
    shared: Clients, prefix: str
) -> None:
    client_id = unique_name("vehicle")
    first = shared.new(client_id, session_expiry_s=SESSION_S)
    first.subscribe(f"{prefix}/commands", Inbox())
    first.close()

    pub = shared.new()
    for i in range(5):
        pub.publish(f"{prefix}/commands", f"cmd{i}".encode())

    inbox = Inbox()
    back = shared.new(client_id, session_expiry_s=SESSION_S)
    back.subscribe(f"{prefix}/commands", inbox)
    assert [m.payload for m in inbox.wait_for(5)] == [f"cmd{i}".encode() for i in range(5)]
    settle()
    assert len(inbox.messages) == 5


def test_a_clean_session_gets_nothing_from_while_it_was_away(shared: Clients, prefix: str) -> None:
    client_id = unique_name("vehicle")
    first = shared.new(client_id, session_expiry_s=0)
    first.subscribe(f"{prefix}/commands", Inbox())
    first.close()
    shared.new().publish(f"{prefix}/commands", b"missed")
    inbox = Inbox()
    shared.new(client_id, session_expiry_s=0).subscribe(f"{prefix}/commands", inbox)
    settle()
    assert inbox.messages == []


def test_unacknowledged_message_is_redelivered_to_the_same_client_and_an_acknowledged_one_is_not(
    shared: Clients, prefix: str
) -> None:
    client_id = unique_name("ingest")
    worker = shared.new(client_id, session_expiry_s=SESSION_S)
    inbox = Inbox()
    worker.subscribe(f"{prefix}/telemetry", inbox, manual_ack=True)
    pub = shared.new()
    pub.publish(f"{prefix}/telemetry", b"batch-1")
    pub.publish(f"{prefix}/telemetry", b"batch-2")
    first, _second = inbox.wait_for(2)
    first.ack()  # batch-1 is durably written; batch-2 is not
    first.ack()  # a second ack changes nothing
    worker.close()  # as if the worker died before writing batch-2

    again = Inbox()
    restarted = shared.new(client_id, session_expiry_s=SESSION_S)
    restarted.subscribe(f"{prefix}/telemetry", again, manual_ack=True)
    [redelivered] = again.wait_for(1)
    assert redelivered.payload == b"batch-2"
    assert redelivered.duplicate  # the broker sets DUP on a resent PUBLISH
    settle()
    assert again.payloads == [b"batch-2"]
    redelivered.ack()
    restarted.close()

    nothing = Inbox()
    shared.new(client_id, session_expiry_s=SESSION_S).subscribe(
        f"{prefix}/telemetry", nothing, manual_ack=True
    )
    settle()
    assert nothing.messages == []


def test_a_batch_can_be_acknowledged_later_from_another_thread(
    shared: Clients, prefix: str
) -> None:
    client_id = unique_name("ingest")
    worker = shared.new(client_id, session_expiry_s=SESSION_S)
    batch: list[Message] = []
    full = threading.Event()

    def collect(message: Message) -> None:
        batch.append(message)
        if len(batch) == 50:
            full.set()

    worker.subscribe(f"{prefix}/telemetry", collect, manual_ack=True)
    pub = shared.new()
    for i in range(50):
        pub.publish_async(f"{prefix}/telemetry", str(i).encode())
    assert full.wait(10)

    def durable_write_then_ack() -> None:
        for message in batch:
            message.ack()

    writer = threading.Thread(target=durable_write_then_ack)
    writer.start()
    writer.join()
    settle()
    worker.close()

    again = Inbox()
    shared.new(client_id, session_expiry_s=SESSION_S).subscribe(
        f"{prefix}/telemetry", again, manual_ack=True
    )
    settle()
    assert again.messages == []


def test_unacknowledged_messages_beyond_the_receive_window_wait_at_the_broker(
    shared: Clients, prefix: str
) -> None:
    worker = shared.new(receive_maximum=10)
    inbox = Inbox()
    worker.subscribe(f"{prefix}/telemetry", inbox, manual_ack=True)
    pub = shared.new()
    for i in range(25):
        pub.publish_async(f"{prefix}/telemetry", str(i).encode())
    inbox.wait_for(10)
    settle()
    assert len(inbox.messages) == 10  # the broker holds the rest until we acknowledge
    for message in list(inbox.messages):
        message.ack()
    received = inbox.wait_for(20)
    for message in received[10:]:
        message.ack()
    received = inbox.wait_for(25)
    assert [int(m.payload) for m in received] == list(range(25))


def test_a_manual_ack_handler_that_raises_leaves_the_message_for_the_next_session(
    shared: Clients, prefix: str
) -> None:
    client_id = unique_name("ingest")
    failing = shared.new(client_id, session_expiry_s=SESSION_S, max_attempts=2)
    calls: list[int] = []

    def broken(message: Message) -> None:
        calls.append(message.attempt)
        raise OSError("disk full")

    failing.subscribe(f"{prefix}/telemetry", broken, manual_ack=True)
    shared.new().publish(f"{prefix}/telemetry", b"precious")
    wait_until(lambda: len(calls) == 2, what="two attempts")
    assert failing.stats().undelivered == 1
    failing.close()

    inbox = Inbox()
    shared.new(client_id, session_expiry_s=SESSION_S).subscribe(
        f"{prefix}/telemetry", inbox, manual_ack=True
    )
    assert inbox.wait_for(1)[0].payload == b"precious"


def test_an_auto_acknowledged_message_is_not_redelivered(shared: Clients, prefix: str) -> None:
    client_id = unique_name("vehicle")
    first = shared.new(client_id, session_expiry_s=SESSION_S)
    inbox = Inbox()
    first.subscribe(f"{prefix}/commands", inbox)
    shared.new().publish(f"{prefix}/commands", b"done")
    [message] = inbox.wait_for(1)
    message.ack()  # a no-op on an automatically acknowledged subscription
    settle()
    first.close()
    again = Inbox()
    shared.new(client_id, session_expiry_s=SESSION_S).subscribe(f"{prefix}/commands", again)
    settle()
    assert again.messages == []


def test_in_process_ack_is_accepted_and_changes_nothing() -> None:
    with InProcessTransport() as bus:
        inbox = Inbox()
        bus.subscribe("a/b", inbox, manual_ack=True)
        bus.publish("a/b", b"x")
        bus.drain(5)
        [message] = inbox.messages
        message.ack()
        assert bus.stats().delivered == 1


def test_a_shared_subscription_worker_that_dies_gets_its_unacknowledged_share_back_on_restart(
    shared: Clients, prefix: str
) -> None:
    # Mosquitto 2.0 keeps a member's unacknowledged (and later) share in its session instead of
    # handing it to the other members, so an ingest worker restarts under the same client id
    group = f"$share/{unique_name('g')}/{prefix}/telemetry"
    worker_a, worker_b = unique_name("worker-a"), unique_name("worker-b")
    dying = shared.new(worker_a, session_expiry_s=SESSION_S)
    held = Inbox()
    dying.subscribe(group, held, manual_ack=True)  # never acknowledges: a write that never ends
    survivor_inbox = Inbox()
    survivor = shared.new(worker_b, session_expiry_s=SESSION_S)
    survivor.subscribe(group, survivor_inbox)
    pub = shared.new()
    for i in range(10):
        pub.publish(f"{prefix}/telemetry", str(i).encode())
    wait_until(lambda: len(held.messages) + len(survivor_inbox.messages) == 10, what="10")
    lost_with_the_worker = set(held.payloads)
    assert lost_with_the_worker
    dying.close()

    restarted_inbox = Inbox()
    restarted = shared.new(worker_a, session_expiry_s=SESSION_S)
    restarted.subscribe(group, restarted_inbox, manual_ack=True)
    redelivered = restarted_inbox.wait_for(len(lost_with_the_worker))
    assert {m.payload for m in redelivered} == lost_with_the_worker
    assert all(m.duplicate for m in redelivered)
    for message in redelivered:
        message.ack()
    assert set(survivor_inbox.payloads) | lost_with_the_worker == {
        str(i).encode() for i in range(10)
    }


def test_closing_with_end_session_makes_the_broker_forget_the_session(
    shared: Clients, prefix: str
) -> None:
    client_id = unique_name("retired")
    worker = shared.new(client_id, session_expiry_s=SESSION_S)
    worker.subscribe(f"{prefix}/telemetry", Inbox())
    worker.close(end_session=True)
    shared.new().publish(f"{prefix}/telemetry", b"for nobody")
    inbox = Inbox()
    shared.new(client_id, session_expiry_s=SESSION_S).subscribe(f"{prefix}/telemetry", inbox)
    settle()
    assert inbox.messages == []
