"""Link benchmark: items through an authenticated link over a real ``socketpair``, batched and one by one.

``run()`` returns:

- ``batched_items_per_s``: envelope-shaped items sent one way through a head->worker link over
  ``socket.socketpair()``, the producer yielding every 1,000 items, the writer putting everything queued into
  one frame per flush (the way a node sends);
- ``batched_items_per_frame``: how many items those flushes carried on average;
- ``unbatched_items_per_s``: the same items when the producer yields after every one, so that each frame
  carries a single item (one pickle, one tag, one write per message): the cost batching saves;
- ``round_trips_per_s``: sequential request/echo round trips head->worker->head (the floor of a remote ask);
- ``pickle_ns_per_item`` / ``hmac_ns_per_item`` / ``decode_ns_per_item``: the parts of a 1,000-item frame per
  item: one ``cloudpickle.dumps`` of the list, the HMAC-SHA256 tag over the payload, and the decoder's checks
  plus the unpickling on the far side.

Wall time from :func:`time.perf_counter` (real sockets, never a mock clock). ``quick=True`` uses a tenth of the
items. Run it alone with ``python -m benchmarks.link``.
"""

from __future__ import annotations

import hmac
import socket
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # Run as a script (python benchmarks/link.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from runtime import Link
from runtime._codec import FrameDecoder, FrameEncoder, FrameKind, dump_batch, load_batch

__all__ = ["run"]

_SECRET = b"benchmark secret, 32 bytes long!"


def _envelope(i: int) -> tuple[Any, ...]:
    """An item shaped like a user envelope: (message, sender, correlation id, stamp)."""
    return (("deposit", i, {"account": "a-17", "amount": 12.5}), ("head", 42, "/user/bank"), i, None)


def _socket_streams() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return trio.SocketStream(trio.socket.from_stdlib_socket(a)), trio.SocketStream(trio.socket.from_stdlib_socket(b))


async def _connected() -> tuple[Link, Link]:
    ours, theirs = _socket_streams()
    links: dict[str, Link] = {}

    async def connect(stream: trio.SocketStream, role: Any) -> None:
        links[role] = await Link.connect(stream, _SECRET, role=role)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect, ours, "head")
        nursery.start_soon(connect, theirs, "worker")
    return links["head"], links["worker"]


async def _one_way(count: int, yield_every: int) -> tuple[float, float]:
    """Seconds to move ``count`` items head->worker, and the mean items per frame."""
    head, worker = await _connected()
    items = [_envelope(i) for i in range(count)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(head.run)
        nursery.start_soon(worker.run)
        start = time.perf_counter()

        async def produce() -> None:
            for index, item in enumerate(items, 1):
                head.send(item)
                if index % yield_every == 0:
                    await trio.lowlevel.checkpoint()

        nursery.start_soon(produce)
        received = 0
        while received < count:
            received += len(await worker.receive())
        seconds = time.perf_counter() - start
        per_frame = head.statistics().items_per_frame
        await head.aclose()
        await worker.aclose()
    return seconds, per_frame


async def _round_trips(count: int) -> float:
    head, worker = await _connected()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(head.run)
        nursery.start_soon(worker.run)

        async def echo() -> None:
            async for batch in worker:
                for item in batch:
                    worker.send(item)

        nursery.start_soon(echo)
        start = time.perf_counter()
        for i in range(count):
            head.send(_envelope(i))
            await head.receive()
        seconds = time.perf_counter() - start
        await head.aclose()
    return seconds


def _per_item_costs(repeats: int) -> dict[str, float]:
    items = [_envelope(i) for i in range(1000)]
    key = b"k" * 32

    start = time.perf_counter()
    for _ in range(repeats):
        payload = dump_batch(items)
    pickle_s = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(repeats):
        hmac.digest(key, payload, "sha256")
    hmac_s = time.perf_counter() - start

    encoder = FrameEncoder(key)
    frames = [encoder.encode(FrameKind.BATCH, payload) for _ in range(repeats)]
    decoder = FrameDecoder(key)
    start = time.perf_counter()
    for frame in frames:
        decoder.feed(frame)
        for checked in decoder:
            load_batch(checked.payload)
    decode_s = time.perf_counter() - start

    per_item = 1e9 / (repeats * len(items))
    return {"pickle_ns_per_item": pickle_s * per_item, "hmac_ns_per_item": hmac_s * per_item,
            "decode_ns_per_item": decode_s * per_item}


def run(quick: bool = False) -> dict[str, float]:
    """Measure the link and return the figures named in the module docstring."""
    count = 20_000 if quick else 200_000
    batched_s, per_frame = trio.run(_one_way, count, 1000)
    unbatched_count = count // 10
    unbatched_s, _ = trio.run(_one_way, unbatched_count, 1)
    trips = count // 20
    trips_s = trio.run(_round_trips, trips)
    return {
        "batched_items_per_s": count / batched_s,
        "batched_items_per_frame": per_frame,
        "unbatched_items_per_s": unbatched_count / unbatched_s,
        "round_trips_per_s": trips / trips_s,
        **_per_item_costs(20 if quick else 200),
    }


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv[1:]).items():
        print(f"{name}: {value:,.4g}")
