"""The playground page in a real browser against `make run`.

Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``), headless, driven by
Playwright for Python; the Makefile installs the system package when it is
missing, and Playwright never downloads a browser of its own here. Each test
gets a fresh browser context (its own sessionStorage) on one browser, and every
request every page makes is recorded: all of them must go to the stack's own
origin, no dialog may open and no script error may happen.

Tests run at 1280x800 (a laptop) unless they ask for a phone (390 px wide) too.
``UPDATE_SCREENSHOTS=1`` rewrites docs/playground.png (the README's picture);
otherwise the screenshot goes to a temporary file and is only checked.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = PROJECT_DIR / "docs" / "playground.png"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>",
       '<svg onload="alert(3)"></svg>']


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        # launch() gives the browser a fresh temporary profile (user-data-dir) of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Session:
    """One browser context on the stack's page, with what it did recorded."""

    page: Page
    stack: LocalStack
    requests: list[Any] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self) -> Session:
        self.page.goto(self.stack.url + "/")
        return self

    def use_key(self, key: str) -> None:
        self.page.fill("#api-key", key)
        self.page.press("#api-key", "Enter")

    def use_stack_key(self) -> None:
        self.use_key(self.stack.key)
        self.page.wait_for_selector("#model option", state="attached")
        self.page.wait_for_selector("#usage-chart rect.bar", state="attached")

    def send(self, prompt: str) -> None:
        self.page.fill("#prompt", prompt)
        self.page.press("#prompt", "Enter")

    def last_answer(self, state: str = "done|error|stopped") -> Any:
        answer = self.page.locator("#transcript li.assistant").last
        answer.and_(self.page.locator(
            ",".join(f'li[data-state="{s}"]' for s in state.split("|")))).wait_for()
        return answer


@pytest.fixture
def session(request: pytest.FixtureRequest, browser: Browser, stack: LocalStack,
            emulator: EmulatorControl) -> Iterator[Session]:
    screen = getattr(request, "param", DESKTOP)  # parametrize("session", [...], indirect=True)
    context: BrowserContext = browser.new_context(**screen)
    context.set_default_timeout(20_000)
    page = context.new_page()
    session = Session(page, stack)
    context.on("request", lambda request: session.requests.append(request))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    yield session
    context.close()
    origin = urlsplit(stack.url)
    for request in session.requests:
        url = urlsplit(request.url)
        assert (url.scheme, url.netloc) == (origin.scheme, origin.netloc), request.url
    assert session.dialogs == []
    assert session.errors == []


def samples_while_streaming(page: Page) -> list[list[float]]:
    """[ms, text length] of the answer every 20 ms until it is done, sampled
    by a timer in the page (a macrotask, so it sees only what the network
    delivered by then, never a state between two lines of the page's script)."""
    return page.evaluate("""() => new Promise((resolve) => {
        const samples = [];
        const started = performance.now();
        const timer = setInterval(() => {
            const answers = document.querySelectorAll("#transcript li.assistant");
            const answer = answers[answers.length - 1];
            if (!answer) return;
            samples.push([performance.now() - started, answer.querySelector(".text").textContent.length]);
            if (answer.dataset.state !== "streaming") { clearInterval(timer); resolve(samples); }
        }, 20);
    })""")


def test_the_answer_streams_in_with_its_usage_and_cost(session: Session,
                                                       emulator: EmulatorControl) -> None:
    # About 40 tokens at 20 a second: the answer takes two seconds to arrive.
    emulator.configure(tokens_per_second=20)
    session.open().use_stack_key()
    session.page.fill("#max-tokens", "40")
    session.send("Tell me about Lambda.")
    samples = samples_while_streaming(session.page)
    final = samples[-1][1]
    growing = [(ms, n) for ms, n in samples[:-1] if 0 < n < final]
    assert final > 0
    # The text grew in several steps, spread over time, before the stream ended.
    assert len({n for _, n in growing}) >= 3, samples
    assert growing[-1][0] - growing[0][0] >= 500, samples
    assert [n for _, n in samples] == sorted(n for _, n in samples)
    answer = session.last_answer("done")
    text = answer.locator(".text").text_content()
    sent = emulator.requests()[-1]
    assert "Tell me about Lambda." in sent["body"]["prompt"] and sent["body"]["max_gen_len"] == 40
    usage = answer.locator(".usage").text_content()
    match = re.fullmatch(r"Usage: (\d+) prompt \+ (\d+) completion = (\d+) tokens · cost \$([0-9.]+)"
                         r" · finish: (stop|length)", usage)
    assert match, usage
    prompt_tokens, completion_tokens, total = map(int, match.groups()[:3])
    assert prompt_tokens + completion_tokens == total and completion_tokens <= 40
    assert float(match.group(4)) > 0
    assert answer.locator(".limits").text_content() == "Rate limits: none on this key"
    assert text and len(text) == final


def new_key(stack: LocalStack, tenant: str, *limits: str) -> str:
    """A key of the test's own, made with the operator command."""
    printed = re.search(r"key:\s+(\S+)", stack.keys_command("create", "--tenant", tenant, *limits))
    assert printed is not None
    return printed.group(1)


def test_usage_panel_and_its_chart_of_seven_days(session: Session) -> None:
    # A key of its own: the shared key's usage moves with other tests' jobs.
    key = new_key(session.stack, "playground-usage", "--rpm", "none", "--tpm", "none")
    session.open()
    session.use_key(key)
    session.page.locator("#usage-facts").filter(has_text="0 requests").wait_for()
    # rpm and tpm set to none; the daily budget is the stage's default
    assert "Limits\n1000000 tokens/day\n" in session.page.locator("#usage-facts").inner_text()
    session.send("Count me.")
    session.last_answer("done")
    # The page refreshes its usage after each answer; it must match GET /usage.
    session.page.locator("#usage-facts").filter(has_text="1 request ").wait_for()
    status, _, raw = http("GET", session.stack.url + "/usage",
                          headers={"Authorization": f"Bearer {key}"})
    usage = json.loads(raw)
    assert status == 200
    facts = session.page.locator("#usage-facts").inner_text()
    today = usage["today"]
    assert f"Tenant\n{usage['tenant']}\n" in facts and usage["tenant"] == "playground-usage"
    assert usage["key_id"] in facts
    assert re.search(rf"{today['requests']} requests? · {today['tokens']} tokens? · \$", facts), facts
    bars = session.page.locator("#usage-chart rect.bar")
    assert bars.count() == 7
    tokens = [int(bars.nth(i).get_attribute("data-tokens") or "-1") for i in range(7)]
    assert tokens == [day["tokens"] for day in usage["days"]]
    assert today["requests"] == 1 and tokens[:6] == [0] * 6 and tokens[6] == today["tokens"] > 0
    assert float(bars.nth(6).get_attribute("height") or 0) > 0
    labels = session.page.locator("#usage-chart text.day").all_text_contents()
    assert labels == [day["date"][5:] for day in usage["days"]]


def test_the_readme_screenshot(session: Session, emulator: EmulatorControl, tmp_path: Path) -> None:
    session.open().use_stack_key()
    session.page.fill("#system", "You are a concise assistant.")
    session.page.fill("#max-tokens", "60")
    session.send("What does this endpoint run on?")
    session.last_answer("done")
    session.page.wait_for_function(
        "() => document.querySelector('#usage-chart rect.today').getAttribute('height') > 0")
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "playground.png"
    target.parent.mkdir(exist_ok=True)
    session.page.screenshot(path=str(target))
    png = target.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 800)  # the whole page fits the screen
    assert SCREENSHOT.exists(), "docs/playground.png is missing: run UPDATE_SCREENSHOTS=1 make test"


def test_a_bad_key_gives_a_readable_error(session: Session) -> None:
    session.open()
    session.use_key("llm_this-key-does-not-exist-0123456789")
    status = session.page.locator("#key-status")
    status.filter(has_text="refused").wait_for()
    # The gateway's bare 403, or the envelope's 401 invalid_api_key where gateway responses are set.
    refused = (r"This API key was refused \(HTTP (403|401, invalid_api_key)\): it is unknown, "
               r"revoked or expired\. Check it and paste it again\.")
    assert re.fullmatch(refused, status.text_content() or ""), status.text_content()
    session.send("Hello?")
    answer = session.last_answer("error")
    assert re.fullmatch(refused, answer.locator(".error").text_content() or "")
    assert answer.locator(".text").text_content() == ""


def test_a_limit_gives_a_readable_error_and_the_limits_show(session: Session) -> None:
    key = new_key(session.stack, "playground-limits", "--rpm", "1")
    if time.gmtime().tm_sec >= 55:  # both requests in one calendar minute
        time.sleep(61 - time.gmtime().tm_sec)
    session.open()
    session.use_key(key)
    session.page.locator("#usage-facts").filter(has_text="1 requests/min").wait_for()
    session.send("First.")
    first = session.last_answer("done")
    # rpm as created; tpm and tpd are the stage's defaults.
    assert re.fullmatch(r"Rate limits: requests/min: 0 of 1 left, resets in \d+s · tokens/min: "
                        r"\d+ of 60000 left, resets in \d+s · tokens/day: \d+ of 1000000 left, "
                        r"resets in \d+s", first.locator(".limits").text_content())
    session.send("Second.")
    second = session.last_answer("error")
    assert re.fullmatch(r"A limit was reached \(HTTP 429, requests_per_minute_exceeded\): This "
                        r"key's limit of 1 requests per minute is reached; retry after \d+ s\.",
                        second.locator(".error").text_content())


@pytest.mark.parametrize("in_stream", [False, True])
def test_an_upstream_failure_gives_a_readable_error(session: Session, emulator: EmulatorControl,
                                                    in_stream: bool) -> None:
    # Three attempts (botocore's standard retries) all fail.
    emulator.configure(fail_next=["InternalServerException"] * 3, fail_in_stream=in_stream)
    session.open().use_stack_key()
    session.send("Fail, please.")
    error = session.last_answer("error").locator(".error").text_content()
    # Before the stream: the HTTP error. Mid-stream (real streaming): the error event.
    assert re.fullmatch(r"The (endpoint or the model failed \(HTTP 502, upstream_error\)|model "
                        r"failed during the answer \(upstream_error\)): .+", error), error
    assert "arn:" not in error and "Traceback" not in error


def test_stop_cancels_the_request(session: Session, emulator: EmulatorControl) -> None:
    emulator.configure(latency_ms=4000)
    session.open().use_stack_key()
    session.send("A slow one.")
    session.page.locator("#stop:enabled").wait_for()
    started = time.monotonic()
    session.page.click("#stop")
    answer = session.last_answer("stopped")
    assert time.monotonic() - started < 2
    assert answer.locator(".stopped").text_content() == "Stopped: the request was cancelled."
    assert session.page.locator("#send").is_enabled()
    assert session.page.locator("#stop").is_disabled()


def fulfil_stream(route: Route, events: list[Any]) -> None:
    """Answer a chat request with these server-sent events (a scripted server)."""
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_tool_calls_show_as_tool_calls_and_an_error_event_as_an_error(session: Session) -> None:
    session.open().use_stack_key()
    session.page.route("**/v1/chat/completions", lambda route: fulfil_stream(route, [
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                    "function": {"name": "get_weather",
                                                                 "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "<b>Par'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is</b>"}'}}]}),
        chunk({}, "tool_calls"), "[DONE]"]))
    session.send("Weather in Paris?")
    answer = session.last_answer("done")
    assert answer.locator(".text").text_content() == ""
    call = answer.locator(".tool-call")
    assert call.locator(".tool-name").text_content() == "get_weather"
    assert json.loads(call.locator(".tool-args").text_content()) == {"city": "<b>Paris</b>"}
    assert answer.locator(".tool-call b").count() == 0
    session.page.unroute("**/v1/chat/completions")
    session.page.route("**/v1/chat/completions", lambda route: fulfil_stream(route, [
        chunk({"role": "assistant", "content": "Half an ans"}),
        {"error": {"message": "<i>The model stopped</i>", "type": "server_error",
                   "code": "upstream_error", "param": None}}]))
    session.send("Again.")
    answer = session.last_answer("error")
    assert answer.locator(".text").text_content() == "Half an ans"
    assert answer.locator(".error").text_content() == (
        "The model failed during the answer (upstream_error): <i>The model stopped</i>")


def test_csp_blocks_an_inline_script(session: Session) -> None:
    session.open()
    response = session.page.goto(session.stack.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    outcome = session.page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
            (event) => resolve({directive: event.effectiveDirective, ran: window.__inline === 1}),
            {once: true});
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.append(script);
    })""")
    assert outcome == {"directive": "script-src-elem", "ran": False}
    assert session.page.evaluate("() => window.__inline") is None


def test_the_page_asks_only_its_own_origin_and_keeps_the_key_in_the_tab(session: Session) -> None:
    session.open().use_stack_key()
    session.send("Where do you send my key?")
    session.last_answer("done")
    session.page.wait_for_load_state("networkidle")
    paths = {(r.method, urlsplit(r.url).path) for r in session.requests}
    assert {("GET", "/"), ("GET", "/static/playground.js"), ("GET", "/static/playground.css"),
            ("GET", "/v1/models"), ("GET", "/usage"), ("POST", "/v1/chat/completions")} <= paths
    for request in session.requests:
        authorization = request.headers.get("authorization")
        if urlsplit(request.url).path in ("/v1/models", "/usage", "/v1/chat/completions"):
            assert authorization == f"Bearer {session.stack.key}"
        else:
            assert authorization is None, request.url  # the page and its files: no key
    storage = session.page.evaluate(
        "() => [sessionStorage.getItem('llm-endpoint.key'), localStorage.length, document.cookie]")
    assert storage == [session.stack.key, 0, ""]
    # The key field is cleared once used; the key is never written into the page.
    assert session.page.input_value("#api-key") == ""
    assert session.stack.key not in session.page.content()


def test_make_run_prints_the_page_url_and_the_printed_key_works_there(session: Session) -> None:
    line = next(ln for ln in session.stack.banner.splitlines() if "Playground" in ln)
    url = line.split()[1]
    assert url == session.stack.url + "/"
    printed = re.search(r"API key \(local, no limits\): (\S+)", session.stack.banner)
    assert printed is not None
    key = printed.group(1)
    session.page.goto(url)
    session.use_key(key)
    session.page.locator("#key-status").filter(has_text="in use").wait_for()
    assert session.page.locator("#model option").count() >= 1


def test_the_readme_sends_a_newcomer_to_the_page() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    assert "Open http://127.0.0.1:8000/ after `make run`" in readme
    assert "](docs/playground.png)" in readme and SCREENSHOT.exists()


def test_the_keyboard_alone_is_enough(session: Session, emulator: EmulatorControl) -> None:
    session.open()
    page = session.page
    page.keyboard.press("Tab")  # the first control is the key field
    assert page.evaluate("() => document.activeElement.id") == "api-key"
    page.keyboard.type(session.stack.key)
    page.keyboard.press("Enter")
    page.locator("#key-status").filter(has_text="in use").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "prompt"
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("line two")
    assert page.locator("#transcript li").count() == 0
    page.keyboard.press("Enter")
    session.last_answer("done")
    assert page.locator("#transcript li.user .text").text_content() == "line one\nline two"
    assert "line one\nline two" in emulator.requests()[-1]["body"]["prompt"]
    sent = page.evaluate("() => [...document.querySelectorAll('label')].map(l => l.htmlFor)")
    # every control has its label
    for control in ("api-key", "model", "system", "temperature", "max-tokens", "prompt"):
        assert control in sent


WEATHER_TOOL = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def test_tools_go_to_the_model_and_its_calls_show_as_calls(
        session: Session, emulator: EmulatorControl) -> None:
    session.open().use_stack_key()
    page = session.page
    page.fill("#tools", "[{not json")
    session.send("Weather in Paris?")
    page.locator("#tools-status").filter(has_text="Tools are not valid JSON").wait_for()
    assert page.locator("#transcript li").count() == 0 and emulator.requests() == []
    page.fill("#tools", json.dumps({"type": "function"}))
    page.press("#prompt", "Enter")
    assert page.locator("#tools-status").text_content() == (
        "Tools must be a JSON array of tool definitions.")
    page.fill("#tools", json.dumps(WEATHER_TOOL))
    page.press("#prompt", "Enter")
    answer = session.last_answer("done")
    assert page.locator("#tools-status").text_content() == ""
    prompt = emulator.requests()[-1]["body"]["prompt"]
    assert "get_weather" in prompt and "Weather in Paris?" in prompt
    # The emulator calls the tool, with arguments built from its schema: shown as a call.
    call = answer.locator(".tool-call")
    assert call.count() == 1 and answer.locator(".text").text_content() == ""
    assert call.locator(".tool-name").text_content() == "get_weather"
    assert re.fullmatch(r" id call_\w+", call.locator(".tool-id").text_content() or "")
    arguments = json.loads(call.locator(".tool-args").text_content() or "")
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)
    assert answer.locator(".usage").text_content().endswith(" · finish: tool_calls")


def test_the_page_works_under_a_stage_prefix(session: Session) -> None:
    # As deployed: API Gateway serves the stage at /dev/ and strips the prefix.
    def gateway(route: Route) -> None:
        route.fulfill(response=route.fetch(url=route.request.url.replace("/dev/", "/", 1)))

    session.page.route("**/dev/**", gateway)
    session.page.goto(session.stack.url + "/dev/")
    session.use_stack_key()
    # The usage refresh after the answer, too, goes through the stage.
    with session.page.expect_response(lambda r: r.url.endswith("/dev/usage")) as refreshed:
        session.send("Hello from a stage.")
        assert session.last_answer("done").locator(".usage").text_content().startswith("Usage: ")
    assert refreshed.value.status == 200
    paths = [urlsplit(r.url).path for r in session.requests]
    assert "/dev/v1/chat/completions" in paths and "/dev/static/playground.js" in paths
    assert all(path.startswith("/dev/") for path in paths), paths


def test_the_event_stream_reader_takes_any_line_ending_comments_and_fields(session: Session) -> None:
    session.open().use_stack_key()
    events = [chunk({"role": "assistant", "content": "One,"}), chunk({"content": " two,"}),
              chunk({"content": " three."}, "stop")]
    body = (": a comment the server may send to keep the connection\r\n\r\n"
            f"event: message\r\nid: 1\r\ndata: {json.dumps(events[0])}\r\n\r\n"
            f"data: {json.dumps(events[1])}\r\r"
            f"retry: 1000\ndata:{json.dumps(events[2])}\n\n"
            'data: {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1,\n'
            'data:  "model": "m", "choices": [], "usage": {"prompt_tokens": 5,\n'
            'data: "completion_tokens": 3, "total_tokens": 8, "cost_usd": 0.0000012}}\n\n'
            "data: [DONE]\n\n")
    session.page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body=body))
    session.send("Count.")
    answer = session.last_answer("done")
    assert answer.locator(".text").text_content() == "One, two, three."
    assert answer.locator(".usage").text_content() == (
        "Usage: 5 prompt + 3 completion = 8 tokens · cost $0.0000012 · finish: stop")
    # A stream cut before its end marker is said to be cut, with what arrived kept.
    session.page.unroute("**/v1/chat/completions")
    session.page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"},
        body=f"data: {json.dumps(events[0])}\n\n"))
    session.send("Count again.")
    cut = session.last_answer("error")
    assert cut.locator(".text").text_content() == "One,"
    assert cut.locator(".error").text_content() == (
        "The stream ended without its end marker: the answer may be cut short.")


def test_markup_in_answers_and_prompts_stays_text(session: Session,
                                                  emulator: EmulatorControl) -> None:
    # The emulator answers these exact texts, in order, through the whole app.
    emulator.configure(respond_next=XSS)
    session.open().use_stack_key()
    for text in XSS:
        session.send(text)
        answer = session.last_answer("done")
        assert answer.locator(".text").text_content() == text
        assert session.page.locator("#transcript li.user .text").last.text_content() == text
    session.page.wait_for_timeout(300)  # an onerror or onload would have fired by now
    assert session.page.locator("#transcript img, #transcript script, #transcript svg").count() == 0
    everywhere = "() => document.querySelectorAll('img, svg:not(#usage-chart)').length"
    assert session.page.evaluate(everywhere) == 0
    assert not any(urlsplit(r.url).path.endswith("/x") for r in session.requests)
    # What reached the model is the markup as text too, as the user typed it.
    assert XSS[0] in emulator.requests()[0]["body"]["prompt"]


def in_view(page: Page, selector: str) -> bool:
    """Whether the element is wholly inside the viewport (and not covered at its centre)."""
    return page.evaluate("""(selector) => {
        const element = document.querySelector(selector);
        const box = element.getBoundingClientRect();
        const inside = box.width > 0 && box.height > 0 && box.top >= 0 && box.left >= 0 &&
            box.bottom <= window.innerHeight && box.right <= window.innerWidth;
        const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
        return inside && (hit === element || element.contains(hit));
    }""", selector)


LONG = "\n".join(f"Line {i} of a long answer that fills the screen." for i in range(1, 41))


@pytest.mark.parametrize("session", [DESKTOP, PHONE], indirect=True, ids=["1280x800", "390px"])
def test_the_composer_is_always_in_view(session: Session, emulator: EmulatorControl) -> None:
    page = session.page
    session.open()
    assert in_view(page, "#prompt") and in_view(page, "#send")
    session.use_stack_key()
    emulator.respond_next(LONG, LONG, LONG)
    for n in range(3):
        session.send(f"Answer {n} at length, please.")
        answer = session.last_answer("done")
        assert in_view(page, "#prompt") and in_view(page, "#send"), n
    # The newest answer is scrolled into sight above the composer, not hidden under it.
    assert page.evaluate("""() => {
        const answers = document.querySelectorAll("#transcript li.assistant");
        const last = answers[answers.length - 1].getBoundingClientRect();
        const composer = document.querySelector("#chat-form").getBoundingClientRect();
        return last.bottom <= composer.top + 1 && last.bottom > 0;
    }""")
    assert answer.locator(".text").text_content() == LONG
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # no sideways scroll
    shot = Path(os.environ.get("PLAYGROUND_SHOTS", "/tmp")) / f"playground-{width}.png"
    page.screenshot(path=str(shot))


def test_only_chat_models_are_offered(session: Session) -> None:
    session.open().use_stack_key()
    _, _, raw = http("GET", session.stack.url + "/v1/models", headers=session.stack.auth)
    listed = json.loads(raw)["data"]
    chat = [m["id"] for m in listed if m["kind"] == "chat"]
    embedding = [m["id"] for m in listed if m["kind"] == "embedding"]
    assert chat and embedding  # the dev stage allows both
    offered = session.page.locator("#model option").evaluate_all("(os) => os.map(o => o.value)")
    assert offered == chat


def test_a_key_in_the_field_is_used_at_send(session: Session, emulator: EmulatorControl) -> None:
    session.open()
    page = session.page
    page.fill("#api-key", session.stack.key)  # pasted, "Use key" never pressed
    page.fill("#prompt", "Hello with a pasted key.")
    page.click("#send")
    answer = session.last_answer("done|error")
    assert answer.get_attribute("data-state") == "done", answer.inner_text()
    assert answer.locator(".text").text_content()
    assert "Hello with a pasted key." in emulator.requests()[-1]["body"]["prompt"]
    chats = [r for r in session.requests if urlsplit(r.url).path == "/v1/chat/completions"]
    assert [r.headers.get("authorization") for r in chats] == [f"Bearer {session.stack.key}"]
    assert page.input_value("#api-key") == ""  # taken into the tab, out of the page
    page.locator("#key-status").filter(has_text="in use").wait_for()
    assert page.locator("#model option").count() >= 1


def test_usage_is_cleared_when_a_key_is_refused(session: Session) -> None:
    session.open().use_stack_key()
    page = session.page
    assert "Tenant" in page.locator("#usage-facts").inner_text()
    session.use_key("llm_this-key-does-not-exist-0123456789")
    page.locator("#key-status").filter(has_text="refused").wait_for()
    assert page.locator("#usage-facts").inner_text() == ""
    assert page.locator("#usage-chart > *").count() == 0
    assert page.locator("#model option").count() == 0
    # Sending with the refused key: the refusal, and still no usage of the old key.
    session.send("Hello?")
    assert "refused" in session.last_answer("error").locator(".error").text_content()
    page.wait_for_load_state("networkidle")
    assert page.locator("#usage-facts").inner_text() == ""


CONTROLS = "input, select, textarea, button, [tabindex]:not([tabindex='-1'])"


@pytest.mark.parametrize("session", [DESKTOP, PHONE], indirect=True, ids=["1280x800", "390px"])
def test_every_control_is_labelled_and_reached_by_tab(session: Session) -> None:
    session.open().use_stack_key()
    session.send("Something to stop.")
    session.last_answer("done")
    page = session.page
    controls = page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((c) => !c.disabled && c.getClientRects().length).map((c) => {
            const named = (c.labels && c.labels.length) || c.getAttribute("aria-label") ||
                c.getAttribute("aria-labelledby") || c.textContent.trim();
            return [c.id, Boolean(named)];
        })""", CONTROLS)
    assert len(controls) >= 12 and all(cid for cid, _ in controls), controls
    assert [cid for cid, named in controls if not named] == []
    reached = []
    page.locator("body").focus()
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id"))
    assert {cid for cid, _ in controls} <= set(reached), reached
