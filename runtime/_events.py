"""The event stream: dead letters and lifecycle events, delivered to subscribed actors by event type."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["EventStream"]


class EventStream:
    """Publish/subscribe by event class: ``system.events.subscribe(ref, DeadLetter)``.

    Subscribing to a class receives its subclasses too; subscribing with no classes receives every event.
    A subscriber that stops is unsubscribed automatically. Publishing costs nothing when nobody subscribed.
    """

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: dict[ActorRef, tuple[type, ...]] = {}

    def subscribe(self, ref: ActorRef, *event_types: type) -> None:
        """Deliver events of ``event_types`` (all events if none are given) to ``ref`` as messages."""
        from ._ref import ActorRef

        if not isinstance(ref, ActorRef):
            raise TypeError(f"subscribe() takes an ActorRef, not {ref!r}")
        for event_type in event_types:
            if not isinstance(event_type, type):
                raise TypeError(f"subscribe() takes event classes such as DeadLetter, not {event_type!r}")
        types = event_types or (object,)
        self._subscribers[ref] = tuple(dict.fromkeys(self._subscribers.get(ref, ()) + types))

    def unsubscribe(self, ref: ActorRef, *event_types: type) -> None:
        """Stop delivering ``event_types`` (all of them if none are given) to ``ref``."""
        current = self._subscribers.get(ref)
        if current is None:
            return
        remaining = tuple(t for t in current if event_types and t not in event_types)
        if remaining:
            self._subscribers[ref] = remaining
        else:
            del self._subscribers[ref]

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: object) -> None:
        """Tell ``event`` to every live subscriber of a matching type."""
        for ref, types in list(self._subscribers.items()):
            if ref.is_stopped:
                del self._subscribers[ref]
            elif isinstance(event, types):
                ref._target.deliver(event, None, None)

    def __repr__(self) -> str:
        return f"<EventStream subscribers={len(self._subscribers)}>"
