"""A Web ECR V201 terminal simulator: the terminal's side, over HTTP and a serial pty.

It keeps a real batch ledger (receipts, STAN, voids, settlements, ``last trans``) that
survives restarts, answers with replies shaped like the captured ones, misbehaves on
demand (magic amounts or a script: declines, Cancel, no answer, lost or truncated
replies, a busy terminal), and writes the acquirer's CSV statement for
reconciliation. Start it in-process::

    from ecrlink.simulator import Simulator

    with Simulator(http=("127.0.0.1", 0), serial="/tmp/ecr-sim") as sim:
        print(sim.http_url, sim.serial_url)

or from the command line: ``ecrlink simulate``.
"""

from .cards import TestCard
from .ledger import BatchSummary, Identity, Ledger, RecordStatus, TransactionRecord
from .outcomes import MAGIC_AMOUNTS, Behaviour, Plan, parse_plan, plan_for_amount
from .runner import DEFAULT_MID, DEFAULT_TID, Simulator
from .state import record_to_dict
from .statement import STATEMENT_HEADER, write_statement
from .terminal import Settings, SimulatedTerminal

__all__ = [
    "DEFAULT_MID",
    "DEFAULT_TID",
    "MAGIC_AMOUNTS",
    "STATEMENT_HEADER",
    "BatchSummary",
    "Behaviour",
    "Identity",
    "Ledger",
    "Plan",
    "RecordStatus",
    "Settings",
    "SimulatedTerminal",
    "Simulator",
    "TestCard",
    "TransactionRecord",
    "parse_plan",
    "plan_for_amount",
    "record_to_dict",
    "write_statement",
]
