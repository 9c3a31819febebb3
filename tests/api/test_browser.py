"""The web page at ``/``, end to end: the real app on loopback, driven in a real headless Chromium by Selenium."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver  # noqa: E402  (a test dependency: installed by scripts/install)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.api.test_http import Server, app_with
from tests.conftest import SHIPPED

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# CI installs the browser (scripts/install, as root) and must run this test; elsewhere a missing
# browser is reported as a skip with the reason.
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"), reason="needs chromium and chromedriver (scripts/install adds them as root)"
)

QUESTION = "PatroniNoLeader is firing, what should I check?"
WAIT_S = 30  # every wait is explicit and bounded
CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1366,860",
]

# Where the highlighted cited line sits: inside the panel's visible area, and inside the window.
CITED_IN_VIEW_JS = """
const body = document.getElementById('source-body');
const hl = body.querySelector('.line.hl');
if (!hl) return null;
const b = body.getBoundingClientRect(), h = hl.getBoundingClientRect();
return {n: Number(hl.dataset.n), inPanel: h.top >= b.top - 1 && h.bottom <= b.bottom + 1,
        inWindow: h.top >= 0 && h.bottom <= window.innerHeight + 1, scrollTop: body.scrollTop,
        offsetTop: hl.offsetTop, clientHeight: body.clientHeight,
        highlighted: [...body.querySelectorAll('.line.hl')].map(e => Number(e.dataset.n))};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_url(shipped_kb) -> Iterator[str]:
    with Server(app_with(shipped_kb.settings, shipped_kb)) as url:
        yield url


def wait(driver: WebDriver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT_S)


def mode_is(driver: WebDriver, value: str) -> bool:
    return driver.find_element(By.ID, "mode").text.strip() == value


def cited_in_view(driver: WebDriver, citation: dict) -> dict:
    """Wait until the panel shows the citation's source with its start line highlighted, then report where that line is."""
    wait(driver).until(lambda d: (r := d.execute_script(CITED_IN_VIEW_JS)) and r["n"] == citation["lines"][0])
    info = driver.execute_script(CITED_IN_VIEW_JS)
    start, end = citation["lines"]
    assert info["highlighted"] == list(range(start, end + 1)), info
    assert info["inPanel"] and info["inWindow"], info
    if info["offsetTop"] > info["clientHeight"]:  # the cited line was below the fold: the panel scrolled to it
        assert info["scrollTop"] > 0, info
    return info


def assert_source_text(driver: WebDriver, citation: dict) -> None:
    """The panel shows the file's own lines, numbered as on disk."""
    lines = (SHIPPED / citation["path"]).read_text(encoding="utf-8-sig").splitlines()
    start = citation["lines"][0]
    row = driver.find_element(By.ID, f"L{start}")
    assert row.find_element(By.CSS_SELECTOR, ".ln").text == str(start)
    assert row.find_element(By.CSS_SELECTOR, ".lt").text.strip() == lines[start - 1].strip()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#source-body .line")) == len(lines)
    assert citation["path"] in driver.find_element(By.ID, "source-meta").text
    family = driver.execute_script("return getComputedStyle(document.querySelector('#source-body .lt')).fontFamily")
    assert "mono" in family.lower(), family


def test_ask_then_open_the_cited_source(browser: WebDriver, page_url: str, tmp_path: Path) -> None:
    expected = httpx.post(f"{page_url}/v1/ask", json={"question": QUESTION}, timeout=WAIT_S).json()
    assert expected["mode"] == "extractive" and len(expected["citations"]) >= 1

    browser.get(page_url + "/")
    assert "sre-kb" in browser.title
    box = wait(browser).until(EC.element_to_be_clickable((By.ID, "question")))
    assert browser.switch_to.active_element == box  # the question box has focus on load
    label = browser.find_element(By.CSS_SELECTOR, "label[for=question]")
    assert label.text == "Question"
    box.send_keys(QUESTION)
    box.send_keys(Keys.ENTER)  # Enter asks (streamed, the default)

    wait(browser).until(lambda d: mode_is(d, "extractive"))
    assert browser.find_element(By.ID, "intent").text == expected["intent"]
    answer = browser.find_element(By.ID, "answer")
    markers = answer.find_elements(By.CSS_SELECTOR, "a.marker")
    assert markers and re.fullmatch(r"\[\d+\]", markers[0].text)
    assert markers[0].get_attribute("href").endswith(f"#cite-{markers[0].text.strip('[]')}")
    assert "`" not in answer.text and "**" not in answer.text  # inline code / bold rendered, not shown raw
    items = browser.find_elements(By.CSS_SELECTOR, "#citations > li")
    assert [li.find_element(By.CSS_SELECTOR, "button.cite-open").text for li in items] == [c["label"] for c in expected["citations"]]
    assert not browser.find_element(By.ID, "error").is_displayed()

    # the first citation: the source panel opens on the file, the cited lines highlighted and in view
    first = expected["citations"][0]
    items[0].find_element(By.CSS_SELECTOR, "button.cite-open").click()
    cited_in_view(browser, first)
    assert_source_text(browser, first)
    assert browser.switch_to.active_element.get_attribute("id") == "source-title"  # focus moves to the panel
    assert "current" in items[0].get_attribute("class")

    shot = Path(os.environ.get("SREKB_SCREENSHOT_DIR") or tmp_path) / "browser-ask.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # a marker in the answer opens its citation's source too (the last one: likely further down its file)
    last_marker = answer.find_elements(By.CSS_SELECTOR, "a.marker")[-1]
    citation = next(c for c in expected["citations"] if c["n"] == int(last_marker.text.strip("[]")))
    last_marker.click()
    cited_in_view(browser, citation)
    assert_source_text(browser, citation)
    browser.save_screenshot(str(shot.with_name("browser-marker.png")))

    # Escape closes the panel and gives focus back to what opened it
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser).until(lambda d: not d.find_element(By.ID, "source").is_displayed())
    assert browser.switch_to.active_element.get_attribute("class") == "marker"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no script errors, nothing failed to load


def test_api_errors_are_shown_then_a_plain_json_answer(browser: WebDriver, page_url: str) -> None:
    browser.get(page_url + "/")
    box = wait(browser).until(EC.element_to_be_clickable((By.ID, "question")))
    browser.find_element(By.ID, "stream").click()  # the non-streaming JSON route
    assert not browser.find_element(By.ID, "stream").is_selected()
    browser.execute_script("arguments[0].value = 'y'.repeat(3000)", box)  # over the query length limit: 400 invalid_query
    browser.find_element(By.ID, "ask-button").click()
    error = wait(browser).until(EC.visibility_of_element_located((By.ID, "error")))
    assert "400" in error.text and "invalid_query" in error.text
    assert error.get_attribute("role") == "alert"
    assert not browser.find_element(By.ID, "result").is_displayed()

    box.clear()
    box.send_keys(QUESTION)
    browser.find_element(By.ID, "ask-button").click()
    wait(browser).until(lambda d: mode_is(d, "extractive"))
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#answer a.marker")
    assert browser.find_elements(By.CSS_SELECTOR, "#citations > li")


def test_api_key_is_asked_for_and_sent(browser: WebDriver, shipped_kb) -> None:
    settings = shipped_kb.settings.model_copy(update={"api_keys": ["s3cret"]})
    with Server(app_with(settings, shipped_kb)) as url:
        browser.get(url + "/")
        box = wait(browser).until(EC.element_to_be_clickable((By.ID, "question")))
        box.send_keys(QUESTION)
        browser.find_element(By.ID, "ask-button").click()
        error = wait(browser).until(EC.visibility_of_element_located((By.ID, "error")))
        assert "401" in error.text and "Bearer" in error.text
        key = browser.find_element(By.ID, "api-key")
        assert key.is_displayed() and browser.switch_to.active_element == key  # the key box opens with focus
        key.send_keys("s3cret", Keys.ENTER)
        assert browser.execute_script("return sessionStorage.getItem('srekb.apiKey')") == "s3cret"
        assert browser.find_element(By.ID, "key-state").text == "set for this tab"

        browser.find_element(By.ID, "ask-button").click()
        wait(browser).until(lambda d: mode_is(d, "extractive"))
        assert not browser.find_element(By.ID, "error").is_displayed()
        browser.find_element(By.CSS_SELECTOR, "#citations > li button.cite-open").click()  # sources need the key too
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#source-body .line.hl")))
        assert not browser.find_element(By.ID, "error").is_displayed()


# The page's fetch answers with hostile text: everything must come out as text, nothing as markup.
HOSTILE_FETCH_JS = """
const evil = '<img src=x onerror="window.pwned=1"><b>bold</b>';
const citation = {n: 1, source_type: 'doc', path: 'docs/evil.md', lines: [2, 2], incident_id: null, date: null,
                  title: evil, section: 's', text: evil, label: 'Label ' + evil};
const events = [['intent', {intent: evil}], ['hits', {hits: []}], ['delta', {text: 'Answer ' + evil + ' [1]'}],
                ['citations', {citations: [citation], citation_block: ''}],
                ['done', {mode: 'extractive', abstained: false, timings_ms: {total: 1}}]];
const sse = events.map(([e, d]) => `event: ${e}\\r\\ndata: ${JSON.stringify(d)}\\r\\n\\r\\n`).join('');
window.fetch = async (url) => String(url).startsWith('/v1/sources/')
  ? new Response(JSON.stringify({id: 'docs/evil.md', path: 'docs/evil.md', source_type: 'doc', title: evil, from_file: false,
                                 lines: [{n: 1, text: 'one'}, {n: 2, text: evil}, {n: 5, text: 'five'}]}),
                 {headers: {'content-type': 'application/json'}})
  : new Response(sse, {headers: {'content-type': 'text/event-stream'}});
"""


def test_api_text_is_escaped(browser: WebDriver, page_url: str) -> None:
    browser.get(page_url + "/")
    box = wait(browser).until(EC.element_to_be_clickable((By.ID, "question")))
    browser.execute_script(HOSTILE_FETCH_JS)
    box.send_keys("anything", Keys.ENTER)
    wait(browser).until(lambda d: mode_is(d, "extractive"))
    evil = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    assert evil in browser.find_element(By.ID, "answer").text and evil in browser.find_element(By.ID, "intent").text
    assert browser.find_element(By.CSS_SELECTOR, "#citations button.cite-open").text == "Label " + evil
    browser.find_element(By.CSS_SELECTOR, "#answer a.marker").click()
    hl = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#source-body .line.hl")))
    assert hl.text.split(None, 1) == ["2", evil]
    assert "not indexed" in browser.find_element(By.ID, "source-body").text  # the gap before line 5 is shown
    assert browser.find_element(By.ID, "source-note").is_displayed()  # rebuilt from chunks
    assert not browser.find_elements(By.CSS_SELECTOR, "img, b")
    assert browser.execute_script("return window.pwned") is None
