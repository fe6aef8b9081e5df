"""trio-actors: an event-driven actor runtime for trio.

Subclass :class:`Actor`, open an :class:`ActorSystem`, spawn actors, and talk to them through their
:class:`ActorRef`: ``tell`` (fire and forget), ``ask`` (request/response) or ``request`` (a :class:`Future`).
Parents supervise their children with OTP strategies.
"""

from runtime import ActorError as ActorError
from runtime import ActorFailed as ActorFailed
from runtime import ActorRef as ActorRef
from runtime import ActorStatistics as ActorStatistics
from runtime import ActorStopped as ActorStopped
from runtime import ActorSystem as ActorSystem
from runtime import Address as Address
from runtime import AskTimeout as AskTimeout
from runtime import BacklogFull as BacklogFull
from runtime import Backoff as Backoff
from runtime import ClassStatistics as ClassStatistics
from runtime import ClusterStatistics as ClusterStatistics
from runtime import DeadLetter as DeadLetter
from runtime import Directive as Directive
from runtime import Future as Future
from runtime import FutureCancelled as FutureCancelled
from runtime import Lease as Lease
from runtime import LeaseEnded as LeaseEnded
from runtime import LifecycleEvent as LifecycleEvent
from runtime import Mailbox as Mailbox
from runtime import MailboxFull as MailboxFull
from runtime import Metrics as Metrics
from runtime import NameTaken as NameTaken
from runtime import Node as Node
from runtime import NodeDown as NodeDown
from runtime import NodeUp as NodeUp
from runtime import NotAuthorized as NotAuthorized
from runtime import OneForAll as OneForAll
from runtime import OneForOne as OneForOne
from runtime import PoisonPill as PoisonPill
from runtime import Reply as Reply
from runtime import Restart as Restart
from runtime import RestForOne as RestForOne
from runtime import SerializationError as SerializationError
from runtime import SpawnSpec as SpawnSpec
from runtime import StorageError as StorageError
from runtime import Strategy as Strategy
from runtime import SystemStatistics as SystemStatistics
from runtime import Terminated as Terminated
from runtime import Unroutable as Unroutable

from ._actor import Actor as Actor
from ._exchange import Exchange as Exchange
from ._exchange import ExchangeStatistics as ExchangeStatistics
from ._pool import Autoscale as Autoscale
from ._pool import Broadcast as Broadcast
from ._pool import GetRoutees as GetRoutees
from ._pool import Pool as Pool
from ._pool import PoolResized as PoolResized
from ._pool import Resize as Resize
from ._pool import erlang_c_wait as erlang_c_wait
from ._queue import Queue as Queue
from ._queue import QueueStatistics as QueueStatistics
from ._router_messages import Ack as Ack
from ._router_messages import Bind as Bind
from ._router_messages import Delivery as Delivery
from ._router_messages import Get as Get
from ._router_messages import GetStatistics as GetStatistics
from ._router_messages import Nack as Nack
from ._router_messages import Publish as Publish
from ._router_messages import PublishBatch as PublishBatch
from ._router_messages import Reject as Reject
from ._router_messages import Returned as Returned
from ._router_messages import Subscribe as Subscribe
from ._router_messages import Unbind as Unbind
from ._router_messages import Unsubscribe as Unsubscribe
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import CountChildren as CountChildren
from ._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervisor import StartChild as StartChild
from ._supervisor import StopChild as StopChild
from ._supervisor import Supervisor as Supervisor
from ._supervisor import WhichChildren as WhichChildren
from ._transaction import Transaction as Transaction
from ._transaction import transaction as transaction

__all__ = [
    "Ack", "Actor", "ActorError", "ActorFailed", "ActorRef", "ActorStatistics", "ActorStopped", "ActorSystem",
    "Address", "AskTimeout", "Autoscale", "BacklogFull", "Backoff", "Bind", "Broadcast", "ChildSpec",
    "ClassStatistics", "ClusterStatistics", "CountChildren",
    "DeadLetter", "Delivery", "Directive", "DynamicSupervisor", "Exchange", "ExchangeStatistics", "Future",
    "FutureCancelled", "Get", "GetRoutees", "GetStatistics", "Lease", "LeaseEnded", "LifecycleEvent", "Mailbox",
    "MailboxFull", "Metrics", "Nack", "NameTaken", "Node", "NodeDown", "NodeUp", "NotAuthorized", "OneForAll",
    "OneForOne", "PoisonPill", "Pool", "PoolResized", "Publish", "PublishBatch", "Queue", "QueueStatistics",
    "Reject", "Reply", "Resize", "RestForOne", "Restart", "Returned", "SerializationError", "SpawnSpec",
    "StartChild", "StopChild", "StorageError", "Strategy", "Subscribe", "Supervisor", "SystemStatistics",
    "Terminated", "Transaction", "Unbind", "Unroutable", "Unsubscribe", "WhichChildren", "erlang_c_wait", "transaction",
]
