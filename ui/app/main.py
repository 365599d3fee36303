"""Entry script: `streamlit run` this file (`flowloom up` does) with $FLOWLOOM_API_URL set."""

from __future__ import annotations

import streamlit as st

from flowloom.ui.app import builder, chat, knowledge, models, runs
from flowloom.ui.app.common import api

st.set_page_config(page_title="flowloom", page_icon=":material/account_tree:", layout="wide")

pages = [
    st.Page(builder.page, title="Builder", icon=":material/account_tree:", url_path="builder",
            default=True),
    st.Page(chat.page, title="Chat", icon=":material/chat:", url_path="chat"),
    st.Page(knowledge.page, title="Knowledge", icon=":material/library_books:",
            url_path="knowledge"),
    st.Page(models.page, title="Models", icon=":material/memory:", url_path="models"),
    st.Page(runs.page, title="Runs", icon=":material/timeline:", url_path="runs"),
]
navigation = st.navigation(pages)
with st.sidebar:
    client = api()
    health = client.health()
    if health is None:
        st.error(f"The API server at {client.base_url} does not answer. Start it with "
                 "`flowloom up` (or `flowloom serve`).", icon=":material/cloud_off:")
    else:
        st.caption(f"API server: {client.base_url}")
        service = health.get("model_service") or {}
        if service.get("state") == "restarting":
            st.warning(f"The model service stopped (exit code {service.get('last_exit')}) "
                       "and is being restarted; answers wait for it.",
                       icon=":material/restart_alt:")
        elif service.get("state") == "failed":
            st.error(f"The model service keeps stopping and was not restarted: "
                     f"{service.get('last_error')}", icon=":material/error:")
navigation.run()
