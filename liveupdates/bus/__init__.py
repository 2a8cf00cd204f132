"""The bus tells hub processes that new log entries exist on a channel.

The store's log is the source of truth; the bus only carries notifications (and, for Redis, the
entries themselves). `InMemoryBus` serves a single embedded process; a Redis bus lets several hub
processes share one log. Both satisfy the `Bus` Protocol and the contract in
tests/test_bus_contract.py.
"""

from liveupdates.bus.base import Bus, HistoryLost, Subscription
from liveupdates.bus.memory import InMemoryBus

__all__ = ["Bus", "HistoryLost", "InMemoryBus", "Subscription"]
