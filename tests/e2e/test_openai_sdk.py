"""The official openai SDK, unchanged, against the stack that `make run` starts."""
from __future__ import annotations

import openai
import pytest

from devstack.bedrock_wire import STREAM_EXCEPTIONS
from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
MESSAGES = [{"role": "system", "content": "You are concise."},
            {"role": "user", "content": "Name three AWS regions."}]


@pytest.fixture
def client(stack: LocalStack) -> openai.OpenAI:
    # max_retries=0 so each error surfaces at once; retries are tested apart.
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


def test_plain_completion(client: openai.OpenAI, emulator: EmulatorControl) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100,
                                                temperature=0.2)
    choice = completion.choices[0]
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens) > 0
    sent = emulator.requests()[0]["body"]
    assert sent["temperature"] == 0.1 and sent["max_gen_len"] == 100
    assert "<|start_header_id|>system<|end_header_id|>\n\nYou are concise.<|eot_id|>" in sent["prompt"]


def test_stream_joins_to_the_plain_text(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish == plain.choices[0].finish_reason
    assert usage is not None and usage.total_tokens == plain.usage.total_tokens


def test_models(client: openai.OpenAI) -> None:
    # make run serves the dev stage: the default first, then the other families.
    ids = [m.id for m in client.models.list()]
    assert ids[0] == MODEL and len(ids) == len(set(ids)) > 1
    assert client.models.retrieve(MODEL).owned_by == "meta"


def test_parameters_clients_send_are_honoured_or_ignored(client: openai.OpenAI,
                                                         emulator: EmulatorControl) -> None:
    # What the openai SDK, the Agents SDK, LiteLLM, LlamaIndex and the AI SDK
    # send besides the basics: each honoured, or neutral, or safely ignored.
    completion = client.chat.completions.create(
        model=MODEL, max_completion_tokens=40, top_p=0.5, stop=["zzz", "\n\n\n"], n=1, seed=7,
        user="u-1", metadata={"run": "e2e"}, store=False, service_tier="auto",
        parallel_tool_calls=False, logit_bias={}, frequency_penalty=0, presence_penalty=0.0,
        logprobs=False, reasoning_effort="none", verbosity="medium", response_format={"type": "text"},
        messages=[{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                  {"role": "user", "content": [{"type": "text", "text": "Name a region."},
                                               {"type": "text", "text": "Just one."}]}])
    assert completion.choices[0].message.content
    sent = emulator.requests()[0]["body"]
    assert (sent["max_gen_len"], sent["top_p"]) == (40, 0.5)
    assert sent["prompt"].startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
                                     "\n\nBe brief.<|eot_id|>")
    assert "Name a region.\nJust one.<|eot_id|>" in sent["prompt"]


@pytest.mark.parametrize("kwargs,param", [
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"verbosity": "low"}, "verbosity"),
    ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
     "messages[0].content[1]"),
])
def test_what_cannot_be_honoured_is_a_400_naming_it(client: openai.OpenAI, emulator: EmulatorControl,
                                                    kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**{"model": MODEL, "messages": MESSAGES, **kwargs})
    assert caught.value.code == "unsupported_parameter" and caught.value.param == param
    assert param.split("[")[0] in caught.value.message and not emulator.requests()


def test_raw_and_streaming_responses(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.status_code == 200 and raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[0].startswith("data: {") and lines[-1] == "data: [DONE]"


def test_legacy_completions(client: openai.OpenAI, emulator: EmulatorControl) -> None:
    plain = client.completions.create(model=MODEL, prompt="Name three AWS regions.", max_tokens=40,
                                      temperature=0)
    assert plain.object == "text_completion" and plain.choices[0].text
    assert plain.usage is not None and plain.usage.completion_tokens > 0
    chunks = list(client.completions.create(model=MODEL, prompt="Name three AWS regions.",
                                            max_tokens=40, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert chunks[-1].usage == plain.usage
    first, _ = emulator.requests()
    assert "<|start_header_id|>user<|end_header_id|>\n\nName three AWS regions.<|eot_id|>" in \
        first["body"]["prompt"]


@pytest.mark.parametrize("kwargs,error", [
    ({"model": "gpt-4o"}, openai.NotFoundError),
    ({"tools": [{"type": "function", "function": {"name": "no spaces", "parameters": {}}}]},
     openai.BadRequestError),
    ({"functions": [{"name": "f", "parameters": {}}]}, openai.BadRequestError),
    ({"n": 2}, openai.BadRequestError),
    ({"temperature": 2.5}, openai.BadRequestError),
])
def test_request_errors(client: openai.OpenAI, kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        client.chat.completions.create(**{"model": MODEL, "messages": MESSAGES, **kwargs})
    assert caught.value.body["code"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault,error,status,code", [
    ("ThrottlingException", openai.RateLimitError, 429, "upstream_throttled"),
    ("ServiceQuotaExceededException", openai.RateLimitError, 429, "upstream_throttled"),
    ("ModelErrorException", openai.InternalServerError, 502, "upstream_error"),
    ("ServiceUnavailableException", openai.InternalServerError, 503, "upstream_unavailable"),
    ("ModelTimeoutException", openai.InternalServerError, 504, "upstream_timeout"),
    ("ValidationException", openai.BadRequestError, 400, "upstream_validation_error"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_errors_raise_the_sdk_classes(client: openai.OpenAI, emulator: EmulatorControl,
                                              fault: str, error: type[openai.APIStatusError],
                                              status: int, code: str, stream: bool) -> None:
    emulator.configure(fault_rate={fault: 1.0}, fail_in_stream=stream)
    in_stream = stream and fault in STREAM_EXCEPTIONS["InvokeModelWithResponseStream"]
    with pytest.raises(openai.APIError) as caught:
        result = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
        if stream:
            list(result)
    if in_stream:
        # After the first byte there is no status to send: the error event,
        # which the SDK raises as APIError with the envelope as its body.
        assert not isinstance(caught.value, openai.APIStatusError)
    else:
        assert isinstance(caught.value, error)
        assert caught.value.status_code == status  # type: ignore[attr-defined]
        assert caught.value.response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert caught.value.body["code"] == code  # type: ignore[index]


def test_sdk_retries_ride_out_a_burst_of_throttles(stack: LocalStack,
                                                   emulator: EmulatorControl) -> None:
    # Four throttles: our three botocore attempts absorb three and answer 429
    # with Retry-After; the SDK's own retry then succeeds.
    emulator.configure(fail_next=["ThrottlingException"] * 4)
    patient = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=2)
    completion = patient.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content
    assert emulator.stats()["errors"] == {"ThrottlingException": 4}


@pytest.mark.parametrize("key,error,status", [
    ("llm_" + "Z" * 43, openai.AuthenticationError, 401),
    ("short", openai.AuthenticationError, 401),
])
def test_bad_keys_raise_the_sdk_classes(stack: LocalStack, key: str,
                                        error: type[openai.APIStatusError], status: int) -> None:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.code == "invalid_api_key"  # OpenAI's own code for a bad key


def test_no_key_raises_authentication_error(stack: LocalStack) -> None:
    # The SDK always sends its key; Omit() drops the header: a client with none.
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list(extra_headers={"Authorization": openai.Omit()})
