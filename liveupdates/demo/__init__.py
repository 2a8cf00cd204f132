"""The built-in demo: a scripted feed that `liveupdates serve` publishes and polls itself."""

from liveupdates.demo.story import demo_feed_xml, stage_at

__all__ = ["demo_feed_xml", "demo_routes", "stage_at"]


def __getattr__(name: str) -> object:
    # The routes need Starlette; importing the pure story must not.
    if name == "demo_routes":
        from liveupdates.demo.feed import demo_routes

        return demo_routes
    raise AttributeError(name)
