"""The admin page (``GET /admin``) in a real browser against `make run`.

As tests/e2e/test_playground.py: Debian's Chromium driven by Playwright, a
fresh browser context per test, and every request recorded: each must go to
the stack's own origin (a ``blob:`` download of the page's own origin
included), no dialog may open and no script error may happen. The admin key
is made as an operator makes one, with ``scripts/keys.py --local
create-admin`` against the stack's tables; what the page changes is checked
through the admin API and the model routes of the same stack.

``UPDATE_SCREENSHOTS=1`` rewrites docs/admin.png (docs/keys.md's picture).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.conftest import MODEL
from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = PROJECT_DIR / "docs" / "admin.png"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>",
       '<svg onload="alert(3)"></svg>']
HELLO = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
NOT_ADMIN = ("This is not an admin key (HTTP 403, permission_denied): The /admin routes take an "
             "admin key (scripts/keys.py create-admin); this key may only call models. Paste a "
             "key made by scripts/keys.py create-admin.")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def admin_key(stack: LocalStack) -> str:
    """An admin key, made with the operator command (the API never makes one)."""
    printed = re.search(r"admin key:\s+(\S+)", stack.keys_command("create-admin", "--name",
                                                                  "ops-e2e"))
    assert printed is not None
    return printed.group(1)


def admin_call(stack: LocalStack, key: str, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    status, headers, raw = http(method, stack.url + path, body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    text = raw.decode()
    return status, json.loads(text) if headers.get("Content-Type", "").startswith(
        "application/json") and text else text


def models_status(stack: LocalStack, secret: str) -> int:
    return http("GET", stack.url + "/v1/models", headers={"Authorization": f"Bearer {secret}"})[0]


def tenant_name(prefix: str) -> str:
    """A tenant of the test's own: the stack's tables outlive a test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Session:
    """One browser context on the admin page, with what it did recorded."""

    page: Page
    context: BrowserContext
    stack: LocalStack
    requests: list[Any] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/admin") -> Session:
        self.page.goto(self.stack.url + path)
        return self

    def use_key(self, key: str) -> None:
        self.page.fill("#admin-key", key)
        self.page.press("#admin-key", "Enter")

    def use_admin_key(self, key: str) -> None:
        self.use_key(key)
        self.page.locator("#key-status").filter(has_text="in use").wait_for()
        self.page.locator("#spend-table tbody tr").first.wait_for()

    def tenant(self, name: str) -> Any:
        return self.page.locator(f".tenant-group[data-tenant={json.dumps(name)}]")

    def row(self, key_id: str) -> Any:
        return self.page.locator(f"tr[data-key-id={json.dumps(key_id)}]")


@pytest.fixture
def session(request: pytest.FixtureRequest, browser: Browser, stack: LocalStack,
            emulator: EmulatorControl) -> Iterator[Session]:
    screen = getattr(request, "param", DESKTOP)
    context = browser.new_context(**screen)
    context.set_default_timeout(20_000)
    page = context.new_page()
    session = Session(page, context, stack)
    context.on("request", lambda request: session.requests.append(request))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    yield session
    context.close()
    origin = urlsplit(stack.url)
    for recorded in session.requests:
        # blob:http://127.0.0.1:PORT/uuid, the CSV download, belongs to the page's own origin
        url = urlsplit(recorded.url.removeprefix("blob:"))
        assert (url.scheme, url.netloc) == (origin.scheme, origin.netloc), recorded.url
    assert session.dialogs == []
    assert session.errors == []


def new_key(stack: LocalStack, admin_key: str, tenant: str, **fields: Any) -> dict[str, Any]:
    status, made = admin_call(stack, admin_key, "POST", "/admin/keys", {"tenant": tenant, **fields})
    assert status == 201, made
    return made


def test_an_admin_key_shows_the_keys_of_each_tenant(session: Session, admin_key: str) -> None:
    first, second = tenant_name("acme"), tenant_name("globex")
    limited = new_key(session.stack, admin_key, first, models=[MODEL],
                      limits={"requests_per_minute": 5, "usd_per_month": 2.5})
    other = new_key(session.stack, admin_key, second)
    session.open().use_admin_key(admin_key)
    page = session.page
    row = session.row(limited["key_id"])
    assert session.tenant(first).locator("h3").text_content() == first
    assert row.locator(".status-cell").text_content() == "active"
    assert row.locator(".limits").text_content() == (
        "requests/min: 5 · US dollars/month: $2.5 · others: stage defaults")
    assert row.locator(".models").text_content() == MODEL
    assert row.locator(".expires").text_content() == "never"
    assert session.row(other["key_id"]).locator(".limits").text_content() == "stage defaults"
    assert session.row(other["key_id"]).locator(".models").text_content() == "all of the stage's"
    # Grouped by tenant: each key sits in its tenant's group.
    assert session.tenant(second).locator(f'tr[data-key-id="{other["key_id"]}"]').count() == 1
    page.fill("#tenant-filter", first)
    assert page.locator(".tenant-group").count() == 1 and session.tenant(first).count() == 1
    page.fill("#tenant-filter", "no-such-tenant-at-all")
    assert page.locator("#keys-list").text_content() == "No tenant matches the filter."
    page.fill("#tenant-filter", "")
    assert session.tenant(second).count() == 1
    # The key: in the tab, sent only on the admin routes, never written into the page.
    storage = page.evaluate("() => [sessionStorage.getItem('llm-endpoint.admin-key'), "
                            "sessionStorage.getItem('llm-endpoint.key'), localStorage.length, "
                            "document.cookie]")
    assert storage == [admin_key, None, 0, ""]
    assert page.input_value("#admin-key") == "" and admin_key not in page.content()
    for recorded in session.requests:
        path = urlsplit(recorded.url).path
        expected = f"Bearer {admin_key}" if path.startswith("/admin/") else None
        assert recorded.headers.get("authorization") == expected, recorded.url
    paths = {urlsplit(r.url).path for r in session.requests}
    assert {"/admin", "/static/admin.js", "/static/admin.css", "/static/playground.css",
            "/admin/keys", "/admin/usage"} <= paths
    # Every control has a name (a label, aria-label or its text).
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter((c) => c.getClientRects().length && !((c.labels && c.labels.length) ||
            c.getAttribute('aria-label') || c.textContent.trim())).map((c) => c.outerHTML)""")
    assert unnamed == []


def test_a_new_key_shows_its_secret_once_and_the_secret_works(session: Session,
                                                              admin_key: str) -> None:
    tenant = tenant_name("newco")
    session.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                      origin=session.stack.url)
    session.open().use_admin_key(admin_key)
    page = session.page
    page.fill("#new-tenant", tenant)
    page.fill("#new-rpm", "7")
    page.fill("#new-tpd", "none")
    page.fill("#new-usd-month", "3.25")
    page.fill("#new-models", MODEL)
    page.fill("#new-expires", "2")
    page.click("#create-key")
    page.locator("#secret-panel:not([hidden])").wait_for()
    secret = page.locator("#secret-value").text_content() or ""
    assert secret.startswith("llm_")
    about = page.locator("#secret-about").text_content() or ""
    key_id = re.search(r"key_\w+", about)
    assert key_id is not None and tenant in about
    page.click("#copy-secret")
    page.locator("#copy-status").filter(has_text="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    # The secret works on the model routes, with what the form asked for.
    assert models_status(session.stack, secret) == 200
    _, _, raw = http("GET", session.stack.url + "/v1/models",
                     headers={"Authorization": f"Bearer {secret}"})
    assert [m["id"] for m in json.loads(raw)["data"]] == [MODEL]
    status, listed = admin_call(session.stack, admin_key, "GET", f"/admin/keys?tenant={tenant}")
    assert status == 200 and [k["key_id"] for k in listed["data"]] == [key_id.group(0)]
    made = listed["data"][0]
    assert made["limits"] == {"requests_per_minute": 7, "tokens_per_day": None,
                              "usd_per_month": 3.25}
    assert made["models"] == [MODEL] and made["expires_at"] is not None
    assert session.row(made["key_id"]).locator(".status-cell").text_content() == "active"
    assert page.input_value("#new-tenant") == ""  # the form is emptied for the next one
    # Hidden, it is gone from the page: nowhere in the DOM, the tab's storage or a field.
    page.click("#dismiss-secret")
    assert page.locator("#secret-panel").is_hidden()
    assert page.locator("#secret-value").text_content() == ""
    assert secret not in page.content()
    stored = page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
    assert secret not in stored
    # A refused form: the API's 400 in the page, and no secret panel.
    page.fill("#new-tenant", "bad name!")
    page.click("#create-key")
    page.locator("#create-status.error").wait_for()
    assert page.locator("#create-status").text_content() == (
        "The request was refused (HTTP 400, invalid_request): Tenant must be 1-64 letters, "
        "digits, '.', '_' or '-'.")
    assert page.locator("#secret-panel").is_hidden()


def test_rotate_then_revoke_with_a_confirm_step_in_the_page(session: Session,
                                                            admin_key: str) -> None:
    made = new_key(session.stack, admin_key, tenant_name("rotate"))
    old = made["key"]
    session.open().use_admin_key(admin_key)
    page = session.page
    row = session.row(made["key_id"])
    row.get_by_role("button", name=f"Rotate {made['key_id']}").click()
    row.locator("select.grace").select_option("0")  # the old secret stops at once
    row.locator("button.confirm-rotate").click()
    page.locator("#secret-panel:not([hidden])").wait_for()
    new = page.locator("#secret-value").text_content() or ""
    assert new.startswith("llm_") and new != old
    assert "has stopped working" in (page.locator("#secret-about").text_content() or "")
    assert models_status(session.stack, new) == 200
    assert models_status(session.stack, old) == 401
    page.click("#dismiss-secret")
    assert new not in page.content()
    # Revoke asks first, in the row; Cancel keeps the key.
    row.get_by_role("button", name=f"Revoke {made['key_id']}").click()
    assert "Revoke for good?" in (row.locator(".actions").text_content() or "")
    row.locator("button.cancel").click()
    assert row.locator("button.confirm-revoke").count() == 0
    assert models_status(session.stack, new) == 200
    row.get_by_role("button", name=f"Revoke {made['key_id']}").click()
    row.locator("button.confirm-revoke").click()
    page.locator(f'tr[data-key-id="{made["key_id"]}"][data-status="revoked"]').wait_for()
    assert session.row(made["key_id"]).locator(".status-cell").text_content() == "revoked"
    assert session.row(made["key_id"]).locator("button").count() == 0
    assert page.locator("#keys-status").text_content() == (
        f"Revoked {made['key_id']} (tenant {made['tenant']}).")
    assert models_status(session.stack, new) == 401
    status, listed = admin_call(session.stack, admin_key, "GET", f"/admin/keys/{made['key_id']}")
    assert status == 200 and listed["enabled"] is False


def test_a_tenants_limits_are_set_and_read_back(session: Session, admin_key: str) -> None:
    tenant = tenant_name("limits")
    session.open().use_admin_key(admin_key)
    page = session.page
    page.fill("#tenant-name", tenant)
    page.click("#load-tenant")
    page.locator("#tenant-status").filter(has_text="no limits of its own").wait_for()
    page.fill("#tenant-rpm", "9")
    page.fill("#tenant-usd-month", "4.5")
    page.fill("#tenant-usd-day", "abc")
    page.click("#save-tenant")
    assert page.locator("#tenant-status.error").text_content() == (
        "US dollars/day must be an amount above 0, or empty for unlimited.")
    page.fill("#tenant-usd-day", "")
    page.click("#save-tenant")
    page.locator("#tenant-status").filter(has_text="Saved.").wait_for()
    assert page.locator("#tenant-status").text_content() == (
        f"Saved. Tenant {tenant}: requests/min: 9 · US dollars/month: $4.5; the rest unlimited.")
    status, read = admin_call(session.stack, admin_key, "GET", f"/admin/tenants/{tenant}")
    assert status == 200 and read["limits"] == {
        "requests_per_minute": 9, "tokens_per_minute": None, "tokens_per_day": None,
        "usd_per_day": None, "usd_per_month": 4.5}
    # A fresh page reads them back into the form.
    session.open()
    page.locator("#key-status").filter(has_text="in use").wait_for()  # the tab kept the key
    page.fill("#tenant-name", tenant)
    page.click("#load-tenant")
    page.locator("#tenant-status").filter(has_text="requests/min: 9").wait_for()
    fields = ("rpm", "tpm", "tpd", "usd-day", "usd-month")
    assert [page.input_value(f"#tenant-{n}") for n in fields] == ["9", "", "", "", "4.5"]


def test_spend_as_a_chart_a_table_and_a_csv(session: Session, admin_key: str) -> None:
    tenant = tenant_name("spend")
    made = new_key(session.stack, admin_key, tenant)
    for _ in range(2):
        status, _, raw = http("POST", session.stack.url + "/v1/chat/completions", HELLO, headers={
            "Authorization": f"Bearer {made['key']}", "Content-Type": "application/json"})
        assert status == 200, raw
    session.open().use_admin_key(admin_key)
    page = session.page
    _, report = admin_call(session.stack, admin_key, "GET", "/admin/usage?group_by=tenant")
    ours = next(r for r in report["data"] if r["tenant"] == tenant)
    assert ours["requests"] == 2 and ours["cost_usd"] > 0
    row = page.locator(f'#spend-table tbody tr[data-label="{tenant}"]')
    assert row.locator("td").all_text_contents()[:3] == [tenant, "2", str(ours["tokens"])]
    caption = page.locator("#spend-caption").text_content() or ""
    assert caption.startswith(f"US dollars per tenant, {report['from']} to {report['to']} (UTC)")
    bars = page.locator("#spend-chart rect.bar")
    charted = {bars.nth(i).get_attribute("data-label") for i in range(bars.count())}
    largest = sorted(report["data"], key=lambda r: -r["cost_usd"])[:12]  # the chart's dozen
    assert charted == {r["tenant"] for r in largest}
    # Per UTC day: every day of the 30, today's bar the newest.
    page.select_option("#spend-group", "day")
    page.locator("#spend-caption").filter(has_text="per UTC day").wait_for()
    assert page.locator("#spend-chart rect.bar").count() == 30
    today = page.locator("#spend-chart rect.bar.today")
    assert today.get_attribute("data-label") == report["to"]
    assert float(today.get_attribute("height") or 0) > 0
    page.select_option("#spend-metric", "requests")
    assert page.locator("#spend-caption").text_content().startswith("requests per UTC day")
    # Per key: this key's row names its tenant too.
    page.select_option("#spend-group", "key")
    key_row = page.locator(f'#spend-table tbody tr[data-label="{made["key_id"]}"]')
    key_row.wait_for()
    assert key_row.locator("td").all_text_contents()[:3] == [made["key_id"], tenant, "2"]
    # Per model: the key's one model, with its two requests.
    page.select_option("#spend-group", "model")
    model_row = page.locator(f'#spend-table tbody tr[data-label="{MODEL}"]')
    model_row.wait_for()
    assert model_row.locator("td").all_text_contents()[0] == MODEL
    assert int(model_row.locator("td").all_text_contents()[1]) >= 2
    page.select_option("#spend-group", "key")
    # The CSV: fetched with the key, saved from a blob: URL (the CSP needs no change).
    with page.expect_download() as downloaded:
        page.click("#download-csv")
    download = downloaded.value
    assert download.suggested_filename == "usage-by-key.csv"
    text = Path(download.path()).read_text()
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == ["key_id", "tenant", "requests", "tokens", "cost_usd"]
    mine = next(r for r in table if r["key_id"] == made["key_id"])
    assert (mine["tenant"], mine["requests"]) == (tenant, "2")
    assert float(mine["cost_usd"]) > 0
    assert page.locator("#spend-status").text_content() == "Saved usage-by-key.csv."
    csv_requests = [r for r in session.requests if "format=csv" in r.url]
    assert [r.headers.get("authorization") for r in csv_requests] == [f"Bearer {admin_key}"]
    assert page.locator("#spend-status.error").count() == 0


def test_a_model_key_or_an_unknown_key_is_told_so(session: Session, admin_key: str) -> None:
    made = new_key(session.stack, admin_key, tenant_name("model"))
    session.open()
    page = session.page
    session.use_key(made["key"])
    page.locator("#key-status.error").wait_for()
    assert page.locator("#key-status").text_content() == NOT_ADMIN
    assert page.locator(".tenant-group").count() == 0
    assert page.locator("#spend-table tbody tr").count() == 0
    session.use_key("llm_this-key-does-not-exist-0123456789")
    page.locator("#key-status").filter(has_text="refused").wait_for()
    assert re.fullmatch(r"This key was refused \(HTTP (403|401, invalid_api_key)\): it is unknown, "
                        r"revoked or expired\. Check it and paste it again\.",
                        page.locator("#key-status").text_content() or "")
    # An admin key, then Forget: nothing of the stage stays on the page.
    session.use_admin_key(admin_key)
    assert page.locator(".tenant-group").count() > 0
    page.click("#forget-key")
    assert page.locator("#key-status").text_content() == "Key forgotten."
    assert page.locator(".tenant-group").count() == 0
    assert page.locator("#spend-chart > *").count() == 0
    assert page.evaluate("() => sessionStorage.length") == 0


def fake_keys(route: Route) -> None:
    keys = [{"object": "api_key", "key_id": f"key_{i}{text}", "tenant": text, "enabled": True,
             "created_at": 1764800000, "expires_at": None, "scope": "model",
             "limits": {"requests_per_minute": 5}, "models": [text]}
            for i, text in enumerate(XSS)]
    route.fulfill(status=200, headers={"Content-Type": "application/json"},
                  body=json.dumps({"object": "list", "data": keys}))


def fake_usage(route: Route) -> None:
    rows = [{"tenant": text, "requests": i + 1, "tokens": 10 * (i + 1), "cost_usd": 0.001 * (i + 1)}
            for i, text in enumerate(XSS)]
    route.fulfill(status=200, headers={"Content-Type": "application/json"}, body=json.dumps({
        "object": "usage_report", "from": "2026-11-05", "to": "2026-12-04", "group_by": "tenant",
        "data": rows}))


def test_markup_from_the_api_stays_text(session: Session, admin_key: str) -> None:
    page = session.page
    # The API refuses markup in tenant names, so a scripted server sends it (as a
    # compromised table could), and the real API echoes it back in an error.
    page.route(re.compile(r"/admin/keys$"), fake_keys)
    page.route(re.compile(r"/admin/usage\?"), fake_usage)
    session.open().use_admin_key(admin_key)
    for i, text in enumerate(XSS):
        group = session.tenant(text)
        assert group.locator("h3").text_content() == text
        assert group.locator(".key-id").text_content() == f"key_{i}{text}"
        assert group.locator(".models").text_content() == text
        cells = page.locator(f'#spend-table tbody tr:nth-child({3 - i}) td').all_text_contents()
        assert cells[0] == text
    # The chart's labels are the texts (a long one cut short), its bars' titles the whole texts.
    labels = page.locator("#spend-chart text.label").all_text_contents()
    assert len(labels) == 3 and all(x.startswith(label.removesuffix("…"))
                                    for label, x in zip(labels, reversed(XSS)))
    titles = page.locator("#spend-chart rect.bar title").all_text_contents()
    assert [t.split(": $")[0] for t in titles] == list(reversed(XSS))
    page.unroute(re.compile(r"/admin/keys$"))
    page.fill("#new-tenant", tenant_name("xss"))
    page.fill("#new-models", XSS[1])
    page.click("#create-key")
    page.locator("#create-status.error").wait_for()
    assert f"Unknown models: ['{XSS[1]}']" in (page.locator("#create-status").text_content() or "")
    page.wait_for_timeout(300)  # an onerror or onload would have fired by now
    assert page.evaluate("() => document.querySelectorAll("
                         "'img, script:not([src]), main svg:not(#spend-chart)').length") == 0
    assert not any(urlsplit(r.url).path.endswith("/x") for r in session.requests)


def test_the_page_works_under_a_stage_prefix(session: Session, admin_key: str) -> None:
    # As deployed: API Gateway serves the stage at /dev/ and strips the prefix.
    def gateway(route: Route) -> None:
        route.fulfill(response=route.fetch(url=route.request.url.replace("/dev/", "/", 1),
                                           max_redirects=0))

    session.page.route("**/dev/**", gateway)
    # With a trailing slash the relative asset URLs would miss: /dev/admin/ sends the browser to
    # /dev/admin. (Playwright routes only the first request of a redirect, so the page is then
    # opened afresh.)
    with session.page.expect_response("**/dev/admin/") as slash:
        session.open("/dev/admin/")
    assert (slash.value.status, slash.value.headers["location"]) == (301, "../admin")
    assert session.page.url == session.stack.url + "/dev/admin"
    session.open("/dev/admin").use_admin_key(admin_key)
    paths = [urlsplit(r.url).path for r in session.requests]
    assert "/dev/admin/keys" in paths and "/dev/static/admin.js" in paths
    assert all(path.startswith("/dev/") for path in paths), paths


@pytest.mark.parametrize("session", [PHONE], indirect=True, ids=["390px"])
def test_a_phone_never_scrolls_sideways(session: Session, admin_key: str) -> None:
    made = new_key(session.stack, admin_key, tenant_name("a-rather-long-tenant-name-for-a-phone"),
                   models=[MODEL], limits={"requests_per_minute": 5, "usd_per_day": 1.5})
    session.open().use_admin_key(admin_key)
    page = session.page
    session.row(made["key_id"]).get_by_role("button", name=f"Rotate {made['key_id']}").click()
    page.fill("#new-tenant", tenant_name("phone"))
    page.click("#create-key")
    page.locator("#secret-panel:not([hidden])").wait_for()
    for group in ("tenant", "key", "day"):
        page.select_option("#spend-group", group)
        shown = "UTC day" if group == "day" else group
        page.locator("#spend-caption").filter(has_text=f"per {shown}").wait_for()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, group
    page.screenshot(path=str(Path(os.environ.get("PLAYGROUND_SHOTS", "/tmp")) / "admin-390.png"),
                    full_page=True)


def test_the_docs_screenshot(session: Session, admin_key: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    for tenant, fields in ((f"acme-{run}", {"limits": {"usd_per_month": 25}}),
                           (f"acme-{run}", {"models": [MODEL], "limits": {"requests_per_minute": 60}}),
                           (f"globex-{run}", {})):
        made = new_key(session.stack, admin_key, tenant, **fields)
        http("POST", session.stack.url + "/v1/chat/completions", HELLO, headers={
            "Authorization": f"Bearer {made['key']}", "Content-Type": "application/json"})
    session.open().use_admin_key(admin_key)
    session.page.fill("#tenant-filter", run)
    session.page.select_option("#spend-group", "day")
    session.page.locator("#spend-caption").filter(has_text="per UTC day").wait_for()
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "admin.png"
    session.page.screenshot(path=str(target), full_page=True)
    png = target.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, _ = struct.unpack(">II", png[16:24])
    assert width == 1280
    assert SCREENSHOT.exists(), "docs/admin.png is missing: run UPDATE_SCREENSHOTS=1 make test"
