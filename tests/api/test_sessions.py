"""Follow-up questions: rule-based rewrite, SQLite sessions with expiry, and over HTTP."""

import time

import httpx

from api.app import create_app
from api.sessions import SessionStore, Turn, is_follow_up, rewrite
from tests.api.test_http import Server


def test_follow_up_detection_and_rewrite():
    assert is_follow_up("and how do I roll it back?")
    assert is_follow_up("What about payments-db?") and not is_follow_up("What is the maxReplicas of the checkout-api HPA?")
    history = [Turn("A bad checkout-api release is live, how do I find it in Argo CD?", "A bad checkout-api release is live, how do I find it in Argo CD?", 0)]
    out = rewrite("and how do I roll it back?", history)
    assert out.startswith("and how do I roll it back (") and "checkout-api" in out
    assert rewrite("What is the etcd quota?", history) == "What is the etcd quota?"  # standalone: untouched
    assert rewrite("and why?", []) == "and why?"  # nothing to resolve against


def test_session_store_keeps_last_turns_and_expires(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite", ttl_s=0.5, keep=2)
    for i in range(3):
        store.add("s1", f"q{i}", f"q{i}")
    assert [t.question for t in store.history("s1")] == ["q1", "q2"]
    time.sleep(0.6)
    assert store.history("s1") == []  # idle past the TTL


def test_follow_up_over_http(shipped_kb):
    with Server(create_app(shipped_kb.settings, shipped_kb)) as url:
        first = httpx.post(f"{url}/v1/ask", json={"question": "A bad checkout-api release is live. How do I roll it back with Argo CD?",
                                                  "session_id": "oncall-1"}, timeout=30).json()
        assert first["session_id"] == "oncall-1" and first["citations"]
        follow = httpx.post(f"{url}/v1/ask", json={"question": "and how long does that take?", "session_id": "oncall-1"}, timeout=30).json()
        assert "checkout-api" in follow["standalone_question"]
        alone = httpx.post(f"{url}/v1/ask", json={"question": "and how long does that take?"}, timeout=30).json()
        assert "standalone_question" not in alone or alone.get("standalone_question") is None
        bad = httpx.post(f"{url}/v1/ask", json={"question": "x", "session_id": "no spaces allowed"}, timeout=30)
        assert bad.status_code == 422
