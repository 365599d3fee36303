"""The Streamlit visual builder and chat UI: a client of the flowloom API server."""
