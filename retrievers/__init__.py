"""flowloom.retrievers: knowledge bases (parse, embed, index, search) and the
`retriever.search` node type."""

from flowloom.retrievers import search_node

__all__ = ["NODE_TYPES"]

NODE_TYPES = [search_node.NODE_TYPE]
