"""The Lua scripts of the Redis backend, one per atomic operation, registered for EVALSHA.

Per-queue job scripts get `scripts/_lib.lua` prepended (the shared key layout and helpers),
scripts that build keys from names get `scripts/_names.lua` (the escaping of `keys.py`), and
the scripts that finish, cancel or retry jobs get `scripts/_graph.lua` too (workflow rules,
with `_names.lua` inside);
redis-py's `Script` re-loads a script transparently after a server restart flushed it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ("GLOBAL_SCRIPTS", "GRAPH_SCRIPTS", "JOB_SCRIPTS", "NAMED_SCRIPTS", "Scripts", "script_source")

#: Scripts over one queue's keys (hash tag `{q:<queue>}`).
JOB_SCRIPTS = (
    "enqueue",
    "claim",
    "settle",
    "extend",
    "progress",
    "cancel",
    "retry",
    "promote",
    "rescue_scan",
    "rescue",
    "prune",
    "list",
    "delete",
    "wf_store",
    "wf_read",
    "wf_cancel",
    "wf_retry",
    "wf_delete",
)
#: Job scripts that carry out workflow rules (`_graph.lua`, holding `_names.lua`, is prepended).
GRAPH_SCRIPTS = frozenset(
    ("settle", "cancel", "retry", "rescue", "wf_store", "wf_read", "wf_cancel", "wf_retry", "wf_delete")
)
#: Scripts over the cluster-wide keys (hash tag `{g}`; `submit` also writes queues' keys).
GLOBAL_SCRIPTS = (
    "submit",
    "reserve",
    "unique_swap",
    "schedules_store",
    "schedules_delete",
    "schedules_confirm",
    "schedules_expire",
    "schedule_fire",
    "leader_elect",
    "leader_resign",
    "workers_prune",
    "migrate",
)
#: Global scripts that build keys from names (`_names.lua` is prepended).
NAMED_SCRIPTS = frozenset(
    ("submit", "schedules_store", "schedules_delete", "schedules_confirm", "schedules_expire", "migrate")
)


def script_source(name: str) -> str:
    """The text of `scripts/<name>.lua` (without any prelude)."""
    return resources.files(__package__).joinpath("scripts", f"{name}.lua").read_text("utf-8")


class Scripts:
    """Every script registered on one client: `scripts.claim(keys=..., args=...)`."""

    def __init__(self, client: Any) -> None:
        lib, names = script_source("_lib"), script_source("_names")
        graph = lib + "\n" + script_source("_graph").replace("-- (_names.lua)", names, 1)
        for name in JOB_SCRIPTS:
            prelude = graph if name in GRAPH_SCRIPTS else lib
            setattr(self, name, client.register_script(prelude + "\n" + script_source(name)))
        for name in GLOBAL_SCRIPTS:
            source = script_source(name)
            if name in NAMED_SCRIPTS:
                source = names + "\n" + source
            setattr(self, name, client.register_script(source))

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - typing aid only
        raise AttributeError(name)
