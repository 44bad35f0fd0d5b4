"""boto3 against the Bedrock emulator over loopback: every operation, every
error in and out of streams, faults, the concurrency throttle, the control API."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

from devstack.bedrock_wire import ERROR_STATUS, STREAM_EXCEPTIONS
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL
from tests.support import EmulatorControl, http

BODY = {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 200, "temperature": 0.5, "top_p": 0.9}
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 200}}


def invoke(runtime: Any, body: dict | str = BODY, model: str = MODEL) -> dict:
    raw = body if isinstance(body, str) else json.dumps(body)
    return json.loads(runtime.invoke_model(modelId=model, body=raw)["body"].read())


def stream_chunks(runtime: Any, body: dict = BODY, model: str = MODEL) -> list[dict]:
    response = runtime.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


@pytest.mark.parametrize("model", [MODEL, "meta.llama3-1-8b-instruct-v1:0",
                                   "us.meta.llama3-3-70b-instruct-v1:0"])
def test_invoke_model(runtime: Any, emulator: EmulatorControl, model: str) -> None:
    answer = invoke(runtime, model=model)
    assert set(answer) == {"generation", "prompt_token_count", "generation_token_count",
                           "stop_reason"}
    assert answer["stop_reason"] == "stop" and answer["generation"]
    # The prompt as Bedrock counts it, with Meta's tokenizer (special tokens one each).
    assert answer["prompt_token_count"] == count_prompt_tokens(BODY["prompt"])
    assert answer["generation_token_count"] == -(-len(answer["generation"]) // 4)
    assert emulator.requests() == [{"operation": "InvokeModel", "modelId": model, "body": BODY,
                                   "region": "us-east-1"}]


def test_invoke_model_is_deterministic_and_honours_max_gen_len(runtime: Any) -> None:
    assert invoke(runtime) == invoke(runtime)
    cut = invoke(runtime, {**BODY, "max_gen_len": 3})
    assert cut["stop_reason"] == "length" and cut["generation_token_count"] == 3


def test_stream_joins_to_the_invoke_text(runtime: Any) -> None:
    chunks = stream_chunks(runtime)
    whole = invoke(runtime)
    assert "".join(c["generation"] for c in chunks) == whole["generation"]
    assert chunks[0]["prompt_token_count"] == whole["prompt_token_count"]
    assert all(c["stop_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["stop_reason"] == "stop"
    counts = [c["generation_token_count"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == whole["generation_token_count"]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == whole["prompt_token_count"]
    assert metrics["outputTokenCount"] == whole["generation_token_count"]
    assert {"invocationLatency", "firstByteLatency"} <= set(metrics)


def test_converse_and_converse_stream(runtime: Any) -> None:
    answer = runtime.converse(modelId=MODEL, **CONVERSE)
    text = answer["output"]["message"]["content"][0]["text"]
    assert answer["output"]["message"]["role"] == "assistant"
    assert answer["stopReason"] == "end_turn"
    usage = answer["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    events = list(runtime.converse_stream(modelId=MODEL, **CONVERSE)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                       if "contentBlockDelta" in e)
    assert streamed == text
    assert events[-1]["metadata"]["usage"] == usage


def test_converse_uses_the_llama_template(runtime: Any, emulator: EmulatorControl) -> None:
    # Converse templates the conversation itself: same text as InvokeModel
    # with the same prompt and parameters.
    conv = runtime.converse(modelId=MODEL, **CONVERSE,)
    assert conv["output"]["message"]["content"][0]["text"] == invoke(runtime)["generation"]


def test_converse_stop_sequences_and_max_tokens(runtime: Any) -> None:
    text = runtime.converse(modelId=MODEL, **CONVERSE)["output"]["message"]["content"][0]["text"]
    word = text.split()[3]
    stopped = runtime.converse(modelId=MODEL, messages=CONVERSE["messages"],
                               inferenceConfig={"maxTokens": 200, "stopSequences": [word]})
    assert stopped["stopReason"] == "stop_sequence"
    assert stopped["output"]["message"]["content"][0]["text"] == text[:text.index(word)]
    short = runtime.converse(modelId=MODEL, messages=CONVERSE["messages"],
                             inferenceConfig={"maxTokens": 2})
    assert short["stopReason"] == "max_tokens" and short["usage"]["outputTokens"] == 2


@pytest.mark.parametrize("model,body,code,needle", [
    ("gpt-4", BODY, "ValidationException", "model identifier is invalid"),
    ("meta.llama2-13b-chat-v1", BODY, "ResourceNotFoundException", "end of its life"),
    (MODEL, "not json", "ValidationException", "Malformed input request"),
    (MODEL, {"max_gen_len": 5}, "ValidationException", "required key [prompt]"),
    (MODEL, {**BODY, "stop": ["x"]}, "ValidationException", "extraneous key [stop]"),
    (MODEL, {**BODY, "temperature": 1.5}, "ValidationException", "temperature"),
    (MODEL, {**BODY, "max_gen_len": 0}, "ValidationException", "max_gen_len"),
    (MODEL, {**BODY, "max_gen_len": 2049}, "ValidationException", "max_gen_len"),
    (MODEL, {**BODY, "prompt": 7}, "ValidationException", "prompt"),
    (MODEL, [1, 2], "ValidationException", "JSONObject"),
    (MODEL, {**BODY, "prompt": " x" * 128_001}, "ValidationException",  # 128,001 tokens
     "maximum context length"),
])
def test_bad_requests_are_answered_as_bedrock_does(runtime: Any, model: str, body: Any,
                                                   code: str, needle: str) -> None:
    with pytest.raises(ClientError) as caught:
        invoke(runtime, body if isinstance(body, (dict, str)) else json.dumps(body), model)
    error = caught.value.response["Error"]
    assert error["Code"] == code and needle in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == ERROR_STATUS[code]


@pytest.mark.parametrize("name", sorted(ERROR_STATUS))
def test_each_error_as_an_http_error(runtime: Any, emulator: EmulatorControl, name: str) -> None:
    emulator.configure(fail_next=[name])
    with pytest.raises(ClientError) as caught:
        invoke(runtime)
    assert caught.value.response["Error"]["Code"] == name
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == ERROR_STATUS[name]
    # typed: boto3's own exception class for the code
    assert type(caught.value).__name__ == name
    assert emulator.stats()["errors"] == {name: 1}
    assert invoke(runtime)["generation"]  # only the next call failed


@pytest.mark.parametrize("name", sorted(ERROR_STATUS))
def test_each_error_before_a_stream(runtime: Any, emulator: EmulatorControl, name: str) -> None:
    emulator.configure(fail_next=[name])
    with pytest.raises(ClientError) as caught:
        stream_chunks(runtime)
    assert caught.value.response["Error"]["Code"] == name


@pytest.mark.parametrize("name", sorted(STREAM_EXCEPTIONS["InvokeModelWithResponseStream"]))
def test_each_error_inside_a_stream(runtime: Any, emulator: EmulatorControl, name: str) -> None:
    emulator.configure(fail_next=[name], fail_in_stream=True)
    response = runtime.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(BODY))
    received = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["body"]:
            received.append(event)
    assert len(received) == 2  # the first chunks arrived before the error
    assert caught.value.response["Error"]["Code"] == name[0].lower() + name[1:]


@pytest.mark.parametrize("name", sorted(STREAM_EXCEPTIONS["ConverseStream"]))
def test_each_error_inside_a_converse_stream(runtime: Any, emulator: EmulatorControl,
                                             name: str) -> None:
    emulator.configure(fail_next=[name], fail_in_stream=True)
    with pytest.raises(EventStreamError) as caught:
        list(runtime.converse_stream(modelId=MODEL, **CONVERSE)["stream"])
    assert caught.value.response["Error"]["Code"] == name[0].lower() + name[1:]


def test_fail_next_runs_in_order(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.configure(fail_next=["ModelTimeoutException", "ModelErrorException"])
    codes = []
    for _ in range(3):
        try:
            invoke(runtime)
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes == ["ModelTimeoutException", "ModelErrorException", "ok"]


def test_fault_rate_is_seeded_and_roughly_right(runtime: Any, emulator: EmulatorControl) -> None:
    def run() -> list[bool]:
        emulator.reset()
        emulator.configure(fault_rate={"ThrottlingException": 0.3}, seed=42)
        outcome = []
        for _ in range(200):
            try:
                invoke(runtime)
                outcome.append(True)
            except ClientError:
                outcome.append(False)
        return outcome
    first = run()
    assert run() == first  # same seed, same faults
    assert 40 <= first.count(False) <= 80
    assert emulator.stats()["errors"] == {"ThrottlingException": first.count(False)}


def test_max_concurrency_throttles_excess_calls(runtime: Any, emulator: EmulatorControl) -> None:
    emulator.configure(latency_ms=300, max_concurrency=3)
    results: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            invoke(runtime)
            outcome = "ok"
        except ClientError as error:
            outcome = error.response["Error"]["Code"]
        with lock:
            results.append(outcome)
    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = emulator.stats()
    assert results.count("ok") >= 3
    assert results.count("ThrottlingException") == stats["throttled"] > 0
    assert stats["max_in_flight"] <= 3 and stats["in_flight"] == 0
    assert stats["invocations"] == 10


def test_latency_and_tokens_per_second(runtime: Any, emulator: EmulatorControl) -> None:
    import time
    emulator.configure(latency_ms=200, tokens_per_second=1000)
    started = time.monotonic()
    answer = invoke(runtime)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.2 + answer["generation_token_count"] / 1000


def test_control_api(emulator: EmulatorControl) -> None:
    config = emulator.configure(latency_ms=5, fault_rate={"ModelErrorException": 0.5})
    assert config["latency_ms"] == 5 and config["fault_rate"] == {"ModelErrorException": 0.5}
    for bad in ({"latency_ms": -1}, {"nope": 1}, {"fault_rate": {"Nope": 0.1}},
                {"fault_rate": {"ThrottlingException": 2}}, {"fail_next": "ThrottlingException"},
                {"fail_in_stream": 1}, {"tokens_per_second": "fast"}, [1]):
        status, _, body = http("POST", emulator.base_url + "/_emulator/config", bad)
        assert status == 400 and json.loads(body)["message"], bad
    assert http("POST", emulator.base_url + "/_emulator/config", b"{oops")[0] == 400
    assert emulator.configure()["latency_ms"] == 5  # bad calls changed nothing
    emulator.reset()
    assert emulator.configure()["latency_ms"] == 0
    assert emulator.stats() == {"invocations": 0, "in_flight": 0, "max_in_flight": 0,
                                "throttled": 0, "errors": {}}


def test_requests_log_clears(runtime: Any, emulator: EmulatorControl) -> None:
    invoke(runtime)
    assert len(emulator.requests()) == 1
    emulator.clear_requests()
    assert emulator.requests() == []


def test_unknown_paths_answer_404(emulator: EmulatorControl) -> None:
    assert http("GET", emulator.base_url + "/model/x/invoke")[0] == 404
    assert http("GET", emulator.base_url + "/_emulator/nothing")[0] == 404
