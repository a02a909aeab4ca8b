"""A real browser on the site: HTTPS and HSTS, the stylesheet under the CSP, the forms, a clean console."""

import json
import uuid

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import SECURITY_HEADERS


def _network_events(browser):
    """The DevTools Network.* events logged since the last call, as {method, params} dicts."""
    events = (json.loads(entry["message"])["message"] for entry in browser.get_log("performance"))
    return [event for event in events if event["method"].startswith("Network.")]


def _rows(browser, text):
    """The list items of the todos whose text is ``text``."""
    return browser.find_elements(By.XPATH, f"//ul[@class='todos']/li[span[@class='text']='{text}']")


def _submit(browser, button):
    """Click a form's button; wait for the page it leads to (POST, 303 See Other, GET /): a page
    without the marker set on this one, fully loaded. Chromium may answer mid-navigation with
    an error of its own (not a stale element), so any WebDriver error means "not yet"."""
    browser.execute_script("window.todoTestPageBefore = true")
    button.click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda driver: driver.execute_script(
            "return window.todoTestPageBefore === undefined && document.readyState === 'complete'"
        )
    )


def test_browser_follows_https_redirect_and_gets_hsts(browser, machine_address, site):
    """http://ADDRESS/ redirects (301) to https://ADDRESS/, whose page is served with HSTS."""
    _network_events(browser)  # drop anything logged before
    browser.get(f"http://{machine_address}/")
    assert (browser.current_url, browser.title) == (f"{site}/", "Todos · Todo")  # not Chromium's "Privacy error"
    events = _network_events(browser)
    hops = [e["params"]["redirectResponse"] for e in events if "redirectResponse" in e["params"]]
    assert [(hop["url"], hop["status"]) for hop in hops] == [(f"http://{machine_address}/", 301)]
    pages = [e["params"]["response"] for e in events if e["method"] == "Network.responseReceived"]
    [page] = [response for response in pages if response["url"] == f"{site}/"]
    headers = {name.lower(): value for name, value in page["headers"].items()}
    assert headers.get("strict-transport-security") == SECURITY_HEADERS["Strict-Transport-Security"]


def test_stylesheet_applied_under_the_csp(browser, site):
    """style.css is applied: the body's max-width (40rem) and the buttons' accent colour come only from it."""
    browser.get(f"{site}/")
    computed = "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]"
    assert browser.execute_script(computed, "body", "maxWidth") == "640px"
    assert browser.execute_script(computed, "form.add button", "backgroundColor") == "rgb(47, 111, 219)"  # #2f6fdb


def test_add_complete_delete_a_todo(browser, site):
    """A todo is added, marked done and deleted through the page's own forms (CSRF token, Referer)."""
    text = f"browser-{uuid.uuid4().hex[:12]}"
    browser.get(f"{site}/")
    try:
        browser.find_element(By.NAME, "text").send_keys(text)
        _submit(browser, browser.find_element(By.CSS_SELECTOR, "form.add button"))
        assert browser.current_url == f"{site}/"
        assert browser.find_element(By.CSS_SELECTOR, "p.flash").text == "Added."
        [row] = _rows(browser, text)
        assert row.get_attribute("class") == "open"

        _submit(browser, row.find_element(By.XPATH, ".//button[.='Done']"))
        [row] = _rows(browser, text)
        assert row.get_attribute("class") == "done"
        assert row.find_element(By.CSS_SELECTOR, "button:not(.delete)").text == "Undo"

        _submit(browser, row.find_element(By.CSS_SELECTOR, "button.delete"))
        assert browser.current_url == f"{site}/"
        assert _rows(browser, text) == []
    finally:  # leave the list as it was, whatever failed above
        browser.get(f"{site}/")
        if rows := _rows(browser, text):
            _submit(browser, rows[0].find_element(By.CSS_SELECTOR, "button.delete"))


def test_no_console_errors_or_csp_violations(browser, site):
    """No page this module loaded logged a console error or a Content Security Policy violation."""
    browser.get(f"{site}/")
    entries = browser.get_log("browser")  # everything since the browser started: nothing else reads it
    bad = [e for e in entries if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    # The one expected entry: Chromium ignores Cross-Origin-Opener-Policy on an origin whose
    # certificate it accepts only through the test's SPKI pin (not a trusted root), as it says.
    bad = [e for e in bad if "Cross-Origin-Opener-Policy header has been ignored" not in e["message"]]
    assert not bad, bad
