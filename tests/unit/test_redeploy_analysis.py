"""A redeploy run's figures from its requests, the verdict between two architectures, and the
`--set` rules, without deploying anything (the integration and Docker tests roll out for real)."""

from __future__ import annotations

import pytest

from aiarch.bench.stats import Sample
from aiarch.compare.faults import Estimate
from aiarch.compare.redeploys import RedeployFigures, redeploy_verdict
from aiarch.errors import UserInputError
from aiarch.experiments.redeploy import analyse_redeploy
from aiarch.run_record import Objective, RedeployRun, RedeploySettings
from aiarch.runtime.rollout import RedeployRequest, RolloutResult, parse_set

SETTINGS = RedeploySettings(
    service="inference", change="MODEL_VERSION=2", at_s=5.0, drain_timeout_s=30.0, objective=Objective(latency_ms={"p99": 50.0})
)


def _requests() -> list[Sample]:
    """10 requests a second for 20 s from t=1000; the rollout runs from 1005 to 1010: version 1
    before it, both during it (2 from 1007), 2 after; one request in flight at 1005 fails."""
    samples = []
    for k in range(200):
        start = 1000.0 + k * 0.1
        if start < 1007.0:
            version = "1"
        elif start < 1009.0:
            version = "2" if k % 2 else "1"
        else:
            version = "2"
        samples.append(Sample(start, 5.0, "POST /recommend", True, "", version))
    samples.append(Sample(1004.95, 120.0, "POST /recommend", False, "HTTP 503", ""))  # sent before, failed during
    return samples


def _result(outcome: str = "done") -> RolloutResult:
    return RolloutResult("inference", 2, "MODEL_VERSION=2", outcome, None, 1005.0, 1010.0, [], interrupts_service=False)


def test_the_figures_count_requests_in_flight_at_the_start_and_follow_the_versions():
    run = RedeployRun(index=0, point=0, outcome="done")
    analyse_redeploy(_requests(), SETTINGS, 1000.0, _result(), run)
    assert run.failed == 1 and run.requests == 81  # sent 1005..1013 (to 3 s after the end), and the one in flight
    assert run.new_version == "2" and run.old_after == 0 and run.new_after == 100
    assert run.overlap_s == pytest.approx(1008.805 - 1007.105, abs=0.01)  # first 2 answered .. last 1 answered
    shares = {w.t: w.versions for w in run.versions}
    assert shares[-5.0] == {"1": 10} and shares[3.0] == {"1": 5, "2": 5} and shares[6.0] == {"2": 10}
    assert set(run.endpoints) == {"POST /recommend"}


def test_a_rolled_back_run_names_no_new_version():
    run = RedeployRun(index=0, point=0, outcome="rolled back")
    analyse_redeploy(_requests(), SETTINGS, 1000.0, _result("rolled back"), run)
    assert run.new_version is None and run.overlap_s is None and run.versions


def _figures(failed: list[float], took: list[float], replicas: int = 2) -> RedeployFigures:
    return RedeployFigures(
        "svc", "MODEL_VERSION=2", replicas, len(failed), 0, Estimate.of(failed), None, Estimate.of(took),
        None, None, None, None, None, 0, replicas == 1,
    )  # fmt: skip


def test_the_verdict_weighs_failed_requests_first_then_the_rollouts_time():
    _, verdict, named = redeploy_verdict("monolith", _figures([149.0], [5.1], 1), "microservices", _figures([0.0], [8.4]))
    assert named and verdict.startswith("holds here: microservices failed fewer requests"), verdict
    # 3 and 5 failures of one run each are within Poisson noise: the times decide, 20% apart or not.
    _, verdict, _ = redeploy_verdict("monolith", _figures([5.0], [12.8]), "microservices", _figures([3.0], [8.4]))
    assert verdict.startswith("no difference in failed requests; microservices rolled out faster"), verdict
    _, verdict, _ = redeploy_verdict(
        "monolith", _figures([0.0, 0.0], [12.8, 12.9]), "microservices", _figures([0.0, 0.0], [12.5, 12.7])
    )
    assert verdict.startswith("no difference here"), verdict
    _, verdict, named = redeploy_verdict("monolith", _figures([], []), "microservices", _figures([0.0], [8.4]))
    assert not named and verdict.startswith("no verdict"), verdict


def test_set_flags_are_checked_and_secrets_stay_out_of_the_records():
    assert parse_set(["MODEL_VERSION=2", "EMPTY="]) == {"MODEL_VERSION": "2", "EMPTY": ""}
    for bad, message in (("PORT=9000", "aiarch sets PORT"), ("no-dash=1", "is not NAME=VALUE"), ("=1", "is not NAME=VALUE")):
        with pytest.raises(UserInputError, match=message):
            parse_set([bad])
    request = RedeployRequest("inference", {"API_TOKEN": "s3cret", "MODEL_VERSION": "2"}, rebuild=True)
    assert request.describe() == "API_TOKEN=(hidden), MODEL_VERSION=2, image rebuilt"
