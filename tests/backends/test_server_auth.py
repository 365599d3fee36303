"""API keys, roles, rate limits and budgets, against real servers on 127.0.0.1 driven by
langgraph-sdk and httpx; keys made through the same KeyStore the CLI uses, or the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import AuthenticationError, PermissionDeniedError

from flowloom.backends.gateway import GatewayModels
from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server import auth as auth_module
from flowloom.backends.server._limits import RateLimiter, SpendMeter, burst_for
from flowloom.backends.server.auth import auth_required, required_role, runs_flow
from flowloom.backends.server.db import open_database
from flowloom.backends.server.keys import ApiKey, KeyStore
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
FLOW = json.dumps({**json.loads((examples_dir() / "chat.json").read_text()), "id": "mine"})


@pytest.fixture
def fast_cache(monkeypatch):
    monkeypatch.setattr(auth_module, "CACHE_S", 0.1)


async def make_key(database: str, role: str, **kwargs) -> tuple[ApiKey, str]:
    async with open_database(database) as db:
        store = KeyStore(db)
        await store.setup()
        return await store.create(role, **kwargs)


async def keys_in(database: str) -> list[ApiKey]:
    async with open_database(database) as db:
        return await KeyStore(db).list()


def scripted_app(tmp_path: Path, host: str = "127.0.0.1"):
    settings = ServerSettings(host=host, database=f"sqlite:///{tmp_path}/fl.sqlite",
                              home=tmp_path)
    return create_app(settings, ctx=BuildContext(models=ScriptedModels(lambda m: "hello")))


# -- the decisions -------------------------------------------------------------------------


def test_auth_is_required_off_loopback_even_without_keys():
    for host in ("0.0.0.0", "::", "", "192.168.1.5", "example.com"):
        assert auth_required(host, 0), host
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert not auth_required(host, 0), host
        assert auth_required(host, 1), host


def test_roles_and_metered_paths():
    assert required_role("GET", "/ok") is None and required_role("GET", "/docs") is None
    assert required_role("PUT", "/flows/x") == "admin"
    assert required_role("DELETE", "/flows/x") == "admin"
    assert required_role("PUT", "/flows/validate") == "admin"  # saves a flow named so
    assert required_role("POST", "/flows/validate") == "user"
    assert required_role("GET", "/flows/x") == "user"
    assert required_role("POST", "/threads/t/runs/wait") == "user"
    assert runs_flow("POST", "/threads/t/runs/stream") and runs_flow("POST", "/runs/wait")
    assert runs_flow("POST", "/v1/chat/completions")
    assert not runs_flow("GET", "/threads/t/runs") and not runs_flow("POST", "/threads")


def test_token_bucket_burst_and_refill():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert burst_for(6) == 1 and burst_for(60) == 10 and burst_for(1) == 1
    assert [limiter.wait_s("k", 60) for _ in range(10)] == [0.0] * 10
    assert limiter.wait_s("k", 60) == pytest.approx(1.0)
    now[0] = 1.0
    assert limiter.wait_s("k", 60) == 0.0


def test_spend_meter_merges_a_keys_overlapping_work():
    spent = [0.0]
    meter = SpendMeter(lambda key: spent[0])
    meter.enter("k")
    meter.enter("k")  # e.g. a /runs/wait request and its run
    spent[0] = 0.25
    assert meter.pending("k") == 0.25
    assert meter.leave("k") == 0.0
    assert meter.leave("k") == 0.25
    assert meter.leave("k") == 0.0 and meter.pending("k") == 0.0


# -- real servers --------------------------------------------------------------------------


async def test_keys_turn_auth_on_and_roles_are_enforced(tmp_path, fast_cache):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    for url in run_server(scripted_app(tmp_path)):
        open_client = get_client(url=url, api_key=None)
        assert (await open_client.runs.wait(None, "chat", input=CHAT))["messages"]
        assert httpx.get(f"{url}/flows").status_code == 200  # no key yet: open

        admin, admin_key = await make_key(database, "admin", name="ops")
        user, user_key = await make_key(database, "user")
        time.sleep(0.2)  # past the server's key cache
        refused = httpx.get(f"{url}/flows")
        assert refused.status_code == 401 and "API key is required" in refused.json()["detail"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        with pytest.raises(AuthenticationError):
            await open_client.threads.create()
        for path in ("/ok", "/info", "/openapi.json", "/docs"):
            assert httpx.get(f"{url}{path}").status_code == 200, path
        bad = httpx.get(f"{url}/flows", headers={"x-api-key": user_key[:-2] + "xx"})
        assert bad.status_code == 401 and bad.json() == {"detail": "invalid API key"}

        client = get_client(url=url, api_key=user_key)
        thread = await client.threads.create()
        done = await client.runs.wait(thread["thread_id"], "chat", input=CHAT)
        assert done["messages"][-1]["content"] == "hello"
        bearer = httpx.get(f"{url}/flows", headers={"Authorization": f"Bearer {user_key}"})
        assert bearer.status_code == 200

        put = httpx.put(f"{url}/flows/mine", content=FLOW, headers={"x-api-key": user_key})
        assert put.status_code == 403
        assert put.json()["needed_role"] == "admin" and "role user" in put.json()["detail"]
        with pytest.raises(PermissionDeniedError):
            await client.http.put("/flows/mine", json={})
        ok = httpx.put(f"{url}/flows/mine", content=FLOW, headers={"x-api-key": admin_key})
        assert ok.status_code == 200 and ok.json()["id"] == "mine"
        checked = httpx.post(f"{url}/flows/validate", content=FLOW,
                             headers={"x-api-key": user_key})
        assert checked.status_code == 200 and checked.json()["ok"]
        gone = httpx.delete(f"{url}/flows/mine", headers={"x-api-key": admin_key})
        assert gone.status_code == 204

        async with open_database(database) as db:
            await KeyStore(db).revoke(user.key_id)
        time.sleep(0.2)
        revoked = httpx.get(f"{url}/flows", headers={"x-api-key": user_key})
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


async def test_non_loopback_settings_refuse_everything_without_keys(tmp_path):
    # Configured as if bound to 0.0.0.0, served on 127.0.0.1 for the test.
    for url in run_server(scripted_app(tmp_path, host="0.0.0.0")):
        refused = httpx.get(f"{url}/assistants/search", params={})
        assert refused.status_code == 401 and "none exists yet" in refused.json()["detail"]
        assert httpx.get(f"{url}/ok").status_code == 200


async def test_rate_limit_answers_429_with_retry_after(tmp_path):
    _, key = await make_key(f"sqlite:///{tmp_path}/fl.sqlite", "user", rpm=6)  # burst 1
    for url in run_server(scripted_app(tmp_path)):
        headers = {"x-api-key": key}
        assert httpx.get(f"{url}/flows", headers=headers).status_code == 200
        limited = httpx.get(f"{url}/flows", headers=headers)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert "rate limit of 6 requests per minute" in limited.json()["detail"]
        assert httpx.get(f"{url}/ok").status_code == 200  # open paths are not counted


PRICED = """
model_list:
  - model_name: local
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
router_settings: {num_retries: 0}
"""


async def test_budget_is_charged_with_the_gateway_cost_and_then_refuses(tmp_path, fake_openai):
    database = f"sqlite:///{tmp_path}/fl.sqlite"
    key_row, key = await make_key(database, "user", budget_usd=0.001)
    gateway = make_gateway(fake_openai, PRICED)
    settings = ServerSettings(database=database, home=tmp_path)
    for url in run_server(create_app(settings, ctx=BuildContext(models=GatewayModels(gateway)))):
        client = get_client(url=url, api_key=key)
        await client.runs.wait(None, "chat", input=CHAT)  # under budget when it starts
        cost = gateway.usage_summary().total.cost
        assert cost > 0.001
        refused = httpx.post(f"{url}/runs/wait", headers={"x-api-key": key},
                             json={"assistant_id": "chat", "input": CHAT})
        assert refused.status_code == 402 and "model budget" in refused.json()["detail"]
        assert httpx.get(f"{url}/flows", headers={"x-api-key": key}).status_code == 200
    (row,) = await keys_in(database)
    assert row.key_id == key_row.key_id and row.spent_usd == pytest.approx(cost)


def test_cli_keys_create_list_revoke_and_the_server_honours_them(tmp_path):
    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path)}

    def flowloom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "keys", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    made = flowloom("create", "--role", "admin", "--name", "ops", "--rpm", "100")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("fl_") and len(key) > 40
    key_id = key.split("_")[1]
    assert key not in (tmp_path / "server.sqlite").read_bytes().decode("latin-1")
    listed = flowloom("list")
    assert key_id in listed.stdout and "admin" in listed.stdout and key not in listed.stdout
    assert flowloom("create", "--role", "root").returncode == 2

    for url in run_server(create_app(ServerSettings(home=tmp_path), ctx=BuildContext(
            models=ScriptedModels(lambda m: "hi")))):
        assert httpx.get(f"{url}/flows").status_code == 401
        assert httpx.get(f"{url}/flows", headers={"x-api-key": key}).status_code == 200

    revoked = flowloom("revoke", key_id)
    assert revoked.returncode == 0 and key_id in revoked.stdout
    assert "revoked" in flowloom("list").stdout
    missing = flowloom("revoke", "nope")
    assert missing.returncode == 2 and "no API key with id 'nope'" in missing.stderr
