"""Streaming, token counting and the models list of the student server, as the official SDKs use them.

A streamed reply must accumulate (the SDK's `get_final_message`) to the non-streamed reply for the same
request, with its text arriving token by token; tool calls written under the grammar arrive as `tool_use`
blocks with `input_json_delta`s as each closes. distill.serving.content.TurnStream is also driven directly,
character by character, on turns that the grammar would not allow (a broken call, markup without tools).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import anthropic
import pytest
import torch

from distill.serving.content import TurnStream, content_blocks
from distill.serving.serve import ServerThread, StudentEngine, make_app
from distill.student.constrain import ConstrainConfig
from distill.workbench.tools import TOOLS, execute
from tests.test_predict import tiny_model
from tests.test_serve import FLOAT, QUESTION, call, client, server  # noqa: F401  (fixtures: around this module's `engine`)
from tests.test_student import ScriptedModel

RULES = ConstrainConfig(numbers=True, tool_calls=True, repeats="block")
NODE_DIR = Path(__file__).with_name("node")
WIRE_EVENTS = {"message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop",
               "message_delta", "message_stop"}


def _without_ids(content: list) -> list[dict]:
    blocks = [b if isinstance(b, dict) else b.model_dump(exclude_none=True) for b in content]
    return [{k: v for k, v in b.items() if k not in ("id", "citations", "parsed_output")} for b in blocks]


@pytest.fixture(scope="module")
def engine(base_model_dir) -> StudentEngine:
    return StudentEngine.load(base_model_dir, None, FLOAT, "test-student", RULES)



def _stream(client: anthropic.Anthropic, **request) -> tuple[list, object, list[float]]:
    """The events of a streamed request, its final message, and when each text delta arrived."""
    events, arrivals = [], []
    with client.messages.stream(**request) as stream:
        for event in stream:
            if event.type not in WIRE_EVENTS:  # the SDK's own helper events ("text", "input_json")
                continue
            events.append(event)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                arrivals.append(time.perf_counter())
        final = stream.get_final_message()
    return events, final, arrivals


def test_a_streamed_reply_arrives_token_by_token_and_equals_the_plain_reply(client) -> None:
    request = {"model": "test-student", "max_tokens": 24, "tools": TOOLS,
               "messages": [{"role": "user", "content": QUESTION}]}
    events, final, arrivals = _stream(client, **request)
    plain = client.messages.create(**request)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_stop" in kinds
    assert len(arrivals) > 5 and arrivals[-1] - arrivals[0] > 0  # many deltas over time, not one burst
    assert _without_ids(final.content) == _without_ids(plain.content)
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == \
        (plain.stop_reason, plain.usage.input_tokens, plain.usage.output_tokens)
    assert events[0].message.usage.input_tokens == plain.usage.input_tokens


def test_the_wire_format_is_the_apis_server_sent_events(server) -> None:
    """`event: <type>` then `data: <json of that type>`, a ping after message_start (the SDK hides pings)."""
    body = {"model": "test-student", "max_tokens": 4, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(server.url + "/v1/messages", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in response.read().decode().split("\n\n") if f]
    names = []
    for frame in frames:
        event, data = frame.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[len("data: "):])["type"] == event[len("event: "):]
        names.append(event[len("event: "):])
    assert names[:3] == ["message_start", "ping", "content_block_start"] and names[-1] == "message_stop"


def _calling_model(tokenizer, seed: int) -> torch.nn.Module:
    """A tiny random model pushed towards '<' and digits, so that under the grammar it writes calls."""
    model = tiny_model(tokenizer, seed=seed)
    vocab = tokenizer.get_vocab()
    with torch.no_grad():
        model.lm_head.weight[[i for t, i in vocab.items() if t.startswith("<")]] *= 4
    return model


def test_streamed_tool_calls_equal_the_plain_reply(tokenizer) -> None:
    """Four random models pushed towards calls, under the grammar: each streamed reply equals the plain one,
    and the calls among them arrive as tool_use blocks with input_json_delta events."""
    calls = 0
    for seed in range(4):
        engine = StudentEngine(_calling_model(tokenizer, seed), tokenizer, "tiny", RULES)
        with ServerThread(make_app(engine)) as running:
            client = anthropic.Anthropic(base_url=running.url, api_key="test", max_retries=0)
            request = {"model": "tiny", "max_tokens": 48, "tools": TOOLS,
                       "messages": [{"role": "user", "content": QUESTION}]}
            events, final, _ = _stream(client, **request)
            plain = client.messages.create(**request)
        assert _without_ids(final.content) == _without_ids(plain.content), seed
        assert final.stop_reason == plain.stop_reason
        uses = [b for b in final.content if b.type == "tool_use"]
        deltas = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        assert len(deltas) == len(uses)
        calls += len(uses)
    assert calls >= 2  # the models do write calls: tool_use streaming is exercised


def test_a_scripted_tool_loop_streams_the_same_blocks(tokenizer) -> None:
    """The uncached path (model.generate, the whole turn at once) streams through TurnStream.finish."""
    args = {"model_id": "sma_crossover"}
    reply = "Let me look.\n" + call("get_model_info", args)
    model = ScriptedModel(tokenizer, {QUESTION: [reply, "It uses daily closes."]})
    with ServerThread(make_app(StudentEngine(model, tokenizer, "scripted"))) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key="test", max_retries=0)
        request = {"model": "s", "max_tokens": 64, "tools": TOOLS, "messages": [{"role": "user", "content": QUESTION}]}
        _, final, _ = _stream(client, **request)
        plain = client.messages.create(**request)
        assert [b.type for b in final.content] == ["text", "tool_use"] and final.stop_reason == "tool_use"
        assert _without_ids(final.content) == _without_ids(plain.content) and final.content[1].input == args
        # the tool result goes back and the second turn streams too
        request["messages"] += [{"role": "assistant", "content": final.content},
                                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": final.content[1].id,
                                                              "content": execute("get_model_info", args)}]}]
        _, second, _ = _stream(client, **request)
    assert second.content[0].text == "It uses daily closes." and second.stop_reason == "end_turn"


CALL = call("list_models", {})
TURNS = {
    "text": "  It uses daily close prices.  ",
    "text and a call": "I will look.\n" + CALL,
    "text, a call, text": "First.\n" + CALL + "\nThen this.",
    "two calls": CALL + CALL,
    "a broken call": "Look: <tool_call>{not json</tool_call> there",
    "a less-than sign": "The fee is < 10 bps, see <docs>.",
    "a partial character": "caf\ufffd",
}


@pytest.mark.parametrize("live_calls", [True, False])
@pytest.mark.parametrize("sentences_only", [True, False])
@pytest.mark.parametrize("name", TURNS)
def test_turn_stream_sends_only_what_the_final_reply_keeps(name, live_calls, sentences_only) -> None:
    text = TURNS[name]
    blocks, _ = content_blocks(text, TOOLS, ended=True)
    stream = TurnStream(TOOLS, live_calls, sentences_only)
    events = [e for k in range(1, len(text) + 1) for e in stream.update(text[:k])]
    live = len(events)
    events += stream.finish(blocks)
    assert all(e["type"] != "error" for e in events), events
    rebuilt: list[dict] = []
    for e in events:
        if e["type"] == "content_block_start":
            assert e["index"] == len(rebuilt)
            rebuilt.append(dict(e["content_block"]))
        elif e["type"] == "content_block_delta":
            block, delta = rebuilt[e["index"]], e["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["input"] = json.loads(delta["partial_json"])
    assert _without_ids(rebuilt) == _without_ids(blocks)
    if live_calls and name == "text, a call, text":
        assert live >= 6  # the first text, the whole call and the start of the last text came before the end


def test_a_turn_without_tools_never_shows_markup(tokenizer) -> None:
    model = ScriptedModel(tokenizer, {QUESTION: ["Sure. " + CALL + " Done."]})
    with ServerThread(make_app(StudentEngine(model, tokenizer, "scripted"))) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key="test", max_retries=0)
        reply = client.messages.create(model="s", max_tokens=64, messages=[{"role": "user", "content": QUESTION}])
    assert [b.type for b in reply.content] == ["text"] and "<tool_call>" not in reply.content[0].text
    assert reply.content[0].text == "Sure.  Done."


def test_count_tokens_is_the_prompt_generation_sees(client) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    counted = client.messages.count_tokens(model="test-student", tools=TOOLS, messages=messages)
    reply = client.messages.create(model="test-student", max_tokens=1, tools=TOOLS, messages=messages)
    assert counted.input_tokens == reply.usage.input_tokens > 0
    bare = client.messages.count_tokens(model="test-student", messages=messages)
    assert bare.input_tokens < counted.input_tokens  # the tools are in the rendered system turn


def test_models_list_and_retrieve(client) -> None:
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["test-student"] and listed.data[0].type == "model"
    assert client.models.retrieve("test-student").display_name.startswith("test-student")
    with pytest.raises(anthropic.NotFoundError, match="not found"):
        client.models.retrieve("claude-opus-4")


def test_a_client_that_leaves_mid_stream_frees_the_decoder(server, engine, client) -> None:
    body = {"model": "test-student", "max_tokens": 2000, "stream": True,
            "messages": [{"role": "user", "content": "Write a long essay about markets."}]}
    request = urllib.request.Request(server.url + "/v1/messages", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        for line in response:
            if b'"text_delta"' in line:
                break  # one token arrived: hang up
    left = time.perf_counter()
    while engine._lock.locked() and time.perf_counter() - left < 20:
        time.sleep(0.05)
    assert not engine._lock.locked(), "the decoder kept generating for a client that had gone"
    reply = client.messages.create(model="test-student", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert reply.usage.output_tokens == 3


@pytest.fixture(scope="module")
def typescript_sdk() -> Path:
    """tests/node with the official @anthropic-ai/sdk installed from its lockfile (`npm ci`, ~5 s, once; as
    the SLURM test installs SLURM), or a skip naming what is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (the TypeScript SDK test needs them)")
    if not (NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk").exists():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm ci --prefix {NODE_DIR} failed (no registry?): {done.stderr[-300:]}")
    return NODE_DIR


@pytest.mark.slow
def test_the_typescript_sdk_streams_and_counts(server, client, typescript_sdk) -> None:
    request = {"model": "test-student", "max_tokens": 24, "tools": TOOLS,
               "messages": [{"role": "user", "content": QUESTION}]}
    done = subprocess.run(["node", str(NODE_DIR / "stream.mjs"), server.url], input=json.dumps(request),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    plain = client.messages.create(**request)
    assert result["text_deltas"] > 5 and result["count"] == plain.usage.input_tokens
    assert _without_ids(result["final"]["content"]) == _without_ids(plain.content)
    assert result["models"] == ["test-student"]


def test_a_generation_failure_mid_stream_is_an_error_event_and_the_server_keeps_serving(tokenizer) -> None:
    class Failing(StudentEngine):
        def complete(self, prepared, max_tokens, on_text=None):  # noqa: ANN001, ANN202
            on_text("Partial answer")
            raise RuntimeError("decoder broke")

    model = ScriptedModel(tokenizer, {QUESTION: ["fine"]})
    with ServerThread(make_app(Failing(model, tokenizer, "failing"))) as running:
        body = {"model": "s", "max_tokens": 8, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
        request = urllib.request.Request(running.url + "/v1/messages", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            frames = [f for f in response.read().decode().split("\n\n") if f]
        client = anthropic.Anthropic(base_url=running.url, api_key="test", max_retries=0)
        with pytest.raises(anthropic.APIError, match="decoder broke"), client.messages.stream(**{
                k: v for k, v in body.items() if k != "stream"}) as stream:
            stream.get_final_message()
        assert client.models.list().data[0].id == "failing"  # still serving
    last = json.loads(frames[-1].split("\n")[1][len("data: "):])
    assert last == {"type": "error", "error": {"type": "api_error", "message": "generation failed: decoder broke"}}
    assert any('"text_delta"' in f for f in frames)  # what came before the failure was sent
