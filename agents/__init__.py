"""Agent and router node types."""

from flowloom.agents import router, tools_agent

__all__ = ["NODE_TYPES"]

NODE_TYPES = [router.NODE_TYPE, tools_agent.NODE_TYPE]
