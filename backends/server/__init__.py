"""The flowloom API server (LangGraph API protocol + OpenAI-compatible endpoint)."""

from flowloom.backends.server.app import ServerSettings, create_app, serve

__all__ = ["ServerSettings", "create_app", "serve"]
