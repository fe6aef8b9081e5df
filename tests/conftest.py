"""Fixtures for the project's tests: the ones ``actors.testing`` offers to every user of the library."""

from actors.testing import actor_system as actor_system
from actors.testing import autojump_clock as autojump_clock
