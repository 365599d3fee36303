"""Human approval in a real browser: `flowloom up` (no model service: the flow needs no
model), a flow that pauses at `human.approve@1`, driven by Playwright in Debian's headless
Chromium on the Chat page: the request appears when the run pauses, the chat input is
disabled while it waits, and Approve resumes the run. Screenshots go to
`$FLOWLOOM_ARTIFACTS` (default `test-artifacts/`)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.ui.launch import flowloom_up
from tests.ui.test_approval_page import APPROVAL_FLOW
from tests.ui.test_browser import CHROMIUM, _only, _settle, artifacts, page  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(.ci/system-deps installs it)"),
]


@pytest.fixture(scope="module")
def up_bare(tmp_path_factory):
    with flowloom_up(tmp_path_factory.mktemp("approval-up"), "--no-model-service",
                     "--no-demo-kb") as started:
        yield started


def _thread(api: str) -> dict:
    deadline = time.time() + 30
    while True:
        threads = httpx.post(f"{api}/threads/search",
                             json={"metadata": {"graph_id": APPROVAL_FLOW["id"]}}).json()
        if threads or time.time() > deadline:
            assert len(threads) == 1, threads
            return threads[0]
        time.sleep(0.2)


def test_approve_in_the_browser(up_bare, page, artifacts):  # noqa: F811
    httpx.put(f"{up_bare.api}/flows/{APPROVAL_FLOW['id']}", json=APPROVAL_FLOW
              ).raise_for_status()
    page.goto(f"{up_bare.ui}/chat")
    prompt = page.get_by_test_id("stChatInputTextArea")
    prompt.wait_for()
    _settle(page)
    page.locator(".st-key-chat_flow").click()
    page.get_by_role("option", name=APPROVAL_FLOW["id"]).first.click()
    _settle(page)
    prompt.fill("refund order 7")
    prompt.press("Enter")

    # the run pauses: the request shows, the input waits
    approve = page.get_by_role("button", name="Approve")
    approve.wait_for(timeout=60_000)
    _settle(page)
    page.get_by_text("Send a reply to: refund order 7?").wait_for()
    assert _only(page.get_by_role("button", name="Reject")).is_visible()
    assert page.get_by_test_id("stChatInputTextArea").is_disabled()
    assert _thread(up_bare.api)["status"] == "interrupted"
    page.screenshot(path=str(artifacts / "approval-1-waiting.png"), full_page=True)

    comment = _only(page.get_by_label("Comment"))
    comment.fill("looks right")
    comment.press("Enter")
    _settle(page)
    _only(page.get_by_role("button", name="Approve")).click()
    page.get_by_text("Approved: done.").wait_for(timeout=60_000)
    _settle(page)
    page.screenshot(path=str(artifacts / "approval-2-approved.png"), full_page=True)
    assert page.get_by_role("button", name="Approve").count() == 0
    assert not page.get_by_test_id("stChatInputTextArea").is_disabled()
    thread = _thread(up_bare.api)
    assert thread["status"] == "idle"
    assert thread["values"]["note"] == "done" and thread["values"]["why"] == "looks right"
