"""Redis key names of one taskyard installation (one key prefix).

Key schema (`P` is the prefix from the URL, `?prefix=`, default `taskyard:`; `Q` a queue name).
Keys of one queue share the hash tag `{q:Q}`, so on a Redis Cluster each queue lives on one
shard and every job transition (a Lua script touching only that queue's keys) stays atomic.
Cluster-wide bookkeeping shares the hash tag `{g}`.

Per queue (hash tag `{q:Q}`):

==========================  ======  ===========================================================
key                         type    contents
==========================  ======  ===========================================================
`P{q:Q}:job:<id>`           hash    one job: t task, p payload JSON, s status, pr priority,
                                    ra run_at, a attempt, ma max_attempts, c created, st started,
                                    f finished, r result JSON, e errors JSON list, pg progress
                                    JSON, u unique key, tg tags JSON, to timeout, w worker id,
                                    lt lease token, le lease expiry, cr cancel requested,
                                    rs rescues, mr max_rescues (absent: 3); a workflow step
                                    also has wf workflow id, sn step name, wq the workflow's
                                    home queue, wo / wx its open / failed edges in; m meta
                                    JSON (any job; absent: empty).
                                    Times are integer microseconds since the epoch; absent
                                    fields mean None / 0 / empty.
`P{q:Q}:pending`            zset    pending ids; score = (1023 - priority) * 2^42 + run_at in ms
                                    since 2000, so ZPOPMIN gives priority desc, run_at, then id
                                    (equal scores sort by member). Priorities clamp to ±1023.
`P{q:Q}:scheduled`          zset    scheduled ids by run_at (µs)
`P{q:Q}:running`            zset    running ids by lease expiry (µs); ZCARD is the concurrency
`P{q:Q}:done:<status>`      zset    completed / failed / cancelled ids by finished_at (µs)
`P{q:Q}:all`                zset    every id, score 0 (lexicographic: newest-first listing)
`P{q:Q}:blocked`            zset    blocked workflow steps (score 0): counted, never claimed
`P{q:Q}:settings`           hash    paused "1", conc, rl (limit), rp (period s), rpu (period µs)
`P{q:Q}:rate`               hash    w (current rate window start, µs), n (jobs started in it)
==========================  ======  ===========================================================

A workflow lives in the hash slot of its home queue `H` (its first step's queue; on a Redis
Cluster every step's queue), so one script settles a step and moves its children:

==============================  ======  =======================================================
`P{q:H}:wf:<id>`                hash    n name, c created (µs), x cancelled at (µs)
`P{q:H}:wf:<id>:steps`          hash    step job id -> its queue
`P{q:H}:wf:<id>:order`          list    step job ids in step order (the draft's)
`P{q:H}:wf:<id>:edges`          hash    "<parent> <child>" -> "<policy>:<state>"
`P{q:H}:wf:<id>:kids:<parent>`  set     the children of one step
`P{q:H}:wf:<id>:pars:<child>`   set     the parents of one step
==============================  ======  =======================================================

Cluster-wide (hash tag `{g}`):

============================  ======  =========================================================
`P{g}:ids`                    hash    job id -> queue (the directory: lets `job_get(id)` find
                                      the queue's slot). Written before the job; an entry
                                      whose job does not exist (crash in between) is harmless.
`P{g}:queues`                 set     every queue that has had jobs or settings
`P{g}:wf`                     hash    workflow id -> home queue (finds its slot)
`P{g}:wfs`                    zset    workflow ids, score 0 (newest-first listing by id)
`P{g}:unique`                 hash    unique key -> "<reserved at, ms>:<job id>" of the job
                                      that last took the key. Taken before the job is written;
                                      released lazily: a holder that is finished, or missing
                                      after a grace period (its enqueue crashed), is replaced.
`P{g}:schema`                 string  schema version
`P{g}:sched:<name>`           hash    doc (Schedule JSON), last, next (µs), enabled, owner,
                                      conf (confirmed_at µs; absent: the doc's)
`P{g}:scheds`                 set     schedule names
`P{g}:sched:due`              zset    enabled schedule names by next fire (µs)
`P{g}:sched:owner:<owner>`    set     schedule names of one owner
`P{g}:scheds:declared`        zset    code schedule names by confirmed_at (µs; -1: never);
                                      the hash's `conf` field holds the same time
`P{g}:scheds:indexed`         string  set once the code schedules stored before that zset
                                      existed were indexed (by `schedules_expire`)
`P{g}:leader:<name>`          hash    h holder, e elected (µs), x expires (µs); PEXPIRE ttl
`P{g}:workers`                hash    worker id -> WorkerInfo JSON
`P{g}:workers:hb`             zset    worker id by last heartbeat (µs)
`P{g}:stats:<minute µs>`      hash    "c:<queue>" / "f:<queue>" -> count (task ""),
                                      "c:<queue> <task>" / "f:<queue> <task>" -> count,
                                      "l<cell>:<queue> <task>" -> latency cell count,
                                      "d:<queue>" -> depth sample; expires after 7 days
`P{g}:stats:index`            zset    the minutes above, by minute
============================  ======  =========================================================

Wake-ups: `PUBLISH P + "wake" <queue>` whenever jobs may have become claimable; on a Redis
Cluster `SPUBLISH P{q:Q}:wake <queue>`, the queue's shard channel.

Names in keys (schema 2). A user-named thing gets its own key space: `Q` and `<name>` above are
the name itself, except that a name which could reach another key is escaped as `~` followed
by the hex of its UTF-8 bytes (`queue_tag`, `schedule_tag`; `scripts/_names.lua` is the same
rule in Lua). Escaped are: a queue name with `{` or `}` (it would break the `{q:Q}` hash tag),
a schedule name `due` or starting with `owner:` (the due zset, the owner sets), and any name
starting with `~` (so an escaped form is never someone's plain name). Every other name, and
so every name the HTTP API accepts apart from `due` and `owner:*` schedules, keeps the key it
had in schema 1; opening schema-1 data moves the few keys that change (`scripts/migrate.lua`).
Owners (`sched:owner:<owner>`) and lease names (`leader:<name>`) are verbatim: nothing else
lives under those key prefixes, and the `{g}` hash tag comes before them. Hash fields, set
members and channel messages hold names verbatim; they are never parsed back into keys.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ("QUEUE_KEY_NAMES", "Keys", "queue_tag", "schedule_tag")

#: The first character of an escaped name (never the first of a name kept as is).
ESCAPE = "~"


def _escaped(name: str) -> str:
    return ESCAPE + name.encode().hex()


def queue_tag(queue: str) -> str:
    """How `queue` appears inside its hash tag `{q:...}`: as is, unless it holds a brace (or
    starts with `~`), which is escaped so the tag stays whole and names stay apart."""
    if "{" in queue or "}" in queue or queue.startswith(ESCAPE):
        return _escaped(queue)
    return queue


def schedule_tag(name: str) -> str:
    """How schedule `name` appears in its key `sched:...`: as is, unless it could be an
    internal key (`due`, `owner:<owner>`) or an escaped name (starts with `~`)."""
    if name == "due" or name.startswith(("owner:", ESCAPE)):
        return _escaped(name)
    return name


#: The per-queue keys every job script receives, in this order (see `scripts/_lib.lua`).
QUEUE_KEY_NAMES = (
    "pending",
    "scheduled",
    "running",
    "all",
    "done:completed",
    "done:failed",
    "done:cancelled",
    "settings",
    "rate",
    "blocked",
)


class Keys:
    """Builds every key name under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        g = f"{prefix}{{g}}:"
        self.global_base = g
        self.ids = g + "ids"
        self.queues = g + "queues"
        self.workflows = g + "wf"
        self.workflows_index = g + "wfs"
        self.unique = g + "unique"
        self.schema = g + "schema"
        self.scheds = g + "scheds"
        self.sched_due = g + "sched:due"
        self.sched_declared = g + "scheds:declared"
        self.workers = g + "workers"
        self.workers_hb = g + "workers:hb"
        self.stats_index = g + "stats:index"
        self.channel = prefix + "wake"
        self._queue = lru_cache(maxsize=4096)(self._build_queue)

    def _build_queue(self, queue: str) -> tuple[list[str], str]:
        base = self.queue_base(queue)
        return [base + name for name in QUEUE_KEY_NAMES], base + "job:"

    def queue(self, queue: str) -> tuple[list[str], str]:
        """(the per-queue KEYS of a job script, the job-hash key prefix) of `queue`."""
        keys, job_prefix = self._queue(queue)
        return list(keys), job_prefix

    def queue_base(self, queue: str) -> str:
        """What every key of `queue` starts with: `P{q:<queue_tag(queue)>}:`."""
        return f"{self.prefix}{{q:{queue_tag(queue)}}}:"

    def queue_key(self, queue: str, name: str) -> str:
        """One per-queue key, e.g. `queue_key("emails", "pending")`."""
        return self.queue_base(queue) + name

    def queue_channel(self, queue: str) -> str:
        """The shard channel of `queue`'s wake-ups on a Redis Cluster (its slot's)."""
        return self.queue_base(queue) + "wake"

    def job(self, queue: str, job_id: str) -> str:
        """The hash of one job."""
        return self.queue_base(queue) + "job:" + job_id

    def workflow(self, home: str, workflow_id: str) -> str:
        """The header hash of a workflow whose home queue is `home` (its other keys append
        `:steps`, `:edges`, ...)."""
        return self.queue_base(home) + "wf:" + workflow_id

    def schedule(self, name: str) -> str:
        """The hash of one schedule."""
        return f"{self.global_base}sched:{schedule_tag(name)}"

    def sched_owner(self, owner: str) -> str:
        """The set of schedule names of one owner."""
        return f"{self.global_base}sched:owner:{owner}"

    def leader(self, name: str) -> str:
        """The leadership lease `name`."""
        return f"{self.global_base}leader:{name}"

    def stats_minute(self, minute_us: int) -> str:
        """The counters of one minute."""
        return f"{self.global_base}stats:{minute_us}"
