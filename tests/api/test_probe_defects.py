"""The outside probe's reproductions (issue 17), each a clear 4xx over real HTTP, never a 500.

The real app is served by uvicorn on loopback with API keys and an allowed root set, over the
shipped corpus; every request goes through httpx as a client would send it.
"""

from collections.abc import Iterator

import httpx
import pytest
from srekb.retrieval.kb import KnowledgeBase

from tests.api.test_http import Server, app_with
from tests.retrieval.test_cli_query import srekb

KEY = "probe-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def probed(shipped_kb, tmp_path_factory) -> Iterator[tuple[str, object]]:
    root = tmp_path_factory.mktemp("allowed")
    (root / "loop").symlink_to(root / "loop")
    s = shipped_kb.settings.model_copy(update={"api_keys": [KEY], "allowed_roots": [root]})
    kb = KnowledgeBase(s, store=shipped_kb.store, embedder=shipped_kb.embedder)
    with Server(app_with(s, kb)) as url:
        yield url, root


def _error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["type"] == kind and body["message"] and "Traceback" not in r.text
    return r.text


@pytest.mark.parametrize("route", ["/v1/search", "/v1/ask"])
def test_impossible_calendar_date_in_a_filter_is_a_422(probed, route):
    """Bug: '"date_from": "2024-13-45"' matched the YYYY-MM-DD pattern and crashed the engine (500)."""
    url, _ = probed
    r = httpx.post(f"{url}{route}", json={"question": "disk full", "filters": {"date_from": "2024-13-45"}}, headers=AUTH, timeout=30)
    assert "not a calendar date" in _error(r, 422, "validation_error")


def test_impossible_date_through_the_library_is_a_query_error(shipped_kb):
    """The same date through the Python API: a QueryError naming the field, not an engine error."""
    from srekb.retrieval.errors import QueryError

    with pytest.raises(QueryError, match="date_to '2024-02-30' is not a calendar date"):
        shipped_kb.search("disk full", filters={"date_to": "2024-02-30"})


def test_non_ascii_bearer_token_is_a_401(probed):
    """Bug: a bearer token with non-ASCII characters made compare_digest raise (500, a traceback per request, no key needed)."""
    url, _ = probed
    r = httpx.post(f"{url}/v1/search", json={"question": "disk"}, headers=[(b"authorization", "Bearer kéy-ü".encode())], timeout=30)
    _error(r, 401, "unauthorized")
    assert httpx.post(f"{url}/v1/search", json={"question": "disk full"}, headers=AUTH, timeout=30).status_code == 200


@pytest.mark.parametrize("k", [True, "5", 2.0])
def test_k_must_be_a_json_integer(probed, k):
    """Bug: 'k: true' and 'k: "5"' were accepted (read as 1 and 5)."""
    url, _ = probed
    _error(httpx.post(f"{url}/v1/search", json={"question": "disk full", "k": k}, headers=AUTH, timeout=30), 422, "validation_error")


def test_question_of_only_control_characters_is_refused(probed):
    """Bug: a question of control characters only got a confident (caveated) answer."""
    url, _ = probed
    r = httpx.post(f"{url}/v1/ask", json={"question": "\x01\x02\x03\x7f"}, headers=AUTH, timeout=30)
    assert "no words" in _error(r, 400, "invalid_query")


def test_method_not_allowed_names_the_allowed_methods(probed):
    """Bug: a 405 lacked the Allow header HTTP requires."""
    url, _ = probed
    r = httpx.get(f"{url}/v1/ask", headers=AUTH, timeout=30)
    _error(r, 405, "http_error")
    assert r.headers["allow"] == "POST"


def test_symlink_loop_and_over_long_path_are_refused(probed):
    """Bug: ingest of a symlink loop (RuntimeError before Python 3.13) or a 5,000-character path was a 500."""
    url, root = probed
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root / "loop")]}, headers=AUTH, timeout=30)
    assert "loop" in _error(r, 400, "invalid_path").lower()
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root / ("a" * 5000))]}, headers=AUTH, timeout=30)
    _error(r, 422, "validation_error")


def test_over_long_upload_file_name_is_refused(probed):
    """Bug: an upload whose file name is 1,000 characters crashed writing it (500)."""
    url, _ = probed
    files = {"files": ("a" * 1000 + ".md", b"# Title\n\nSome runbook text.\n", "text/markdown")}
    r = httpx.post(f"{url}/v1/ingest/upload", files=files, headers=AUTH, timeout=30)
    assert "255-character limit" in _error(r, 400, "invalid_upload")


@pytest.mark.parametrize(("value", "ok"), [("plainkey", True), ("key-one,key-two", True), ('["a-key"]', True),
                                           ('[""]', False), ("[broken", False), ("k1, ,k2", False)])
def test_api_key_settings_are_read_or_refused_in_one_line(cli_store_dir, value, ok):
    """Bug: SRE_KB_API_KEYS=plainkey gave a 67-line traceback, and '[""]' was accepted as a key list."""
    res = srekb("sources", "--store", str(cli_store_dir), "--json", env_extra={"SRE_KB_API_KEYS": value})
    assert "Traceback" not in res.stderr
    if ok:
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 2 and "invalid settings: SRE_KB_API_KEYS" in res.stderr and len(res.stderr.strip().splitlines()) <= 2


def test_over_long_bodies_are_refused_while_they_stream(shipped_kb, tmp_path):
    """Bug: a 300 MB upload was read in full before its 413. Declared (Content-Length) and
    chunked bodies over the limit get a 413 as soon as the limit is passed; JSON bodies have their own."""
    s = shipped_kb.settings.model_copy(update={"max_upload_bytes": 50_000, "store": tmp_path / "store"})
    kb = KnowledgeBase(s, store=shipped_kb.store, embedder=shipped_kb.embedder)
    sent = [0]

    def chunks():  # a well-formed multipart file part, streamed without a Content-Length
        yield b'--zz\r\nContent-Disposition: form-data; name="files"; filename="big.md"\r\nContent-Type: text/markdown\r\n\r\n'
        for _ in range(200):  # up to 20 MB, if the server kept reading
            sent[0] += 100_000
            yield b"y" * 100_000

    with Server(app_with(s, kb)) as url:
        big = {"files": ("big.md", b"x" * 3_000_000, "text/markdown")}
        assert "over the" in _error(httpx.post(f"{url}/v1/ingest/upload", files=big, timeout=30), 413, "too_large")
        try:
            r = httpx.post(f"{url}/v1/ingest/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=zz"}, timeout=30)
            _error(r, 413, "too_large")
        except httpx.HTTPError:
            pass  # the server may close the connection once it has answered
        assert sent[0] < 20_000_000  # it stopped reading
        r = httpx.post(f"{url}/v1/search", content=b'{"question": "' + b"a" * 2_000_000 + b'"}', headers={"content-type": "application/json"}, timeout=30)
        _error(r, 413, "too_large")
        small = {"files": ("small.md", b"# Small\n\nA tiny runbook about disks.\n", "text/markdown")}
        assert httpx.post(f"{url}/v1/ingest/upload", files=small, timeout=30).status_code == 202


def test_openapi_lists_the_error_codes_the_routes_return(probed):
    """Bug: several status codes the service returns (403, 404, 409, 413, 503) were missing from the OpenAPI document."""
    url, _ = probed
    paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"403", "409", "413"} <= set(paths["/v1/ingest/upload"]["post"]["responses"])
    assert {"401", "422", "503"} <= set(paths["/v1/search"]["post"]["responses"])
    assert "404" in paths["/v1/jobs/{job_id}"]["get"]["responses"]
