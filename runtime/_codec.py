"""Frames for the links between nodes: batches pickled once, tagged, numbered, and checked before they are opened.

A frame is a fixed 16-byte header, a payload and a 32-byte tag::

    magic "TA" | version (1 byte) | kind (1 byte) | sequence number (8 bytes) | payload length (4 bytes)
    payload (length bytes)
    HMAC-SHA256(key, header + payload)

All integers are big-endian. A batch frame's payload is *one* pickle of a list (:func:`dumps`: cloudpickle's
meaning, the standard pickler's speed where they agree): everything a link had queued when it flushed, so that
pickling, tagging and writing are paid once per flush rather than once per message. A heartbeat and a goodbye
have an empty payload. Each direction of a link has its own key (derived in the handshake, see
:func:`session_keys`) and its own sequence, starting at 0 and increasing by one.

:class:`FrameDecoder` checks a frame in this order, and unpickles nothing itself: the header's shape and the
declared length against the size limit, as soon as the header has arrived and before the payload is read; then
the tag, with :func:`hmac.compare_digest`; then the sequence number, so that a replayed, reordered or dropped
frame is refused. Only a frame that passed all three reaches :func:`load_batch`. The handshake that proves both
ends hold the shared secret (:func:`hello`, :func:`proof`) lives here too, as pure functions; the link performs
it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import pickle
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

import attrs
import cloudpickle  # type: ignore[import-untyped]

from ._exceptions import AuthenticationFailed, FrameError, LinkError, SerializationError
from ._show import show as _show

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "HELLO_SIZE",
    "NONCE_SIZE",
    "PROOF_SIZE",
    "ROLES",
    "TAG_SIZE",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "FrameKind",
    "Role",
    "check_proof",
    "check_secret",
    "dump_batch",
    "hello",
    "load_batch",
    "parse_hello",
    "peer_of",
    "proof",
    "session_keys",
    "split_batch",
]

MAGIC: Final = b"TA"
VERSION: Final = 1
_HEADER: Final = struct.Struct("!2sBBQI")
HEADER_SIZE: Final = _HEADER.size
"""Bytes in a frame header: magic, version, kind, sequence number, payload length."""
TAG_SIZE: Final = hashlib.sha256().digest_size
"""Bytes in a frame's HMAC-SHA256 tag."""
MAX_FRAME_LIMIT: Final = 2**32 - 1
"""The largest payload the 4-byte length field can declare."""
DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024
"""The default limit on a frame's payload, in bytes (64 MiB)."""

Role = Literal["head", "worker"]
"""Which end of a link a node is: the head that made the link, or the worker it started."""
ROLES: Final[tuple[Role, ...]] = ("head", "worker")

NONCE_SIZE: Final = 32
"""Random bytes each end contributes to the handshake."""
_HELLO_PREFIX: Final = MAGIC + bytes([VERSION]) + b"H"
HELLO_SIZE: Final = len(_HELLO_PREFIX) + NONCE_SIZE
"""Bytes in a hello: the link's magic and version, then the sender's nonce."""
PROOF_SIZE: Final = hashlib.sha256().digest_size
"""Bytes in a proof: an HMAC-SHA256 over the sender's role and both nonces."""
MIN_SECRET: Final = 16
"""The shortest shared secret a link accepts, in bytes."""


class FrameKind(enum.IntEnum):
    """What a frame carries."""

    BATCH = 1
    """A list of items, pickled together."""
    HEARTBEAT = 2
    """Nothing: the sender is alive and has had nothing to send for a heartbeat interval."""
    GOODBYE = 3
    """Nothing: the sender closes the link on purpose, and this is its last frame."""


_KIND_OF: Final = {int(kind): kind for kind in FrameKind}


@attrs.frozen
class Frame:
    """A frame that passed every check: its kind, its sequence number and its (still pickled) payload."""

    kind: FrameKind
    seq: int
    """Its place in its direction of the link, from 0."""
    payload: bytes = attrs.field(repr=lambda payload: f"<{len(payload)} bytes>")
    """For a batch, one pickled list; empty for a heartbeat or a goodbye."""


def check_max_frame(max_frame: int) -> int:
    """``max_frame`` if it is a valid frame limit (1 byte to 4 GiB - 1), else raise :class:`ValueError`."""
    if isinstance(max_frame, bool) or not isinstance(max_frame, int) or not 1 <= max_frame <= MAX_FRAME_LIMIT:
        raise ValueError(f"max_frame must be an int from 1 to {MAX_FRAME_LIMIT} bytes, got {max_frame!r}")
    return max_frame


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or not key:
        raise TypeError(f"a frame key must be non-empty bytes, got {type(key).__name__}")


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)  # no hook on every write of the counters
class FrameEncoder:
    """Numbers and tags the frames one end sends: sequence numbers from 0, each tag keyed by ``key``.

    Frames must reach the peer in the order they were encoded, each exactly once: the peer's decoder refuses
    anything else.
    """

    _key: bytes = attrs.field(repr=False)
    _max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, converter=check_max_frame, alias="max_frame")
    _next_seq: int = 0

    def __attrs_post_init__(self) -> None:
        _check_key(self._key)

    @property
    def max_frame(self) -> int:
        """The largest payload, in bytes, this encoder frames (and the peer is assumed to accept)."""
        return self._max_frame

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame will carry."""
        return self._next_seq

    def encode(self, kind: FrameKind, payload: bytes = b"") -> bytes:
        """The frame carrying ``payload``, ready to write; it takes the next sequence number.

        Raises :class:`ValueError` for a payload over the limit (split the batch first) and before a sequence
        number is used.
        """
        if len(payload) > self._max_frame:
            raise ValueError(f"a payload of {len(payload)} bytes is over the frame limit of {self._max_frame} bytes")
        framed = _HEADER.pack(MAGIC, VERSION, kind, self._next_seq, len(payload)) + payload
        self._next_seq += 1
        return framed + hmac.digest(self._key, framed, "sha256")

    def __repr__(self) -> str:
        return f"<FrameEncoder next_seq={self._next_seq} max_frame={self._max_frame}>"


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)  # no hook on every write of the buffer's state
class FrameDecoder:
    """Cuts the bytes one end receives into checked frames, however the stream splits or glues them.

    :meth:`feed` buffers bytes as they arrive; iterating (or :meth:`next_frame`) gives every complete frame in
    the buffer, in order, and keeps the bytes of an incomplete one for the next feed. A frame is checked before
    it is given out: the header's shape, then the declared length against ``max_frame`` (as soon as the header is
    in, so an oversized frame is refused before its payload is read or allocated), then the tag, then the sequence
    number. The first failure raises :class:`~runtime.FrameError` or :class:`~runtime.AuthenticationFailed` and
    poisons the decoder: the stream is out of step or untrusted from there on, so every later call raises the same
    error. Payloads are returned still pickled.
    """

    _key: bytes = attrs.field(repr=False)
    _max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, converter=check_max_frame, alias="max_frame")
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _next_seq: int = attrs.field(default=0, init=False)
    _length: int | None = attrs.field(default=None, init=False)
    """The payload length of the frame whose header is in and checked, else ``None``."""
    _error: LinkError | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        _check_key(self._key)

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a frame given out."""
        return len(self._buffer)

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame must carry."""
        return self._next_seq

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer; iterate the decoder to take the frames they complete."""
        if self._error is not None:
            raise _fresh(self._error)
        self._buffer += data

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> Frame | None:
        """The next complete, checked frame in the buffer, or ``None`` until more bytes are fed."""
        if self._error is not None:
            raise _fresh(self._error)
        try:
            return self._next_frame()
        except LinkError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _next_frame(self) -> Frame | None:
        buffer = self._buffer
        length = self._length
        if length is None:
            if len(buffer) < HEADER_SIZE:
                return None
            length = self._check_header()
            self._length = length
        end = HEADER_SIZE + length
        if len(buffer) < end + TAG_SIZE:
            return None
        frame = bytes(buffer[:end + TAG_SIZE])
        del buffer[:end + TAG_SIZE]
        self._length = None
        _, _, kind, seq, _ = _HEADER.unpack_from(frame)
        with memoryview(frame) as view:
            expected = hmac.digest(self._key, view[:end], "sha256")
        if not hmac.compare_digest(expected, frame[end:]):
            raise AuthenticationFailed(
                f"frame claiming sequence number {seq} ({length} bytes) has a wrong tag: it was forged, corrupted, "
                "or signed with another key; nothing in it was unpickled")
        if seq != self._next_seq:
            what = "a replay" if seq < self._next_seq else "out of order (a frame was lost or reordered)"
            raise FrameError(f"frame {seq} is {what}: expected sequence number {self._next_seq}")
        self._next_seq += 1
        return Frame(_KIND_OF[kind], seq, frame[HEADER_SIZE:end])

    def _check_header(self) -> int:
        magic, version, kind, seq, length = _HEADER.unpack_from(self._buffer)
        if magic != MAGIC or version != VERSION:
            raise FrameError(f"not a frame of link version {VERSION}: header {bytes(self._buffer[:HEADER_SIZE])!r}")
        if kind not in _KIND_OF:
            raise FrameError(f"frame claiming sequence number {seq} has unknown kind {kind}")
        if length > self._max_frame:
            raise FrameError(
                f"frame claiming sequence number {seq} declares a payload of {length} bytes, over the limit of "
                f"{self._max_frame} bytes; refused before reading it")
        if kind != FrameKind.BATCH and length:
            raise FrameError(f"{FrameKind(kind).name.lower()} frame {seq} carries {length} bytes; it must be empty")
        return int(length)

    def __repr__(self) -> str:
        state = f" failed={type(self._error).__name__}" if self._error is not None else ""
        return f"<FrameDecoder next_seq={self._next_seq} buffered={len(self._buffer)}{state}>"


def _fresh(error: LinkError) -> LinkError:
    """A new instance of ``error`` with the same message and cause: one exception object is never raised twice."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy


# -- Batches ------------------------------------------------------------------------------------------------


_SHOW_LIMIT: Final = 80


def show(value: object) -> str:
    """``repr(value)``, cut to a readable length for an error message (see :func:`runtime._show.show`)."""
    return _show(value, _SHOW_LIMIT)


_BY_VALUE: Final[set[str] | None] = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", None)
"""The modules registered with :func:`cloudpickle.register_pickle_by_value` (``None`` if cloudpickle hides them)."""


def dumps(value: Any) -> bytes:
    """``value`` pickled as :func:`cloudpickle.dumps` would, at the speed of :func:`pickle.dumps` where it can.

    The two differ only where cloudpickle pickles by value what the standard pickler pickles by reference or not
    at all: lambdas, closures and classes defined in functions (the standard pickler refuses them), anything
    defined in ``__main__`` (its name is then in the pickle), and modules registered to be pickled by value. In
    each of those cases, or when the standard pickler fails for any other reason, cloudpickle does the work (it
    costs about four times as much for a small value). Raises what :func:`cloudpickle.dumps` raises.
    """
    if _BY_VALUE is not None and not _BY_VALUE:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # cloudpickle tries next and raises its own error
            pass
        else:
            if b"__main__" not in payload:
                return payload
    pickled: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return pickled


def dump_batch(items: Sequence[Any]) -> bytes:
    """One pickle of ``items`` as a list (see :func:`dumps`): the payload of a batch frame.

    Lambdas, closures and classes defined in ``__main__`` are pickled by value. Raises
    :class:`~runtime.SerializationError` naming the first item that cannot be pickled (the pickle error as
    ``__cause__``).
    """
    try:
        return dumps(list(items))
    except Exception as exc:
        for index, item in enumerate(items):
            try:
                dumps(item)
            except Exception as item_exc:
                raise SerializationError(
                    f"cannot pickle item {index} of a batch of {len(items)}, {show(item)}: {item_exc!r}") from item_exc
        raise SerializationError(f"cannot pickle a batch of {len(items)} items together: {exc!r}") from exc


def split_batch(items: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, SerializationError]]]:
    """The items that pickle on their own, in order, and each one that does not with its error.

    The slow path after :func:`dump_batch` refused a batch: one pickle per item.
    """
    kept: list[Any] = []
    refused: list[tuple[Any, SerializationError]] = []
    for item in items:
        try:
            dumps(item)
        except Exception as exc:
            error = SerializationError(f"cannot pickle {show(item)}: {exc!r}")
            error.__cause__ = exc
            refused.append((item, error))
        else:
            kept.append(item)
    return kept, refused


def load_batch(payload: bytes) -> list[Any]:
    """The list of items a batch frame carries. Call it only on a frame that :class:`FrameDecoder` gave out.

    Raises :class:`~runtime.SerializationError` when the payload does not unpickle here (a class or module this
    node cannot import, say) or is not a list.
    """
    try:
        items = pickle.loads(payload)
    except Exception as exc:
        raise SerializationError(f"cannot unpickle a batch of {len(payload)} bytes: {exc!r}") from exc
    if not isinstance(items, list):
        raise SerializationError(f"a batch must unpickle to a list, got {type(items).__name__}")
    return items


# -- Handshake ----------------------------------------------------------------------------------------------


def check_secret(secret: bytes) -> bytes:
    """``secret`` if it can key a link (bytes, at least 16 of them); the error never shows the secret."""
    if not isinstance(secret, bytes):
        raise TypeError(f"a link secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET:
        raise ValueError(f"a link secret must be at least {MIN_SECRET} bytes, got {len(secret)}")
    return secret


def peer_of(role: Role) -> Role:
    """The role of the other end of a link: ``"worker"`` for ``"head"`` and the reverse."""
    if role == "head":
        return "worker"
    if role == "worker":
        return "head"
    raise ValueError(f"a link role is 'head' or 'worker', got {role!r}")


def hello(nonce: bytes) -> bytes:
    """The first thing each end sends: the link's magic and version, then its fresh random ``nonce``."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes, got {len(nonce)}")
    return _HELLO_PREFIX + nonce


def parse_hello(data: bytes) -> bytes:
    """The peer's nonce from its hello; :class:`~runtime.AuthenticationFailed` if it is not a hello."""
    if len(data) != HELLO_SIZE or not data.startswith(_HELLO_PREFIX):
        raise AuthenticationFailed(f"the peer is not a link of version {VERSION}: it opened with {data[:16]!r}")
    return data[len(_HELLO_PREFIX):]


def proof(secret: bytes, role: Role, their_nonce: bytes, our_nonce: bytes) -> bytes:
    """What the end playing ``role`` answers: HMAC-SHA256(secret, "proof" || role || their nonce || our nonce).

    The role is part of the message, so a proof sent by one end can never pass as the other end's (a peer that
    reflects our own proof back fails), and the peer's fresh nonce makes every proof good for one handshake only.
    """
    message = b"".join((b"proof\0", role.encode(), b"\0", their_nonce, our_nonce))
    return hmac.digest(secret, message, "sha256")


def check_proof(secret: bytes, role: Role, our_nonce: bytes, their_nonce: bytes, answer: bytes) -> None:
    """Check the peer's ``answer`` to our nonce, for the end playing ``role``; raise if it does not match.

    Raises :class:`~runtime.AuthenticationFailed` when the peer echoed our own nonce (a reflection) or its proof
    is not the one the shared secret gives for its role (a wrong secret, or both ends claiming the same role).
    """
    peer = peer_of(role)
    if hmac.compare_digest(our_nonce, their_nonce):
        raise AuthenticationFailed(f"the {peer} echoed our nonce back: a reflection, refused")
    if not hmac.compare_digest(answer, proof(secret, peer, our_nonce, their_nonce)):
        raise AuthenticationFailed(
            f"the {peer}'s handshake proof does not match: it holds another secret, or it is not the {peer}")


def session_keys(secret: bytes, role: Role, our_nonce: bytes, their_nonce: bytes) -> tuple[bytes, bytes]:
    """The keys that tag the frames ``(we send, we receive)``, for the end playing ``role``.

    Each is HMAC-SHA256(secret, "frames" || sender's role || head's nonce || worker's nonce): fresh for every
    link, and one per direction, so a frame cannot be replayed on another link or reflected back to its sender.
    """
    head_nonce, worker_nonce = (our_nonce, their_nonce) if role == "head" else (their_nonce, our_nonce)

    def key(sender: Role) -> bytes:
        return hmac.digest(secret, b"".join((b"frames\0", sender.encode(), b"\0", head_nonce, worker_nonce)),
                           "sha256")

    return key(role), key(peer_of(role))
