-- Read-only: the workflow ARGV[4] whose home queue is QUEUE, as `wf_snapshot` (_graph.lua)
-- returns it, or false.
local R = rules()
return R.wf_snapshot(R.wf_base(QUEUE, ARGV[4]))
