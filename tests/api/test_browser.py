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


def list_starts(markdown: str) -> list[int]:
    """The first number of each top-level numbered list in ``markdown`` (a list goes on across blank lines)."""
    starts, in_list = [], False
    for line in markdown.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # blank, or inside an item
        m = re.match(r"(\d+)[.)]( |$)", line)
        if m and not in_list:
            starts.append(int(m[1]))
        in_list = bool(m)
    return starts


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
    assert browser.find_element(By.ID, "backend").text == "none: quoted from the sources"
    assert not browser.find_element(By.ID, "answer-notice").is_displayed()
    # steps quoted from the middle of a runbook keep their numbers: <ol start=N>
    starts = list_starts(expected["answer"])
    assert starts, expected["answer"]  # the question's answer quotes numbered steps
    assert browser.execute_script("return [...document.querySelectorAll('#answer > ol')].map(o => o.start)") == starts
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
                ['done', {mode: 'extractive', abstained: false, timings_ms: {total: 1}, backend: null, llm_error: evil, unsupported: 0,
                          answer: 'Answer ' + evil + ' [1]\\n\\n```\\n' + evil + '\\n<script>window.pwned=2</script>\\n```'}]];
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
    assert browser.execute_script("return document.querySelector('#answer pre code').textContent") == evil + "\n<script>window.pwned=2</script>"
    assert browser.find_element(By.ID, "answer-notice").text == f"The model failed ({evil}); this answer is quoted from the sources."
    assert browser.find_element(By.CSS_SELECTOR, "#citations button.cite-open").text == "Label " + evil
    browser.find_element(By.CSS_SELECTOR, "#answer a.marker").click()
    hl = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#source-body .line.hl")))
    assert hl.text.split(None, 1) == ["2", evil]
    assert "not indexed" in browser.find_element(By.ID, "source-body").text  # the gap before line 5 is shown
    assert browser.find_element(By.ID, "source-note").is_displayed()  # rebuilt from chunks
    assert not browser.find_elements(By.CSS_SELECTOR, "img, b, #result script")
    assert browser.execute_script("return window.pwned") is None


# An answer streamed in pieces (the last one stops inside a code block), held open until the test
# releases its `done`, whose checked Markdown differs from the deltas.
STREAM_FETCH_JS = """
const [finalAnswer] = arguments;
const enc = new TextEncoder();
const sse = (e, d) => enc.encode(`event: ${e}\\ndata: ${JSON.stringify(d)}\\n\\n`);
const citation = {n: 1, source_type: 'runbook', path: 'runbooks/x.md', lines: [3, 4], incident_id: null, date: null,
                  title: 'X', section: 'Steps', text: '', label: 'X: Steps (runbooks/x.md)'};
let release;
const held = new Promise((resolve) => { release = resolve; });
window.releaseDone = () => release();
window.fetch = async () => new Response(new ReadableStream({async start(c) {
  c.enqueue(sse('intent', {intent: 'troubleshooting'}));
  c.enqueue(sse('hits', {hits: []}));
  for (const text of ['Restart the **member** [1] and', ' then:\\n\\n```bash\\nkubectl get pods', ' -n db\\n']) c.enqueue(sse('delta', {text}));
  c.enqueue(sse('citations', {citations: [citation], citation_block: ''}));
  await held;
  c.enqueue(sse('done', {question: 'q', intent: 'troubleshooting', mode: 'extractive', abstained: false, outcome: 'answered',
                         answerability: null, answer: finalAnswer, parts: [], backend: null,
                         llm_error: 'openai:m: APIConnectionError: Connection error.', unsupported: 2,
                         citations: [citation], citation_block: '', hits: [], timings_ms: {total: 5}}));
  c.close();
}}), {headers: {'content-type': 'text/event-stream'}});
"""
CODE = "patronictl failover orders-db --candidate orders-db-1 --force\n    # kept as written: <script>window.pwned=1</script>"
FINAL_ANSWER = ("The leader is gone [1].\n\n## Steps\n\n"
                "3. Check the leader [1]\n   - `patronictl list` shows no *Leader* row\n   - the DCS answers\n"
                "4. Fail over:\n   ```bash\n" + "\n".join("   " + line for line in CODE.splitlines()) + "\n   ```\n\n"
                '- Never during a change freeze <img src=x onerror="window.pwned=1">')

ANSWER_DOM_JS = """
const a = document.getElementById('answer');
const ol = a.querySelector(':scope > ol');
return {ol: ol && {start: ol.getAttribute('start'), items: ol.children.length, first: ol.children[0].firstChild.textContent,
                   nested: [...ol.querySelectorAll('li > ul > li')].map(li => li.textContent)},
        code: [...a.querySelectorAll('pre > code')].map(c => ({text: c.textContent, cls: c.className, ws: getComputedStyle(c.parentNode).whiteSpace,
                                                              inItem: c.closest('li') !== null})),
        heading: [...a.querySelectorAll('h4, h5, h6')].map(h => h.tagName + ' ' + h.textContent),
        bullets: [...a.querySelectorAll(':scope > ul > li')].map(li => li.textContent),
        streaming: a.querySelectorAll('.streaming').length, markup: a.querySelectorAll('script, img').length, pwned: window.pwned};
"""


def test_markdown_answer_streams_then_the_done_answer_replaces_it(browser: WebDriver, page_url: str) -> None:
    browser.get_log("browser")  # drop what the earlier tests logged (their 400 and 401 on purpose)
    browser.get(page_url + "/")
    box = wait(browser).until(EC.element_to_be_clickable((By.ID, "question")))
    browser.execute_script(STREAM_FETCH_JS, FINAL_ANSWER)
    box.send_keys("patroni has no leader", Keys.ENTER)

    # while it streams: the text so far, rendered (the open code block included), a cursor after it
    code = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#answer pre > code.language-bash")))
    wait(browser).until(lambda d: code.text == "kubectl get pods -n db")
    assert browser.find_element(By.CSS_SELECTOR, "#answer strong").text == "member"
    assert browser.find_elements(By.CSS_SELECTOR, "#answer pre.streaming")
    assert browser.find_element(By.ID, "mode").text == "…"

    browser.execute_script("window.releaseDone()")
    wait(browser).until(lambda d: mode_is(d, "extractive"))
    dom = browser.execute_script(ANSWER_DOM_JS)
    assert "Restart the" not in browser.find_element(By.ID, "answer").text  # the deltas are replaced
    assert dom["ol"] == {"start": "3", "items": 2, "first": "Check the leader [1]", "nested": ["patronictl list shows no Leader row", "the DCS answers"]}
    assert dom["code"] == [{"text": CODE, "cls": "language-bash", "ws": "pre", "inItem": True}]  # verbatim, indent and <script> text kept
    assert dom["heading"] == ["H5 Steps"]
    assert dom["bullets"] == ['Never during a change freeze <img src=x onerror="window.pwned=1">']
    assert dom["streaming"] == 0 and dom["markup"] == 0 and dom["pwned"] is None
    assert browser.find_elements(By.CSS_SELECTOR, "#answer ol em") and browser.find_elements(By.CSS_SELECTOR, "#answer ol a.marker")
    assert browser.find_element(By.ID, "backend").text == "none: quoted from the sources"
    notice = browser.find_element(By.ID, "answer-notice")
    assert notice.is_displayed() and notice.text.splitlines() == [
        "The model failed (openai:m: APIConnectionError: Connection error.); this answer is quoted from the sources.",
        "2 unsupported sentences were removed: no source supports them."]
    assert browser.find_element(By.ID, "status").text == "Answered with 1 citation."
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
