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
from runtime import AskTimeout as AskTimeout
from runtime import Backoff as Backoff
from runtime import DeadLetter as DeadLetter
from runtime import Directive as Directive
from runtime import Future as Future
from runtime import FutureCancelled as FutureCancelled
from runtime import LifecycleEvent as LifecycleEvent
from runtime import Mailbox as Mailbox
from runtime import MailboxFull as MailboxFull
from runtime import Metrics as Metrics
from runtime import NameTaken as NameTaken
from runtime import NotAuthorized as NotAuthorized
from runtime import OneForAll as OneForAll
from runtime import OneForOne as OneForOne
from runtime import PoisonPill as PoisonPill
from runtime import Reply as Reply
from runtime import Restart as Restart
from runtime import RestForOne as RestForOne
from runtime import SerializationError as SerializationError
from runtime import Strategy as Strategy
from runtime import SystemStatistics as SystemStatistics
from runtime import Terminated as Terminated
from runtime import Unroutable as Unroutable

from ._actor import Actor as Actor
from ._pool import Broadcast as Broadcast
from ._pool import GetRoutees as GetRoutees
from ._pool import Pool as Pool
from ._pool import Resize as Resize
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import CountChildren as CountChildren
from ._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervisor import StartChild as StartChild
from ._supervisor import StopChild as StopChild
from ._supervisor import Supervisor as Supervisor
from ._supervisor import WhichChildren as WhichChildren

__all__ = [
    "Actor", "ActorError", "ActorFailed", "ActorRef", "ActorStatistics", "ActorStopped", "ActorSystem",
    "AskTimeout", "Backoff", "Broadcast", "ChildSpec", "CountChildren", "DeadLetter", "Directive",
    "DynamicSupervisor", "Future", "FutureCancelled", "GetRoutees", "LifecycleEvent", "Mailbox", "MailboxFull",
    "Metrics", "NameTaken", "NotAuthorized", "OneForAll", "OneForOne", "PoisonPill", "Pool", "Reply", "Resize",
    "RestForOne", "Restart", "SerializationError", "StartChild", "StopChild", "Strategy", "Supervisor",
    "SystemStatistics", "Terminated", "Unroutable", "WhichChildren",
]
