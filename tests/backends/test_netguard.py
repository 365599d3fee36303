"""SSRF: a URL a config or a request sets reaches a loopback, private, link-local or other
special address only when FLOWLOOM_ALLOW_HOSTS lists it; a refused model deployment says
so when called; a refused Milvus URI is a 422 naming the address."""

from __future__ import annotations

import httpx
import pytest

from flowloom.backends.gateway import Gateway
from flowloom.backends.gateway.config import parse_gateway_config
from flowloom.backends.gateway.errors import ModelCallError
from flowloom.backends.netguard import ALLOW_ENV, url_problem
from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.backends.test_gateway import make_gateway
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.1.2.3:8000/v1", "private"),
    ("http://192.168.0.10/", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://0.0.0.0:19530", "private"),
    ("http://224.0.0.1/", "multicast"),
])
def test_special_addresses_need_listing(url, kind):
    problem = url_problem(url, allowed=("127.0.0.0/8",))
    assert problem is not None and f"a {kind} address" in problem and ALLOW_ENV in problem


def test_the_allow_list_admits_by_network_or_name(monkeypatch):
    assert url_problem("http://10.1.2.3/", allowed=("10.0.0.0/8",)) is None
    assert url_problem("http://localhost:8000/", allowed=("localhost",)) is None
    assert url_problem("http://8.8.8.8/") is None  # public
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert url_problem("http://127.0.0.1:8080/") is None  # default: loopback only
    assert url_problem("http://10.0.0.5/") is not None
    monkeypatch.setenv(ALLOW_ENV, "10.0.0.0/24")  # replaces the default
    assert url_problem("http://10.0.0.5/") is None
    assert "loopback" in url_problem("http://127.0.0.1/")


LAN = """
model_list:
  - model_name: chat
    litellm_params: {model: openai/fake-chat, api_base: "http://10.255.255.1:9/v1",
                     api_key: sk-test}
  - model_name: ok
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test}
router_settings: {num_retries: 0}
"""


async def test_a_refused_deployment_is_left_out_and_says_why(monkeypatch, fake_openai):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    gateway = make_gateway(fake_openai, LAN)
    (route,) = gateway.routes()["chat"]
    assert not route.active and "10.255.255.1 is a private address" in route.refused
    with pytest.raises(ModelCallError, match="10.255.255.1 is a private address"):
        await gateway.acompletion("chat", [{"role": "user", "content": "hi"}])
    assert (await gateway.acompletion("ok", [{"role": "user", "content": "hi"}])).choices
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1,10.255.255.1")
    listed = Gateway(parse_gateway_config(LAN.replace("$OK", fake_openai.base("ok"))),
                     ensure_service=lambda home: "")
    assert listed.routes()["chat"][0].active


def test_a_milvus_uri_on_the_lan_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    app = create_app(ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok"), data_dir=tmp_path))
    for url in run_server(app):
        refused = httpx.post(f"{url}/kbs", json={"name": "lan", "uri": "http://10.0.0.7:19530"})
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith("uri: 10.0.0.7 is a private address")
        assert "lan" not in {kb["name"] for kb in httpx.get(f"{url}/kbs").json()["kbs"]}
