"""The lifecycle states of an actor cell, in the order a cell moves through them (it only moves forward,
except that a restart goes from RUNNING/SUSPENDED through RESTARTING back to RUNNING)."""

from __future__ import annotations

__all__ = ["RESTARTING", "RUNNING", "STARTING", "STATE_NAMES", "STOPPED", "STOPPING", "SUSPENDED"]

STARTING, RUNNING, SUSPENDED, RESTARTING, STOPPING, STOPPED = range(6)
STATE_NAMES = ("starting", "running", "suspended", "restarting", "stopping", "stopped")
