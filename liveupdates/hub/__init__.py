"""The hub: pushes channel log entries to readers over WebSocket, SSE and REST (wire protocol v1).

`create_app` builds the Starlette app; `run` serves it under uvicorn. See docs/protocol.md.
"""

from liveupdates.hub.app import create_app, make_server, run

__all__ = ["create_app", "make_server", "run"]
