"""The readers' widget in real Chromium against the real API (gunicorn), the real live-updates
process (uvicorn) and, where the engine's verdict matters, a real Celery worker.

Host pages other than the demo are served from two more origins: one the site allows
(ALLOWED_ORIGINS) and one it does not, so the widget is embedded cross-origin as on a real site.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import redis
import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from services.cache import InvalidatingPublisher, ReadCache
from services.comments.moderation import ModerationService
from services.comments.service import CommentService
from services.db import Database
from services.events import RedisPublisher
from tests.conftest import DEMO, free_port, wait_for, wait_port

pytestmark = pytest.mark.browser


@dataclass
class Stack:
    api: str
    streams: str
    site: str  # an allowed origin serving host pages
    stranger: str  # an origin the site does not allow
    pages: dict[str, str]


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


def _serve_pages(pages: dict[str, str]) -> tuple[str, http.server.ThreadingHTTPServer]:
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture
def streams_env() -> dict[str, str]:
    """Extra settings for the live-updates process (a test may parametrize it)."""
    return {}


@pytest.fixture
def api_env() -> dict[str, str]:
    """Extra settings for the API process (a test may parametrize it)."""
    return {}


@pytest.fixture
def stack(queue_settings, service: CommentService, process_factory,  # type: ignore[no-untyped-def]
          streams_env: dict[str, str], api_env: dict[str, str]) -> Iterator[Stack]:
    # Read tokens and pages cached by earlier tests' databases would answer for this one.
    client = redis.Redis.from_url(queue_settings.redis_url)
    for pattern in ("triage:gen:*", "triage:page:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    pages: dict[str, str] = {}
    site, site_server = _serve_pages(pages)
    stranger, stranger_server = _serve_pages(pages)
    api_port, streams_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    streams = f"http://127.0.0.1:{streams_port}"
    origins = f"{api},{site}"
    settings = replace(queue_settings, port=api_port)
    process_factory(settings, "streams", env={"STREAM_PORT": str(streams_port),
                                              "ALLOWED_ORIGINS": origins, "STREAM_HEARTBEAT": "2",
                                              **streams_env})
    process_factory(settings, "api", env={"PORT": str(api_port), "HOST": "127.0.0.1",
                                          "ALLOWED_ORIGINS": origins, "EVENTS_URL": streams,
                                          "WEB_CONCURRENCY": "2", "RATELIMIT_ENABLED": "false",
                                          **api_env})
    wait_port(streams_port)
    wait_port(api_port)
    wait_for(lambda: _answers(api + "/healthz"), timeout=60)
    yield Stack(api, streams, site, stranger, pages)
    site_server.shutdown()
    stranger_server.shutdown()


@pytest.fixture
def mod(queue_settings, service: CommentService) -> Iterator[ModerationService]:  # type: ignore[no-untyped-def]
    """Decisions published as the API's are: to Redis, replacing the read cache's pages."""
    db = Database(queue_settings.database_url)
    svc = CommentService(db, salt=queue_settings.author_salt, publisher=InvalidatingPublisher(
        RedisPublisher(queue_settings.redis_url), ReadCache(queue_settings.redis_url)))
    yield ModerationService(svc)
    db.dispose()


def wait(driver: WebDriver, predicate: Any, timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(predicate)


# The widget lives in a shadow root: read it with one script call at a time.
SHADOW = "const root = (document.querySelector(arguments[0]) || {}).shadowRoot; if (!root) return null;"


def shadow(driver: WebDriver, script: str, host: str = "[data-triage-article]") -> Any:
    return driver.execute_script(SHADOW + script, host)


def bodies(driver: WebDriver, host: str = "[data-triage-article]") -> list[str]:
    return shadow(driver, "return Array.from(root.querySelectorAll('.list .body'), p => p.textContent)",
                  host) or []


def post_json(api: str, body: str, author: str = "Reader") -> str:
    resp = requests.post(f"{api}/v1/articles/{DEMO}/comments", json={"author": author, "body": body},
                         timeout=10)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def open_streams(stack: Stack) -> int:
    return int(requests.get(stack.streams + "/healthz", timeout=5).json()["open_streams"])


def fill_and_post(driver: WebDriver, author: str, body: str, email: str = "") -> None:
    driver.execute_script(SHADOW + """
        const f = root.querySelector('form');
        f.querySelector('[name=author]').value = arguments[1];
        f.querySelector('[name=email]').value = arguments[2];
        f.querySelector('[name=body]').value = arguments[3];
        f.querySelector('button[type=submit]').click();""", "[data-triage-article]", author, email, body)


def test_demo_page_post_approve_and_see_it_live(chrome: WebDriver, stack: Stack, moderator_key: str,
                                                artifacts) -> None:  # type: ignore[no-untyped-def]
    chrome.get(stack.api + "/")
    assert "Ketamine a new hope" in chrome.title
    wait(chrome, lambda d: shadow(d, "return root.querySelector('form') !== null"))
    wait(chrome, lambda d: open_streams(stack) == 1)
    # Every control has a label; status and new comments are announced.
    unlabelled = shadow(chrome, """return Array.from(root.querySelectorAll('input, textarea, select'))
        .filter(c => !root.querySelector('label[for="' + c.id + '"]')).length""")
    assert unlabelled == 0
    assert shadow(chrome, "return root.querySelectorAll('[aria-live]').length") >= 2
    fill_and_post(chrome, "Maya", "Thank you for such a careful article.", "maya@example.org")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('.mine') && root.querySelector('.mine').textContent"))
    mine = shadow(chrome, "return root.querySelector('.mine').textContent")
    assert "Awaiting moderation" in mine and "Thank you for such a careful article." in mine
    assert bodies(chrome) == []  # not public yet
    queue = requests.get(stack.api + "/v1/moderation/queue?status=pending",
                         headers={"Authorization": f"Bearer {moderator_key}"}, timeout=10).json()
    item = next(i for i in queue["items"] if i["author"] == "Maya")
    resp = requests.post(f"{stack.api}/v1/moderation/comments/{item['id']}/decision",
                         json={"action": "approve"},
                         headers={"Authorization": f"Bearer {moderator_key}",
                                  "If-Match": str(item["version"])}, timeout=10)
    assert resp.status_code == 200, resp.text
    # Appears without a reload: the page still holds the same document.
    chrome.execute_script("window.__sameDocument = true")
    wait(chrome, lambda d: bodies(d) == ["Thank you for such a careful article."], timeout=5)
    assert chrome.execute_script("return window.__sameDocument") is True
    assert shadow(chrome, "return root.querySelector('h2').textContent") == "1 comment"
    wait(chrome, lambda d: not shadow(d, "return root.querySelector('.mine')"))
    # The counter on the page says the same.
    counter = chrome.execute_script("return document.querySelector('[data-triage-count]').textContent")
    assert counter == "1 comment"
    chrome.save_screenshot(str(artifacts / "widget-demo.png"))


def test_reply_thread_and_field_errors_in_words(chrome: WebDriver, stack: Stack, mod) -> None:  # type: ignore[no-untyped-def]
    root_id = post_json(stack.api, "A first thought.", "Ana")
    mod.decide(root_id, "approve", actor="Ana", version=None)
    chrome.get(stack.api + "/")
    wait(chrome, lambda d: bodies(d) == ["A first thought."])
    fill_and_post(chrome, "Bo", "A reply.", "not-an-email")
    # 422 from the API, shown next to the field it names.
    invalid = "return root.querySelector('[name=email]').getAttribute('aria-invalid')"
    wait(chrome, lambda d: shadow(d, invalid) == "true")
    err = shadow(chrome, """const c = root.querySelector('[name=email]');
        return root.getElementById(c.getAttribute('aria-describedby')).textContent""")
    assert err
    shadow(chrome, "root.querySelector('.c button.link').click(); return true")
    note = shadow(chrome, "return root.querySelector('form .note').textContent")
    assert "Replying to Ana" in note
    fill_and_post(chrome, "Bo", "A reply.", "")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('.mine') !== null"))
    reply_id = wait(chrome, lambda d: shadow(d, "return root.querySelector('.mine').dataset.mine"))
    mod.decide(reply_id, "approve", actor="Ana", version=None)
    replies = "return Array.from(root.querySelectorAll('.c .replies .body'), b => b.textContent)"
    wait(chrome, lambda d: shadow(d, replies) == ["A reply."], timeout=5)


SELF_HARM = "I've been stockpiling my tablets for weeks."


def test_crisis_comment_shows_the_support_message_to_its_author(chrome: WebDriver, stack: Stack,
                                                               worker_factory, settings) -> None:  # type: ignore[no-untyped-def]
    worker_factory()
    chrome.get(stack.api + "/")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('form') !== null"))
    fill_and_post(chrome, "Sam", SELF_HARM)
    wait(chrome, lambda d: shadow(d, "return root.querySelector('.support') !== null"), timeout=40)
    text = shadow(chrome, "return root.querySelector('.support').textContent")
    assert settings.support_message in text
    links = shadow(chrome, "return Array.from(root.querySelectorAll('.support a'), a => a.getAttribute('href'))")
    assert "tel:988" in links
    assert shadow(chrome, "return root.querySelector('.support').getAttribute('role')") == "status"
    assert bodies(chrome) == []


# Each is posted as written and must be shown as written, with no script run and no element made.
XSS = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    "<svg onload=window.__xss=1>",
    "<svg><script>window.__xss=1</script></svg>",
    "<a href=\"javascript:window.__xss=1\">click me</a>",
    "javascript:window.__xss=1",
    "\"><script>window.__xss=1</script>",
    "'><img src=x onerror=window.__xss=1>",
    "</textarea><script>window.__xss=1</script>",
    "</style><script>window.__xss=1</script>",
    "<iframe src=\"javascript:window.__xss=1\"></iframe>",
    "<body onload=window.__xss=1>",
    "<input autofocus onfocus=window.__xss=1>",
    "<details open ontoggle=window.__xss=1>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "<object data=\"javascript:window.__xss=1\">",
    "<embed src=\"javascript:window.__xss=1\">",
    "<form><button formaction=javascript:window.__xss=1>go</button></form>",
    "<video><source onerror=window.__xss=1>",
    "<marquee onstart=window.__xss=1>hi</marquee>",
    "<div style=\"background:url(javascript:window.__xss=1)\">x</div>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__xss=1\">",
    "<base href=\"javascript:window.__xss=1//\">",
    "{{constructor.constructor('window.__xss=1')()}}",
    "${window.__xss=1}",
    "&lt;script&gt;window.__xss=1&lt;/script&gt;",
    "&#60;img src=x onerror=window.__xss=1&#62;",
    "<scr<script>ipt>window.__xss=1</scr</script>ipt>",
    "<IMG SRC=JaVaScRiPt:window.__xss=1>",
    "<img src=`x` onerror=`window.__xss=1`>",
    "\u200f<img src=x onerror=window.__xss=1>\u200e RTL mark trick",
    "\u061c\u05e9\u05dc\u05d5\u05dd <svg/onload=window.__xss=1> \u0645\u0631\u062d\u0628\u0627",
    "<noscript><p title=\"</noscript><img src=x onerror=window.__xss=1>\">",
    "<template><script>window.__xss=1</script></template>",
    "data:text/html,<script>window.__xss=1</script>",
]


def test_xss_payloads_render_as_text(chrome: WebDriver, stack: Stack, mod) -> None:  # type: ignore[no-untyped-def]
    assert len(XSS) >= 30
    for i, payload in enumerate(XSS):
        author = payload[:80] if i % 5 == 0 else f"Tester {i}"
        mod.decide(post_json(stack.api, payload, author), "approve", actor="Ana", version=None)
    chrome.get(stack.api + "/")
    wait(chrome, lambda d: len(bodies(d)) == 20)  # the first page
    shadow(chrome, "root.querySelector('.more').click(); return true")
    wait(chrome, lambda d: len(bodies(d)) == len(XSS))
    assert bodies(chrome) == XSS
    authors = shadow(chrome, "return Array.from(root.querySelectorAll('.who'), b => b.textContent)")
    assert [a for a in authors if not a.startswith("Tester ")] == [p[:80] for p in XSS[::5]]
    made = shadow(chrome, """return Array.from(root.querySelectorAll('*'), e => e.localName)
        .filter(n => !['section', 'h2', 'div', 'label', 'select', 'option', 'ol', 'li', 'article',
                       'header', 'bdi', 'time', 'p', 'button', 'form', 'input', 'textarea',
                       'span', 'style'].includes(n))""")
    assert made == []
    assert chrome.execute_script("return window.__xss") is None
    assert chrome.current_url.startswith(stack.api)


HOSTILE = """<!doctype html><html><head><style>
  * { all: unset !important; }
  div, section, form, ol, li, p, h2, button, input, textarea, label, article {
    display: none !important; color: red !important; font-size: 2px !important;
    position: fixed !important; width: 1px !important; height: 1px !important; }
  [data-triage-article] { display: none !important; font: 50px/0 serif !important; }
  .comments { --triage-accent: rgb(200, 0, 0); }
  /* The host's own container keeps a usable box; everything else is hostile. */
  html body div.comments { display: block !important; position: static !important;
    width: 640px !important; height: auto !important; }
</style></head><body>
<p>Listing: <a data-triage-count="%(slug)s">…</a></p>
<div class="comments"><div data-triage-article="%(slug)s"></div></div>
<script src="%(api)s/widget.js" async></script>
</body></html>"""


def test_hostile_host_css_leaves_the_layout_and_theming_works(chrome: WebDriver, stack: Stack,
                                                              mod, artifacts) -> None:  # type: ignore[no-untyped-def]
    mod.decide(post_json(stack.api, "Layout survives.", "Ana"), "approve", actor="Ana", version=None)
    stack.pages["/hostile"] = HOSTILE % {"slug": DEMO, "api": stack.api}
    chrome.get(stack.site + "/hostile")
    wait(chrome, lambda d: bodies(d) == ["Layout survives."])
    box = shadow(chrome, """const t = root.querySelector('textarea').getBoundingClientRect();
        const b = root.querySelector('button[type=submit]');
        const s = getComputedStyle(root.querySelector('.body'));
        return {w: t.width, h: t.height, button: getComputedStyle(b).display,
                bg: getComputedStyle(b).backgroundColor, size: s.fontSize, color: s.color,
                host: getComputedStyle(root.host).display}""")
    chrome.save_screenshot(str(artifacts / "widget-hostile-css.png"))
    assert box["host"] == "block"
    assert box["w"] > 200 and box["h"] > 40
    assert box["button"] != "none"
    assert box["size"] == "16px" and box["color"] != "rgb(255, 0, 0)"
    assert box["bg"] == "rgb(200, 0, 0)"  # the site's --triage-accent
    # Cross-origin from an allowed site: read, counted and live.
    wait(chrome, lambda d: d.execute_script(
        "return document.querySelector('[data-triage-count]').textContent") == "1 comment")


SPA = """<!doctype html><html><body>
<a data-triage-count="%(slug)s"></a>
<main id="app"></main>
<script src="%(api)s/widget.js" async></script>
</body></html>"""


def test_spa_mount_unmount_twice_leaks_no_stream(chrome: WebDriver, stack: Stack, mod) -> None:  # type: ignore[no-untyped-def]
    mod.decide(post_json(stack.api, "Still here.", "Ana"), "approve", actor="Ana", version=None)
    stack.pages["/spa"] = SPA % {"slug": DEMO, "api": stack.api}
    chrome.get(stack.site + "/spa")
    wait(chrome, lambda d: d.execute_script("return !!window.Triage"))
    assert open_streams(stack) == 0
    for _ in range(2):
        # A route with comments: the element is created and mounted explicitly.
        chrome.execute_script("""const el = document.createElement('div');
            el.id = 'w'; el.setAttribute('data-triage-article', arguments[0]);
            document.getElementById('app').appendChild(el); Triage.mount(el);""", DEMO)
        wait(chrome, lambda d: bodies(d, "#w") == ["Still here."])
        assert chrome.execute_script("return Triage.openStreams()") == 1
        wait(chrome, lambda d: open_streams(stack) == 1)
        chrome.execute_script("Triage.unmount(document.getElementById('w'))")
        assert chrome.execute_script("return Triage.openStreams()") == 0
        wait(chrome, lambda d: open_streams(stack) == 0)
        chrome.execute_script("document.getElementById('w').remove()")
    # An element added later, without a call, is picked up; removing it lets its stream go.
    chrome.execute_script("""const el = document.createElement('div'); el.id = 'late';
        el.setAttribute('data-triage-article', arguments[0]);
        document.getElementById('app').appendChild(el);
        const c = document.createElement('a'); c.id = 'late-count';
        c.setAttribute('data-triage-count', arguments[0]); document.body.appendChild(c);""", DEMO)
    wait(chrome, lambda d: bodies(d, "#late") == ["Still here."])
    wait(chrome, lambda d: d.execute_script("return document.getElementById('late-count').textContent") == "1 comment")
    wait(chrome, lambda d: open_streams(stack) == 1)
    chrome.execute_script("document.getElementById('late').remove()")
    wait(chrome, lambda d: open_streams(stack) == 0)
    assert chrome.execute_script("return Triage.openStreams()") == 0


def test_a_refused_origin_cannot_read(chrome: WebDriver, stack: Stack, mod) -> None:  # type: ignore[no-untyped-def]
    mod.decide(post_json(stack.api, "Only for allowed sites.", "Ana"), "approve", actor="Ana", version=None)
    stack.pages["/elsewhere"] = SPA.replace('<main id="app"></main>',
                                            f'<div data-triage-article="{DEMO}"></div>') % {
        "slug": DEMO, "api": stack.api}
    chrome.get(stack.stranger + "/elsewhere")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('.list .note') !== null"))
    assert bodies(chrome) == []
    assert "could not be loaded" in shadow(chrome, "return root.querySelector('.list').textContent")
    assert chrome.execute_script("return document.querySelector('[data-triage-count]').textContent") == ""
    logs = json.dumps(chrome.get_log("browser"))
    assert "CORS" in logs or "Access-Control-Allow-Origin" in logs


@pytest.mark.parametrize("streams_env", [{"STREAM_LIFETIME": "3"}])
def test_a_stream_that_ends_resumes_with_last_event_id_and_misses_nothing(
        chrome: WebDriver, stack: Stack, mod) -> None:  # type: ignore[no-untyped-def]
    chrome.get(stack.api + "/")
    wait(chrome, lambda d: open_streams(stack) == 1)
    first = post_json(stack.api, "Before the stream ends.", "Ana")
    mod.decide(first, "approve", actor="Ana", version=None)
    wait(chrome, lambda d: bodies(d) == ["Before the stream ends."], timeout=5)
    # The stream reaches its lifetime; the browser waits `retry` (2 s) before it comes back.
    wait(chrome, lambda d: open_streams(stack) == 0, timeout=10)
    gap = post_json(stack.api, "Published while no stream was open.", "Bo")
    mod.decide(gap, "approve", actor="Ana", version=None)
    assert open_streams(stack) == 0
    wait(chrome, lambda d: bodies(d) == ["Before the stream ends.",
                                         "Published while no stream was open."], timeout=10)
    assert chrome.execute_script("return Triage.openStreams()") == 1


@pytest.mark.parametrize("api_env", [{"RATELIMIT_ENABLED": "true",
                                      "RATELIMIT_POST_AUTHOR": "1 per 30 seconds"}])
def test_too_many_comments_says_how_long_to_wait(chrome: WebDriver, stack: Stack) -> None:
    # Limits counted by an earlier run of this test would refuse the first post too.
    client = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    for key in client.scan_iter("LIMITS*"):
        client.delete(key)
    chrome.get(stack.api + "/")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('form') !== null"))
    author = f"Quick {time.time_ns()}"
    fill_and_post(chrome, author, "A first comment.")
    wait(chrome, lambda d: shadow(d, "return root.querySelector('.mine') !== null"))
    fill_and_post(chrome, author, "And a second one at once.")
    status = "return root.querySelector('form [role=status]').textContent"
    message = wait(chrome, lambda d: shadow(d, status))
    assert "too fast" in message and "wait" in message
    assert re.search(r"wait ([1-9]|[12][0-9]|30) seconds?", message), message
    # The comment the author wrote is still there to send again.
    assert shadow(chrome, "return root.querySelector('[name=body]').value") == "And a second one at once."
