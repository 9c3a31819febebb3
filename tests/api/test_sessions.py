"""Follow-up questions: rule-based rewrite, SQLite sessions with expiry, and over HTTP."""

import json
import time

import httpx
import pytest
from srekb.api.sessions import SessionStore, Turn, UnknownSession, is_follow_up, rewrite

from tests.api.test_http import Server, app_with


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
    sid = store.create("owner-a")
    for i in range(3):
        store.add(sid, "owner-a", f"q{i}", f"q{i}")
    assert [t.question for t in store.history(sid, "owner-a")] == ["q1", "q2"]
    time.sleep(0.6)
    with pytest.raises(UnknownSession):  # idle past the TTL
        store.history(sid, "owner-a")


def test_sessions_are_issued_bound_to_their_owner_and_capped(tmp_path):
    """Bug: ids were chosen by the client, so anyone with a key who reused "1" got a follow-up
    rewritten with another user's question; and nothing capped the number of sessions."""
    store = SessionStore(tmp_path / "s.sqlite", max_sessions=3)
    ids = [store.create("owner-a") for _ in range(5)]
    assert len(set(ids)) == 5 and all(len(i) >= 24 for i in ids)  # unguessable, never reused
    assert store.count() == 3  # the two least recently used were evicted
    with pytest.raises(UnknownSession):
        store.history(ids[0], "owner-a")
    store.add(ids[4], "owner-a", "etcd has no leader", "etcd has no leader")
    with pytest.raises(UnknownSession):  # another key cannot read it, nor write to it
        store.history(ids[4], "owner-b")
    with pytest.raises(UnknownSession):
        store.add(ids[4], "owner-b", "and why?", "and why?")
    with pytest.raises(UnknownSession):
        store.history("1", "owner-a")  # never issued


def test_follow_up_over_http(shipped_kb, tmp_path):
    s = shipped_kb.settings.model_copy(update={"api_keys": ["key-of-alice", "key-of-bob"]})
    alice, bob = ({"Authorization": f"Bearer {k}"} for k in s.api_keys)
    with Server(app_with(s, shipped_kb)) as url:
        made = httpx.post(f"{url}/v1/sessions", headers=alice, timeout=30)
        assert made.status_code == 201, made.text
        sid = made.json()["session_id"]
        first = httpx.post(f"{url}/v1/ask", headers=alice, json={"question": "A bad checkout-api release is live. How do I roll it back with Argo CD?",
                                                                  "session_id": sid}, timeout=30).json()
        assert first["session_id"] == sid and first["citations"]
        follow = httpx.post(f"{url}/v1/ask", headers=alice, json={"question": "and how long does that take?", "session_id": sid}, timeout=30).json()
        assert "checkout-api" in follow["standalone_question"]
        # Streamed, the follow-up's done event carries the standalone question too.
        with httpx.stream("POST", f"{url}/v1/ask", headers=alice, timeout=30,
                          json={"question": "and how long does that take?", "session_id": sid, "stream": True}) as r:
            done = [line for line in r.iter_lines() if line.startswith("data: ")][-1]
        assert json.loads(done.removeprefix("data: "))["session_id"] == sid and "checkout-api" in done
        alone = httpx.post(f"{url}/v1/ask", headers=alice, json={"question": "and how long does that take?"}, timeout=30).json()
        assert "standalone_question" not in alone or alone.get("standalone_question") is None
        stolen = httpx.post(f"{url}/v1/ask", headers=bob, json={"question": "and how long does that take?", "session_id": sid}, timeout=30)
        assert stolen.status_code == 404 and stolen.json()["error"]["type"] == "unknown_session" and "POST /v1/sessions" in stolen.text
        chosen = httpx.post(f"{url}/v1/ask", headers=alice, json={"question": "x", "session_id": "oncall-1-chosen-by-me"}, timeout=30)
        assert chosen.status_code == 404
        bad = httpx.post(f"{url}/v1/ask", headers=alice, json={"question": "x", "session_id": "no spaces allowed"}, timeout=30)
        assert bad.status_code == 422
