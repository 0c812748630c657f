"""The journal: every command written down before it is sent, and what became of it."""

from .backends import ENV_JOURNAL, is_database_url, open_journal
from .lock import TerminalLock
from .records import FINAL_STATES, Entry, ResolvedBy, State, TerminalProfile
from .store import SCHEMA_VERSION, Journal, default_data_dir, default_journal_path

__all__ = [
    "ENV_JOURNAL",
    "FINAL_STATES",
    "SCHEMA_VERSION",
    "Entry",
    "Journal",
    "ResolvedBy",
    "State",
    "TerminalLock",
    "TerminalProfile",
    "default_data_dir",
    "default_journal_path",
    "is_database_url",
    "open_journal",
]
