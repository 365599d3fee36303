"""flowloom.backends."""

__all__: list[str] = []
