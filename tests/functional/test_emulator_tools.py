"""boto3 against the Bedrock emulator for tools, JSON and scripted answers:
calls built from tool schemas, prefill continuations, text after a tool
result, JSON documents for a schema, and ``respond_next`` on every operation.

Prompts are rendered by hand (tests/llama_format.py), as the endpoint's
contract says, so these tests also pin that contract from the emulator's side.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import ClientError

from devstack.generator import count_tokens
from tests.conftest import MODEL
from tests.llama_format import FLIGHT, PERSON, TOOLS, WEATHER, render
from tests.support import EmulatorControl, http


def invoke(runtime: Any, prompt: str, max_gen_len: int = 512) -> dict:
    body = json.dumps({"prompt": prompt, "max_gen_len": max_gen_len, "temperature": 0.5})
    return json.loads(runtime.invoke_model(modelId=MODEL, body=body)["body"].read())


def stream(runtime: Any, prompt: str, max_gen_len: int = 512) -> list[dict]:
    body = json.dumps({"prompt": prompt, "max_gen_len": max_gen_len, "temperature": 0.5})
    response = runtime.invoke_model_with_response_stream(modelId=MODEL, body=body)
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def valid(instance: Any, schema: Any) -> None:
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(instance)


def schema_of(tool: dict) -> dict:
    return tool["function"]["parameters"]


# --- tool calls


@pytest.mark.parametrize("question,expected", [
    ("Book a flight to Lisbon for two passengers", FLIGHT),
    ("What's the weather like in Oslo?", WEATHER),
    ("Tell me a joke", WEATHER),  # nothing in common: the first offered tool
])
def test_a_call_to_the_best_matching_tool_with_schema_valid_arguments(
        runtime: Any, question: str, expected: dict) -> None:
    answer = invoke(runtime, render([("user", question)], tools=TOOLS, auto=True))
    call = json.loads(answer["generation"])
    assert set(call) == {"name", "parameters"}
    assert call["name"] == expected["function"]["name"]
    valid(call["parameters"], schema_of(expected))
    assert answer["stop_reason"] == "stop"
    assert answer["generation_token_count"] == count_tokens(answer["generation"])
    # Llama's own output form: json.dumps of the call
    assert answer["generation"] == json.dumps(call, ensure_ascii=False)


def test_calls_are_deterministic_and_seeded(runtime: Any, emulator: EmulatorControl) -> None:
    prompt = render([("user", "Book a flight to Lisbon")], tools=TOOLS)
    first = invoke(runtime, prompt)["generation"]
    assert invoke(runtime, prompt)["generation"] == first
    seen = {first}
    for seed in range(1, 6):
        emulator.configure(seed=seed)
        call = json.loads(invoke(runtime, prompt)["generation"])
        valid(call["parameters"], schema_of(FLIGHT))
        seen.add(json.dumps(call))
    assert len(seen) > 1  # the seed changes the arguments


def test_a_streamed_call_joins_to_the_invoked_one(runtime: Any) -> None:
    prompt = render([("user", "Book a flight to Lisbon")], tools=TOOLS)
    chunks = stream(runtime, prompt)
    whole = invoke(runtime, prompt)
    assert len(chunks) > 3
    assert "".join(c["generation"] for c in chunks) == whole["generation"]
    assert chunks[-1]["generation_token_count"] == whole["generation_token_count"]
    assert chunks[-1]["stop_reason"] == "stop"


@pytest.mark.parametrize("question", ["Book a flight to Lisbon", "Weather in Oslo?"])
def test_a_named_tool_prefill_is_continued(runtime: Any, question: str) -> None:
    prefill = '{"name": "get_weather", "parameters": '
    answer = invoke(runtime, render([("user", question)], tools=TOOLS, prefill=prefill))
    assert not answer["generation"].startswith("{\"name\"")  # only the continuation
    call = json.loads(prefill + answer["generation"])
    assert call["name"] == "get_weather"
    valid(call["parameters"], schema_of(WEATHER))
    assert answer["generation_token_count"] == count_tokens(answer["generation"])


def test_a_required_call_prefill_is_continued(runtime: Any) -> None:
    prefill = '{"name": "'
    answer = invoke(runtime, render([("user", "Book a flight to Lisbon")], tools=TOOLS,
                                    prefill=prefill))
    call = json.loads(prefill + answer["generation"])
    assert call["name"] == "book_flight"
    valid(call["parameters"], schema_of(FLIGHT))


def test_a_prefill_no_call_starts_with_is_not_stripped(runtime: Any) -> None:
    prefill = "Sure! "
    answer = invoke(runtime, render([("user", "Weather in Oslo?")], tools=TOOLS, prefill=prefill))
    call = json.loads(answer["generation"])  # the whole call, nothing taken off
    assert call["name"] == "get_weather"


def test_a_call_cut_by_max_gen_len(runtime: Any) -> None:
    prompt = render([("user", "Book a flight to Lisbon")], tools=TOOLS)
    whole = invoke(runtime, prompt)["generation"]
    cut = invoke(runtime, prompt, max_gen_len=5)
    assert cut["stop_reason"] == "length" and cut["generation_token_count"] == 5
    assert cut["generation"] == whole[:20]
    chunks = stream(runtime, prompt, max_gen_len=5)
    assert "".join(c["generation"] for c in chunks) == whole[:20]
    assert chunks[-1]["stop_reason"] == "length"


# --- after a tool result


def test_text_after_a_tool_result_quotes_it(runtime: Any) -> None:
    call = json.dumps({"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}})
    result = '{"temp": 21, "sky": "clear"}'
    prompt = render([("user", "Weather in Oslo?"), ("assistant", call), ("ipython", result)],
                    tools=TOOLS)
    answer = invoke(runtime, prompt)
    text = answer["generation"]
    assert result in text and text.startswith("Based on the tool result")
    with pytest.raises(ValueError):
        json.loads(text)  # text, not another call
    assert answer["generation_token_count"] == count_tokens(text)
    assert "".join(c["generation"] for c in stream(runtime, prompt)) == text


def test_a_long_tool_result_is_quoted_up_to_200_characters(runtime: Any) -> None:
    result = json.dumps({"rows": [{"id": i, "name": f"row {i}"} for i in range(40)]})
    prompt = render([("user", "List rows"), ("assistant", '{"name": "get_weather", "parameters": {}}'),
                     ("ipython", result)], tools=TOOLS)
    text = invoke(runtime, prompt)["generation"]
    assert result[:200] in text and result[:201] not in text


def test_several_tool_results_are_all_quoted(runtime: Any) -> None:
    prompt = render([("user", "Weather in Oslo and Paris?"), ("assistant", "calls"),
                     ("ipython", '{"temp": 3}'), ("ipython", '{"temp": 17}')], tools=TOOLS)
    text = invoke(runtime, prompt)["generation"]
    assert '{"temp": 3}' in text and '{"temp": 17}' in text


# --- JSON


@pytest.mark.parametrize("prefill", ["", "{"])
def test_a_document_for_a_schema(runtime: Any, prefill: str) -> None:
    prompt = render([("user", "Describe Ada")], system="Extract the person.", schema=PERSON,
                    prefill=prefill)
    answer = invoke(runtime, prompt)
    document = json.loads(prefill + answer["generation"])
    valid(document, PERSON)
    assert answer["generation_token_count"] == count_tokens(answer["generation"])


def test_a_document_for_a_non_object_schema(runtime: Any) -> None:
    schema = {"type": "array", "items": {"type": "integer", "multipleOf": 5}, "minItems": 2}
    answer = invoke(runtime, render([("user", "Numbers")], schema=schema))
    valid(json.loads(answer["generation"]), schema)


@pytest.mark.parametrize("prefill", ["", "{"])
def test_json_object_without_a_schema(runtime: Any, prefill: str) -> None:
    answer = invoke(runtime, render([("user", "Hi")], json_object=True, prefill=prefill))
    document = json.loads(prefill + answer["generation"])
    assert isinstance(document, dict) and document["answer"]


def test_json_object_after_a_tool_result_carries_the_quote(runtime: Any) -> None:
    prompt = render([("user", "Weather?"), ("assistant", "call"), ("ipython", '{"temp": 4}')],
                    tools=TOOLS, json_object=True)
    assert '{"temp": 4}' in json.loads(invoke(runtime, prompt)["generation"])["answer"]


def test_tools_and_a_schema_call_first_then_answer_the_document(runtime: Any) -> None:
    first = render([("user", "Weather in Oslo?")], tools=TOOLS, schema=PERSON)
    call = json.loads(invoke(runtime, first)["generation"])
    assert call["name"] == "get_weather"
    after = render([("user", "Weather in Oslo?"), ("assistant", json.dumps(call)),
                    ("ipython", '{"temp": 4}')], tools=TOOLS, schema=PERSON)
    valid(json.loads(invoke(runtime, after)["generation"]), PERSON)


def test_tool_prompts_through_converse(runtime: Any) -> None:
    # Converse templates the messages itself; the offered tools are still read.
    prompt = render([("user", "Weather in Oslo?")], tools=[WEATHER])
    user_text = prompt.split("user<|end_header_id|>\n\n", 1)[1].split("<|eot_id|>")[0]
    answer = runtime.converse(modelId=MODEL, messages=[
        {"role": "user", "content": [{"text": user_text}]}])
    call = json.loads(answer["output"]["message"]["content"][0]["text"])
    assert call["name"] == "get_weather"
    valid(call["parameters"], schema_of(WEATHER))


@pytest.mark.parametrize("schema", [
    {"$ref": "#/$defs/missing"}, {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]},
    {"type": "integer", "minimum": 5, "maximum": 1}, {"type": "wat", "items": 7}, [1, 2], "nope",
    {"anyOf": []}, {"type": "array", "minItems": 10 ** 9},
])
def test_weird_schemas_never_break_the_emulator(runtime: Any, schema: Any) -> None:
    for prompt in (render([("user", "x")], schema=schema),
                   render([("user", "x")], tools=[{"type": "function", "function": {
                       "name": "f", "description": "", "parameters": schema}}])):
        answer = invoke(runtime, prompt)
        if answer["stop_reason"] == "stop":
            json.loads(answer["generation"])  # still one JSON value
        else:  # a billion items: cut at max_gen_len, as a model would be
            assert answer["stop_reason"] == "length" and answer["generation_token_count"] == 512


# --- scripted answers


def _converse(runtime: Any, max_tokens: int = 200, user: str = "Hi") -> tuple[str, str, dict]:
    out = runtime.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": user}]}],
                           inferenceConfig={"maxTokens": max_tokens})
    return out["output"]["message"]["content"][0]["text"], out["stopReason"], out["usage"]


def _converse_stream(runtime: Any, max_tokens: int = 200) -> tuple[list[str], str, dict]:
    events = list(runtime.converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        inferenceConfig={"maxTokens": max_tokens})["stream"])
    pieces = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    stop = next(e["messageStop"]["stopReason"] for e in events if "messageStop" in e)
    return pieces, stop, events[-1]["metadata"]["usage"]


SCRIPT = ('<|python_tag|>{"name": "get_weather", "arguments": {"city": "Oslo"}}; '
          '{"name": "book_flight", "parameters": {"destination": "Paris"}}')


def test_respond_next_on_invoke_model(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next(SCRIPT)
    answer = invoke(runtime, render([("user", "Hi")]))
    assert answer["generation"] == SCRIPT and answer["stop_reason"] == "stop"
    assert answer["generation_token_count"] == count_tokens(SCRIPT)


def test_respond_next_on_invoke_model_with_response_stream(
        runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next(SCRIPT)
    chunks = stream(runtime, render([("user", "Hi")]))
    assert len(chunks) > 2  # several chunks, split like generated text
    assert "".join(c["generation"] for c in chunks) == SCRIPT
    assert chunks[-1]["stop_reason"] == "stop"
    assert chunks[-1]["generation_token_count"] == count_tokens(SCRIPT)
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == count_tokens(SCRIPT)


def test_respond_next_on_converse(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next(SCRIPT)
    text, stop, usage = _converse(runtime)
    assert text == SCRIPT and stop == "end_turn" and usage["outputTokens"] == count_tokens(SCRIPT)


def test_respond_next_on_converse_stream(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next(SCRIPT)
    pieces, stop, usage = _converse_stream(runtime)
    assert len(pieces) > 2 and "".join(pieces) == SCRIPT
    assert stop == "end_turn" and usage["outputTokens"] == count_tokens(SCRIPT)


def test_respond_next_runs_in_order_then_generation_resumes(
        runtime: Any, emulator: EmulatorControl) -> None:
    prompt = render([("user", "Hi")])
    generated = invoke(runtime, prompt)["generation"]
    assert emulator.respond_next("one", "two words", "")["respond_next"] == ["one", "two words", ""]
    assert invoke(runtime, prompt)["generation"] == "one"
    assert "".join(c["generation"] for c in stream(runtime, prompt)) == "two words"
    assert emulator.configure()["respond_next"] == [""]  # GET shows what's left
    status, _, body = http("GET", emulator.base_url + "/_emulator/config")
    assert status == 200 and json.loads(body)["respond_next"] == [""]
    empty = invoke(runtime, prompt)
    assert empty["generation"] == "" and empty["generation_token_count"] == 0
    assert invoke(runtime, prompt)["generation"] == generated


def test_a_matched_script_goes_only_to_a_prompt_that_holds_its_match(
        runtime: Any, emulator: EmulatorControl) -> None:
    script = [{"match": "Oslo", "text": "scripted for Oslo"}, "for anyone"]
    assert emulator.configure(respond_next=script)["respond_next"] == script
    # An unrelated call passes the matched entry by and takes the plain one.
    assert invoke(runtime, render([("user", "Hi")]))["generation"] == "for anyone"
    generated = invoke(runtime, render([("user", "Hi")]))["generation"]
    assert generated != "scripted for Oslo"
    assert emulator.configure()["respond_next"] == [script[0]]
    text, _, _ = _converse(runtime, user="Weather in Oslo?")
    assert text == "scripted for Oslo"
    assert emulator.configure()["respond_next"] == []


@pytest.mark.parametrize("entry", [{"text": "x"}, {"match": "x", "text": 1},
                                   {"match": "x", "text": "y", "extra": 1}, 5])
def test_a_script_entry_is_a_string_or_text_and_match(emulator: EmulatorControl,
                                                      entry: Any) -> None:
    status, _, body = http("POST", emulator.base_url + "/_emulator/config",
                           {"respond_next": [entry]})
    assert status == 400 and b"respond_next" in body


def test_respond_next_is_cut_by_max_tokens(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next(SCRIPT, SCRIPT, SCRIPT, SCRIPT)
    cut = invoke(runtime, render([("user", "Hi")]), max_gen_len=4)
    assert cut["generation"] == SCRIPT[:16] and cut["stop_reason"] == "length"
    assert cut["generation_token_count"] == 4
    chunks = stream(runtime, render([("user", "Hi")]), max_gen_len=4)
    assert "".join(c["generation"] for c in chunks) == SCRIPT[:16]
    assert chunks[-1]["stop_reason"] == "length"
    text, stop, usage = _converse(runtime, max_tokens=4)
    assert text == SCRIPT[:16] and stop == "max_tokens" and usage["outputTokens"] == 4
    pieces, stop, _ = _converse_stream(runtime, max_tokens=4)
    assert "".join(pieces) == SCRIPT[:16] and stop == "max_tokens"


def test_faults_come_first_and_keep_the_script(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.configure(fail_next=["ThrottlingException"], respond_next=["scripted"])
    with pytest.raises(ClientError):
        invoke(runtime, render([("user", "Hi")]))
    assert emulator.configure()["respond_next"] == ["scripted"]
    assert invoke(runtime, render([("user", "Hi")]))["generation"] == "scripted"


def test_a_stream_fault_keeps_the_script(runtime: Any, emulator: EmulatorControl) -> None:
    from botocore.exceptions import EventStreamError
    emulator.configure(fail_next=["ModelStreamErrorException"], fail_in_stream=True,
                       respond_next=["scripted answer"])
    with pytest.raises(EventStreamError):
        stream(runtime, render([("user", "Hi")]))
    assert invoke(runtime, render([("user", "Hi")]))["generation"] == "scripted answer"


def test_respond_next_is_taken_once_each_across_threads(runtime: Any,
                                                        emulator: EmulatorControl) -> None:
    texts = [f"answer number {i}" for i in range(12)]
    emulator.respond_next(*texts)
    got: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        text = invoke(runtime, render([("user", "Hi")]))["generation"]
        with lock:
            got.append(text)
    threads = [threading.Thread(target=call) for _ in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == sorted(texts)
    assert emulator.configure()["respond_next"] == []


def test_reset_clears_the_script(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.respond_next("a", "b")
    emulator.reset()
    assert emulator.configure()["respond_next"] == []
    assert invoke(runtime, render([("user", "Hi")]))["generation"] not in ("a", "b")


@pytest.mark.parametrize("bad", [{"respond_next": "text"}, {"respond_next": [1]},
                                 {"respond_next": ["ok", None]}, {"respond_next": {"a": "b"}},
                                 {"respond_next": [["nested"]]}])
def test_bad_respond_next_is_a_400_that_changes_nothing(emulator: EmulatorControl, bad: dict) -> None:
    emulator.respond_next("kept")
    status, _, body = http("POST", emulator.base_url + "/_emulator/config", bad)
    assert status == 400 and "respond_next" in json.loads(body)["message"]
    assert emulator.configure()["respond_next"] == ["kept"]
