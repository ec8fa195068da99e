"""The moderator screen in real Chromium against the real API under gunicorn.

Comments are posted over HTTP, then held with `record_engine_decision` rather than by a worker:
the screen is what is under test here, and fixed verdicts (categories, spans, urgency) keep it
deterministic whatever the filters' wording does; the worker path has its own integration tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from services.api.ui import CSP
from services.comments.service import CommentService
from tests.conftest import DEMO
from tests.verdicts import verdict

PUBLIC = f"/v1/articles/{DEMO}/comments"


def post(base: str, body: str, author: str) -> str:
    resp = requests.post(base + PUBLIC, json={"author": author, "body": body}, timeout=10)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def hold(service: CommentService, cid: str, body: str, flagged: str, category: str,
         priority: str = "normal") -> None:
    """Hold a comment as the engine would, flagging the first occurrence of `flagged`."""
    start = body.index(flagged)
    assert service.record_engine_decision(cid, verdict(
        "hold", priority, [category],
        findings=[{"category": category, "score": 0.93, "rule": f"{category}.test",
                   "spans": [[start, start + len(flagged)]], "detail": ""}],
        scores={category: 0.93, "spam": 0.12} if category != "spam" else {"spam": 0.88},
        policy_version="policy@browser-test"))


def wait(driver: WebDriver, predicate: Any, timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(predicate)


# Read in one script call: the list is re-rendered by polling, so element handles go stale.
def queue_ids(driver: WebDriver) -> list[str]:
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('.queue-item'), b => b.dataset.id)"))


def selected_id(driver: WebDriver) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "const b = document.querySelector('.queue-item[aria-current=\"true\"]');"
        "return b ? b.dataset.id : null")


def focused_id(driver: WebDriver) -> str | None:
    return driver.execute_script("return document.activeElement.dataset.id || null")  # type: ignore[no-any-return]


def sign_in(driver: WebDriver, base: str, key: str) -> None:
    driver.get(base + "/moderate")
    field = wait(driver, lambda d: d.find_element(By.ID, "key"))
    field.send_keys(key)
    field.send_keys(Keys.ENTER)


def press(driver: WebDriver, keys: str) -> None:
    """Type shortcut keys at whatever has focus (as a moderator would)."""
    driver.switch_to.active_element.send_keys(keys)


def severe_console_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]


@pytest.mark.browser
def test_moderator_approves_an_urgent_first_queue_with_the_keyboard(
        live_api, moderator_key, service, chrome, artifacts: Path) -> None:
    base = live_api.url
    bodies = {
        "spam": ("Cheap pills at best-pharma-deals.example, order today!", "best-pharma-deals.example"),
        "crisis": ("I can't do this anymore. Tonight I am going to end it.", "going to end it"),
        "medical": ("Stop your antidepressants and take ketamine at home instead.",
                    "Stop your antidepressants"),
    }
    spam = post(base, bodies["spam"][0], "Deals Bot")
    crisis = post(base, bodies["crisis"][0], "Sam")
    medical = post(base, bodies["medical"][0], "Kim")
    hold(service, spam, *bodies["spam"], category="spam")
    hold(service, crisis, *bodies["crisis"], category="self_harm", priority="urgent")
    hold(service, medical, *bodies["medical"], category="unsafe_medical")

    sign_in(chrome, base, moderator_key)
    wait(chrome, lambda d: len(queue_ids(d)) == 3)
    assert moderator_key not in chrome.current_url
    assert chrome.execute_script("return sessionStorage.getItem('triage.moderatorKey')") == moderator_key

    # Urgent pinned first and marked in words, not only by colour.
    assert queue_ids(chrome) == [crisis, spam, medical]
    first = wait(chrome, lambda d: d.find_element(By.CSS_SELECTOR, ".queue-item").get_attribute("class"))
    assert "is-urgent" in first
    badge = wait(chrome, lambda d: d.find_element(By.CSS_SELECTOR, ".queue-item .badge.urgent").text)
    assert badge.strip().lower().endswith("urgent")
    assert not chrome.find_elements(By.CSS_SELECTOR, f'.queue-item[data-id="{spam}"] .badge.urgent')

    # The first item is selected, with the engine's span highlighted and its history loaded.
    wait(chrome, lambda d: selected_id(d) == crisis)
    marks = wait(chrome, lambda d: [m.text for m in d.find_elements(By.CSS_SELECTOR, "#comment-text mark")])
    assert marks == ["going to end it"]
    assert "self harm" in chrome.find_element(By.ID, "comment-text").text.lower()
    assert not chrome.find_element(By.ID, "detail-urgent").get_attribute("hidden")
    wait(chrome, lambda d: "engine" in d.find_element(By.ID, "history").text)
    assert "Held" in chrome.find_element(By.ID, "history").text
    shot = artifacts / "moderate-queue.png"
    chrome.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # j/k move the selection (and keyboard focus) through the list.
    press(chrome, "j")
    wait(chrome, lambda d: selected_id(d) == spam)
    assert focused_id(chrome) == spam
    press(chrome, "j")
    wait(chrome, lambda d: selected_id(d) == medical)
    press(chrome, "k")
    wait(chrome, lambda d: selected_id(d) == spam)
    wait(chrome, lambda d: d.find_element(By.ID, "detail-title").text == "Comment by Deals Bot")
    wait(chrome, lambda d: "engine" in d.find_element(By.ID, "history").text)

    # "/" jumps to the reason, Esc goes back to the list, "a" approves.
    press(chrome, "/")
    assert chrome.switch_to.active_element.get_attribute("id") == "reason"
    press(chrome, "a legitimate pharmacy, checked")
    press(chrome, Keys.ESCAPE)
    assert focused_id(chrome) == spam
    press(chrome, "a")
    wait(chrome, lambda d: "Approved" in d.find_element(By.ID, "messages").text)
    wait(chrome, lambda d: queue_ids(d) == [crisis, medical])
    # The next comment takes the approved one's place in the selection.
    wait(chrome, lambda d: selected_id(d) == medical)

    public = requests.get(base + PUBLIC, timeout=10).json()["items"]
    assert [i["body"] for i in public if i["id"] == spam] == [bodies["spam"][0]]
    detail = requests.get(f"{base}/v1/moderation/comments/{spam}",
                          headers={"Authorization": f"Bearer {moderator_key}"}, timeout=10).json()
    last = detail["history"][-1]
    assert (last["actor"], last["from"], last["to"]) == ("Ana", "held", "approved")
    assert last["reason"] == "a legitimate pharmacy, checked"

    # A new held comment appears without a reload, and the selection stays put.
    late_body = "Buy followers now at cheap-followers.example"
    late = post(base, late_body, "Late Bot")
    hold(service, late, late_body, "cheap-followers.example", category="spam")
    wait(chrome, lambda d: late in queue_ids(d), timeout=20)
    assert queue_ids(chrome) == [crisis, medical, late]
    assert selected_id(chrome) == medical
    wait(chrome, lambda d: "new comment" in d.find_element(By.ID, "messages").text)

    # The reported tab is there and empty; the held queue comes back with the selection on top.
    chrome.find_element(By.CSS_SELECTOR, '.tab[data-status="reported"]').click()
    wait(chrome, lambda d: "Nothing reported" in d.find_element(By.ID, "queue-count").text)
    chrome.find_element(By.CSS_SELECTOR, '.tab[data-status="held"]').click()
    wait(chrome, lambda d: queue_ids(d) == [crisis, medical, late])

    assert severe_console_errors(chrome) == []


@pytest.mark.browser
def test_comment_markup_is_shown_as_text_never_run(live_api, moderator_key, service, chrome) -> None:
    base = live_api.url
    body = ('<img src=x onerror="window.__pwned=1"> look <b>here</b> '
            '<script>window.__pwned=2</script> 😀 and then end it all')
    cid = post(base, body, '<img src=y onerror="window.__pwned=3">')
    stored = requests.get(f"{base}/v1/moderation/comments/{cid}",
                          headers={"Authorization": f"Bearer {moderator_key}"}, timeout=10).json()["body"]
    # Spans count code points (the emoji before the span must not shift it in the browser).
    hold(service, cid, stored, "end it all", category="self_harm", priority="urgent")

    sign_in(chrome, base, moderator_key)
    wait(chrome, lambda d: queue_ids(d) == [cid])
    text = wait(chrome, lambda d: d.find_element(By.ID, "comment-text"))
    marks = wait(chrome, lambda d: [m.text for m in d.find_elements(By.CSS_SELECTOR, "#comment-text mark")])
    assert marks == ["end it all"]
    assert "<img src=x" in text.text and "<b>here</b>" in text.text
    assert chrome.find_elements(By.CSS_SELECTOR, "#comment-text img, #comment-text b, "
                                                 "#comment-text script, .queue-item img") == []
    assert "<img src=y" in chrome.find_element(By.ID, "detail-title").text
    time.sleep(0.5)
    assert chrome.execute_script("return window.__pwned === undefined")
    assert severe_console_errors(chrome) == []


@pytest.mark.browser
def test_a_bad_or_revoked_key_goes_back_to_sign_in(live_api, moderator_key, service, chrome) -> None:
    sign_in(chrome, live_api.url, "not-a-key")
    wait(chrome, lambda d: "not accepted" in d.find_element(By.ID, "messages").text)
    assert chrome.find_element(By.ID, "signin").is_displayed()
    assert not chrome.find_element(By.ID, "workspace").is_displayed()
    assert chrome.execute_script("return sessionStorage.getItem('triage.moderatorKey')") is None

    from services.comments.moderation import ModerationService

    mod = ModerationService(service)
    row, key = mod.create_key("Temp", "moderator")
    sign_in(chrome, live_api.url, key)
    wait(chrome, lambda d: d.find_element(By.ID, "workspace").is_displayed())
    mod.revoke_key(row.id)
    # The next poll is refused and the screen returns to sign-in, saying why.
    wait(chrome, lambda d: d.find_element(By.ID, "signin").is_displayed(), timeout=15)
    assert "not accepted" in chrome.find_element(By.ID, "messages").text


def test_page_and_assets_send_a_strict_policy(client) -> None:
    for path in ("/moderate", "/moderate/assets/moderate.js", "/moderate/assets/moderate.css"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                      "connect-src 'self'", "img-src 'self'", "base-uri 'none'",
                      "form-action 'self'", "frame-ancestors 'none'"):
        assert directive in CSP
    html = client.get("/moderate").get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert client.get("/moderate/assets/ui.py").status_code == 404
    js = client.get("/moderate/assets/moderate.js").get_data(as_text=True)
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


@pytest.mark.browser
def test_a_stale_decision_is_refused_reloaded_and_explained(live_api, moderator_key, service, chrome) -> None:
    base = live_api.url
    body = "Visit cheap-meds.example for pills"
    cid = post(base, body, "Bot")
    hold(service, cid, body, "cheap-meds.example", category="spam")
    sign_in(chrome, base, moderator_key)
    wait(chrome, lambda d: selected_id(d) == cid)
    wait(chrome, lambda d: "engine" in d.find_element(By.ID, "history").text)
    # Hold back the queue poll so the screen cannot learn of the other decision before ours.
    chrome.execute_script(
        "const real = window.fetch; window.fetch = (url, init) => "
        "String(url).startsWith('/v1/moderation/queue') ? new Promise(() => {}) : real(url, init);")
    from services.comments.moderation import ModerationService

    version = requests.get(f"{base}/v1/moderation/comments/{cid}",
                           headers={"Authorization": f"Bearer {moderator_key}"}, timeout=10).json()["version"]
    ModerationService(service).decide(cid, "reject", "Bea", version, "spam")
    press(chrome, "a")
    wait(chrome, lambda d: "Someone changed this comment" in d.find_element(By.ID, "messages").text)
    wait(chrome, lambda d: "Bea" in d.find_element(By.ID, "history").text)
    assert "Rejected" in chrome.find_element(By.ID, "detail-meta").text
    # Now reviewed at the current version, the moderator's approval goes through.
    press(chrome, "a")
    wait(chrome, lambda d: "Approved" in d.find_element(By.ID, "messages").text)
    public = requests.get(base + PUBLIC, timeout=10).json()["items"]
    assert cid in {i["id"] for i in public}


@pytest.mark.browser
def test_a_report_raised_alert_is_told_apart_from_an_engine_crisis(live_api, moderator_key, service, chrome) -> None:
    base = live_api.url
    crisis_body = "Tonight I am going to end it."
    crisis = post(base, crisis_body, "Sam")
    hold(service, crisis, crisis_body, "going to end it", category="self_harm", priority="urgent")
    reported = post(base, "A published comment a reader worried about.", "Lee")
    assert service.record_engine_decision(reported, verdict("publish", "normal", []))
    r = requests.post(f"{base}/v1/comments/{reported}/reports", json={"reason": "self_harm"}, timeout=10)
    assert r.status_code == 202
    sign_in(chrome, base, moderator_key)
    wait(chrome, lambda d: sorted(queue_ids(d)) == sorted([crisis, reported]))
    badge = wait(chrome, lambda d: d.find_element(
        By.CSS_SELECTOR, f'.queue-item[data-id="{reported}"] .badge.raised-reports').text)
    assert "report" in badge.lower()
    assert not chrome.find_elements(By.CSS_SELECTOR, f'.queue-item[data-id="{crisis}"] .badge.raised-reports')
