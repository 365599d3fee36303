"""A pool of model servers behind one alias (vLLM replicas, say): the gateway's Router
spreads calls over the healthy deployments and cools a failing one down, so after its
allowed failures it gets no more traffic for `cooldown_time`; every call still succeeds
through a healthy one. Two deployments of a local fake OpenAI-compatible server stand for
the servers (one answering, one failing); the fake counts what each received."""

from __future__ import annotations

from tests.backends.test_gateway import make_gateway

POOL = """
model_list:
  - model_name: pool
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test}
    model_info: {id: healthy}
  - model_name: pool
    litellm_params: {model: openai/fake-chat, api_base: $FAIL, api_key: sk-test}
    model_info: {id: broken}
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
  allowed_fails: 1
  cooldown_time: 600
"""


async def test_a_failing_server_is_cooled_down_and_calls_go_to_the_healthy_one(fake_openai):
    gateway = make_gateway(fake_openai, POOL)
    before_ok, before_fail = fake_openai.hits("ok"), fake_openai.hits("fail")
    answered = []
    for _ in range(20):
        reply = await gateway.acompletion("pool", [{"role": "user", "content": "hi"}])
        answered.append(reply.choices[0].message.content)
    assert len(answered) == 20 and all(answered)  # every call succeeded
    ok, failed = fake_openai.hits("ok") - before_ok, fake_openai.hits("fail") - before_fail
    assert ok == 20
    # the broken server got at most its allowed failures (plus one retry racing the
    # cooldown), not its share of 20 calls
    assert 1 <= failed <= 3, failed
    deployments = {r.deployment for r in gateway.recent_calls() if r.model == "pool"}
    assert deployments == {"healthy"}
