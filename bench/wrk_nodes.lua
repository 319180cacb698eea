-- wrk script of the fleet benchmark (bench/fleet_bench.mjs): spreads wrk's
-- threads over several servers on 127.0.0.1, thread i to the i-th port of
-- env MW_WRK_PORTS ("p1,p2,p3", round robin; one port repeated = one
-- server, so both sides of a comparison run the same script). The requests
-- and the MWBENCH summary line are those of wrk_report.lua (env
-- MW_WRK_REPORT: its path), loaded here.
dofile(os.getenv("MW_WRK_REPORT"))

local ports, next_port = {}, 1
for p in string.gmatch(os.getenv("MW_WRK_PORTS") or "", "%d+") do ports[#ports + 1] = p end

function setup(thread)
  if #ports == 0 then return end
  thread.addr = wrk.lookup("127.0.0.1", ports[next_port])[1]
  next_port = next_port % #ports + 1
end
