"""Short real chaos scenarios (the `make test` profile of `make chaos`): real `taskyard`
processes on each backend, seeded faults, and the checker's verdict over their histories.

`CHAOS_SEED` replays a failing run's timeline (the seed is in each scenario's id). A scenario
that fails because of a known product bug is marked `chaos_known_failure` with the bug.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from chaos.runner import Outcome, Scenario

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CHAOS_SEED", "1"))
BACKENDS = ["sqlite", "postgres", "redis"]
Runner = Callable[[Scenario], Outcome]


def verdict(outcome: Outcome) -> str:
    """The violations of a run, for the assertion message."""
    found = outcome.report.violations
    lines = [f"{outcome.scenario.id}: {len(found)} violation(s); logs and histories in {outcome.workdir}"]
    lines += [f"  {v.invariant} {v.job or ''}: {v.detail}" for v in found[:10]]
    return "\n".join(lines)


# MySQL runs this topology only, to keep CI short; `make chaos` runs the rest on it.
@pytest.mark.parametrize("backend", [*BACKENDS, "mysql"])
def test_scale_out_survives_a_worker_kill_storm(backend: str, chaos_run: Runner) -> None:
    """README scale-out (run --only api,scheduler,maintenance + 2 workers), a worker SIGKILLed
    every ~2 s: nothing lost, every duplicate explained by a kill, every fire second one job."""
    outcome = chaos_run(Scenario(backend, "scale-out", "worker-kill", seed=SEED, seconds=12))
    assert outcome.faults_injected >= 4
    assert outcome.report.acknowledged > 100
    assert outcome.ok, verdict(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scheduler_replicas_survive_leader_kills(backend: str, chaos_run: Runner) -> None:
    """Three `taskyard scheduler` replicas beside a `taskyard worker`, the scheduler's leader
    SIGKILLed in turn: every second of the misfire=all schedule has exactly one job."""
    outcome = chaos_run(Scenario(backend, "schedulers", "leader-kill", seed=SEED, seconds=15))
    assert outcome.takeovers and all(t["seconds"] is not None for t in outcome.takeovers), outcome.takeovers
    assert outcome.report.fires_missing.get("chaos-all") == 0, verdict(outcome)
    assert outcome.ok, verdict(outcome)


def test_default_task_runs_again_after_its_worker_is_killed(chaos_run: Runner) -> None:
    """A task with the default policy (attempts=1) whose worker is SIGKILLed runs again: a
    lease loss is not the handler failing (it ended `failed` with LeaseExpired before e919436)."""
    outcome = chaos_run(Scenario("sqlite", "scale-out", "worker-kill", seed=SEED, seconds=10, mix="default"))
    assert outcome.report.dropped == 0, verdict(outcome)
    assert outcome.ok, verdict(outcome)


def test_rolling_deploy_loses_nothing(chaos_run: Runner) -> None:
    """v1 replaced by v2 one process at a time while both enqueue: no job fails because the
    worker that claimed it runs the other version (v1 workers failed v2's task before 96d9b0c)."""
    outcome = chaos_run(Scenario("sqlite", "rolling", "none", seed=SEED, seconds=15))
    assert outcome.ok, verdict(outcome)


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_skewed_worker_clocks_keep_the_retry_policy(backend: str, chaos_run: Runner) -> None:
    """Two workers 2 minutes ahead and behind on a store with its own clock: no duplicates,
    and retries wait exactly their backoff (a worker once computed retry times from its own
    clock: 2 minutes behind, the retry ran at once; ahead, 2 minutes late)."""
    outcome = chaos_run(Scenario(backend, "scale-out", "clock-skew", seed=SEED, seconds=10))
    assert outcome.ok, verdict(outcome)


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_cut_connections_leave_no_partial_batch(backend: str, chaos_run: Runner) -> None:
    """Every backend connection of every process reset, and refused for 3 s, twice: nothing
    acknowledged is lost and an interrupted `enqueue_many` is stored whole or not at all (on
    Redis a batch with contended unique keys was two writes, and a cut stored 15 of 20)."""
    outcome = chaos_run(Scenario(backend, "scale-out", "net-cut", seed=SEED, seconds=12))
    assert outcome.faults_injected >= 1
    assert outcome.ok, verdict(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
def test_handlers_stopped_from_outside_leave_the_rest_running(backend: str, chaos_run: Runner) -> None:
    """Issue 11: children that block past their timeout, grow past their memory limit or
    segfault (once, or on every run), and threads spinning past their timeout, among normal
    jobs on the README scale-out: every normal job completes, each stopped run is retried by
    its policy, each child crash is a rescue (a duplicate with the cause "holder crashed")."""
    outcome = chaos_run(Scenario(backend, "scale-out", "isolation", seed=SEED, seconds=10))
    assert outcome.report.acknowledged > 100
    assert outcome.ok, verdict(outcome)
    causes = {d.cause for d in outcome.report.duplicates}
    assert causes == {"holder crashed"}, outcome.report.duplicates  # children did crash, and only that
