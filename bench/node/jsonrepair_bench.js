// Peer benchmark for bench/repair.exs: reads each input file named on the command line,
// repairs it with the jsonrepair npm package `iterations` times, and prints one JSON line
// per file: {"file": ..., "bytes": ..., "seconds": ..., "mb_s": ..., "cpu_seconds": ...,
// "mb_s_cpu": ..., "ok": true|false}. seconds/mb_s: best wall time; cpu_*: the process's
// CPU time (user + system) of that same call, which a loaded machine does not inflate.
'use strict'
const fs = require('fs')
const { jsonrepair } = require('jsonrepair')

const iterations = Number(process.env.ITERATIONS || 5)
const maxSeconds = Number(process.env.MAX_SECONDS || 20)

for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8')
  const bytes = Buffer.byteLength(text)
  let ok = true
  let error = null
  let best = Infinity
  let bestCpu = Infinity
  let runs = 0
  let total = 0
  // The first run doubles as warm-up; on a slow (quadratic) input it is the only run.
  while (ok && runs < iterations && total < maxSeconds) {
    const t0 = process.hrtime.bigint()
    const c0 = process.cpuUsage()
    try {
      jsonrepair(text)
    } catch (e) {
      ok = false
      error = String(e.message || e)
      break
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9
    const c = process.cpuUsage(c0)
    const dc = (c.user + c.system) / 1e6
    total += dt
    if (runs > 0 || dt > 2) {
      best = Math.min(best, dt)
      bestCpu = Math.min(bestCpu, dc)
    }
    if (runs === 0) bestCpu = dc
    runs++
  }
  if (runs === 1) best = total
  const seconds = ok && runs ? best : 0
  const cpuSeconds = ok && runs ? bestCpu : 0
  const mbs = seconds ? bytes / 1e6 / seconds : 0
  const mbsCpu = cpuSeconds ? bytes / 1e6 / cpuSeconds : 0
  console.log(
    JSON.stringify({ file, bytes, runs, seconds, mb_s: mbs, cpu_seconds: cpuSeconds, mb_s_cpu: mbsCpu, ok, error })
  )
}
