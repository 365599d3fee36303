"""Agent and router node types."""

from flowloom.agents import adaptive, approve, rec_answer, router, supervisor, tools_agent

__all__ = ["NODE_TYPES"]

NODE_TYPES = [router.NODE_TYPE, adaptive.NODE_TYPE, tools_agent.NODE_TYPE, supervisor.NODE_TYPE,
              approve.NODE_TYPE, rec_answer.NODE_TYPE]
