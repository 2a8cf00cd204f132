"""The pure diff engine: what changed between two snapshots of a story, and how to apply it."""

from liveupdates.diff.engine import apply, diff
from liveupdates.diff.summary import summarise, summarise_created

__all__ = ["apply", "diff", "summarise", "summarise_created"]
