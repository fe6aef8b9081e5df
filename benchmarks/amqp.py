"""AMQP client benchmark: our trio client against aio-pika (asyncio) and pika (``BlockingConnection``).

Against the RabbitMQ on 127.0.0.1:5672 (``scripts/broker start``), each client in turn, in one run:

- ``publish``: ``messages`` bodies of ``body_size`` bytes published to the default exchange with publisher
  confirms, ``window`` publishes in flight at once (``window`` tasks each publishing and awaiting its confirm;
  pika's ``BlockingConnection`` can only wait for each confirm in turn, so its window is 1), timed until the last
  confirm is in;
- ``consume``: the same messages consumed with ``basic_qos(prefetch)`` and an ack each, timed from the consume
  until a passive declare on the consuming channel shows the queue empty (so every ack has reached the broker).
  Ours takes what has arrived with ``Consumer.receive_batch()``, one checkpoint a batch (``async for`` pays one
  a delivery: about half the rate).

``run()`` returns ``<client>_publish_per_s`` and ``<client>_consume_per_s`` for ``trio``, ``aio_pika`` and
``pika`` (the best of ``repeat`` runs each, the clients taking turns so that drift hits them all), and
``publish_vs_best`` / ``consume_vs_best``: our figure over the best of the other two. A client that is not
installed (``pip install -e '.[bench]'``) is left out. Wall time from :func:`time.perf_counter`.

Run it with ``python -m benchmarks.amqp [--quick] [--messages N] [--repeat N] [--url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

if not __package__:  # Run as a script (python benchmarks/amqp.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from runtime.amqp import open_connection

__all__ = ["main", "run"]

URL = "amqp://guest:guest@127.0.0.1:5672/"
CLIENTS = ("trio", "aio_pika", "pika")


def _queue_name(client: str) -> str:
    return f"bench.amqp.{client}.{uuid.uuid4().hex[:8]}"


# -- our client -------------------------------------------------------------------------------------------------

async def _trio(url: str, messages: int, body: bytes, window: int, prefetch: int) -> tuple[float, float]:
    async with open_connection(url) as connection:
        publisher = await connection.channel()
        await publisher.confirm_select()
        queue = (await publisher.queue_declare(_queue_name("trio"), exclusive=True)).queue

        async def publish(count: int) -> None:
            for _ in range(count):
                await publisher.basic_publish("", queue, body)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for share in _shares(messages, window):
                nursery.start_soon(publish, share)
        published = time.perf_counter() - start

        consumer_channel = await connection.channel()
        await consumer_channel.basic_qos(prefetch)
        start = time.perf_counter()
        consumer = await consumer_channel.basic_consume(queue)
        received = 0
        while received < messages:
            for delivery in await consumer.receive_batch():  # one checkpoint for what has arrived
                delivery.ack()
                received += 1
        declared = await consumer_channel.queue_declare(queue, passive=True)
        consumed = time.perf_counter() - start
        assert declared.message_count == 0, declared
        return messages / published, messages / consumed


# -- aio-pika ---------------------------------------------------------------------------------------------------

async def _aio_pika(url: str, messages: int, body: bytes, window: int, prefetch: int) -> tuple[float, float]:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        queue = await publisher.declare_queue(_queue_name("aio_pika"), exclusive=True)
        exchange = publisher.default_exchange

        async def publish(count: int) -> None:
            for _ in range(count):
                await exchange.publish(aio_pika.Message(body), routing_key=queue.name)

        start = time.perf_counter()
        await asyncio.gather(*(publish(share) for share in _shares(messages, window)))
        published = time.perf_counter() - start

        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        start = time.perf_counter()
        consumed_queue = await consumer_channel.declare_queue(queue.name, passive=True)
        received = 0
        async with consumed_queue.iterator() as iterator:
            async for message in iterator:
                await message.ack()
                received += 1
                if received == messages:
                    break
        declared = await consumer_channel.declare_queue(queue.name, passive=True)
        consumed = time.perf_counter() - start
        assert declared.declaration_result.message_count == 0
        return messages / published, messages / consumed


def _run_aio_pika(url: str, messages: int, body: bytes, window: int, prefetch: int) -> tuple[float, float]:
    return asyncio.run(_aio_pika(url, messages, body, window, prefetch))


# -- pika -------------------------------------------------------------------------------------------------------

def _pika(url: str, messages: int, body: bytes, window: int, prefetch: int) -> tuple[float, float]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        publisher = connection.channel()
        publisher.confirm_delivery()
        queue = publisher.queue_declare(_queue_name("pika"), exclusive=True).method.queue
        start = time.perf_counter()
        for _ in range(messages):  # each publish waits for its confirm: BlockingConnection has no window
            publisher.basic_publish("", queue, body)
        published = time.perf_counter() - start

        consumer_channel = connection.channel()
        consumer_channel.basic_qos(prefetch_count=prefetch)
        received = 0

        def on_message(channel: object, method: object, properties: object, _body: bytes) -> None:
            nonlocal received
            consumer_channel.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]
            received += 1
            if received == messages:
                consumer_channel.stop_consuming()

        start = time.perf_counter()
        consumer_channel.basic_consume(queue, on_message)
        consumer_channel.start_consuming()
        declared = consumer_channel.queue_declare(queue, passive=True)
        consumed = time.perf_counter() - start
        assert declared.method.message_count == 0
        return messages / published, messages / consumed
    finally:
        connection.close()


# -- the run ----------------------------------------------------------------------------------------------------

def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into at most ``parts`` near-equal positive shares."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def available() -> list[str]:
    """The clients that can run here: ours always, the others when their package is installed."""
    modules = {"aio_pika": "aio_pika", "pika": "pika"}
    return [client for client in CLIENTS if client == "trio" or importlib.util.find_spec(modules[client])]


def run(quick: bool = False, *, url: str = URL, messages: int | None = None, repeat: int | None = None,
        body_size: int = 100, window: int = 256, prefetch: int = 256) -> dict[str, float]:
    """The figures described above, best of ``repeat`` runs (default 3, 1 with ``quick``)."""
    messages = messages or (1_000 if quick else 10_000)
    repeat = repeat or (1 if quick else 3)
    body = b"x" * body_size
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "trio": lambda: trio.run(_trio, url, messages, body, window, prefetch),
        "aio_pika": lambda: _run_aio_pika(url, messages, body, window, prefetch),
        "pika": lambda: _pika(url, messages, body, window, prefetch),
    }
    clients = available()
    samples: dict[str, list[tuple[float, float]]] = {client: [] for client in clients}
    for _ in range(repeat):
        for client in clients:
            samples[client].append(runners[client]())
    figures: dict[str, float] = {}
    for client in clients:
        figures[f"{client}_publish_per_s"] = max(sample[0] for sample in samples[client])
        figures[f"{client}_consume_per_s"] = max(sample[1] for sample in samples[client])
    others = [client for client in clients if client != "trio"]
    for kind in ("publish", "consume"):
        if others:
            best = max(figures[f"{client}_{kind}_per_s"] for client in others)
            figures[f"{kind}_vs_best"] = figures[f"trio_{kind}_per_s"] / best
    return figures


def table(figures: dict[str, float]) -> str:
    """The figures as a small table: a row per client, then our ratio to the best of the others."""
    rows = [f"{'client':<10} {'publish msg/s':>14} {'consume msg/s':>14}"]
    for client in CLIENTS:
        if f"{client}_publish_per_s" in figures:
            rows.append(f"{client:<10} {figures[f'{client}_publish_per_s']:>14,.0f} "
                        f"{figures[f'{client}_consume_per_s']:>14,.0f}")
    if "publish_vs_best" in figures:
        rows.append(f"{'trio/best':<10} {figures['publish_vs_best']:>13.2f}x {figures['consume_vs_best']:>13.2f}x")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.amqp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages and one run per client")
    parser.add_argument("--messages", type=int, default=None, help="messages per run (default 10,000)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per client; the best is kept (default 3)")
    parser.add_argument("--url", default=URL, help=f"the broker (default {URL})")
    args = parser.parse_args(argv)
    figures = run(args.quick, url=args.url, messages=args.messages, repeat=args.repeat)
    messages = args.messages or (1_000 if args.quick else 10_000)
    print(f"{messages:,} messages of 100 bytes; publish: confirms, 256 in flight (pika: 1); "
          "consume: prefetch 256, an ack each")
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
