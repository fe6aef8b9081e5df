"""Broker-backed exchanges and queues at the open boundary: the body codec (pure), another AMQP client (pika)
on either side, permissions the broker refuses, ``broker=True``, and a cancelled publish.

The pika calls block, so they run in a thread (``trio.to_thread.run_sync``). Broker tests skip without a broker,
and fail under ``CI=true``.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pika
import pytest
import trio
from amqp_support import broker as broker
from amqp_support import run_broker
from test_router_restarts import restart_all, spawn_siblings

from actors import (
    Ack,
    ActorFailed,
    ActorSystem,
    Bind,
    Delivery,
    Exchange,
    Get,
    GetStatistics,
    NotAuthorized,
    Publish,
    Queue,
    SerializationError,
    Subscribe,
)
from actors.testing import Probe
from runtime import amqp_properties, broker_link, decode_body, delivery_headers, encode_body
from runtime._broker_router import HEARTBEAT
from runtime.amqp import open_connection

# --- the codec, without a broker ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "data", "content_type"), [
    (b"\x00raw", b"\x00raw", "application/octet-stream"),
    (bytearray(b"ab"), b"ab", "application/octet-stream"),
    ("héllo", "héllo".encode(), "text/plain"),
    ({"n": 1, "tags": ["a"]}, b'{"n":1,"tags":["a"]}', "application/json"),
    ([1, 2.5, None, True], b"[1,2.5,null,true]", "application/json"),
    (7, b"7", "application/json"),
    (None, b"null", "application/json"),
])
def test_bodies_travel_by_type(body: object, data: bytes, content_type: str) -> None:
    assert encode_body(body) == (data, content_type)
    decoded = decode_body(data, content_type)
    assert decoded == (bytes(body) if isinstance(body, bytearray) else body)


@pytest.mark.parametrize("body", [object(), {1j: 2}, float("nan"), {"when": datetime.datetime(2024, 1, 1)}])
def test_a_body_json_cannot_encode_is_refused_naming_it(body: object) -> None:
    with pytest.raises(SerializationError, match="not bytes, str nor JSON-serializable") as info:
        encode_body(body)
    assert repr(body)[:20] in str(info.value)


def test_bodies_decode_by_content_type() -> None:
    assert decode_body(b'{"a":1}', "application/json; charset=utf-8") == {"a": 1}
    assert decode_body(b'{"a":1}', "application/vnd.thing+json") == {"a": 1}
    assert decode_body("é".encode("latin-1"), "text/plain; charset=latin-1") == "é"
    assert decode_body(b"\x1f\x8b", "application/json", "gzip") == b"\x1f\x8b"  # left to the application
    assert decode_body(b"<x/>", "application/xml") == b"<x/>"
    assert decode_body(b"plain", None) == b"plain"
    with pytest.raises(SerializationError, match="not the 'application/json'"):
        decode_body(b"{oops", "application/json")


def test_properties_come_from_headers_and_go_back_into_them() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    properties = amqp_properties("application/json", {
        "correlation_id": "c-1", "reply_to": "answers", "message_id": "m-1", "app_id": "shop", "type": "order",
        "timestamp": when, "priority": 3, "trace": "t", "amount": decimal.Decimal("1.50"), "content_type": "x/y",
    }, persistent=True, ttl=0.0015)
    assert (properties.content_type, properties.delivery_mode, properties.expiration) == ("application/json", 2, "2")
    assert (properties.correlation_id, properties.reply_to, properties.message_type) == ("c-1", "answers", "order")
    assert properties.headers == {"trace": "t", "amount": decimal.Decimal("1.50")}
    headers = delivery_headers(properties)
    assert headers["correlation_id"] == "c-1"
    assert headers["timestamp"] == when
    assert headers["trace"] == "t"
    assert amqp_properties("application/octet-stream", {"content_type": "image/png"}).content_type == "image/png"


@pytest.mark.parametrize(("headers", "match"), [
    ({"bad": object()}, "header 'bad'"),
    ({"big": 1 << 64}, "64 bits"),
    ({"reply_to": 5}, "must be a str"),
    ({"priority": 300}, "0 to 255"),
])
def test_headers_an_amqp_table_cannot_carry_are_refused(headers: dict[str, Any], match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        amqp_properties("text/plain", headers)


# --- against the broker ---------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"test.binterop.{prefix}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def names(broker: str) -> AsyncIterator[dict[str, str]]:
    """An exchange name and a queue name, deleted after the test."""
    made = {"exchange": unique("x"), "queue": unique("q")}
    yield made
    with trio.fail_after(10):
        async with open_connection(broker) as connection:
            channel = await connection.channel()
            await channel.queue_delete(made["queue"])
            await channel.exchange_delete(made["exchange"])
            await channel.close()


def pika_publish(url: str, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
    finally:
        connection.close()


def pika_get_all(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        got = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((properties, body))
    finally:
        connection.close()


@pytest.mark.deadline(30)
async def test_pika_publishes_json_and_an_actor_gets_it_decoded(broker: str, names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "topic", name=names["exchange"], broker=broker)
        probe = await Probe.spawn(system)
        await exchange.ask(Bind(probe.ref, "orders.#"))
        when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
        properties = pika.BasicProperties(content_type="application/json", correlation_id="c-42",
                                          reply_to="replies", message_id="m-1", app_id="shop", timestamp=int(
                                              when.timestamp()), headers={"tenant": "acme"})
        await trio.to_thread.run_sync(pika_publish, broker, names["exchange"], "orders.new",
                                      json.dumps({"order": 42, "items": ["tea"]}).encode(), properties)
        with trio.fail_after(5):
            delivery = await probe.expect(Delivery)
    assert (delivery.exchange, delivery.routing_key) == (names["exchange"], "orders.new")
    assert delivery.body == {"order": 42, "items": ["tea"]}
    assert delivery.headers is not None
    assert {key: delivery.headers[key] for key in ("content_type", "correlation_id", "reply_to", "message_id",
                                                   "app_id", "tenant")} == {
        "content_type": "application/json", "correlation_id": "c-42", "reply_to": "replies", "message_id": "m-1",
        "app_id": "shop", "tenant": "acme"}
    assert delivery.headers["timestamp"].replace(tzinfo=datetime.UTC) == when


@pytest.mark.deadline(30)
async def test_an_actor_publishes_and_pika_consumes_with_the_content_type(broker: str,
                                                                           names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "direct", name=names["exchange"], broker=broker)
        queue = await system.spawn(Queue, name=names["queue"], broker=broker)
        await exchange.ask(Bind(queue, "k"))
        for body in (b"\x00\x01", "naïve", {"n": [1, 2]}):
            assert await exchange.ask(Publish("k", body, {"correlation_id": "c-1", "trace": "t"},
                                              persistent=True)) == 1
    got = await trio.to_thread.run_sync(pika_get_all, broker, names["queue"])
    assert [(properties.content_type, body) for properties, body in got] == [
        ("application/octet-stream", b"\x00\x01"),
        ("text/plain", "naïve".encode()),
        ("application/json", b'{"n":[1,2]}'),
    ]
    assert all(properties.correlation_id == "c-1" and properties.headers == {"trace": "t"}
               and properties.delivery_mode == 2 for properties, _ in got)


@pytest.mark.deadline(30)
async def test_a_body_json_cannot_encode_fails_the_publish_not_the_exchange(broker: str,
                                                                            names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "fanout", name=names["exchange"], broker=broker)
        queue = await system.spawn(Queue, name=names["queue"], broker=broker)
        await exchange.ask(Bind(queue))
        with pytest.raises(SerializationError, match="Thing"):
            await exchange.ask(Publish("", Thing()))
        assert await exchange.ask(Publish("", "still fine")) == 1
        assert (await queue.ask(Get(auto_ack=True))).body == "still fine"


class Thing:
    def __repr__(self) -> str:
        return "<Thing>"


@pytest.mark.deadline(30)
async def test_a_cancelled_publish_leaves_the_exchange_consistent(broker: str, names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "fanout", name=names["exchange"], broker=broker)
        queue = await system.spawn(Queue, name=names["queue"], broker=broker)
        await exchange.ask(Bind(queue))
        with trio.move_on_after(0) as scope:
            await exchange.ask(Publish("", "maybe"))
        assert scope.cancelled_caught
        assert await exchange.ask(Publish("", "surely")) == 1
        bodies = []
        while (delivery := await queue.ask(Get(auto_ack=True))) is not None:
            bodies.append(delivery.body)
    assert bodies[-1] == "surely"
    assert bodies in (["surely"], ["maybe", "surely"])  # cancelled before or after it was sent: never reordered


# --- broker=True ----------------------------------------------------------------------------------------------


async def test_broker_true_needs_a_system_with_a_broker() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Exchange, "direct", name="x", broker=True)
    assert isinstance(info.value.cause, ValueError)
    assert "has no broker" in str(info.value.cause)


async def test_a_broker_that_is_not_a_url_is_refused() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Queue, name="q", broker="localhost:5672")
    assert isinstance(info.value.cause, ValueError)
    assert "amqp://" in str(info.value.cause)


@pytest.mark.deadline(30)
async def test_broker_true_uses_the_system_s_broker(broker: str, names: dict[str, str]) -> None:
    cluster = f"interop-{uuid.uuid4().hex[:8]}"
    async with ActorSystem(cluster, broker=broker, secret=b"a cluster secret of the test") as system:
        assert system.broker == broker
        exchange = await system.spawn(Exchange, "fanout", name=names["exchange"], broker=True)
        queue = await system.spawn(Queue, name=names["queue"], broker=True)
        await exchange.ask(Bind(queue))
        assert await exchange.ask(Publish("", {"via": "system"})) == 1
        assert (await queue.ask(Get(auto_ack=True))).body == {"via": "system"}


@pytest.mark.deadline(30)
async def test_the_router_s_connection_asks_for_a_short_heartbeat_and_is_shared(broker: str,
                                                                              names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "fanout", name=names["exchange"], broker=broker)
        queue = await system.spawn(Queue, name=names["queue"], broker=broker)
        link = await broker_link(system, broker)  # the one the exchange and the queue use
        try:
            assert link.connection.statistics().heartbeat == HEARTBEAT == 5
            channels = link.connection.statistics().open_channels
            assert channels >= 2  # the exchange's and the queue's channels for declarations
            await exchange.ask(Bind(queue))
            assert await exchange.ask(Publish("", "shared")) == 1
            assert link.connection.statistics().open_channels == channels + 1  # the exchange's publisher's
        finally:
            link.release()
        await system.stop(exchange)
        await system.stop(queue)
        with trio.fail_after(10):
            await link.wait_closed()  # the last user let it go
        assert not link.connection.statistics().open


# --- permissions ----------------------------------------------------------------------------------------------

_RUN = secrets.token_hex(4)  # suites run side by side on one broker each have their own users
WRITE_NOTHING_USER = f"trio_actors_router_no_write_{_RUN}"
CONFIGURE_NOTHING_USER = f"trio_actors_router_no_configure_{_RUN}"


@pytest.fixture(scope="module")
def restricted_users(broker: str) -> Iterator[dict[str, str]]:
    """Two users of ``/``: one that may configure and read but write nothing, one that may configure nothing.
    Their URLs, by user; deleted after the module's tests."""
    urls = {}
    try:
        for user, configure in ((WRITE_NOTHING_USER, ".*"), (CONFIGURE_NOTHING_USER, "^$")):
            password = secrets.token_hex(8)
            run_broker("ctl", "delete_user", user)
            for args in (("add_user", user, password), ("set_permissions", "-p", "/", user, configure, "^$", ".*")):
                result = run_broker("ctl", *args)
                assert result.returncode == 0, result.stderr
            urls[user] = f"amqp://{user}:{password}@127.0.0.1:5672/"
        yield urls
    finally:
        for user in (WRITE_NOTHING_USER, CONFIGURE_NOTHING_USER):
            run_broker("ctl", "delete_user", user)


@pytest.mark.deadline(60)
async def test_a_publish_without_write_permission_is_not_authorized(broker: str, names: dict[str, str],
                                                                    restricted_users: dict[str, str]) -> None:
    async with ActorSystem() as system:
        await system.spawn(Exchange, "fanout", name=names["exchange"], broker=broker)
    async with ActorSystem() as system:
        exchange = await system.spawn(Exchange, "fanout", name=names["exchange"],
                                      broker=restricted_users[WRITE_NOTHING_USER])
        with pytest.raises(NotAuthorized) as info:
            await exchange.ask(Publish("", "forbidden"))
        message = str(info.value)
        assert WRITE_NOTHING_USER in message
        assert "virtual host '/'" in message
        assert names["exchange"] in message
        with pytest.raises(NotAuthorized):  # the exchange goes on, on a fresh channel, and is refused again
            await exchange.ask(Publish("", "forbidden again"))


@pytest.mark.deadline(60)
async def test_a_declaration_without_configure_permission_fails_the_spawn(broker: str, names: dict[str, str],
                                                                          restricted_users: dict[str, str]) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Queue, name=names["queue"], broker=restricted_users[CONFIGURE_NOTHING_USER])
    cause = info.value.cause
    assert isinstance(cause, NotAuthorized)
    assert CONFIGURE_NOTHING_USER in str(cause)
    assert "virtual host '/'" in str(cause)
    assert names["queue"] in str(cause)


@pytest.mark.deadline(60)
async def test_a_refused_login_is_not_authorized(broker: str) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorFailed) as info:
            await system.spawn(Exchange, "direct", name=unique("x"),
                               broker="amqp://guest:wrong-password@127.0.0.1:5672/")
    cause = info.value.cause
    assert isinstance(cause, NotAuthorized)
    assert "'guest'" in str(cause)
    assert "wrong-password" not in str(cause)


# --- restarts -------------------------------------------------------------------------------------------------


@pytest.mark.deadline(30)
async def test_restarted_broker_actors_keep_their_consumers_and_bound_actors(broker: str,
                                                                             names: dict[str, str]) -> None:
    async with ActorSystem() as system:
        consumer = await Probe.spawn(system)
        listener = await Probe.spawn(system)
        exchange, queue, bomb = await spawn_siblings(
            system, (names["exchange"], functools.partial(Exchange, broker=broker), ("fanout",)),
            (names["queue"], functools.partial(Queue, broker=broker), ()))
        await exchange.ask(Bind(queue))
        await exchange.ask(Bind(listener.ref))
        await queue.ask(Subscribe(consumer.ref, prefetch=1))
        assert await exchange.ask(Publish("", "before")) == 1
        with trio.fail_after(5):
            held = await consumer.expect(Delivery)
            assert (await listener.expect(Delivery)).body == "before"
        await restart_all(system, bomb, queue)
        assert await exchange.ask(Publish("", "after")) == 1
        with trio.fail_after(5):
            again = await consumer.expect(Delivery)  # what it held unacked is requeued by the restart
            assert (again.body, again.redelivered) == ("before", True)
            with pytest.raises(ValueError, match="not outstanding"):
                await queue.ask(Ack(held.delivery_tag))  # tags of the old incarnation are not reused
            again.ack()
            assert (await consumer.expect(Delivery)).body == "after"
            assert (await listener.expect(Delivery)).body == "after"
        statistics = await exchange.ask(GetStatistics())
        assert (statistics.bindings, statistics.published) == (2, 2)
