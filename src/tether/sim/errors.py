"""The simulator's errors, in tether's tree (a CLI prints them and exits 2)."""

from __future__ import annotations

from tether.errors import TetherError


class ScenarioError(TetherError):
    """A scenario file is missing, unreadable or invalid; the message names the file and key."""


class SimulationError(TetherError):
    """The simulated world could not go on: a front door refused it or stopped answering."""


class RunStopped(SimulationError):
    """The run was asked to stop (Ctrl-C, a signal) before it ended; nothing was compared."""
