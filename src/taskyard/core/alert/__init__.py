"""Alerts as pure data and policy: rules, what the leader observed, and the state machine
`ok → pending → firing → resolved → ok` that makes each episode notify once and resolve once.

No I/O and no asyncio: `evaluate(rule, observation, previous, now)` is a pure function.
The parts: `rule` (kinds, parameters, `parse_rule`), `observation` (what the leader saw,
`readings`), `state` (the state machine, `evaluate`); everything is importable from here.
"""

from __future__ import annotations

from taskyard.core.alert.observation import (
    Labels,
    Observation,
    Reading,
    ScheduleSeen,
    WorkerSeen,
    readings,
)
from taskyard.core.alert.rule import KIND_PARAMS, AlertKind, AlertRule, parse_rule
from taskyard.core.alert.state import (
    AlertEvent,
    AlertState,
    AlertStatus,
    Evaluation,
    advance,
    evaluate,
)

__all__ = (
    "KIND_PARAMS",
    "AlertEvent",
    "AlertKind",
    "AlertRule",
    "AlertState",
    "AlertStatus",
    "Evaluation",
    "Labels",
    "Observation",
    "Reading",
    "ScheduleSeen",
    "WorkerSeen",
    "advance",
    "evaluate",
    "parse_rule",
    "readings",
)
