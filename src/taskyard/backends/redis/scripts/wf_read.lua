-- Read-only: the workflow ARGV[4] whose home queue is QUEUE, as `wf_snapshot` (_graph.lua)
-- returns it, or false.
return wf_snapshot(wf_base(QUEUE, ARGV[4]))
