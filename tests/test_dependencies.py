"""What the code relies on in its dependencies beyond their public API, checked for real."""

from __future__ import annotations

from tests.support.hubserver import StartHub


async def test_uvicorn_still_lets_the_hub_write_frames_directly(
    start_hub_server: StartHub,
) -> None:
    """liveupdates/hub/connection.py `direct_writer` reads attributes of uvicorn's private
    websockets-sansio protocol (pyproject keeps uvicorn below 1.0 for that). If a uvicorn release
    moves them, the hub silently falls back to its slower queued writer: this test says so.
    (With the front door off: on, /v1/ws upgrades on the default port skip uvicorn.)"""
    hub_server = await start_hub_server(hub_ws_front_door=False)
    await hub_server.publish("bridge")
    async with hub_server.ws() as client:
        await client.subscribe("story:bridge")
        connections = list(hub_server.hub.connections)
        assert connections, "the hub holds no connection for the client"
        assert all(c.writes_directly for c in connections), (
            "uvicorn's websockets-sansio internals moved: update direct_writer in"
            " liveupdates/hub/connection.py (and the uvicorn bound in pyproject.toml)"
        )
