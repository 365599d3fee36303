"""flowloom.tools: tools flows can call; `tool.sql` answers questions from a database,
`tool.causal` cause-and-effect questions from a dataset, `tool.recommend` the next
items for a user's history."""

from flowloom.tools import causal_tool, recommend_tool
from flowloom.tools.sql import node

__all__ = ["NODE_TYPES"]

NODE_TYPES = [node.NODE_TYPE, causal_tool.NODE_TYPE, recommend_tool.NODE_TYPE]
