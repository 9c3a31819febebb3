"""IR metrics on hand-computed cases."""

import math

import pytest
from srekb.eval.metrics import hit_at, lines_overlap, mrr_at, ndcg_at, percentile, ranked, recall_at

REL = {"a": 2, "b": 1}


def test_recall():
    assert recall_at(REL, ["x", "a", "b"], 1) == 0.0
    assert recall_at(REL, ["x", "a", "b"], 2) == 0.5
    assert recall_at(REL, ["x", "a", "b"], 3) == 1.0
    assert recall_at({}, ["a"], 3) == 0.0  # no relevant docs
    assert recall_at(REL, [], 3) == 0.0  # empty run


def test_mrr():
    assert mrr_at(REL, ["x", "y", "b", "a"]) == pytest.approx(1 / 3)
    assert mrr_at(REL, ["x"] * 10 + ["a"], 10) == 0.0  # beyond the cut-off
    assert mrr_at(REL, []) == 0.0


def test_ndcg_graded():
    dcg = (2**1 - 1) / math.log2(2) + (2**2 - 1) / math.log2(3)  # b first, then a
    idcg = (2**2 - 1) / math.log2(2) + (2**1 - 1) / math.log2(3)
    assert ndcg_at(REL, ["b", "a"]) == pytest.approx(dcg / idcg)
    assert ndcg_at(REL, ["a", "b"]) == pytest.approx(1.0)
    assert ndcg_at({}, ["a"]) == 0.0


def test_ties_are_broken_by_doc_id():
    assert ranked({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "a", "b"]


def test_hit_lines_percentile():
    assert hit_at("a", ["x", "a"], 2) == 1.0 and hit_at("a", ["x", "a"], 1) == 0.0
    assert lines_overlap([5, 10], [10, 20]) and not lines_overlap([5, 9], [10, 20]) and not lines_overlap(None, [1, 2])
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 95) == 4
