"""The AMQP client (``runtime.amqp``) against a real RabbitMQ on 127.0.0.1, started with ``scripts/broker``.

Without a broker (no root, no apt, no network) the module is skipped; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import os
import pickle
import secrets
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from amqp_support import BROKER, name, run_broker
from amqp_support import broker as broker

import runtime
from runtime.amqp import (
    AccessRefused,
    AMQPError,
    Channel,
    ChannelClosed,
    ConnectionLost,
    ConsumerCancelled,
    NotFound,
    PreconditionFailed,
    PublishNacked,
    Unroutable,
    open_connection,
)

READ_ONLY_USER = f"trio_actors_read_only_{secrets.token_hex(4)}"  # suites run side by side each have their own


@pytest.fixture(scope="session")
def read_only_user(broker: str) -> Iterator[tuple[str, str]]:
    """A user that may configure and read everything in ``/`` but write nothing."""
    password = secrets.token_hex(8)
    run_broker("ctl", "delete_user", READ_ONLY_USER)
    for args in (("add_user", READ_ONLY_USER, password),
                 ("set_permissions", "-p", "/", READ_ONLY_USER, ".*", "^$", ".*")):
        result = run_broker("ctl", *args)
        assert result.returncode == 0, result.stderr
    yield READ_ONLY_USER, password
    run_broker("ctl", "delete_user", READ_ONLY_USER)


async def scratch_queue(channel: Channel) -> str:
    declared = await channel.queue_declare(name("q"), exclusive=True)
    return declared.queue


@pytest.mark.deadline(60)
async def test_connect_and_close(broker: str) -> None:
    async with open_connection(broker) as connection:
        statistics = connection.statistics()
        assert statistics.open
        assert statistics.frame_max > 0
        assert statistics.heartbeat == 60  # RabbitMQ's proposal, accepted
        async with await connection.channel() as channel:
            assert connection.statistics().open_channels == 1
            assert (await channel.queue_declare(name("q"), exclusive=True)).message_count == 0
        assert connection.statistics().open_channels == 0
    assert not connection.statistics().open
    with pytest.raises(ChannelClosed):
        await connection.channel()


@pytest.mark.deadline(60)
async def test_heartbeat_is_negotiable(broker: str) -> None:
    async with open_connection(broker + "?heartbeat=0") as connection:
        assert connection.statistics().heartbeat == 0
        await (await connection.channel()).close()


@pytest.mark.deadline(60)
async def test_the_heartbeat_asked_for_applies_unless_the_url_says(broker: str) -> None:
    async with open_connection(broker, heartbeat=7) as connection:
        assert connection.statistics().heartbeat == 7
    async with open_connection(broker + "?heartbeat=3", heartbeat=7) as connection:
        assert connection.statistics().heartbeat == 3
    for bad in (-1, 1.5, True, 70000):
        with pytest.raises(ValueError, match=rf"heartbeat={bad!r} must be a whole number of seconds"):
            async with open_connection(broker, heartbeat=bad):  # type: ignore[arg-type]
                pass  # pragma: no cover


@pytest.mark.deadline(60)
async def test_a_transaction_publishes_at_its_commit_and_nothing_at_its_rollback(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        tx = await connection.channel()
        await tx.tx_select()
        await tx.basic_publish("", queue, b"one", mandatory=True)
        await tx.basic_publish("", queue + ".nowhere", b"returned", mandatory=True)
        await tx.basic_publish("", queue, b"two")
        assert (await channel.queue_declare(queue, passive=True)).message_count == 0  # not before the commit
        assert await tx.tx_commit() == 1  # one mandatory publish came back
        assert (await channel.queue_declare(queue, passive=True)).message_count == 2
        await tx.basic_publish("", queue, b"dropped")
        await tx.tx_rollback()
        assert await tx.tx_commit() == 0  # nothing left to commit
        assert (await channel.queue_declare(queue, passive=True)).message_count == 2
        with pytest.raises(ValueError, match="not in transaction mode"):
            await channel.tx_commit()
        await tx.close()


@pytest.mark.deadline(60)
async def test_thousand_confirmed_publishes_are_all_consumed(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        exchange = name("x")
        await channel.exchange_declare(exchange, "direct", auto_delete=True)
        queue = await scratch_queue(channel)
        await channel.queue_bind(queue, exchange, "k")
        await channel.confirm_select()
        async with trio.open_nursery() as nursery:  # concurrent publishes: the broker acks with multiple=True
            for i in range(1000):
                nursery.start_soon(channel.basic_publish, exchange, "k", str(i).encode())
        assert (await channel.queue_declare(queue, passive=True)).message_count == 1000

        consumer = await channel.basic_consume(queue)
        bodies = []
        async for delivery in consumer:
            bodies.append(int(delivery.body))
            delivery.ack()
            if len(bodies) == 1000:
                break
        await consumer.cancel()
        assert sorted(bodies) == list(range(1000))
        declared = await channel.queue_declare(queue, passive=True)
        assert (declared.message_count, declared.consumer_count) == (0, 0)


@pytest.mark.deadline(60)
async def test_prefetch_is_respected(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        await channel.confirm_select()
        for i in range(10):
            await channel.basic_publish("", queue, b"%d" % i)
        await channel.basic_qos(3)
        consumer = await channel.basic_consume(queue)
        held = [await consumer.__anext__() for _ in range(3)]
        # Three unacked deliveries: the other seven stay ready in the queue, whatever the timing.
        assert (await channel.queue_declare(queue, passive=True)).message_count == 7
        held[0].ack()
        held.append(await consumer.__anext__())
        assert (await channel.queue_declare(queue, passive=True)).message_count == 6
        assert [d.body for d in held] == [b"0", b"1", b"2", b"3"]


@pytest.mark.deadline(60)
async def test_receive_batch_takes_what_has_arrived_in_one_go(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        await channel.confirm_select()
        for i in range(10):
            await channel.basic_publish("", queue, b"%d" % i)
        await channel.basic_qos(4)
        consumer = await channel.basic_consume(queue)
        with pytest.raises(ValueError, match="max_items=0 must be an int of at least 1"):
            await consumer.receive_batch(0)
        taken = await consumer.receive_batch(2)
        assert [d.body for d in taken] == [b"0", b"1"][:len(taken)]  # at most two, at least one
        for delivery in taken:
            delivery.ack()
        while len(taken) < 10:
            batch = await consumer.receive_batch()
            assert 1 <= len(batch) <= 4  # never more than the prefetch window holds
            for delivery in batch:
                delivery.ack()
            taken.extend(batch)
        assert [d.body for d in taken] == [b"%d" % i for i in range(10)]
        await consumer.cancel()
        assert await consumer.receive_batch() == []  # ended: nothing more, no wait


@pytest.mark.deadline(60)
async def test_nack_with_requeue_redelivers(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        await channel.confirm_select()
        await channel.basic_publish("", queue, b"again")
        consumer = await channel.basic_consume(queue)
        first = await consumer.__anext__()
        assert not first.redelivered
        first.nack(requeue=True)
        second = await consumer.__anext__()
        assert (second.body, second.redelivered) == (b"again", True)
        second.ack()
        assert await channel.basic_get(queue) is None


@pytest.mark.deadline(60)
async def test_body_larger_than_frame_max_round_trips(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        await channel.confirm_select()
        body = os.urandom(3 * connection.statistics().frame_max + 17)
        properties = runtime.amqp.Properties(content_type="application/octet-stream", headers={"n": 1})
        await channel.basic_publish("", queue, body, properties=properties)
        delivery = await channel.basic_get(queue)
        assert delivery is not None
        assert delivery.body == body
        assert delivery.properties.content_type == "application/octet-stream"
        assert delivery.properties.headers == {"n": 1}
        delivery.ack()


@pytest.mark.deadline(60)
async def test_mandatory_publish_to_unroutable_key_is_returned(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        with pytest.raises(ValueError, match="confirm_select"):
            await channel.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
        await channel.confirm_select()
        with pytest.raises(Unroutable) as caught:
            await channel.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
        assert (caught.value.reply_code, caught.value.exchange, caught.value.routing_key) == (
            312, "amq.direct", "nowhere")
        queue = await scratch_queue(channel)  # the channel goes on
        await channel.basic_publish("", queue, b"routed", mandatory=True)


@pytest.mark.deadline(60)
async def test_redeclaring_with_other_arguments_is_precondition_failed(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = name("q")
        await channel.queue_declare(queue, auto_delete=True, arguments={"x-max-length": 10})
        with pytest.raises(PreconditionFailed) as caught:
            await channel.queue_declare(queue, auto_delete=True, arguments={"x-max-length": 20})
        assert caught.value.reply_code == 406
        assert "x-max-length" in str(caught.value)
        with pytest.raises(PreconditionFailed):  # the channel stays closed with that error
            await channel.basic_get(queue)

        other = await connection.channel()
        with pytest.raises(NotFound) as missing:
            await other.queue_declare(name("missing"), passive=True)
        assert missing.value.reply_code == 404
        await (await connection.channel()).queue_declare(queue, passive=True)  # the connection goes on


@pytest.mark.deadline(60)
async def test_user_without_write_permission_is_not_authorized(broker: str, read_only_user: tuple[str, str]) -> None:
    user, password = read_only_user
    async with open_connection(f"amqp://{user}:{password}@127.0.0.1:5672/") as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)  # configure is allowed
        await channel.confirm_select()
        with pytest.raises(runtime.NotAuthorized) as caught:
            await channel.basic_publish("", queue, b"x")
        assert isinstance(caught.value, AccessRefused)
        assert caught.value.reply_code == 403
        assert user in str(caught.value)
        assert "amq.default" in str(caught.value)
        assert "vhost '/'" in str(caught.value)

    with pytest.raises(runtime.NotAuthorized, match="403"):
        async with open_connection(f"amqp://{user}:wrong@127.0.0.1:5672/"):
            pass


@pytest.mark.deadline(60)
async def test_connection_closed_by_the_broker_fails_the_next_operation(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        consumer = await channel.basic_consume(queue)
        result = await trio.run_process([str(BROKER), "ctl", "close_all_connections", "test: closed on purpose"],
                                        capture_stdout=True, capture_stderr=True, check=False)
        assert result.returncode == 0, result.stderr
        with pytest.raises(ConnectionLost) as caught:
            async for _ in consumer:
                pass
        assert caught.value.reply_code == 320
        assert "closed on purpose" in str(caught.value)
        with pytest.raises(ConnectionLost):
            await channel.queue_declare(queue, passive=True)
        with pytest.raises(ConnectionLost):
            await connection.channel()
        assert not connection.statistics().open


@pytest.mark.deadline(60)
async def test_cancelled_confirm_wait_leaves_the_channel_consistent(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = await scratch_queue(channel)
        await channel.confirm_select()
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled at its first checkpoint
            await channel.basic_publish("", queue, b"cancelled")
        with trio.move_on_after(0):
            await channel.queue_declare(queue, passive=True)  # sent, reply abandoned
        await channel.basic_publish("", queue, b"kept")
        declared = await channel.queue_declare(queue, passive=True)
        assert declared.queue == queue
        bodies = set()
        while (delivery := await channel.basic_get(queue, no_ack=True)) is not None:
            bodies.add(delivery.body)
        assert b"kept" in bodies


@pytest.mark.deadline(60)
async def test_cancelled_channel_open_is_closed_behind_the_scenes(broker: str) -> None:
    async with open_connection(broker) as connection:
        with trio.move_on_after(0):  # cancelled before the Open goes out
            await connection.channel()
        for _ in range(3):  # cancelled (most likely) while waiting for the OpenOk
            async with trio.open_nursery() as nursery:
                nursery.start_soon(connection.channel)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        # No channel number is reused while the broker may still hold it open (that would be a 504).
        for _ in range(5):
            channel = await connection.channel()
            await channel.queue_declare(name("q"), exclusive=True)
        assert connection.statistics().open


def test_errors_pickle() -> None:
    for error in (AMQPError("m", 541, "INTERNAL_ERROR"), AccessRefused("denied", 403, "ACCESS_REFUSED"),
                  PreconditionFailed("p", 406, "PRECONDITION_FAILED"), ConnectionLost("lost"),
                  PublishNacked("nacked"), Unroutable("u", exchange="x", routing_key="k"),
                  ConsumerCancelled("c", consumer_tag="t", queue="q")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.reply_code, copy.reply_text) == (str(error), error.reply_code, error.reply_text)
    unroutable = pickle.loads(pickle.dumps(Unroutable("u", exchange="x", routing_key="k")))
    assert (unroutable.exchange, unroutable.routing_key) == ("x", "k")
    cancelled = pickle.loads(pickle.dumps(ConsumerCancelled("c", consumer_tag="t", queue="q")))
    assert (cancelled.consumer_tag, cancelled.queue) == ("t", "q")
    assert isinstance(AccessRefused("denied"), runtime.NotAuthorized)
