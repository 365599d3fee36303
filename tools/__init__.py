"""flowloom.tools: tools flows can call; `tool.sql` answers questions from a database."""

from flowloom.tools.sql import node

__all__ = ["NODE_TYPES"]

NODE_TYPES = [node.NODE_TYPE]
