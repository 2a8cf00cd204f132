"""The public API's typed models and the documents made from them.

`models` (REST), `messages` (WebSocket and SSE frames) and `push` (device push) are msgspec Structs:
the code validates requests with them (`params`) and `openapi` / `asyncapi` generate the published
JSON Schemas from the same classes, so a route and its description cannot drift apart silently
(tests/test_public_api.py checks the app against the document). This package does no I/O but
`routes` (serving the documents and the /docs page) and `cors`; it knows neither the hub nor ops.
"""
