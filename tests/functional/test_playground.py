"""GET / and GET /admin (the pages and their files) and GET /usage, through the app.

Every exchange is validated against openapi.yaml by the ``api`` client. The
pages' behaviour in a browser is in tests/e2e/test_playground.py and
tests/e2e/test_admin_page.py.
"""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import DAY
from chalicelib.web.playground import ASSETS, CSP
from tests.conftest import ApiFactory

SECURITY = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer"}


class Links(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        self._in_script_without_src = tag == "script" and "src" not in values
        if any(k.startswith("on") for k in values) or self._in_script_without_src:
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_the_page_needs_no_key_and_forbids_inline_and_outside_sources(make_api: ApiFactory) -> None:
    api = make_api(key=None)
    response = api.http.get("/")
    headers = lowered(response.headers)
    assert response.status_code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert {k: headers[k] for k in SECURITY} == SECURITY
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == directives["script-src"] == "'self'"
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP and "*" not in CSP
    links = Links()
    links.feed(response.body.decode("utf-8"))
    assert links.inline_scripts == 0
    # Relative URLs only (so the page works under /dev/ too), each one served.
    assert sorted(links.urls) == ["static/favicon.svg", "static/playground.css",
                                  "static/playground.js"]
    for url in links.urls:
        asset = api.http.get("/" + url)
        assert asset.status_code == 200, url
        assert lowered(asset.headers)["x-content-type-options"] == "nosniff"


def test_the_admin_page_needs_no_key_and_links_only_its_own_files(make_api: ApiFactory) -> None:
    api = make_api(key=None)
    response = api.http.get("/admin")
    headers = lowered(response.headers)
    assert response.status_code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert {k: headers[k] for k in SECURITY} == SECURITY
    links = Links()
    links.feed(response.body.decode("utf-8"))
    assert links.inline_scripts == 0
    # Relative to /admin (or /dev/admin): static/... is the page's sibling, as for "/".
    assert sorted(links.urls) == ["static/admin.css", "static/admin.js", "static/favicon.svg",
                                  "static/playground.css"]
    for url in links.urls:
        assert api.http.get("/" + url).status_code == 200, url
    # At /admin/ the relative URLs would miss their files: it is sent to /admin.
    slash = api.http.get("/admin/")
    assert (slash.status_code, lowered(slash.headers)["location"]) == (301, "../admin")
    # The page does not shadow the admin API beside it, which still wants an admin key.
    assert api.http.get("/admin/keys").status_code in (401, 403)


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_each_asset_is_served_with_its_type_and_the_security_headers(
        make_api: ApiFactory, name: str) -> None:
    response = make_api(key=None).http.get(f"/static/{name}")
    headers = lowered(response.headers)
    assert response.status_code == 200
    assert headers["content-type"] == ASSETS[name]
    assert {k: headers[k] for k in SECURITY} == SECURITY
    assert response.body


@pytest.mark.parametrize("name", ["app.py", "..%2Fapp.py", "playground.py", "index.htm", "x.js"])
def test_only_listed_files_are_served(make_api: ApiFactory, name: str) -> None:
    response = make_api(key=None).http.get(f"/static/{name}")
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "not_found"


@pytest.mark.parametrize("name", ["playground.js", "admin.js"])
def test_the_script_builds_no_markup_from_strings(name: str) -> None:
    from chalicelib.web.playground import STATIC_DIR
    script = (STATIC_DIR / name).read_text()
    # Everything the server or model sends is set as text: no HTML parsing sinks.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "http://", "https://"):
        if sink == "http://" and "http://www.w3.org/2000/svg" in script:
            assert script.count("http://") == 1
            continue
        assert sink not in script, sink


def chat(api: Any, prompt: str) -> dict[str, Any]:
    response = api.http.post("/chat", body=json.dumps({"prompt": prompt, "max_tokens": 20}),
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    return json.loads(response.body)["usage"]


def test_usage_counts_the_callers_own_requests_tokens_and_cost(make_api: ApiFactory) -> None:
    api = make_api()
    first = api.http.get("/usage")
    assert first.status_code == 200
    body = json.loads(first.body)
    assert body["tenant"] == "tests" and body["key_id"].startswith("key_")
    assert body["limits"] == {"requests_per_minute": None, "tokens_per_minute": None,
                              "tokens_per_day": None, "usd_per_day": None, "usd_per_month": None}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert [d["date"] for d in body["days"]][-1] == body["today"]["date"] == today
    assert body["today"] == {"date": today, "requests": 0, "tokens": 0, "cost_usd": 0}
    used = [chat(api, "Hello"), chat(api, "Hello again, with more words")]
    after = json.loads(api.http.get("/usage").body)
    assert after["today"]["requests"] == 2
    assert after["today"]["tokens"] == sum(u["total_tokens"] for u in used)
    assert Decimal(str(after["today"]["cost_usd"])) == pytest.approx(
        sum(Decimal(str(u["cost_usd"])) for u in used))
    assert after["days"][-1] == after["today"]
    assert all(d["requests"] == 0 for d in after["days"][:-1])


def test_usage_shows_nothing_of_another_key(make_api: ApiFactory, key_store: KeyStore) -> None:
    chat(make_api(), "Spend something")
    other, record = key_store.create("someone-else", now=int(time.time()),
                                     limits={"requests_per_minute": 5, "tokens_per_day": 9000})
    body = json.loads(make_api(key=other).http.get("/usage").body)
    assert (body["tenant"], body["key_id"]) == ("someone-else", record.key_id)
    assert body["limits"] == {"requests_per_minute": 5, "tokens_per_minute": None,
                              "tokens_per_day": 9000, "usd_per_day": None, "usd_per_month": None}
    assert all(d["requests"] == d["tokens"] == 0 for d in body["days"])


def test_usage_puts_each_request_on_its_utc_day(make_api: ApiFactory) -> None:
    now = time.time()
    day = int(now // DAY)

    class Clock:
        at = now - 3 * DAY

        def __call__(self) -> float:
            return self.at

    clock = Clock()
    api = make_api(clock=clock)
    three_days_ago = chat(api, "Then")
    clock.at = now
    today = chat(api, "Now")
    body = json.loads(api.http.get("/usage").body)
    dates = [time.strftime("%Y-%m-%d", time.gmtime((day - 6 + i) * DAY)) for i in range(7)]
    assert [d["date"] for d in body["days"]] == dates
    assert [d["tokens"] for d in body["days"]] == [0, 0, 0, three_days_ago["total_tokens"], 0, 0,
                                                   today["total_tokens"]]
    # A week is what the usage items are kept for: the eighth day back is not shown.
    clock.at = now - 7 * DAY
    chat(api, "Too long ago")
    clock.at = now
    again = json.loads(api.http.get("/usage").body)
    assert [d["tokens"] for d in again["days"]] == [d["tokens"] for d in body["days"]]


@pytest.mark.parametrize("authorization", [
    None, "Bearer not-a-key-but-long-enough-0123", "Basic abc"])
def test_usage_needs_a_valid_key(make_api: ApiFactory, authorization: str | None) -> None:
    api = make_api(key=None)
    headers = {} if authorization is None else {"Authorization": authorization}
    refused = api.http.get("/usage", headers=headers)
    # Refused by the gateway's authorizer, exactly as every other keyed route.
    assert refused.status_code in (401, 403)
    models = api.http.get("/v1/models", headers=headers)
    assert (refused.status_code, refused.body) == (models.status_code, models.body)


def test_usage_of_an_unreachable_table_is_a_503_in_the_envelope(make_api: ApiFactory) -> None:
    api = make_api(usage_table="no-such-table")
    response = api.http.get("/usage")
    assert response.status_code == 503
    error = json.loads(response.body)["error"]
    assert error["code"] == "limiter_unavailable"
    assert not re.search(r"arn:|no-such-table|ResourceNotFound", error["message"])
