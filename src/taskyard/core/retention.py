"""Retention of finished jobs: a rule per finished status, global or for one queue, and the
prune steps that carry the rules out (a queue's rule replaces the global one in that queue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from taskyard.core.job import JobStatus

__all__ = ("RETAINED_STATUSES", "PruneStep", "Retention", "parse_retention", "prune_steps")

#: The statuses retention applies to, in the order they are pruned.
RETAINED_STATUSES: tuple[JobStatus, ...] = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep at most `keep_last` jobs of a status and none older than `max_age` seconds
    (None = no limit of that kind)."""

    keep_last: int | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.keep_last is not None and self.keep_last < 0:
            raise ValueError("retention keep_last must be >= 0")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("retention max_age must be > 0 seconds")

    @property
    def is_limited(self) -> bool:
        """Whether the rule deletes anything at all."""
        return self.keep_last is not None or self.max_age is not None


@dataclass(frozen=True, slots=True)
class PruneStep:
    """One `Backend.jobs_prune` call: `rule` for jobs of `status` in `queue` (None = every
    queue but those in `exclude_queues`, which have rules of their own)."""

    status: JobStatus
    rule: Retention
    queue: str | None = None
    exclude_queues: frozenset[str] = frozenset()


def parse_retention(rules: Mapping[str, Retention | Mapping[str, object]]) -> dict[JobStatus, Retention]:
    """Rules keyed by finished status name, each a `Retention` or its fields as a mapping
    (`{"completed": {"keep_last": 10}}`). Raises ValueError naming a bad status or field."""
    parsed: dict[JobStatus, Retention] = {}
    for name, rule in rules.items():
        try:
            status = JobStatus(name)
        except ValueError:
            status = None
        if status not in RETAINED_STATUSES:
            allowed = ", ".join(s.value for s in RETAINED_STATUSES)
            raise ValueError(f"retention applies to finished statuses only ({allowed}), not {name!r}")
        if isinstance(rule, Retention):
            parsed[status] = rule
            continue
        unknown = set(rule) - {"keep_last", "max_age"}
        if unknown:
            raise ValueError(
                f"unknown retention field(s) {', '.join(sorted(unknown))} for {name!r}; "
                "use keep_last and/or max_age"
            )
        parsed[status] = Retention(**rule)  # type: ignore[arg-type]
    return parsed


def prune_steps(
    rules: Mapping[JobStatus, Retention],
    queue_rules: Mapping[str, Mapping[JobStatus, Retention]],
) -> list[PruneStep]:
    """The prune calls that carry out the global `rules` and each queue's `queue_rules`: per
    status, the global rule over every queue without a rule of its own for that status (its
    `keep_last` counts only their jobs), then each such queue's rule over that queue alone.
    A rule that limits nothing (no `keep_last`, no `max_age`) keeps every job it covers."""
    steps: list[PruneStep] = []
    for status in RETAINED_STATUSES:
        own = frozenset(q for q, per_status in queue_rules.items() if status in per_status)
        rule = rules.get(status)
        if rule is not None and rule.is_limited:
            steps.append(PruneStep(status=status, rule=rule, exclude_queues=own))
        for queue in sorted(own):
            queue_rule = queue_rules[queue][status]
            if queue_rule.is_limited:
                steps.append(PruneStep(status=status, rule=queue_rule, queue=queue))
    return steps
