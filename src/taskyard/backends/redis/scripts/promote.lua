-- scheduled -> pending for up to ARGV[5] jobs with run_at <= ARGV[4] (µs, '' = this
-- server's clock); returns how many.
local moved = promote(I(clock(ARGV[4])), tonumber(ARGV[5]))
if moved > 0 then
  wake()
end
return moved
