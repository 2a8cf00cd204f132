"""The garbage collector's settings for a serving process (`serve`, `web`, `push`), once it has
started.

An idle open connection is ~70 objects the cyclic collector tracks (transport, protocol, tasks,
session, membership). With CPython's defaults a reconnect storm of 10,000 readers set off 7-9
full collections, each walking every object in the process (300-500 ms apiece with 10,000
connections open: every handshake in flight waits), and they walked the ~60,000 start-up objects
(modules, app, settings) every time too. Measured (README, "Benchmarks"): server CPU per accepted
and subscribed connection 0.25-0.30 ms with this, 0.37-0.43 without. A push burst of 10,000
devices set off 3 full collections (110-160 ms, ~4% of its CPU) with the defaults, none with this.

Not for a process that builds apps repeatedly (tests): frozen objects are never collected.
"""

from __future__ import annotations

import gc

# Objects allocated (net) between two young collections; CPython's default is 700. A storm's
# survivors then reach the oldest generation in a few large steps instead of hundreds of small
# ones, and full collections (one when the old generation has grown by a quarter) come later.
YOUNG_THRESHOLD = 20_000


def settle_after_startup() -> None:
    """Keep start-up objects out of every later collection and collect young objects less often."""
    gc.collect()  # what start-up left as garbage goes now, not frozen for the process's life
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
