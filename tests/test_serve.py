"""The student behind the Anthropic Messages API, over real HTTP, driven by the official `anthropic` SDK.

The protocol is checked on the real (untrained) SmolLM2: a reply must be the greedy continuation of the
prompt that distill.student.chat renders for the request, token for token. The multi-turn tool loop is checked
with a scripted model behind the same server (the untrained base writes no tool calls), so that what
is tested is the server's translation of tool_use / tool_result blocks, not the base model's skill.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import anthropic
import pytest

from distill.student.chat import generation_prompt
from distill.claude.cache import message_sender
from distill.claude.loop import run_tool_loop
from distill.student.predict import generate
from distill.serving.serve import ServerThread, StudentEngine, make_app
from distill.workbench.tools import TOOLS, execute
from tests.test_student import ScriptedModel

QUESTION = "What data source does the SMA Crossover model use?"
FLOAT = {"quantization": "none", "dtype": "float32", "autocast": None}


@pytest.fixture(scope="module")
def engine(base_model_dir) -> StudentEngine:
    return StudentEngine.load(base_model_dir, None, FLOAT, "test-student")


@pytest.fixture(scope="module")
def server(engine: StudentEngine):
    with ServerThread(make_app(engine)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)


def greedy(engine: StudentEngine, conversation: list[dict], max_tokens: int) -> tuple[str, int]:
    """What prediction's reference path generates for this conversation, and the prompt's token count."""
    prompt = generation_prompt(conversation, TOOLS)
    text = generate(engine.model, engine.tokenizer, [prompt], max_tokens, batch_size=1)[0]
    return text, len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_a_reply_is_the_greedy_continuation_of_the_rendered_request(engine, client) -> None:
    reply = client.messages.create(model="student", max_tokens=6, tools=TOOLS, system="ignored: the student's own",
                                   messages=[{"role": "user", "content": QUESTION}])
    text, n_prompt = greedy(engine, [{"role": "user", "content": QUESTION}], 6)
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert reply.stop_reason == "max_tokens"
    assert [b.type for b in reply.content] == ["text"] and reply.content[0].text == text.strip()
    assert reply.usage.input_tokens == n_prompt and reply.usage.output_tokens == 6


def test_tool_use_and_tool_result_blocks_render_as_the_renderers_calls_and_responses(engine, client) -> None:
    args = {"model_id": "sma_crossover"}
    output = execute("get_model_info", args)
    reply = client.messages.create(model="student", max_tokens=5, tools=TOOLS, messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_model_info", "input": args}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": output}]},
    ])
    text, n_prompt = greedy(engine, [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "get_model_info", "arguments": args}]},
        {"role": "tool", "name": "get_model_info", "content": output},
    ], 5)
    assert reply.usage.input_tokens == n_prompt
    assert reply.content[0].text == text.strip()


def post(url: str, body: bytes, path: str = "/v1/messages") -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


GOOD = {"model": "student", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
MALFORMED = {
    "no max_tokens": {k: v for k, v in GOOD.items() if k != "max_tokens"},
    "max_tokens 0": {**GOOD, "max_tokens": 0},
    "no messages": {**GOOD, "messages": []},
    "unknown block type": {**GOOD, "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]},
    "unknown role": {**GOOD, "messages": [{"role": "robot", "content": "hi"}]},
    "unknown field": {**GOOD, "temperature_typo": 1},
    "first message from the assistant": {**GOOD, "messages": [{"role": "assistant", "content": "hi"},
                                                               {"role": "user", "content": "hi"}]},
    "tool_result for no tool_use": {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "{}"}]}]},
    "tool without a schema": {**GOOD, "tools": [{"name": "list_models"}]},
    "image block": {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]},
    "document block": {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]},
    "tool_choice any": {**GOOD, "tool_choice": {"type": "any"}},
    "tool_choice tool": {**GOOD, "tool_choice": {"type": "tool", "name": "list_models"}},
    "tool_choice parallel off": {**GOOD, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    "max_tokens above the context": {**GOOD, "max_tokens": 10**6},
    "streamed max_tokens above the context": {**GOOD, "max_tokens": 10**6, "stream": True},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_400_in_the_api_error_shape(server, body) -> None:
    status, reply = post(server.url, json.dumps(body).encode())
    assert status == 400
    assert reply["type"] == "error" and reply["error"]["type"] == "invalid_request_error"
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]


NAMED = {"image block": "messages.0.content.1: image", "document block": "messages.0.content.0: document",
         "tool_choice any": "tool_choice", "tool_choice parallel off": "tool_choice",
         "max_tokens above the context": "max_tokens: 1000000 >"}


@pytest.mark.parametrize("case", NAMED)
def test_a_request_the_student_cannot_honour_names_the_field(server, case) -> None:
    status, reply = post(server.url, json.dumps(MALFORMED[case]).encode())
    assert status == 400 and reply["error"]["message"].startswith(NAMED[case]), reply


def test_bad_json_and_unknown_paths_get_4xx_in_the_api_error_shape(server) -> None:
    status, reply = post(server.url, b"{not json")
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    status, reply = post(server.url, json.dumps(GOOD).encode(), path="/v1/nothing")
    assert status == 404 and reply == {"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}}


def test_the_sdk_raises_bad_request_with_the_servers_message(client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="student", max_tokens=0, messages=[{"role": "user", "content": "hi"}])


def test_two_concurrent_clients_each_get_their_own_answer(server, client) -> None:
    questions = [QUESTION, "How did the RSI Reversion model do on BOLT from 2019-01-02 to 2023-12-29?"]
    ask = lambda q, c: c.messages.create(model="s", max_tokens=8, messages=[{"role": "user", "content": q}])  # noqa: E731
    alone = [ask(q, client).content[0].text for q in questions]
    together: dict[int, str] = {}

    def worker(i: int) -> None:  # each thread its own client, as two users would have
        own = anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)
        together[i] = ask(questions[i], own).content[0].text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [together.get(i) for i in range(2)] == alone and alone[0] != alone[1]


def call(name: str, arguments: dict) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def test_a_tool_loop_over_the_sdk_runs_the_real_tools_and_ends_in_a_final_answer(tokenizer) -> None:
    args = {"model_id": "sma_crossover"}
    answer = "It uses daily close prices (bundled synthetic OHLCV set)."
    model = ScriptedModel(tokenizer, {QUESTION: [f"Let me look.\n{call('get_model_info', args)}", answer],
                                      "broken": ["<tool_call>{get_model_info}</tool_call>"]})
    with ServerThread(make_app(StudentEngine(model, tokenizer, "scripted"))) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key="test", max_retries=0)
        params = {"model": "student", "system": "teacher prompt", "tools": TOOLS, "max_tokens": 64}
        result = run_tool_loop(message_sender(client), params, QUESTION, max_turns=3)
        broken = client.messages.create(model="s", max_tokens=64, tools=TOOLS,
                                        messages=[{"role": "user", "content": "broken"}])

    output = execute("get_model_info", args)
    assert result.stop == "end_turn" and result.final_answer == answer and result.requests == 2
    assert result.tool_outputs == [output]
    tool_use = result.api_messages[1]["content"]
    assert tool_use[0] == {"type": "text", "text": "Let me look."}
    assert tool_use[1]["type"] == "tool_use" and tool_use[1]["id"].startswith("toolu_") and tool_use[1]["input"] == args
    conversation = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [{"name": "get_model_info", "arguments": args}]},
        {"role": "tool", "name": "get_model_info", "content": output},
    ]
    assert result.messages[1:] == [*conversation, {"role": "assistant", "content": answer}]
    assert model.prompts[1] == generation_prompt(conversation, TOOLS)  # what the student saw on its second turn
    # A turn whose call does not parse comes back as written: the client sees the markup, nothing is run.
    assert broken.stop_reason == "end_turn" and broken.content[0].text == "<tool_call>{get_model_info}</tool_call>"
