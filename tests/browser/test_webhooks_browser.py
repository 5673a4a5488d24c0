"""The console's Webhooks page in a real browser (headless chromium) against a receiver on
127.0.0.1: an operator creates an endpoint through the form (a mistake the form catches itself, one
only the server sees), reads its signing secret from the dialog that shows it once, pings, sees the
receiver's 500s in the delivery log, redelivers once the receiver answers 204 and sees DELIVERED;
the receiver's copies carry signatures that Python's hmac verifies with the secret from the dialog.
An auditor reads the endpoints with no write control and is told the delivery log needs OPERATOR;
the admin page links to the page."""
import base64
import hashlib
import hmac
import json
import os
import re
import sys

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import ROOT, Api, _missing
from test_console_browser import (button, by_label, notice_text, page_ready, set_text, sign_in, signed_in,
                                  unlabelled_controls, wait)

sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from platform_proc import Platform, wait_for  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

WRITE_LABELS = {"New endpoint", "Create endpoint", "Save changes", "Edit", "Ping", "Delete", "Delete endpoint",
                "Redeliver", "Deliveries"}
# two attempts, at once and 200 ms later, then FAILED (redeliverable by hand)
HOOK_ENV = {"WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_ALLOW_HTTP": "1", "WEBHOOK_RETRY_SCHEDULE": "0,200ms",
            "WEBHOOK_TIMEOUT_MS": "5000", "WEBHOOK_CONNECT_TIMEOUT_MS": "1000",
            "RATE_LIMIT_AUTH_RPS": "0", "LOGIN_GLOBAL_RPS": "0", "RPC_TIMEOUT_MS": "30000"}


@pytest.fixture(scope="module")
def platform():
    """This module's own platform: the session's one does not allow webhooks to loopback over http."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    p = Platform(HOOK_ENV).start()
    yield p
    code = p.stop()
    assert code == 0, "platform exited with %s:\n%s" % (code, p.log_tail())


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform)


@pytest.fixture
def receiver():
    """Answers 500 "boom" until the test sets answer["status"] to something else."""
    answer = {"status": 500}
    r = Receiver(behave=lambda req, n: (answer["status"], {}, b"boom" if answer["status"] >= 300 else b"")).start()
    r.answer = answer
    yield r
    r.stop()


def signature_ok(secret, copy):
    """The Standard Webhooks check, with Python's hmac and the secret as the console showed it."""
    key = base64.b64decode(secret[len("whsec_"):])
    h = copy["headers"]
    signed = b"%s.%s.%s" % (h["webhook-id"].encode(), h["webhook-timestamp"].encode(), copy["body"])
    want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(want, s) for s in h["webhook-signature"].split())


def read_log(b):
    """The browser's console entries so far; the fixture's check after the test still sees them."""
    entries = b.d.get_log("browser")
    real = b.d.get_log
    b.d.get_log = lambda kind: entries + real(kind)
    return entries


def field_error(b, pointer):
    return b.d.find_element(By.CSS_SELECTOR, "[data-field='%s'] .field-error" % pointer).text


def ping_cards(b, status=None):
    cards = b.d.find_elements(By.CSS_SELECTOR, "article.delivery[data-type='webhook.ping']")
    return [c for c in cards if status is None or c.get_attribute("data-status") == status]


def attempt_cells(card):
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in card.find_elements(By.CSS_SELECTOR, "table.attempts tbody tr")]


def too_wide(b):
    """Elements that stick out of the window (the page would scroll sideways), outside the tables'
    own scroll boxes."""
    return b.d.execute_script("""
        if (document.documentElement.scrollWidth <= window.innerWidth) return [];
        return [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth && !e.closest('.table-wrap'))
          .map((e) => e.tagName + '.' + e.className).slice(0, 10);""") or []


def no_write_control(b, what):
    controls = {e.text for e in b.d.find_elements(By.CSS_SELECTOR, "button, a.button")}
    assert not controls & WRITE_LABELS, (what, controls & WRITE_LABELS)


def test_operator_creates_pings_sees_the_500s_and_redelivers(browser, api, receiver):
    b = browser
    name, pw, _ = api.account("op", ["OPERATOR"])
    op = api.login(name, pw)
    sign_in(b, name, pw)
    signed_in(b, name)
    page_ready(b, "Dashboard")
    nav = [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    assert nav == ["Dashboard", "Events", "Reward definitions", "Review queue", "Players", "Batch grants", "Webhooks"]
    b.d.find_element(By.CSS_SELECTOR, "nav a[data-route='webhooks']").click()
    page_ready(b, "Webhooks")
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "table"), what="the endpoints")
    assert not b.d.find_elements(By.ID, "deliveries-need-operator")
    button(b.d, "New endpoint").click()
    page_ready(b, "New webhook endpoint")
    assert not unlabelled_controls(b)
    form = b.d.find_element(By.TAG_NAME, "form")
    url = by_label(form, "Receiver URL")
    assert b.d.switch_to.active_element == url

    # the form's own checks (the server's pointers and reasons): nothing is sent
    set_text(url, "ftp://example.com/hook")
    by_label(form, "reward.granted").click()  # the one checked to start with
    button(form, "Create endpoint").click()
    wait(b, lambda d: field_error(b, "/url"), what="the form's field error")
    assert field_error(b, "/url") == "must be an http:// or https:// URL"
    assert field_error(b, "/types") == "must list at least one type"
    assert url.get_attribute("aria-invalid") == "true"
    assert api.call("GET", "/events/webhooks", token=op).json()["items"] == []

    # a host only the server's URL parser refuses: its field error lands next to the field
    set_text(url, "http://bad!host.example/hook")
    by_label(form, "reward.granted").click()
    by_label(form, "webhook.ping").click()
    b.expected_http.add(400)
    button(form, "Create endpoint").click()
    wait(b, lambda d: field_error(b, "/url") == "must be an absolute URL with a host", what="the server's field error")
    box = b.d.find_element(By.CSS_SELECTOR, "form .error[role=alert]")
    assert "VALIDATION_FAILED" in box.text and len(box.find_element(By.CSS_SELECTOR, ".reqid code").text) >= 16
    assert field_error(b, "/types") == ""
    b.shot("form-refused")
    assert api.call("GET", "/events/webhooks", token=op).json()["items"] == []

    # created: the secret in a dialog that says it is shown once, and closes only with Done
    set_text(url, receiver.url)
    button(form, "Create endpoint").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]#webhook-secret-dialog"), what="the secret")[0]
    assert "shown this once and never again" in dlg.text and receiver.url in dlg.text
    secret = by_label(dlg, "Signing secret").get_attribute("value")
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret
    assert b.d.switch_to.active_element.text == "Copy secret"
    button(dlg, "Copy secret").click()
    copied = wait(b, lambda d: d.find_element(By.ID, "webhook-secret-status").text, what="the copy's outcome")
    assert copied == "Copied to the clipboard.", copied
    b.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert b.d.find_element(By.ID, "webhook-secret-dialog").get_attribute("open") is not None
    b.shot("secret-dialog")
    button(dlg, "Done, I have stored it").click()
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog"), what="the dialog to go")
    page_ready(b, "Webhook endpoint")
    notice_text(b, "Its secret is not shown again.")
    # dropped: nowhere in the page, the URL or the browser's storage
    assert not b.d.execute_script("""
        const s = arguments[0];
        return document.documentElement.outerHTML.includes(s) || location.href.includes(s)
          || [...document.querySelectorAll('input, textarea')].some((e) => e.value.includes(s))
          || JSON.stringify(localStorage).includes(s) || JSON.stringify(sessionStorage).includes(s)
          || document.cookie.includes(s);""", secret)
    eps = api.call("GET", "/events/webhooks", token=op).json()["items"]
    assert len(eps) == 1 and eps[0]["url"] == receiver.url and eps[0]["types"] == ["reward.granted", "webhook.ping"]
    ep_id = eps[0]["id"]
    assert b.d.current_url.endswith("#/webhooks/" + ep_id)

    # a ping the receiver refuses twice (the whole schedule): FAILED, both 500s in the log
    button(b.d, "Ping").click()
    notice_text(b, "Ping queued for " + receiver.url)
    card = wait(b, lambda d: ping_cards(b, "FAILED"), timeout=30, what="the ping to fail")[0]
    cells = attempt_cells(card)
    assert [c[0] for c in cells] == ["1", "2"] and [c[2] for c in cells] == ["HTTP 500", "HTTP 500"], cells
    assert all(c[4] == "boom" and re.fullmatch(r"\d+ ms", c[3]) for c in cells), cells
    webhook_id = card.find_element(By.CSS_SELECTOR, "dl code").text
    assert len(receiver.by_id()[webhook_id]) == 2
    # the endpoint's failure clock is read again with its deliveries
    wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "#webhook-facts [data-failing-since]").get_attribute(
        "data-failing-since"), what="failing since")
    b.d.execute_script("arguments[0].scrollIntoView()", card)
    b.shot("ping-failed")
    # the status filter
    Select(by_label(b.d, "Status")).select_by_value("DELIVERED")
    wait(b, lambda d: d.find_element(By.ID, "deliveries").text == "No DELIVERED deliveries.", what="the filter")
    assert b.d.current_url.endswith("?status=DELIVERED")
    Select(by_label(b.d, "Status")).select_by_value("FAILED")
    wait(b, lambda d: ping_cards(b, "FAILED"), what="the FAILED filter")
    Select(by_label(b.d, "Status")).select_by_value("")
    wait(b, lambda d: b.d.current_url.endswith("#/webhooks/" + ep_id) and ping_cards(b, "FAILED"), what="all again")

    # the receiver is fixed: redelivered by hand, DELIVERED, the third attempt a 204
    receiver.answer["status"] = 204
    button(ping_cards(b, "FAILED")[0], "Redeliver").click()
    notice_text(b, "Redelivery of webhook.ping %s queued" % webhook_id)
    card = wait(b, lambda d: ping_cards(b, "DELIVERED"), timeout=30, what="the redelivery")[0]
    assert [c[2] for c in attempt_cells(card)] == ["HTTP 500", "HTTP 500", "HTTP 204"]
    wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "#webhook-facts [data-failing-since]").get_attribute(
        "data-failing-since") == "", what="the failure clock to stop")
    b.d.execute_script("arguments[0].scrollIntoView()", card)
    b.shot("redelivered")
    copies = receiver.by_id()[webhook_id]
    assert len(copies) == 3 and len({c["body"] for c in copies}) == 1, "a redelivery sent other bytes"
    assert all(signature_ok(secret, c) for c in copies)
    assert not signature_ok("whsec_" + base64.b64encode(b"\0" * 32).decode(), copies[0])
    body = json.loads(copies[0]["body"])
    assert body["type"] == "webhook.ping" and body["data"]["endpointId"] == ep_id

    # cursor paging: 21 more pings make 22 deliveries, 20 to a page
    for _ in range(21):
        r = api.call("POST", "/events/webhooks/%s/ping" % ep_id, token=op)
        assert r.status_code == 202, r.text
    wait_for(lambda: len(api.call("GET", "/events/webhooks/%s/deliveries" % ep_id, token=op,
                                  params={"status": "DELIVERED", "limit": 100}).json()["items"]) == 22, 60, "22 pings")
    button(b.d, "Refresh").click()
    wait(b, lambda d: len(ping_cards(b, "DELIVERED")) == 20 and button(d, "Load more").is_displayed(),
         what="the first page")
    button(b.d, "Load more").click()
    wait(b, lambda d: len(ping_cards(b, "DELIVERED")) == 22 and not button(d, "Load more").is_displayed(),
         what="the second page")
    assert len({c.get_attribute("data-id") for c in ping_cards(b)}) == 22
    # on a phone: nothing wider than the screen but the tables' own scroll boxes
    b.d.set_window_size(390, 844)
    for hash_, title in [("#/webhooks/" + ep_id, "Webhook endpoint"), ("#/webhooks", "Webhooks"),
                         ("#/webhooks/%s/edit" % ep_id, "Edit webhook endpoint")]:
        b.open(hash_)
        page_ready(b, title)
        wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "article.delivery, table, form"), what=title)
        assert not too_wide(b), (title, too_wide(b))
        b.shot("phone-" + title.lower().replace(" ", "-"))
    b.d.set_window_size(1280, 800)
    b.open("#/webhooks/" + ep_id)
    page_ready(b, "Webhook endpoint")

    # edited: disabled, another type; a disabled endpoint offers no ping
    button(b.d, "Edit").click()
    page_ready(b, "Edit webhook endpoint")
    assert not unlabelled_controls(b)
    form = b.d.find_element(By.TAG_NAME, "form")
    assert by_label(form, "Receiver URL").get_attribute("value") == receiver.url
    assert by_label(form, "webhook.ping").is_selected() and not by_label(form, "reward.revoked").is_selected()
    by_label(form, "Enabled: messages are sent to it").click()
    by_label(form, "reward.revoked").click()
    button(form, "Save changes").click()
    notice_text(b, "Saved the endpoint " + receiver.url)
    page_ready(b, "Webhook endpoint")
    assert b.d.find_element(By.CSS_SELECTOR, "#webhook-facts dd[data-enabled]").text == "no"
    assert not b.d.find_elements(By.XPATH, "//button[normalize-space()='Ping']")
    got = api.call("GET", "/events/webhooks/" + ep_id, token=op).json()
    assert got["enabled"] is False and got["types"] == ["reward.granted", "reward.revoked", "webhook.ping"], got

    # deleted from the list, after a confirmation (dismissed once with Escape: nothing happens)
    b.d.find_element(By.CSS_SELECTOR, "nav a[data-route='webhooks']").click()
    page_ready(b, "Webhooks")
    row = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-id='%s']" % ep_id), what="the row")[0]
    assert row.find_element(By.CSS_SELECTOR, "td[data-enabled]").text == "no"
    button(row, "Delete").click()
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the confirmation")
    assert b.d.switch_to.active_element.text == "Cancel"
    b.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog to close")
    assert api.call("GET", "/events/webhooks/" + ep_id, token=op).status_code == 200
    button(row, "Delete").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the confirmation")[0]
    assert receiver.url in dlg.text
    button(dlg, "Delete endpoint").click()
    notice_text(b, "Deleted the endpoint " + receiver.url)
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-id='%s']" % ep_id), what="the row to go")
    assert api.call("GET", "/events/webhooks/" + ep_id, token=op).status_code == 404
    # the secret never reached the console's log
    assert not [e for e in read_log(b) if secret in e.get("message", "")]


def test_auditor_reads_endpoints_without_write_control_or_deliveries(browser, api, receiver):
    b = browser
    op = api.login(*api.account("op", ["OPERATOR"])[:2])
    r = api.call("POST", "/events/webhooks", token=op, json={"url": receiver.url, "types": ["reward.granted"]})
    assert r.status_code == 201, r.text
    ep_id = r.json()["id"]
    assert api.call("POST", "/events/webhooks/%s/ping" % ep_id, token=op).status_code == 202
    name, pw, _ = api.account("aud", ["AUDITOR"])
    sign_in(b, name, pw)
    signed_in(b, name)
    page_ready(b, "Dashboard")
    nav = [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    assert nav == ["Dashboard", "Events", "Reward definitions", "Review queue", "Players", "Batch grants", "Webhooks",
                   "Ledger", "Audit logs"]
    b.open("#/webhooks")
    page_ready(b, "Webhooks")
    row = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-id='%s']" % ep_id), what="the endpoint")[0]
    assert [td.text for td in row.find_elements(By.TAG_NAME, "td")][:4] == [receiver.url, "reward.granted", "yes", "–"]
    assert "needs the OPERATOR or ADMIN role" in b.d.find_element(By.ID, "deliveries-need-operator").text
    no_write_control(b, "the list")
    assert not unlabelled_controls(b)
    b.shot("auditor-list")
    row.find_element(By.LINK_TEXT, receiver.url).click()
    page_ready(b, "Webhook endpoint")
    facts = wait(b, lambda d: d.find_elements(By.ID, "webhook-facts"), what="the endpoint")[0]
    assert receiver.url in facts.text
    assert b.d.find_element(By.ID, "deliveries-need-operator").is_displayed()
    assert not b.d.find_elements(By.ID, "deliveries")  # never asked for: the API would answer 403
    no_write_control(b, "the endpoint")
    b.shot("auditor-endpoint")
    for hash_ in ("#/webhooks/new", "#/webhooks/%s/edit" % ep_id):
        b.open(hash_)
        page_ready(b, "Not allowed")


def test_the_admin_page_links_to_the_webhooks_page(browser, platform):
    b = browser
    sign_in(b, *platform.admin)
    signed_in(b, platform.admin[0])
    b.open("#/admin")
    page_ready(b, "Admin")
    link = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-webhooks a"), what="the link")[0]
    link.click()
    page_ready(b, "Webhooks")
    assert button(b.d, "New endpoint").is_displayed()  # an ADMIN may write
