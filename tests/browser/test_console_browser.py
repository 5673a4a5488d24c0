"""The web console in a real browser (headless chromium): an operator's day (definition and event
through the forms, a form the server refuses, a claim approved in the review queue, a 1,000-player
batch from an uploaded CSV watched to 100 %, a revoked grant), an auditor who reads the ledger and
finds no write control, and a player who is told the console is for staff."""
import datetime
import os
import sys
import time

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import players  # noqa: E402

# what the operator's test leaves for the auditor's
SCENE = {}

WRITE_LABELS = {"Edit", "Start", "End", "Clone", "Cancel", "Deactivate", "Approve", "Reject", "Revoke", "New event",
                "New definition", "Start batch", "Dry run", "Create event", "Create definition", "Roles…", "Disable"}


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait(b, cond, timeout=20, what="the page"):
    # a view re-renders as its data arrives: an element found a moment ago may be gone (stale)
    return WebDriverWait(b.d, timeout, poll_frequency=0.1, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(lambda d: cond(d), message="waiting for " + what)


def by_label(scope, text):
    label = scope.find_element(By.XPATH, ".//label[normalize-space()=%s]" % xpath_str(text))
    return scope.find_element(By.ID, label.get_attribute("for"))


def xpath_str(s):
    return "'%s'" % s if "'" not in s else 'concat("%s")' % s.replace('"', '",\'"\',"')


def button(scope, text):
    return scope.find_element(By.XPATH, ".//*[self::button or self::a][normalize-space()=%s]" % xpath_str(text))


def set_text(el, text):
    el.clear()
    el.send_keys(text)


def sign_in(b, username, password):
    b.open()
    user = wait(b, lambda d: d.find_element(By.NAME, "username"), what="the sign-in form")
    assert b.d.switch_to.active_element == user  # the form takes focus: keyboard only from here
    user.send_keys(username, Keys.TAB)
    b.d.switch_to.active_element.send_keys(password, Keys.ENTER)


def signed_in(b, username):
    wait(b, lambda d: d.find_elements(By.ID, "who-name") and d.find_element(By.ID, "who-name").text == username,
         what="the signed-in shell")


def page_ready(b, title):
    return wait(b, lambda d: [h for h in d.find_elements(By.TAG_NAME, "h1") if h.text.startswith(title)],
                what="the page %r" % title)


def unlabelled_controls(b):
    return b.d.execute_script("""
        return [...document.querySelectorAll('input, select, textarea')]
          .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby'))
          .map(e => e.outerHTML);""")


def notice_text(b, contains, timeout=20):
    return wait(b, lambda d: [n.text for n in d.find_elements(By.CSS_SELECTOR, ".notice") if contains in n.text],
                timeout, "a notice with %r" % contains)[0]


def test_admin_sets_roles(browser, api, platform):
    b = browser
    pname, ppw, uid = api.account("promote")
    sign_in(b, *platform.admin)
    signed_in(b, platform.admin[0])
    assert "Admin" in [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    b.open("#/admin")
    page_ready(b, "Admin")
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "tbody tr"), what="the accounts")

    def listed(d):
        rows = d.find_elements(By.CSS_SELECTOR, "tr[data-id='%s']" % uid)
        if not rows:
            more = button(d, "Load more")
            if more.is_displayed() and more.is_enabled():
                more.click()
        return rows
    row = wait(b, listed, timeout=60, what="the account, a page at a time")
    button(row[0], "Roles…").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog")[0]
    by_label(dlg, "AUDITOR").click()
    button(dlg, "Save roles").click()
    notice_text(b, "roles now USER, AUDITOR")
    r = api.call("POST", "/auth/login", json={"username": pname, "password": ppw})
    assert r.json()["user"]["roles"] == ["USER", "AUDITOR"]
    assert b.d.find_element(By.ID, "admin-service-accounts").is_displayed()
    b.shot("admin")


def test_operator_runs_an_event_end_to_end(browser, api, platform, tmp_path):
    b = browser
    op_name, op_pw, _ = api.account("op", ["OPERATOR"])
    gs = api.login(*api.account("gs", ["GAME_SERVER"])[:2])
    sign_in(b, op_name, op_pw)
    signed_in(b, op_name)
    page_ready(b, "Dashboard")
    nav = [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    assert nav == ["Dashboard", "Events", "Reward definitions", "Review queue", "Players", "Batch grants", "Webhooks"]
    b.shot("dashboard")

    # a reward definition through the form
    b.open("#/definitions/new")
    page_ready(b, "New reward definition")
    assert not unlabelled_controls(b)
    set_text(by_label(b.d, "Name"), "Console Gold")
    Select(by_label(b.d, "Type")).select_by_value("CURRENCY")
    set_text(by_label(b.d, "Value (JSON)"), '{"gold": 50}')
    button(b.d, "Create definition").click()
    notice_text(b, 'Created definition "Console Gold"')
    row = wait(b, lambda d: d.find_elements(By.XPATH, "//tr[td[normalize-space()='Console Gold']]"))[0]
    def_id = row.get_attribute("data-id")
    op = api.login(op_name, op_pw)

    # an event through the form: first a mistake the form catches itself, then one only the
    # server can see (the definition was deactivated meanwhile), then the fixed form is accepted
    b.open("#/events/new")
    page_ready(b, "New event")
    assert not unlabelled_controls(b)
    form = b.d.find_element(By.TAG_NAME, "form")
    set_text(by_label(form, "Title"), "")
    button(form, "Create event").click()
    err = wait(b, lambda d: d.find_element(By.CSS_SELECTOR, "[data-field='/title'] .field-error").text)
    assert err == "must be a string of 1 to 200 characters"
    set_text(by_label(form, "Title"), "Winter festival")
    button(form, "Add condition").click()
    cond = form.find_elements(By.CSS_SELECTOR, "fieldset.row")[0]
    Select(by_label(cond, "Type")).select_by_value("LEVEL_ACHIEVE")
    set_text(by_label(cond, "Value"), "10")
    set_text(by_label(cond, "Description"), "reach level 10")
    reward = form.find_elements(By.CSS_SELECTOR, "fieldset.row")[1]
    Select(by_label(reward, "Definition")).select_by_value(def_id)
    set_text(by_label(reward, "Quantity"), "2")
    by_label(form, "Claims need an operator’s approval").click()
    r = api.call("PATCH", "/events/reward-definitions/" + def_id, token=op, json={"isActive": False})
    assert r.status_code == 200, r.text
    b.expected_http.add(400)
    button(form, "Create event").click()
    field_err = wait(b, lambda d: d.find_element(
        By.CSS_SELECTOR, "[data-field='/rewards/0/rewardDefinitionId'] .field-error").text, what="the server's field error")
    assert field_err == "reward definition is inactive"
    box = b.d.find_element(By.CSS_SELECTOR, "form .error[role=alert]")
    assert "VALIDATION_FAILED" in box.text and "Request id:" in box.text
    rid = box.find_element(By.CSS_SELECTOR, ".reqid code").text
    assert len(rid) >= 16 and rid in open(platform.log_path, encoding="utf-8", errors="replace").read()
    assert b.d.find_element(By.CSS_SELECTOR, "[data-field='/rewards/0/rewardDefinitionId'] select") \
        .get_attribute("aria-invalid") == "true"
    b.shot("event-form-refused")
    r = api.call("PATCH", "/events/reward-definitions/" + def_id, token=op, json={"isActive": True})
    assert r.status_code == 200, r.text
    button(form, "Create event").click()
    notice_text(b, 'Created event "Winter festival" (ACTIVE)')
    row = wait(b, lambda d: d.find_elements(By.XPATH, "//tr[td[normalize-space()='Winter festival']]"))[0]
    event_id = row.get_attribute("data-id")

    # a player claims through the API; the operator approves in the review queue
    pl_name, pl_pw, player_id = api.account("player")
    r = api.call("POST", "/events/progress", token=gs, json={"facts": [
        {"userId": player_id, "type": "LEVEL", "value": 12, "occurredAt": iso(datetime.datetime.now(datetime.timezone.utc)),
         "idempotencyKey": "lvl-" + player_id}]})
    assert r.status_code == 200, r.text
    r = api.call("POST", "/events/%s/reward-requests" % event_id, token=api.login(pl_name, pl_pw))
    assert r.status_code == 201 and r.json()["status"] == "AWAITING_REVIEW", r.text
    request_id = r.json()["id"]
    b.open("#/reviews")
    page_ready(b, "Review queue")
    card = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "article[data-id='%s']" % request_id), what="the card")[0]
    cells = [td.text for td in card.find_elements(By.CSS_SELECTOR, "tbody td")]
    assert cells == ["reach level 10", "10", "12", "yes"]
    set_text(by_label(card, "Notes"), "level checked")
    b.shot("review-queue")
    button(card, "Approve").click()
    notice_text(b, "approved: now SUCCESS")
    r = api.call("GET", "/events/reward-requests/" + request_id, token=op)
    assert r.json()["status"] == "SUCCESS" and r.json()["notes"] == "level checked"

    # a 1,000-player batch from an uploaded CSV: dry run, start, progress to 100 %
    ids = players.seed(platform.data_dir, 1000)
    csv = tmp_path / "players.csv"
    csv.write_text("userId\r\n" + "\r\n".join(ids) + "\r\n")
    b.open("#/batches")
    page_ready(b, "Batch grants")
    form = b.d.find_element(By.CSS_SELECTOR, "form.panel")
    Select(by_label(form, "Event")).select_by_value(event_id)
    by_label(form, "…or upload a CSV file").send_keys(str(csv))
    wait(b, lambda d: d.find_element(By.ID, "batch-ids-summary").text.startswith("1000 player id(s), 1 other cell(s)"))
    set_text(by_label(form, "Reason"), "winter compensation")
    button(form, "Dry run").click()
    dry = wait(b, lambda d: d.find_elements(By.ID, "dry-run-result"), timeout=60, what="the dry run")[0]
    assert "1000 player(s)" in dry.text and "SUCCESS: 1000" in dry.text
    button(form, "Start batch").click()
    label = wait(b, lambda d: d.find_elements(By.ID, "batch-progress-label"), timeout=60, what="the progress page")[0]

    def done(d):
        lab = d.find_element(By.ID, "batch-progress-label")
        return lab.get_attribute("data-status") == "COMPLETED" and lab.get_attribute("data-percent") == "100"
    wait(b, done, timeout=180, what="the batch to reach 100 %")
    bar = b.d.find_element(By.ID, "batch-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "1000"
    assert "1000 of 1000 settled (100 %)" in label.text
    assert b.d.find_element(By.CSS_SELECTOR, "[data-count='SUCCESS']").text == "1000"
    assert b.d.find_element(By.CSS_SELECTOR, "[data-count='FAILED']").text == "0"
    notice_text(b, "Batch completed.", timeout=30)
    b.shot("batch-complete")

    # revoke the approved claim from the player's page, after a confirmation naming what goes back
    b.open("#/players/" + player_id)
    page_ready(b, "Players")
    row = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-id='%s']" % request_id), what="the history")[0]
    Select(by_label(b.d, "Event")).select_by_value(event_id)
    button(b.d, "Check eligibility").click()
    elig = wait(b, lambda d: d.find_elements(By.ID, "elig-result"), what="the eligibility")[0]
    assert elig.text == "Not eligible: ALREADY_CLAIMED · existing request %s" % request_id
    button(row, "Revoke").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the confirmation")[0]
    assert "−2 × Console Gold (CURRENCY)" in dlg.text and request_id in dlg.text
    set_text(by_label(dlg, "Reason (required)"), "granted by mistake")
    b.shot("revoke-confirm")
    button(dlg, "Revoke").click()
    notice_text(b, "now REVOKED")
    r = api.call("GET", "/events/reward-requests/" + request_id, token=op)
    assert r.json()["status"] == "REVOKED"

    # the session outlives its first access token (40 s): the console renews it on the first call
    # made within 30 s of its end (however fast the steps above went), and the pages go on working
    def refreshed():
        log = open(platform.log_path, encoding="utf-8", errors="replace").read()
        return '"route":"/auth/refresh","status":200' in log.replace(", ", ",").replace('": ', '":')

    deadline, pages = time.monotonic() + 60, ["#/reviews", "#/events"]
    while not refreshed():
        assert time.monotonic() < deadline, "the console never refreshed its access token"
        time.sleep(2)
        pages.reverse()
        b.open(pages[0])  # a page change calls the API
        wait(b, lambda d: d.find_elements(By.TAG_NAME, "h1"), what="a page")

    b.open("#/")
    page_ready(b, "Dashboard")
    summary = wait(b, lambda d: d.find_elements(By.ID, "chart-summary"), what="the chart")[0]
    assert "1001 granted, 0 failed in the last 24 hours" in summary.text
    b.shot("dashboard-after")
    # a phone: nothing wider than the screen but the tables' own scroll boxes
    b.d.set_window_size(390, 844)
    b.open("#/")
    page_ready(b, "Dashboard")
    wait(b, lambda d: d.find_elements(By.ID, "chart-summary"), what="the chart")
    assert b.d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    b.shot("phone-dashboard")
    SCENE.update(request_id=request_id, player_id=player_id, event_id=event_id)


def test_auditor_reads_the_ledger_and_has_no_write_control(browser, api):
    b = browser
    if not SCENE:
        pytest.skip("needs the operator's test (its grant and reversal) to have run")
    name, pw, _ = api.account("aud", ["AUDITOR"])
    sign_in(b, name, pw)
    signed_in(b, name)
    page_ready(b, "Dashboard")
    nav = [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "nav a")]
    assert nav == ["Dashboard", "Events", "Reward definitions", "Review queue", "Players", "Batch grants", "Webhooks",
                   "Ledger", "Audit logs"]
    for hash_, title in [("#/", "Dashboard"), ("#/events", "Events"), ("#/definitions", "Reward definitions"),
                         ("#/reviews", "Review queue"), ("#/players/" + SCENE["player_id"], "Players"),
                         ("#/batches", "Batch grants"), ("#/ledger", "Ledger"), ("#/audit", "Audit logs")]:
        b.open(hash_)
        page_ready(b, title)
        # the view renders its data after its title
        wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "table, .cards, .tiles"), what="the data of " + title)
        controls = {e.text for e in b.d.find_elements(By.CSS_SELECTOR, "button, a.button")}
        assert not controls & WRITE_LABELS, (title, controls & WRITE_LABELS)
        assert not unlabelled_controls(b), title
    # the ledger, filtered to the player: the grant and its reversal
    b.open("#/ledger?userId=" + SCENE["player_id"])
    page_ready(b, "Ledger")
    rows = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-request='%s']" % SCENE["request_id"]),
                what="the ledger rows")
    entries = [(r.get_attribute("data-entry"), r.find_elements(By.TAG_NAME, "td")[7].text) for r in rows]
    assert entries == [("GRANT", "2"), ("REVERSAL", "-2")]
    b.shot("ledger")
    # the CSV of what is shown
    button(b.d, "Export ledger CSV").click()
    notice_text(b, "Saved 2 ledger entries as ledger.csv.")
    path = os.path.join(b.downloads, "ledger.csv")
    wait(b, lambda d: os.path.exists(path), what="the download")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.startswith("seq,at,entryType,userId,") and text.count("\r\n") == 3
    assert ",REVERSAL," in text and ",-2," in text
    # the server's streamed export of the reward requests, filtered the same way
    button(b.d, "Export reward requests").click()
    notice_text(b, "Saved reward-requests.csv")
    path = os.path.join(b.downloads, "reward-requests.csv")
    wait(b, lambda d: os.path.exists(path) and os.path.getsize(path) > 0, what="the export download")
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\r\n")
    assert lines[0].startswith("id,") and len([x for x in lines[1:] if x]) == 1 and SCENE["request_id"] in lines[1]
    assert ",REVOKED," in lines[1]
    # a route only writers may open is refused in the console as well
    b.open("#/events/new")
    page_ready(b, "Not allowed")


def test_a_player_is_told_the_console_is_for_staff(browser, api):
    b = browser
    name, pw, _ = api.account("player")
    sign_in(b, name, pw)
    msg = wait(b, lambda d: d.find_elements(By.ID, "not-staff"), what="the refusal")[0]
    assert "This console is for staff" in msg.text
    assert not b.d.find_elements(By.TAG_NAME, "nav")
    assert b.d.find_element(By.NAME, "username").is_displayed()
    b.shot("not-staff")


def test_wrong_password_shows_the_api_error_with_its_request_id(browser, api):
    b = browser
    name, _, _ = api.account("op", ["OPERATOR"])
    b.expected_http.add(401)
    sign_in(b, name, "not-the-password")
    box = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, ".error[role=alert]"), what="the error")[0]
    assert "INVALID_CREDENTIALS" in box.text and "wrong username or password" in box.text
    assert len(box.find_element(By.CSS_SELECTOR, ".reqid code").text) >= 16
    assert b.d.switch_to.active_element.get_attribute("name") == "password"


def test_operator_edits_starts_ends_clones_and_cancels_events(browser, api):
    b = browser
    name, pw, _ = api.account("op", ["OPERATOR"])
    op = api.login(name, pw)
    r = api.call("POST", "/events/reward-definitions", token=op, json={"name": "Spring Gem", "type": "ITEM", "value": "gem"})
    assert r.status_code == 201, r.text
    def_id = r.json()["id"]
    now = datetime.datetime.now(datetime.timezone.utc)
    r = api.call("POST", "/events", token=op, json={
        "title": "Spring sale", "startDate": iso(now + datetime.timedelta(days=1)),
        "endDate": iso(now + datetime.timedelta(days=3)), "rewards": [{"rewardDefinitionId": def_id, "quantity": 1}]})
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    sign_in(b, name, pw)
    signed_in(b, name)

    def row_of(title):
        return wait(b, lambda d: d.find_elements(By.XPATH, "//tr[td[1][normalize-space()=%s]]" % xpath_str(title)),
                    what="the row of " + title)[0]

    def confirm(label, fill=None):
        dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog")[0]
        if fill:
            fill(dlg)
        button(dlg, label).click()
        wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog to close")

    # edit through the form, from the list filtered to UPCOMING
    b.open("#/events?status=UPCOMING")
    page_ready(b, "Events")
    assert Select(by_label(b.d, "Status")).first_selected_option.text == "UPCOMING"
    button(row_of("Spring sale"), "Edit").click()
    page_ready(b, "Edit event: Spring sale")
    set_text(by_label(b.d, "Title"), "Spring sale 2")
    button(b.d, "Save changes").click()
    notice_text(b, 'Saved event "Spring sale 2" (UPCOMING)')
    # start now, end now: each after a confirmation
    button(row_of("Spring sale 2"), "Start").click()
    confirm("Start")
    notice_text(b, 'Started "Spring sale 2"')
    wait(b, lambda d: row_of("Spring sale 2").find_element(By.CSS_SELECTOR, ".badge").text == "ACTIVE")
    button(row_of("Spring sale 2"), "End").click()
    confirm("End")
    notice_text(b, 'Ended "Spring sale 2"')
    wait(b, lambda d: row_of("Spring sale 2").find_element(By.CSS_SELECTOR, ".badge").text == "FINISHED")
    # clone with new dates, then cancel the clone (a dismissed confirmation first changes nothing)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10)

    def clone_form(dlg):
        set_text(by_label(dlg, "Title"), "Spring sale rerun")
        set_text(by_label(dlg, "Starts (UTC, ISO 8601)"), iso(later))
        set_text(by_label(dlg, "Ends (UTC, ISO 8601)"), iso(later + datetime.timedelta(days=2)))
    button(row_of("Spring sale 2"), "Clone").click()
    confirm("Clone", clone_form)
    notice_text(b, 'Cloned as "Spring sale rerun" (UPCOMING)')
    button(row_of("Spring sale rerun"), "Cancel").click()
    confirm("Cancel")
    # Escape dismisses a confirmation too, and focus starts on its harmless choice
    button(row_of("Spring sale rerun"), "Cancel").click()
    dlg = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog")[0]
    assert b.d.switch_to.active_element.text == "Cancel"
    b.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(b, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), what="the dialog to close")
    assert row_of("Spring sale rerun").find_element(By.CSS_SELECTOR, ".badge").text == "UPCOMING"
    button(row_of("Spring sale rerun"), "Cancel").click()
    b.shot("cancel-confirm")
    confirm("Cancel event", lambda dlg: set_text(by_label(dlg, "Reason (optional)"), "duplicate"))
    notice_text(b, 'Canceled "Spring sale rerun"; 0 pending request(s) settled.')
    b.open("#/events?status=CANCELED")
    page_ready(b, "Events")
    clone_id = row_of("Spring sale rerun").get_attribute("data-id")
    r = api.call("GET", "/events/" + clone_id, token=op)
    assert r.json()["status"] == "CANCELED" and r.json()["rewards"][0]["rewardDefinitionId"] == def_id
    r = api.call("GET", "/events/" + event_id, token=op)
    assert r.json()["title"] == "Spring sale 2" and r.json()["status"] == "FINISHED"
    # a definition edited, then deactivated
    b.open("#/definitions/%s/edit" % def_id)
    page_ready(b, "Edit definition: Spring Gem")
    set_text(by_label(b.d, "Description"), "a shiny gem")
    button(b.d, "Save changes").click()
    notice_text(b, 'Saved definition "Spring Gem"')
    button(row_of("Spring Gem"), "Deactivate").click()
    confirm("Deactivate")
    notice_text(b, 'Deactivated "Spring Gem"')
    r = api.call("GET", "/events/reward-definitions/" + def_id, token=op)
    assert r.json()["isActive"] is False and r.json()["description"] == "a shiny gem"
    # the list and the form on a phone: nothing wider than the screen but the tables' scroll boxes
    b.d.set_window_size(390, 844)
    for hash_, title in [("#/events", "Events"), ("#/events/new", "New event"), ("#/definitions", "Reward definitions")]:
        b.open(hash_)
        page_ready(b, title)
        wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "table, form"), what=title)
        assert b.d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), title
    b.shot("phone-event-form")



def test_a_disabled_account_is_sent_back_to_sign_in_with_the_reason(browser, api, platform):
    b = browser
    name, pw, uid = api.account("op", ["OPERATOR"])
    sign_in(b, name, pw)
    signed_in(b, name)
    page_ready(b, "Dashboard")
    admin = api.login(*platform.admin)
    r = api.call("PUT", "/auth/users/%s/status" % uid, token=admin, json={"disabled": True, "reason": "left"})
    assert r.status_code == 200, r.text
    # the next call is refused (401), the refresh too (403 ACCOUNT_DISABLED): back to sign-in, with why
    b.expected_http.update({401, 403})

    def ended(d):
        d.find_element(By.CSS_SELECTOR, "nav a[data-route='events']").click()
        return d.find_elements(By.ID, "session-ended")
    box = wait(b, lambda d: d.find_elements(By.ID, "session-ended") or ended(d), timeout=30,
               what="the session to end")[0]
    assert "Your session has ended" in box.text and "ACCOUNT_DISABLED" in box.text
    assert not b.d.find_elements(By.TAG_NAME, "nav")
    b.shot("session-ended")
