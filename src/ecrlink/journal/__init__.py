"""The journal: every command written down before it is sent, and what became of it."""

from .records import FINAL_STATES, Entry, ResolvedBy, State

__all__ = ["FINAL_STATES", "Entry", "ResolvedBy", "State"]
