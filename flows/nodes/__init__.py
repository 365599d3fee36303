"""Node types that ship with the flow engine: model calls, prompts and state."""

from flowloom.flows.nodes import llm, prompt, state

__all__ = ["NODE_TYPES"]

NODE_TYPES = [llm.NODE_TYPE, prompt.NODE_TYPE, state.NODE_TYPE]
