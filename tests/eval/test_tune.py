"""Tuning on a synthetic problem (pure Python, no model): checkpoint, resume, priors opt-in,
the tuned settings file."""

import json
import random
from dataclasses import asdict

import pytest
from srekb.eval.tune import Candidates, Params, TuneState, load_weights, objective, score_run, tune, write_tuned
from srekb.retrieval.errors import SreKbError
from srekb.retrieval.search.rerank import RerankWeights
from srekb.retrieval.types import Chunk, Hit, Intent, SourceType

FEATURES = list(asdict(RerankWeights()))
HIDDEN = {"ident": 3.0, "title": 2.0, "dense": 1.0, "path": 1.5}  # what really makes a document relevant here


def problem(n: int = 24, per: int = 6, seed: int = 7):
    rng = random.Random(seed)
    cands, qrels = [], {}
    types = list(SourceType)
    for q in range(n):
        hits, feats, truth = [], [], []
        for d in range(per):
            f = {k: round(rng.random(), 3) for k in FEATURES}
            hits.append(Hit(Chunk(f"q{q}/doc{d}.md", types[d % len(types)], "t", "s", "text", 1, 2), 0.0))
            feats.append(f)
            truth.append(sum(HIDDEN.get(k, 0.0) * v for k, v in f.items()))
        best = max(range(per), key=lambda i: truth[i])
        cands.append(Candidates(f"q{q}", list(Intent)[q % 4], hits, feats))
        qrels[f"q{q}"] = {hits[best].chunk.path: 2}
    return cands[: n * 2 // 3], cands[n * 2 // 3 :], qrels


def start() -> Params:
    return Params(asdict(RerankWeights()), {i.value: {t.value: 0.5 for t in SourceType} for i in Intent})


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_continues_and_matches_an_uninterrupted_run(tmp_path):
    train, held, qrels = problem()
    ckpt = tmp_path / "tune-state.json"

    def crash_after_first(i, train_score, held_score):
        if i == 1:
            raise Interrupt  # killed right after the first pass was checkpointed

    with pytest.raises(Interrupt):
        tune(train, held, qrels, start(), max_iter=8, checkpoint=ckpt, progress=crash_after_first)
    saved = TuneState.from_dict(json.loads(ckpt.read_text()))
    assert saved.iteration == 1 and [h["iteration"] for h in saved.history] == [1]
    first_best = saved.best
    assert first_best > saved.start["train"]  # the first pass improved on the defaults

    seen = []
    params, state = tune(train, held, qrels, start(), max_iter=8, checkpoint=ckpt, progress=lambda i, *_: seen.append(i))
    assert seen[0] == 2  # continued at the second pass, did not redo the first
    assert state.resumed_at == [1]
    assert [h["iteration"] for h in state.history] == list(range(1, state.iteration + 1))
    assert state.best >= first_best and objective(train, params, qrels) == pytest.approx(state.best)
    scores = [h["train"] for h in state.history]
    assert scores == sorted(scores)  # never worse from one pass to the next

    fresh_params, fresh = tune(train, held, qrels, start(), max_iter=8)
    assert fresh.best == pytest.approx(state.best) and fresh_params.weights == params.weights


def test_max_iter_one_then_resume(tmp_path):
    train, held, qrels = problem()
    ckpt = tmp_path / "tune-state.json"
    _, one = tune(train, held, qrels, start(), max_iter=1, checkpoint=ckpt)
    assert one.iteration == 1 and not one.done and ckpt.exists()
    params, more = tune(train, held, qrels, start(), max_iter=3, checkpoint=ckpt)
    assert more.iteration == 3 and more.resumed_at == [1]
    assert more.history[0] == one.history[0]  # pass 1 kept as it was
    assert more.best >= one.best


def test_a_converged_run_is_not_redone(tmp_path):
    train, held, qrels = problem(n=9)
    ckpt = tmp_path / "s.json"
    _, done = tune(train, held, qrels, start(), max_iter=50, checkpoint=ckpt)
    assert done.done and done.iteration < 50
    calls = []
    _, again = tune(train, held, qrels, start(), max_iter=50, checkpoint=ckpt, progress=lambda *a: calls.append(a))
    assert calls == [] and again.iteration == done.iteration and again.best == pytest.approx(done.best)


def test_priors_are_tuned_only_on_request():
    train, held, qrels = problem()
    params, _ = tune(train, held, qrels, start(), max_iter=2)
    assert params.priors == start().priors and params.weights != start().weights
    tuned, state = tune(train, held, qrels, start(), max_iter=2, tune_priors=True)
    assert tuned.priors != start().priors


def test_checkpoint_of_another_problem(tmp_path):
    train, held, qrels = problem()
    ckpt = tmp_path / "s.json"
    tune(train, held, qrels, start(), max_iter=1, checkpoint=ckpt)
    # Other settings (priors tuned too) or another corpus: an error when resuming is insisted on...
    with pytest.raises(SreKbError, match="restart"):
        tune(train, held, qrels, start(), max_iter=2, tune_priors=True, checkpoint=ckpt, resume=True)
    with pytest.raises(SreKbError, match="restart"):
        tune(train, held, qrels, start(), max_iter=2, checkpoint=ckpt, resume=True, problem="another corpus")
    # ... and a fresh start (with a warning) by default.
    _, fresh = tune(train, held, qrels, start(), max_iter=1, tune_priors=True, checkpoint=ckpt)
    assert fresh.resumed_at == [] and fresh.iteration == 1
    with pytest.raises(SreKbError, match="nothing to resume"):
        tune(train, held, qrels, start(), checkpoint=tmp_path / "missing.json", resume=True)
    _, restarted = tune(train, held, qrels, start(), max_iter=1, checkpoint=ckpt, resume=False)
    assert restarted.resumed_at == []
    ckpt.write_text("{not json")
    _, recovered = tune(train, held, qrels, start(), max_iter=1, checkpoint=ckpt)  # unreadable: start afresh
    assert recovered.iteration == 1 and recovered.resumed_at == []


def test_score_run_breaks_ties_by_path():
    hits = [Hit(Chunk(p, SourceType.DOC, "t", "s", "x", 1, 2), 0.0) for p in ("b.md", "a.md", "c.md")]
    feats = [dict.fromkeys(FEATURES, 0.0) for _ in hits]
    feats[2]["dense"] = 1.0
    ranking = score_run([Candidates("q", Intent.GENERAL, hits, feats)], start())
    assert ranking["q"] == ["c.md", "a.md", "b.md"]
    assert score_run([], start()) == {}


def test_tuned_file_round_trip_and_errors(tmp_path):
    params = start()
    params.weights["ident"] = 2.5
    path = write_tuned(tmp_path / "tuned.json", params, tune_priors=False, summary={"iterations": 1})
    data = json.loads(path.read_text())
    assert set(data) == {"rerank_weights", "tuning"} and data["rerank_weights"]["ident"] == 2.5
    assert load_weights(path) == RerankWeights(**params.weights)
    with_priors = write_tuned(tmp_path / "p.json", params, tune_priors=True, summary={})
    assert "type_priors" in json.loads(with_priors.read_text()) and load_weights(with_priors).ident == 2.5
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"rerank_weights": {"dense": 4}}))
    assert load_weights(partial) == RerankWeights(dense=4.0)  # the others keep their defaults
    for name, body, message in [
        ("typo.json", {"rerank_weights": {"densee": 4}}, "unknown reranker weight"),
        ("nan.json", {"rerank_weights": {"dense": "high"}}, "finite numbers"),
        ("bool.json", {"rerank_weights": {"dense": True}}, "finite numbers"),
        ("shape.json", {"dense": 4}, "rerank_weights"),
    ]:
        (tmp_path / name).write_text(json.dumps(body))
        with pytest.raises(SreKbError, match=message):
            load_weights(tmp_path / name)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SreKbError, match="not valid JSON"):
        load_weights(tmp_path / "bad.json")
    with pytest.raises(SreKbError, match="cannot read"):
        load_weights(tmp_path / "absent.json")
