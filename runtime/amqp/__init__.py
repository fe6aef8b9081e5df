"""A small trio-native AMQP 0-9-1 client (RabbitMQ), with pamqp as the codec. Private to the runtime."""

from __future__ import annotations

from ._client import Channel as Channel
from ._client import ChannelStatistics as ChannelStatistics
from ._client import Confirmation as Confirmation
from ._client import Connection as Connection
from ._client import ConnectionStatistics as ConnectionStatistics
from ._client import Consumer as Consumer
from ._client import Delivery as Delivery
from ._client import Properties as Properties
from ._client import QueueDeclared as QueueDeclared
from ._client import Reconnect as Reconnect
from ._client import hide_password as hide_password
from ._client import open_connection as open_connection
from ._errors import AccessRefused as AccessRefused
from ._errors import AMQPError as AMQPError
from ._errors import ChannelClosed as ChannelClosed
from ._errors import ConnectionLost as ConnectionLost
from ._errors import ConsumerCancelled as ConsumerCancelled
from ._errors import NotFound as NotFound
from ._errors import PreconditionFailed as PreconditionFailed
from ._errors import ProtocolError as ProtocolError
from ._errors import PublishNacked as PublishNacked
from ._errors import Unroutable as Unroutable

__all__ = [
    "AMQPError",
    "AccessRefused",
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "Confirmation",
    "Connection",
    "ConnectionLost",
    "ConnectionStatistics",
    "Consumer",
    "ConsumerCancelled",
    "Delivery",
    "NotFound",
    "PreconditionFailed",
    "Properties",
    "ProtocolError",
    "PublishNacked",
    "QueueDeclared",
    "Reconnect",
    "Unroutable",
    "hide_password",
    "open_connection",
]
