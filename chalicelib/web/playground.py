"""The pages, ``GET /`` (the playground) and ``GET /admin``, and their assets,
served from ``chalicelib/web/static/``.

The playground is one HTML file, one script, one stylesheet and an icon (the
admin page adds its own three on top of the stylesheet), read on
first use and then kept (a warm Lambda serves them from memory; together they
are a few kilobytes, packaged with chalicelib). Every answer carries a
Content-Security-Policy that allows script, style, images and fetches from the
page's own origin only: no inline script, no outside source, so model output
that slipped into markup still could not run. The page links its assets with
relative URLs, so the same page works at ``/`` locally and under a stage
prefix (``/dev/``) once deployed.
"""
from __future__ import annotations

import threading
from pathlib import Path

from chalicelib.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The only files served: a name not listed is a 404, whatever is on disk.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    # The admin page (GET /admin): the same rules, its own script and styles.
    "admin.html": "text/html; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate on every load: a deploy shows its new page at once.
    "Cache-Control": "no-cache",
}

_cache: dict[str, str] = {}
_lock = threading.Lock()


def asset(name: str) -> tuple[str, dict[str, str]]:
    """The body and headers of one listed asset; NotFoundError otherwise."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFoundError(f"No asset named {name!r}.")
    with _lock:
        if name not in _cache:
            _cache[name] = (STATIC_DIR / name).read_text(encoding="utf-8")
        body = _cache[name]
    return body, {"Content-Type": content_type, **SECURITY_HEADERS}


def slash_redirect(path: str) -> str | None:
    """Where to send a page request whose URL lacks its trailing slash.

    Deployed, ``https://host/dev`` reaches the root route too, but relative
    asset URLs would then resolve against ``https://host/``. The answer is a
    relative ``Location`` (``dev/``), right under any domain or base path.
    """
    if not path or path.endswith("/"):
        return None
    return path.rsplit("/", 1)[-1] + "/"
