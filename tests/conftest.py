"""Shared fixtures live in tests/support/, one module per real part the tests stand up."""

pytest_plugins = [
    "tests.support.hubserver",
    "tests.support.feedserver",
    "tests.support.redis_server",
    "tests.support.browser",
    "tests.support.served",
    "tests.support.websubhub",
]
