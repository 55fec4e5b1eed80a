"""Property-testing kit for statesys lifecycles and system trees."""

__all__: list[str] = []
