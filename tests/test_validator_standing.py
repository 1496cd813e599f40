"""The fault classifier agrees with the containment boundary, and our faults move no weight (pure parts)."""

from __future__ import annotations

import errno

import pytest

from subnet.eval.types import ScoreOutcome
from subnet.hub.contained import classify
from subnet.hub.download import DiskFull, FetchDeadline
from subnet.hub.errors import ModelRejected
from subnet.hub.store import StoreError
from subnet.validator.context import CompetitionOutcome
from subnet.validator.faults import OWN_FAULTS, is_own_fault, resource_of
from subnet.validator.standing import keep_standing, set_aside


@pytest.mark.parametrize("exc", [
    DiskFull("no room"), OSError(errno.EIO, "I/O error"), PermissionError(errno.EACCES, "denied"),
    FetchDeadline("slow"), StoreError("503", transient=True), MemoryError(), RecursionError(), KeyError("x"),
])
def test_every_transient_failure_of_the_boundary_is_our_fault(exc):
    failure = classify(exc)
    assert failure.transient and is_own_fault(failure.reason) and resource_of(failure.reason)


@pytest.mark.parametrize("code", ["bad_config", "forbidden_files", "hash_mismatch", "too_large", "store_error",
                                  "timeout", "crashed", "oom", "memory_limit", "rejected:bad_config", "", None])
def test_what_the_miner_controls_is_never_our_fault(code):
    assert not is_own_fault(code) and resource_of(code) is None


def test_a_rejection_by_the_repos_rules_is_never_ours():
    failure = classify(ModelRejected("forbidden_files", "a pickle"))
    assert not failure.transient and failure.reason not in OWN_FAULTS


def test_set_aside_takes_our_faults_out_of_the_judgement_and_keeps_the_miners():
    outcome = CompetitionOutcome("tiny", failed={"a": "disk_full", "b": "forbidden_files"})
    ready, failed, scores = set_aside(outcome, {"c": 1, "d": 2}, {"a": "disk_full", "b": "forbidden_files"},
                                      {"c": ScoreOutcome(None, "cache_lost"), "d": ScoreOutcome(None, "crashed")})
    assert ready == {"d": 2} and failed == {"b": "forbidden_files"} and set(scores) == {"d"}
    assert outcome.own_faults == {"a": "disk_full", "c": "cache_lost"} and outcome.failed == {"b": "forbidden_files"}


def test_a_leader_not_judged_for_our_fault_holds_the_weights():
    outcome = CompetitionOutcome("tiny", own_faults={"best": "disk_full"})
    previous = {"best": 0.9, "weak": 0.1}
    assert keep_standing({"weak": 1.0}, previous, outcome) == previous
    assert outcome.weights_held and "best" in outcome.weights_held


def test_a_fading_model_keeps_its_weight_and_the_others_still_move():
    outcome = CompetitionOutcome("tiny", own_faults={"old": "store_unavailable"})
    new = keep_standing({"a": 0.75, "b": 0.25}, {"a": 0.5, "b": 0.495, "old": 0.005}, outcome)
    assert outcome.weights_held is None
    assert new["old"] == 0.005 and new["a"] == pytest.approx(0.75 * 0.995) and sum(new.values()) == pytest.approx(1.0)


def test_no_fault_of_ours_changes_nothing():
    outcome = CompetitionOutcome("tiny")
    assert keep_standing({"a": 1.0}, {"a": 0.5, "b": 0.5}, outcome) == {"a": 1.0} and outcome.weights_held is None
