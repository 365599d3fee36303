"""Node types that ship with the flow engine: model calls, prompts, state and memory."""

from flowloom.flows.nodes import llm, memory_put, memory_search, prompt, state

__all__ = ["NODE_TYPES"]

NODE_TYPES = [llm.NODE_TYPE, memory_put.NODE_TYPE, memory_search.NODE_TYPE, prompt.NODE_TYPE,
              state.NODE_TYPE]
