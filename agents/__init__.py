"""Agent and router node types."""

from flowloom.agents import router

__all__ = ["NODE_TYPES"]

NODE_TYPES = [router.NODE_TYPE]
