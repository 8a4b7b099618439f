"""The ledger's state machine (see ``core``): wire events and commands in,
outcomes and balanced transfers out."""

from ledger.engine.core import Engine, memory_engine
from ledger.engine.state import ACCEPTED, DEAD_LETTER, DUPLICATE, PARKED, Decision, OrderState, Outcome

__all__ = ["ACCEPTED", "DEAD_LETTER", "DUPLICATE", "PARKED", "Decision", "Engine", "OrderState", "Outcome", "memory_engine"]
