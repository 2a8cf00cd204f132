"""Storage backends behind one Protocol (see base.py): SQLite for one box, Redis for many.

Which one a process uses is chosen by URL in liveupdates.backends, with the rest of its backends.
"""

from __future__ import annotations

from liveupdates.store.base import LogBounds, Store, VersionConflict

__all__ = ["LogBounds", "Store", "VersionConflict"]
