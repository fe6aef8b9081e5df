"""The AMQP client when things go wrong, against the real RabbitMQ (``scripts/broker``): reconnection with the
topology declared again, connections lost with publishes in flight, resource alarms (``connection.blocked``),
consumers cancelled by the broker, heartbeats, large bodies, and ``amqps://`` through a TLS-terminating proxy.

Connections are broken on purpose by the broker itself (an operator closing a connection by name) or by a proxy
between client and broker (:class:`amqp_support.Proxy`). Without a broker the module is skipped; with
``CI=true`` it fails instead.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
import trustme
from amqp_support import Proxy, TLSBroker, broker_eval, close_named_connections, name
from amqp_support import broker as broker
from amqp_support import tls_broker as tls_broker

from runtime.amqp import (
    Channel,
    Confirmation,
    Connection,
    ConnectionLost,
    ConsumerCancelled,
    Delivery,
    Reconnect,
    Unroutable,
    open_connection,
)

pytestmark = pytest.mark.deadline(30)

FAST = Reconnect(initial=0.01, maximum=0.05, attempt_timeout=5)


@pytest.fixture
async def proxy(broker: str) -> AsyncIterator[Proxy]:
    async with trio.open_nursery() as nursery:
        proxy = Proxy()
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


async def until(condition: object, what: str, seconds: float = 10) -> None:
    """Wait (bounded) until ``condition()`` is true; for states that only a broker's doing brings about."""
    assert callable(condition)
    with trio.move_on_after(seconds):
        while not condition():  # noqa: ASYNC110 - a state the broker's doing brings about, with no event to wait on
            await trio.sleep(0.005)
        return
    pytest.fail(f"no {what} within {seconds} s")


async def next_delivery(consumer: AsyncIterator[Delivery]) -> Delivery:
    with trio.fail_after(10):
        return await consumer.__anext__()


@pytest.mark.parametrize("server_named", [True, False])
async def test_reconnect_declares_the_topology_again_and_the_consumer_goes_on(broker: str,
                                                                              server_named: bool) -> None:
    connection_name = f"test-reconnect-{uuid.uuid4().hex[:8]}"
    async with open_connection(broker, reconnect=FAST, name=connection_name) as connection:
        channel = await connection.channel()
        exchange = name("x")
        # auto_delete: the exchange goes with its last binding, when the exclusive queue goes with the connection.
        await channel.exchange_declare(exchange, "topic", auto_delete=True)
        queue = (await channel.queue_declare("" if server_named else name("q"), exclusive=True)).queue
        await channel.queue_bind(queue, exchange, "orders.*")
        await channel.basic_qos(1)
        consumer = await channel.basic_consume(queue)
        publisher = await connection.channel()
        await publisher.confirm_select()

        await publisher.basic_publish(exchange, "orders.new", b"one")
        held = await next_delivery(consumer)
        assert held.body == b"one"

        assert await close_named_connections(connection_name, "test: closed by an operator") == 1
        await until(lambda: connection.statistics().reconnects == 1, "the reconnection")
        await connection.wait_connected()
        statistics = connection.statistics()
        assert (statistics.open, statistics.connected) == (True, True)

        with pytest.raises(ConnectionLost, match="since lost"):
            held.ack()  # the broker redelivers it instead: it was requeued with the old connection
        if server_named:
            assert consumer.queue != queue  # the broker named it anew
        else:
            assert consumer.queue == queue
        # The exclusive queue went with the old connection ("one" with it); exchange, queue, binding, qos and
        # consumer are back.
        await publisher.basic_publish(exchange, "orders.new", b"two")
        await publisher.basic_publish(exchange, "orders.old", b"three")
        delivery = await next_delivery(consumer)
        assert (delivery.body, delivery.exchange, delivery.routing_key) == (b"two", exchange, "orders.new")
        declared = await channel.queue_declare(consumer.queue, passive=True)
        assert (declared.message_count, declared.consumer_count) == (1, 1)  # qos 1: "three" waits for the ack
        delivery.ack()
        assert (await next_delivery(consumer)).body == b"three"


async def test_exchange_to_exchange_bindings_are_declared_again_and_can_be_removed(broker: str) -> None:
    connection_name = f"test-e2e-{uuid.uuid4().hex[:8]}"
    front, back = name("front"), name("back")
    async with open_connection(broker, reconnect=FAST, name=connection_name) as connection:
        channel = await connection.channel()
        try:
            await channel.exchange_declare(front, "topic")
            await channel.exchange_declare(back, "fanout")
            await channel.exchange_bind(back, front, "orders.#")
            queue = (await channel.queue_declare("", exclusive=True)).queue
            await channel.queue_bind(queue, back)
            consumer = await channel.basic_consume(queue, no_ack=True)
            assert await close_named_connections(connection_name, "test: closed by an operator") == 1
            await until(lambda: connection.statistics().reconnects == 1, "the reconnection")
            await connection.wait_connected()
            publisher = await connection.channel()
            await publisher.confirm_select()
            await publisher.basic_publish(front, "orders.new", b"through both")
            await publisher.basic_publish(front, "invoices.new", b"not bound")
            delivery = await next_delivery(consumer)
            assert (delivery.body, delivery.exchange) == (b"through both", front)
            await channel.exchange_unbind(back, front, "orders.#")
            with pytest.raises(Unroutable):  # the binding is gone: a mandatory publish comes back
                await publisher.basic_publish(front, "orders.old", b"unbound", mandatory=True)
        finally:
            await channel.exchange_delete(front)
            await channel.exchange_delete(back)


async def test_publish_awaiting_its_confirm_fails_with_connection_lost_then_the_channel_goes_on(
        proxy: Proxy) -> None:
    async with open_connection(proxy.url(), reconnect=FAST) as connection:
        channel = await connection.channel()
        queue = name("q")
        await channel.queue_declare(queue, auto_delete=True)
        await channel.confirm_select()
        await channel.basic_publish("", queue, b"confirmed")

        outcomes: dict[str, BaseException | None] = {}

        async def attempt(what: str, operation: object) -> None:
            assert callable(operation)
            try:
                await operation()
                outcomes[what] = None
            except ConnectionLost as exc:
                outcomes[what] = exc

        proxy.freeze()  # the broker's confirm and reply never come back
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt, "publish", lambda: channel.basic_publish("", queue, b"in flight"))
            nursery.start_soon(attempt, "declare", lambda: channel.queue_declare(queue, passive=True))
            await trio.testing.wait_all_tasks_blocked()
            assert channel.statistics().unconfirmed == 1
            proxy.cut()
        assert isinstance(outcomes["publish"], ConnectionLost)
        assert isinstance(outcomes["declare"], ConnectionLost)
        assert channel.statistics().unconfirmed == 0

        await channel.basic_publish("", queue, b"after")  # waits for the reconnection, then confirmed
        assert connection.statistics().reconnects == 1
        assert channel.statistics().confirming  # confirm mode came back with the channel
        declared = await channel.queue_declare(queue, passive=True)
        assert declared.message_count >= 2  # "in flight" may or may not have reached the queue


async def test_publish_nowait_confirms_in_order_and_refuses_while_reconnecting(proxy: Proxy) -> None:
    async with open_connection(proxy.url(), reconnect=FAST) as connection:
        channel = await connection.channel()
        queue = name("q")
        await channel.queue_declare(queue, auto_delete=True)
        with pytest.raises(ValueError, match="needs confirm mode"):
            channel.publish_nowait("", queue, b"unconfirmed")
        await channel.confirm_select()
        done: list[Confirmation] = []
        confirmations = [channel.publish_nowait("", queue, str(i).encode(), on_done=done.append) for i in range(10)]
        assert channel.statistics().unconfirmed == 10
        with pytest.raises(RuntimeError, match="not answered yet"):
            confirmations[0].result()
        await confirmations[-1].wait()
        assert all(confirmation.done for confirmation in confirmations)  # the broker confirms in order
        assert done == confirmations  # each called back once, in order, by the connection's reader
        for confirmation in confirmations:
            confirmation.result()
        assert "acked" in repr(confirmations[0])

        proxy.freeze()  # the broker's confirm never comes back
        in_flight = channel.publish_nowait("", queue, b"in flight", on_done=done.append)
        epoch = channel.epoch
        proxy.refusing = True
        proxy.cut()
        with pytest.raises(ConnectionLost):
            await in_flight.wait()
        assert done[-1] is in_flight  # called back for a lost connection too
        assert channel.epoch == epoch + 1
        with pytest.raises(ConnectionLost, match="reconnecting"):
            channel.publish_nowait("", queue, b"while away")  # never waits: publish again once connected
        proxy.refusing = False
        await connection.wait_connected()
        await channel.publish_nowait("", queue, b"after").wait()
        declared = await channel.queue_declare(queue, passive=True)
        assert declared.message_count >= 11  # "in flight" may or may not have reached the queue


async def test_a_transaction_lost_with_its_connection_commits_nothing(proxy: Proxy) -> None:
    async with open_connection(proxy.url(), reconnect=FAST) as connection:
        tx = await connection.channel()
        await tx.tx_select()
        queue = name("q")
        await tx.queue_declare(queue, arguments={"x-expires": 10_000})  # outlives the connection, not the test
        await tx.basic_publish("", queue, b"before the loss")
        proxy.cut()
        await until(lambda: connection.statistics().reconnects == 1, "the reconnection")
        await connection.wait_connected()
        await tx.basic_publish("", queue, b"after the loss")
        with pytest.raises(ConnectionLost, match="was lost with the connection"):
            await tx.tx_commit()  # not just what came after: rolled back
        assert await tx.tx_commit() == 0
        assert (await tx.queue_declare(queue, passive=True)).message_count == 0
        await tx.basic_publish("", queue, b"whole")  # the channel goes on, still in transaction mode
        assert await tx.tx_commit() == 0
        assert (await tx.queue_declare(queue, passive=True)).message_count == 1
        await tx.queue_delete(queue)


async def test_operations_wait_while_reconnecting_with_backoff(proxy: Proxy) -> None:
    async with open_connection(proxy.url(), reconnect=FAST) as connection:
        channel = await connection.channel()
        queue = name("q")
        await channel.queue_declare(queue, auto_delete=True)
        proxy.refusing = True
        accepted = proxy.accepted
        proxy.cut()
        await until(lambda: proxy.accepted >= accepted + 3, "three refused attempts")
        assert not connection.statistics().connected
        assert connection.statistics().open
        assert "reconnecting" in repr(connection)

        declared: list[int] = []

        async def declare() -> None:
            declared.append((await channel.queue_declare(queue, passive=True)).message_count)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(declare)
            await trio.testing.wait_all_tasks_blocked()
            assert declared == []  # waiting, not failing
            proxy.refusing = False
        assert declared == [0]
        assert connection.statistics().reconnects == 1


async def test_reconnection_gives_up_after_its_attempts(proxy: Proxy) -> None:
    async with open_connection(proxy.url(), reconnect=Reconnect(initial=0.01, attempts=2)) as connection:
        channel = await connection.channel()
        proxy.refusing = True
        proxy.cut()
        await until(lambda: not connection.statistics().connected, "loss of the connection")
        with pytest.raises(ConnectionLost, match=r"gave up reconnecting .* after 2 attempts"):
            await channel.queue_declare(name("q"), passive=True)
        assert not connection.statistics().open


async def test_without_reconnect_a_cut_connection_stays_lost(proxy: Proxy) -> None:
    async with open_connection(proxy.url()) as connection:
        channel = await connection.channel()
        consumer = await channel.basic_consume((await channel.queue_declare("", exclusive=True)).queue)
        proxy.cut()
        with pytest.raises(ConnectionLost, match=r"hung up|lost"):
            await next_delivery(consumer)
        assert not connection.statistics().open


async def test_broker_silent_for_two_heartbeats_is_a_lost_connection(proxy: Proxy) -> None:
    async with open_connection(proxy.url() + "?heartbeat=1") as connection:
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        consumer = await channel.basic_consume(queue)
        proxy.freeze(up=False)  # our heartbeats still reach the broker; its heartbeats no longer reach us
        started = trio.current_time()
        with pytest.raises(ConnectionLost, match=r"sent nothing for 2 s \(two heartbeats\)"):
            await next_delivery(consumer)
        assert 1.5 < trio.current_time() - started < 5


async def test_consumer_cancelled_by_the_broker_when_its_queue_is_deleted(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = (await channel.queue_declare(name("q"))).queue
        await channel.confirm_select()
        await channel.basic_publish("", queue, b"before the delete")
        consumer = await channel.basic_consume(queue)
        first = await next_delivery(consumer)
        assert first.body == b"before the delete"

        other = await connection.channel()
        await other.queue_delete(queue)
        with pytest.raises(ConsumerCancelled) as caught:
            await next_delivery(consumer)
        assert (caught.value.consumer_tag, caught.value.queue) == (consumer.consumer_tag, queue)
        assert queue in str(caught.value)
        assert "deleted" in str(caught.value)
        with pytest.raises(ConsumerCancelled):  # it stays ended
            await next_delivery(consumer)
        assert channel.statistics().consumers == 0
        assert channel.statistics().open  # the channel goes on
        assert (await channel.queue_declare("", exclusive=True)).message_count == 0


async def test_publishers_wait_while_the_broker_blocks_the_connection(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        await channel.confirm_select()
        await channel.basic_publish("", queue, b"before")
        done: list[bytes] = []

        async def publish(body: bytes) -> None:
            await channel.basic_publish("", queue, body)
            done.append(body)

        watermark = await broker_eval("W = vm_memory_monitor:get_vm_memory_high_watermark(), "
                                      "vm_memory_monitor:set_vm_memory_high_watermark(0), W.")
        try:
            async with trio.open_nursery() as nursery:
                # RabbitMQ 3.10 blocks a connection (and says so) once it publishes during the alarm.
                nursery.start_soon(publish, b"first")
                await until(lambda: connection.statistics().blocked, "connection.blocked")
                nursery.start_soon(publish, b"second")
                await trio.testing.wait_all_tasks_blocked()
                # "second" waits in the client: only "first" went out (and awaits its confirm).
                assert channel.statistics().unconfirmed == 1
                assert done == []
                assert "blocked" in repr(connection)
                await broker_eval(f"vm_memory_monitor:set_vm_memory_high_watermark({watermark}).")
        finally:
            with trio.CancelScope(shield=True):
                await broker_eval(f"vm_memory_monitor:set_vm_memory_high_watermark({watermark}).")
        assert sorted(done) == [b"first", b"second"]
        assert not connection.statistics().blocked
        assert (await channel.queue_declare(queue, passive=True)).message_count == 3


async def test_large_bodies_are_split_to_frame_max_and_consumed_whole(broker: str) -> None:
    async with open_connection(broker) as connection:
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        await channel.confirm_select()
        frame_max = connection.statistics().frame_max
        bodies = [os.urandom(size) for size in (frame_max - 8, frame_max - 7, 5 * frame_max + 3, 0)]
        for body in bodies:  # a frame over frame_max would be a 501 FRAME_ERROR from the broker
            await channel.basic_publish("", queue, body)
        consumer = await channel.basic_consume(queue, no_ack=True)
        assert [(await next_delivery(consumer)).body for _ in bodies] == bodies


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """A server context with a throwaway CA's certificate for 127.0.0.1, a client context trusting that CA, and
    one that does not."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)
    return server, client, stranger


async def test_amqps_through_a_tls_terminating_proxy(broker: str) -> None:
    server, client, stranger = _tls_contexts()
    async with trio.open_nursery() as nursery:
        proxy = Proxy(ssl_context=server)
        await nursery.start(proxy.serve)
        async with open_connection(proxy.url("amqps"), ssl_context=client) as connection:
            assert "amqps://" in repr(connection)
            channel = await connection.channel()
            queue = (await channel.queue_declare("", exclusive=True)).queue
            await channel.confirm_select()
            body = os.urandom(3 * connection.statistics().frame_max)
            await channel.basic_publish("", queue, body)
            delivery = await channel.basic_get(queue, no_ack=True)
            assert delivery is not None
            assert delivery.body == body

        with pytest.raises(ConnectionLost, match=r"TLS handshake .* failed: .*CERTIFICATE_VERIFY_FAILED"):
            async with open_connection(proxy.url("amqps"), ssl_context=stranger):
                pass
        with pytest.raises(ValueError, match="not an amqps:// URL"):
            async with open_connection(proxy.url("amqp"), ssl_context=client):
                pass
        nursery.cancel_scope.cancel()


async def test_amqps_against_the_broker_s_own_tls_listener(tls_broker: TLSBroker) -> None:
    url, client = tls_broker.url, tls_broker.context
    connection_name = f"test-tls-{uuid.uuid4().hex[:8]}"
    async with open_connection(url, ssl_context=client, reconnect=FAST, name=connection_name) as connection:
        assert "amqps://guest@localhost:5671" in repr(connection)
        channel = await connection.channel()
        queue = (await channel.queue_declare("", exclusive=True)).queue
        consumer = await channel.basic_consume(queue, no_ack=True)
        await channel.confirm_select()
        body = os.urandom(3 * connection.statistics().frame_max)  # several TLS records and frames
        await channel.basic_publish("", queue, body)
        assert (await next_delivery(consumer)).body == body
        # The broker sees a TLS connection; closed by an operator, it is opened again over TLS.
        assert await broker_eval(
            "[proplists:get_value(ssl, I) || I <- rabbit_networking:connection_info_all([ssl, client_properties]), "
            "lists:keyfind(<<\"connection_name\">>, 1, proplists:get_value(client_properties, I)) =:= "
            "{<<\"connection_name\">>, longstr, <<\"" + connection_name + "\">>}].") == "[true]"
        assert await close_named_connections(connection_name, "test: closed by an operator") == 1
        await until(lambda: connection.statistics().reconnects == 1, "the reconnection")
        await connection.wait_connected()  # its queue declared again (named anew by the broker)
        await channel.basic_publish("", consumer.queue, b"again")
        assert (await next_delivery(consumer)).body == b"again"

    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)
    with pytest.raises(ConnectionLost, match=r"TLS handshake .* failed: .*CERTIFICATE_VERIFY_FAILED"):
        async with open_connection(url, ssl_context=stranger):
            pass  # pragma: no cover


async def test_connection_open_runs_in_a_nursery_of_ours_and_reconnects_there(proxy: Proxy) -> None:
    async with trio.open_nursery() as nursery:
        connection = await Connection.open(proxy.url(), nursery, reconnect=FAST)
        channel: Channel = await connection.channel()
        queue = (await channel.queue_declare(name("q"), exclusive=True)).queue
        proxy.cut()
        await until(lambda: connection.statistics().reconnects == 1, "the reconnection")
        await connection.wait_connected()
        assert (await channel.queue_declare(queue, passive=True)).consumer_count == 0
        await connection.close()
        assert not connection.statistics().open


def test_the_amqp_benchmark_runs_at_a_tiny_scale(broker: str) -> None:
    from benchmarks import amqp as amqp_benchmark

    figures = amqp_benchmark.run(url=broker, messages=64, repeat=1, window=8, prefetch=8)
    for client in amqp_benchmark.available():
        assert figures[f"{client}_publish_per_s"] > 0
        assert figures[f"{client}_consume_per_s"] > 0
    if len(amqp_benchmark.available()) > 1:
        assert figures["publish_vs_best"] > 0
    assert "trio" in amqp_benchmark.table(figures)
