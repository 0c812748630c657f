"""The journal: every command written down before it is sent, and what became of it."""

from .lock import TerminalLock
from .records import FINAL_STATES, Entry, ResolvedBy, State
from .recovery import Judgement, Verdict, judge, same_transaction
from .store import SCHEMA_VERSION, Journal, default_data_dir, default_journal_path

__all__ = [
    "FINAL_STATES",
    "SCHEMA_VERSION",
    "Entry",
    "Journal",
    "Judgement",
    "ResolvedBy",
    "State",
    "TerminalLock",
    "Verdict",
    "default_data_dir",
    "default_journal_path",
    "judge",
    "same_transaction",
]
