"""flowloom.agents."""

__all__: list[str] = []
