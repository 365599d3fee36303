"""flowloom.retrievers."""

__all__: list[str] = []
