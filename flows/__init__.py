"""flowloom.flows."""
__all__: list[str] = []
