"""Service accounts on the console's Admin page (issue 14), in a real browser: an admin creates a
GAME_SERVER account through the form (after the server's field errors are shown next to the
fields), copies the key from the dialog that shows it once, and the key reports progress through
the API; the admin rotates with a grace period, revokes the first key (the API refuses it with
401 within 5 s while the second still works), then deletes the account (its last key dies too).
The key never reaches the URL, storage, the page once its dialog is closed, the browser's console
or the platform's log. An OPERATOR sees no service-account control and the console never asks
the API for them on its behalf."""
import datetime
import json
import re
import time
import uuid

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from test_console_browser import (button, by_label, iso, notice_text, page_ready, set_text, sign_in, signed_in,
                                  unlabelled_controls, wait)

KEY_RE = re.compile(r"^rpk_[A-Za-z0-9_-]{43}$")
LIMIT_S = 5.0
SA_LABELS = {"Create service account", "Rotate key…", "Revoke", "Delete…", "Copy key", "Rotate key", "Revoke key",
             "Delete account"}


def dialog(b, what="the dialog"):
    return wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what=what)[0]


def dialog_closed(b):
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog"), what="the dialog to close and go")


def sa_row(b, name):
    return wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-service-accounts tr[data-name='%s']" % name),
                what="the row of " + name)[0]


def key_ids(row):
    return [r.get_attribute("data-key") for r in row.find_elements(By.CSS_SELECTOR, "tr[data-key]")]


def key_status(platform, key):
    return requests.get(platform.url("/events"), headers={"Authorization": "Bearer " + key}, timeout=10)


def dies_within(platform, key, code, since):
    """Polls GET /events with key until it answers 401 code; fails unless that happens within
    LIMIT_S of since. Returns the seconds it took."""
    while True:
        r = key_status(platform, key)
        elapsed = time.monotonic() - since
        if r.status_code == 401:
            assert r.json()["error"]["code"] == code, r.text
            return elapsed
        assert r.status_code == 200, r.text
        assert elapsed <= LIMIT_S, "key still accepted %.1f s after the console's click" % elapsed
        time.sleep(0.05)


def key_nowhere_in_the_page(b, key):
    """The key is not in the URL, web storage, cookies, the DOM (attributes and text) or any
    form field's value, and no dialog is left in the document."""
    found = b.d.execute_script("""
        const key = arguments[0];
        const where = [];
        if (location.href.includes(key)) where.push('url');
        for (const [n, s] of [['localStorage', localStorage], ['sessionStorage', sessionStorage]])
          for (let i = 0; i < s.length; i++)
            if (s.key(i).includes(key) || (s.getItem(s.key(i)) || '').includes(key)) where.push(n);
        if (document.cookie.includes(key)) where.push('cookie');
        if (document.documentElement.outerHTML.includes(key)) where.push('dom');
        if (document.body.innerText.includes(key)) where.push('text');
        if ([...document.querySelectorAll('input, textarea')].some((e) => e.value.includes(key))) where.push('field');
        if (JSON.stringify(history.state || null).includes(key)) where.push('history');
        if (document.querySelector('dialog')) where.push('dialog');
        return where;""", key)
    assert found == [], found
    assert b.d.execute_script("return localStorage.length + sessionStorage.length") == 0


def test_admin_manages_a_game_server_key_in_the_console(browser, api, platform):
    b = browser
    _, _, player_id = api.account("sa_player")
    name = "gs_" + uuid.uuid4().hex[:10]
    sign_in(b, *platform.admin)
    signed_in(b, platform.admin[0])
    b.d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": "http://127.0.0.1:%d" % platform.port,
        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    b.open("#/admin")
    page_ready(b, "Admin")
    section = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-service-accounts form#sa-create"),
                   what="the service-account form")[0]
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-service-accounts table"), what="the list")
    assert not unlabelled_controls(b)

    # the server's field errors next to the fields: a bad name and no role
    b.expected_http.add(400)
    set_text(by_label(section, "Name"), "x")
    gs_box = by_label(section, "GAME_SERVER")
    assert gs_box.is_selected()  # the usual case is the default
    gs_box.click()
    button(section, "Create service account").click()
    err = wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "#sa-create [data-field='/name'] .field-error").text,
               what="the server's field error")
    assert err == "does not match the required pattern"
    assert b.d.find_element(By.CSS_SELECTOR, "#sa-create [data-field='/roles'] .field-error").text == "has too few items"
    assert by_label(section, "Name").get_attribute("aria-invalid") == "true"
    assert "VALIDATION_FAILED" in section.find_element(By.CSS_SELECTOR, ".error[role=alert]").text
    b.shot("sa-field-errors")

    # created: the key is shown once, in a dialog that says so, and copied through the clipboard API
    set_text(by_label(section, "Name"), name)
    gs_box.click()
    button(section, "Create service account").click()
    dlg = dialog(b, "the key dialog")
    assert "This key is shown only now." in dlg.text and name in dlg.text
    key = dlg.find_element(By.ID, "new-key").get_attribute("value")
    assert KEY_RE.match(key), key
    field = by_label(dlg, "API key")
    assert field.get_attribute("readonly") is not None and field.get_attribute("type") == "text"
    # readable in full, without scrolling inside the field
    assert b.d.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", field)
    assert b.d.switch_to.active_element.text == "Copy key"
    assert key not in b.d.current_url
    button(dlg, "Copy key").click()
    wait(b, lambda d: d.find_element(By.ID, "new-key-status").text == "Copied to the clipboard.", what="the copy")
    pasted = b.d.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done('refused: ' + e));")
    assert pasted == key
    b.shot("sa-key-dialog")
    button(dlg, "I have stored the key: close").click()
    dialog_closed(b)
    notice_text(b, "Created service account %s (GAME_SERVER)." % name)
    key_nowhere_in_the_page(b, key)
    row = sa_row(b, name)
    first_key_id = key_ids(row)[0]
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "GAME_SERVER"
    # a taken name (names compare case-insensitively): the server's refusal next to the name
    b.expected_http.add(409)
    set_text(by_label(section, "Name"), name.upper())
    button(section, "Create service account").click()
    err = wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "#sa-create [data-field='/name'] .field-error").text,
               what="the taken name")
    assert err == "a service account with this name exists"
    assert "NAME_TAKEN" in section.find_element(By.CSS_SELECTOR, ".error[role=alert]").text
    assert not b.d.find_elements(By.CSS_SELECTOR, "dialog")

    # the key works through the API: a game server reports progress
    r = api.call("POST", "/events/progress", token=key, json={"facts": [
        {"userId": player_id, "type": "LEVEL", "value": 3, "occurredAt": iso(datetime.datetime.now(datetime.timezone.utc)),
         "idempotencyKey": "lvl-" + player_id}]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    # the list shows the key's last use once the page is opened again
    b.open("#/")
    page_ready(b, "Dashboard")
    b.open("#/admin")
    page_ready(b, "Admin")
    cells = sa_row(b, name).find_elements(By.CSS_SELECTOR, "tr[data-key='%s'] td" % first_key_id)
    assert cells[2].text == "never" and cells[3].text not in ("", "–"), [c.text for c in cells]

    # rotate with a grace period: a refused grace first (the server's error in the dialog), then an hour
    button(sa_row(b, name), "Rotate key…").click()
    dlg = dialog(b, "the rotation dialog")
    assert b.d.switch_to.active_element.text == "Cancel"
    set_text(by_label(dlg, "Grace period (optional)"), "-1")
    button(dlg, "Rotate key").click()
    err = wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "dialog[open] [data-field='/graceSeconds'] .field-error").text,
               what="the server's grace error")
    assert err == "must be >= 0"
    set_text(by_label(dlg, "Grace period (optional)"), "1")
    assert by_label(dlg, "Unit").get_attribute("value") == "3600"
    b.shot("sa-rotate")
    button(dlg, "Rotate key").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open].key-dialog"), what="the new key")[0]
    second = dlg.find_element(By.ID, "new-key").get_attribute("value")
    assert KEY_RE.match(second) and second != key
    dlg.find_element(By.ID, "new-key").send_keys(Keys.ESCAPE)  # Escape closes it as well
    dialog_closed(b)
    notice_text(b, "Rotated the key of %s: the old key(s) keep working for the grace period." % name)
    key_nowhere_in_the_page(b, second)
    row = sa_row(b, name)
    wait(b, lambda d: len(key_ids(sa_row(b, name))) == 2, what="both keys listed")
    row = sa_row(b, name)
    ids = key_ids(row)
    assert ids[0] == first_key_id
    expires = row.find_element(By.CSS_SELECTOR, "tr[data-key='%s']" % first_key_id).find_elements(By.TAG_NAME, "td")[2]
    assert expires.text != "never"
    assert key_status(platform, key).status_code == 200 and key_status(platform, second).status_code == 200
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    b.shot("sa-two-keys")

    # revoke the first key, after a confirmation: the API refuses it within 5 s, the second lives on
    button(row.find_element(By.CSS_SELECTOR, "tr[data-key='%s']" % first_key_id), "Revoke").click()
    dlg = dialog(b, "the revocation's confirmation")
    assert first_key_id in dlg.text
    b.shot("sa-revoke-confirm")
    button(dlg, "Revoke key").click()
    clicked = time.monotonic()
    took = dies_within(platform, key, "API_KEY_REVOKED", clicked)
    notice_text(b, "Revoked key %s of %s." % (first_key_id, name))
    assert took <= LIMIT_S
    assert key_status(platform, second).status_code == 200
    wait(b, lambda d: key_ids(sa_row(b, name)) == [ids[1]], what="one key left")
    b.shot("sa-list")

    # delete the account, after a confirmation (dismissed once: nothing changes)
    button(sa_row(b, name), "Delete…").click()
    button(dialog(b), "Cancel").click()
    dialog_closed(b)
    assert key_status(platform, second).status_code == 200
    button(sa_row(b, name), "Delete…").click()
    button(dialog(b), "Delete account").click()
    clicked = time.monotonic()
    dies_within(platform, second, "INVALID_API_KEY", clicked)
    notice_text(b, "Deleted service account %s." % name)
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "#admin-service-accounts tr[data-name='%s']" % name),
         what="the row to go")

    # neither key was ever written to the browser's console or the platform's log
    for k in (key, second):
        key_nowhere_in_the_page(b, k)
        assert k not in json.dumps(b.logs())
        assert k not in open(platform.log_path, encoding="utf-8", errors="replace").read()
    # the page on a phone: nothing wider than the screen but the tables' own scroll boxes
    b.d.set_window_size(390, 844)
    b.open("#/")
    page_ready(b, "Dashboard")
    b.open("#/admin")
    page_ready(b, "Admin")
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-service-accounts table"), what="the list")
    assert b.d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_an_operator_sees_no_service_account_controls(browser, api, platform):
    b = browser
    name, pw, uid = api.account("sa_op", ["OPERATOR"])
    sign_in(b, name, pw)
    signed_in(b, name)
    page_ready(b, "Dashboard")
    assert "Admin" not in [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    for hash_, title in [("#/", "Dashboard"), ("#/events", "Events"), ("#/admin", "Not allowed")]:
        b.open(hash_)
        page_ready(b, title)
        assert not b.d.find_elements(By.ID, "admin-service-accounts")
        assert not b.d.find_elements(By.ID, "sa-create")
        controls = {e.text for e in b.d.find_elements(By.CSS_SELECTOR, "button, a.button")}
        assert not controls & SA_LABELS, (title, controls & SA_LABELS)
    # the console never asked for service accounts on the operator's behalf
    with open(platform.log_path, encoding="utf-8", errors="replace") as f:
        lines = [json.loads(x) for x in f if x.startswith("{")]
    asked = [x for x in lines if x.get("module") == "access" and x.get("userId") == uid
             and "service-accounts" in (x.get("route") or "")]
    assert asked == []
    b.shot("operator-no-admin")
