"""The Claude building blocks against a real local HTTP server: tool loop, cache, retries, key."""

from __future__ import annotations

import json

import pytest

from distill.claude.cache import ResponseCache, cached, message_sender, request_key
from distill.claude.client import KEY_VAR, MissingKeyError, make_client
from distill.claude.loop import run_tool_loop
from distill.claude.pricing import cost_usd
from distill.workbench.tools import TOOLS
from tests.anthropic_server import AnthropicServer, error_reply, text_reply, tool_reply

FAKE_KEY = "sk-ant-test-FAKEKEY-0123456789"
PARAMS = {"model": "claude-test", "system": "house style", "tools": TOOLS, "max_tokens": 256}


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_VAR, FAKE_KEY)
    return FAKE_KEY


def scripted(*replies):
    """A responder that answers with `replies` in order, one per request."""
    queue = list(replies)
    return lambda body: queue.pop(0)


def test_tool_loop_runs_real_tools_and_ends_with_answer(key):
    replies = scripted(
        tool_reply([("get_model_info", {"model_id": "sma_crossover"})], text="Let me look."),
        tool_reply([("run_backtest", {"model_id": "sma_crossover", "ticker": "ACME"}),
                    ("run_backtest", ["not", "an", "object"])]),
        text_reply("It returned 12.3%.", input_tokens=300, output_tokens=9),
    )
    with AnthropicServer(replies) as server:
        result = run_tool_loop(message_sender(make_client(base_url=server.url)), PARAMS, "How did SMA do?", 6)
    sent = server.messages()
    assert result.final_answer == "It returned 12.3%." and result.stop == "end_turn" and result.requests == 3
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool", "assistant", "tool", "tool", "assistant"]
    assert result.messages[2]["tool_calls"] == [{"name": "get_model_info", "arguments": {"model_id": "sma_crossover"}}]
    assert json.loads(result.tool_outputs[0])["name"] == "SMA Crossover"  # the real tool ran
    # The second request carries the real tool result; the malformed input came back as an error result.
    first_result = sent[1]["messages"][-1]["content"][0]
    assert first_result["type"] == "tool_result" and "is_error" not in first_result
    bad = sent[2]["messages"][-1]["content"][1]
    assert bad["is_error"] is True and "must be a JSON object" in bad["content"]
    assert result.usage["input_tokens"] == 500 and result.usage["output_tokens"] == 49
    # The key travels in the auth header only (this SDK sends a Bearer token), never in a body.
    assert all(FAKE_KEY in (r.headers.get("x-api-key", "") + r.headers.get("authorization", "")) for r in server.requests)
    assert all(FAKE_KEY not in json.dumps(r.body) for r in server.requests)


def test_turn_limit_stops_a_model_that_keeps_calling_tools(key):
    call = tool_reply([("list_models", {})])
    with AnthropicServer(lambda body: call) as server:
        result = run_tool_loop(message_sender(make_client(base_url=server.url)), PARAMS, "q", 2)
    assert result.stop == "turn_limit" and result.final_answer == "" and result.requests == 3


@pytest.mark.parametrize("status,kind", [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")])
def test_sdk_retries_transient_errors_then_succeeds(key, status, kind):
    replies = scripted(error_reply(status, kind, retry_after=0.01), text_reply("fine"))
    with AnthropicServer(replies) as server:
        result = run_tool_loop(message_sender(make_client(max_retries=2, base_url=server.url)), PARAMS, "q", 1)
    assert result.final_answer == "fine" and len(server.messages()) == 2


def test_cache_hit_makes_no_request(key, tmp_path):
    with AnthropicServer(lambda body: text_reply("once")) as server:
        stats: dict[str, int] = {}
        send = cached(message_sender(make_client(base_url=server.url)), ResponseCache(tmp_path), stats)
        first = run_tool_loop(send, PARAMS, "q", 1)
        second = run_tool_loop(send, PARAMS, "q", 1)
        other = run_tool_loop(send, {**PARAMS, "max_tokens": 100}, "q", 1)  # any field changes the key
    assert first.final_answer == second.final_answer == other.final_answer == "once"
    assert len(server.messages()) == 2 and stats == {"requests": 2, "hits": 1}
    assert FAKE_KEY not in "".join(p.read_text() for p in tmp_path.rglob("*.json"))


def test_request_key_is_canonical():
    assert request_key({"a": 1, "b": [1, 2]}) == request_key({"b": [1, 2], "a": 1})
    assert request_key({"a": 1}) != request_key({"a": 2})


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    with pytest.raises(MissingKeyError, match=KEY_VAR):
        make_client()


def test_cost_uses_the_price_table():
    pricing = {"models": {"claude-sonnet-4-5": {"input": 3.0, "output": 15.0}},
               "cache_write": 1.25, "cache_read": 0.1, "batch": 0.5}
    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000, "cache_creation_input_tokens": 1_000_000,
             "cache_read_input_tokens": 1_000_000}
    assert cost_usd(usage, pricing, "claude-sonnet-4-5-20250929") == pytest.approx(3 + 1.5 + 3.75 + 0.3)
    assert cost_usd(usage, pricing, "claude-sonnet-4-5", batch=True) == pytest.approx((3 + 1.5 + 3.75 + 0.3) / 2)
    assert cost_usd(usage, pricing, "unknown-model") is None
