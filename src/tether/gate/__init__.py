"""The gate: one pipeline that judges every record from every front door."""

from tether.gate.pipeline import Gate, Outcome
from tether.gate.submission import AcceptedEvent, Submission

__all__ = ["AcceptedEvent", "Gate", "Outcome", "Submission"]
