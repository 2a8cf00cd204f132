"""WebSub intake (W3C WebSub Recommendation, subscriber side): feeds whose hub pushes them.

Pure parts: `discovery` (hub and self URLs of a fetched feed), `signature` (X-Hub-Signature),
`tokens` (callback tokens), `lease` (when to renew, what ops see). I/O parts: `client` (requests
to hubs), `callback` (the Starlette routes hubs call), `manager` (subscribing, renewing,
unsubscribing, and feeding queued pushes to the scheduler). See docs/websub.md.
"""
