"""The engine under ``actors``: mailboxes, cells, the dispatcher, supervision, futures, timers and figures.

Applications import :mod:`actors`; this package is the layer it is written against. It never imports
``actors``.
"""

from ._address import Address as Address
from ._address import Target as Target
from ._balancing import SharedQueue as SharedQueue
from ._broker_router import PROPERTY_NAMES as PROPERTY_NAMES
from ._broker_router import AMQPDelivery as AMQPDelivery
from ._broker_router import BrokerLink as BrokerLink
from ._broker_router import Publisher as Publisher
from ._broker_router import PublishOutcome as PublishOutcome
from ._broker_router import amqp_properties as amqp_properties
from ._broker_router import broker_link as broker_link
from ._broker_router import check_table as check_table
from ._broker_router import decode_body as decode_body
from ._broker_router import delivery_headers as delivery_headers
from ._broker_router import encode_body as encode_body
from ._calls import Call as Call
from ._cell import ActorBase as ActorBase
from ._cell import CallForwarder as CallForwarder
from ._cell import Cell as Cell
from ._dispatcher import current_actor as current_actor
from ._events import EventStream as EventStream
from ._exceptions import ActorError as ActorError
from ._exceptions import ActorFailed as ActorFailed
from ._exceptions import ActorStopped as ActorStopped
from ._exceptions import AskTimeout as AskTimeout
from ._exceptions import AuthenticationFailed as AuthenticationFailed
from ._exceptions import BacklogFull as BacklogFull
from ._exceptions import FrameError as FrameError
from ._exceptions import LinkClosed as LinkClosed
from ._exceptions import LinkError as LinkError
from ._exceptions import MailboxFull as MailboxFull
from ._exceptions import NameTaken as NameTaken
from ._exceptions import NodeDown as NodeDown
from ._exceptions import NotAuthorized as NotAuthorized
from ._exceptions import SerializationError as SerializationError
from ._exceptions import StorageError as StorageError
from ._exceptions import Unroutable as Unroutable
from ._figures import RANKABLE as RANKABLE
from ._figures import ActorStatistics as ActorStatistics
from ._figures import ClassStatistics as ClassStatistics
from ._figures import Metrics as Metrics
from ._figures import StatisticsRows as StatisticsRows
from ._figures import SystemStatistics as SystemStatistics
from ._futures import Future as Future
from ._futures import FutureCancelled as FutureCancelled
from ._lease import Lease as Lease
from ._lease import LeaseEnded as LeaseEnded
from ._link import Link as Link
from ._link import LinkOptions as LinkOptions
from ._link import LinkStatistics as LinkStatistics
from ._link import open_link as open_link
from ._mailbox import Mailbox as Mailbox
from ._messages import DeadLetter as DeadLetter
from ._messages import LifecycleEvent as LifecycleEvent
from ._messages import PoisonPill as PoisonPill
from ._messages import Reply as Reply
from ._messages import Terminated as Terminated
from ._node import ClusterStatistics as ClusterStatistics
from ._node import Node as Node
from ._node import NodeUp as NodeUp
from ._queue_state import OVERFLOWS as OVERFLOWS
from ._queue_state import DeathReason as DeathReason
from ._queue_state import Overflow as Overflow
from ._queue_state import QueueConsumer as QueueConsumer
from ._queue_state import QueuedMessage as QueuedMessage
from ._queue_state import QueueEffects as QueueEffects
from ._queue_state import QueueLimits as QueueLimits
from ._queue_state import QueueState as QueueState
from ._queue_state import body_size as body_size
from ._queue_state import dead_letter_headers as dead_letter_headers
from ._queue_state import is_dead_letter_cycle as is_dead_letter_cycle
from ._ref import ActorRef as ActorRef
from ._ref import ReplyRef as ReplyRef
from ._routing import EXCHANGE_KINDS as EXCHANGE_KINDS
from ._routing import RoutingTable as RoutingTable
from ._routing import make_table as make_table
from ._routing import split_words as split_words
from ._routing import validate_key as validate_key
from ._show import show as show
from ._spawn import SPAWN_OPTIONS as SPAWN_OPTIONS
from ._spawn import SpawnSpec as SpawnSpec
from ._storage import PendingWrites as PendingWrites
from ._storage import SQLiteStore as SQLiteStore
from ._storage import Store as Store
from ._storage import StoredMessage as StoredMessage
from ._storage import encode_payload as encode_payload
from ._supervision import Backoff as Backoff
from ._supervision import Directive as Directive
from ._supervision import OneForAll as OneForAll
from ._supervision import OneForOne as OneForOne
from ._supervision import Restart as Restart
from ._supervision import RestForOne as RestForOne
from ._supervision import Strategy as Strategy
from ._system import ActorSystem as ActorSystem
from ._system import provide_queue_consumer as provide_queue_consumer
from ._timers import Timers as Timers
from ._timers import positive_seconds as positive_seconds
from ._topology import ExchangeEntry as ExchangeEntry
from ._topology import RouterKind as RouterKind
from ._topology import Topology as Topology
from ._topology import topology as topology
from .amqp import AccessRefused as AccessRefused
from .amqp import AMQPError as AMQPError
from .amqp import Channel as Channel
from .amqp import Consumer as Consumer
from .amqp import PreconditionFailed as PreconditionFailed
from .amqp import hide_password as hide_password

__all__ = [
    "EXCHANGE_KINDS",
    "OVERFLOWS",
    "PROPERTY_NAMES",
    "RANKABLE",
    "SPAWN_OPTIONS",
    "AMQPDelivery",
    "AMQPError",
    "AccessRefused",
    "ActorBase",
    "ActorError",
    "ActorFailed",
    "ActorRef",
    "ActorStatistics",
    "ActorStopped",
    "ActorSystem",
    "Address",
    "AskTimeout",
    "AuthenticationFailed",
    "BacklogFull",
    "Backoff",
    "BrokerLink",
    "Call",
    "CallForwarder",
    "Cell",
    "Channel",
    "ClassStatistics",
    "ClusterStatistics",
    "Consumer",
    "DeadLetter",
    "DeathReason",
    "Directive",
    "EventStream",
    "ExchangeEntry",
    "FrameError",
    "Future",
    "FutureCancelled",
    "Lease",
    "LeaseEnded",
    "LifecycleEvent",
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkOptions",
    "LinkStatistics",
    "Mailbox",
    "MailboxFull",
    "Metrics",
    "NameTaken",
    "Node",
    "NodeDown",
    "NodeUp",
    "NotAuthorized",
    "OneForAll",
    "OneForOne",
    "Overflow",
    "PendingWrites",
    "PoisonPill",
    "PreconditionFailed",
    "PublishOutcome",
    "Publisher",
    "QueueConsumer",
    "QueueEffects",
    "QueueLimits",
    "QueueState",
    "QueuedMessage",
    "Reply",
    "ReplyRef",
    "RestForOne",
    "Restart",
    "RouterKind",
    "RoutingTable",
    "SQLiteStore",
    "SerializationError",
    "SharedQueue",
    "SpawnSpec",
    "StatisticsRows",
    "StorageError",
    "Store",
    "StoredMessage",
    "Strategy",
    "SystemStatistics",
    "Target",
    "Terminated",
    "Timers",
    "Topology",
    "Unroutable",
    "amqp_properties",
    "body_size",
    "broker_link",
    "check_table",
    "current_actor",
    "dead_letter_headers",
    "decode_body",
    "delivery_headers",
    "encode_body",
    "encode_payload",
    "hide_password",
    "is_dead_letter_cycle",
    "make_table",
    "open_link",
    "positive_seconds",
    "provide_queue_consumer",
    "show",
    "split_words",
    "topology",
    "validate_key",
]
