// Renders the named benchmark suites' runs.jsonl (bench/suites/*.sh) as
// markdown, and puts a rendered table into docs/performance.md between the
// suite's own markers.
//   node bench/suites.mjs render SUITE RUNS.jsonl        > table.md
//   node bench/suites.mjs insert SUITE DOC table.md
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

const begin = (suite) => `<!-- bench:${suite}:begin (written by bash bench/run.sh ${suite}) -->`;
const end = (suite) => `<!-- bench:${suite}:end -->`;

// ------------------------------------------------------------------ helpers
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const fix = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const mb = (kb) => (Number.isFinite(kb) && kb > 0 ? `${(kb / 1024).toFixed(0)} MB` : '–');
const mark = (ok) => (ok ? '✓' : '✗');
const range = (xs, d) => {
  const v = xs.filter(Number.isFinite);
  return v.length ? `${Math.min(...v).toFixed(d)}–${Math.max(...v).toFixed(d)}` : '–';
};

function readRuns(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

function header(meta, extra = '') {
  const dirty = meta.dirty ? ' (with uncommitted changes)' : '';
  return (
    `Measured ${meta.date} on ${meta.cpus} × ${meta.cpu}, kernel ${meta.kernel}, Node ${meta.node}, flowtel ${meta.commit}${dirty}${extra}` +
    `${meta.bpf_stats === undefined ? '' : `, kernel.bpf_stats_enabled=${meta.bpf_stats}`}; ` +
    `load average ${meta.loadavg_at_start} at the start (the machine was ${Number.parseFloat(meta.loadavg_at_start) > 1 ? '**shared with other work**' : 'quiet'}). ` +
    `Command: \`${meta.env ? `${meta.env.trim()} ` : ''}${meta.command}\`.`
  );
}

/** Load of the runs: "0.4–3.2 / 0–85 %" (+ other tracers loaded). */
function loadCell(runs) {
  const tr = Math.max(0, ...runs.map((r) => r.other_tracers ?? 0));
  return `${range(runs.map((r) => r.loadavg), 1)} / ${range(runs.map((r) => r.foreign_cpu_pct), 0)} %${tr ? ` (+${tr} other tracer${tr > 1 ? 's' : ''})` : ''}`;
}
/** Other processes used more than this much CPU (% of one core) during a run: a ratio of a few % is noise then. */
const NOISY_CPU = 20;
const noisy = (runs) => median(runs.map((r) => r.foreign_cpu_pct)) > NOISY_CPU || runs.some((r) => (r.other_tracers ?? 0) > 0);
/** ✓/✗ against a goal, or "~" when the machine was too busy for the verdict to mean anything. */
const verdict = (ok, runs) => (noisy(runs) ? `${ok ? '(✓)' : '(✗)'} noisy` : mark(ok));
const NOISE_NOTE =
  `A verdict in brackets marked *noisy* comes from runs during which other processes used more than ${NOISY_CPU} % of a core (median) ` +
  'or another flowtel/floor was loaded: on 2 cores that disturbs a few-per-cent comparison more than the agent does; rerun on a quiet machine.';

// --------------------------------------------------------------- throughput
const WORKLOAD_NAMES = {
  'iperf1-lo': 'iperf3, 1 stream, loopback',
  'iperf4-lo': 'iperf3, 4 streams, loopback',
  'iperf1-veth': 'iperf3, 1 stream, veth',
  'iperf4-veth': 'iperf3, 4 streams, veth',
  'wrk-lo': 'wrk keep-alive, loopback',
  'wrk-veth': 'wrk keep-alive, veth',
};

/** iperf3's CPU per GB, without → with (median ratio with ÷ without per repetition). */
function cpuPerGb(off, on) {
  const c = (r) => r.detail?.cpu_s_per_gb;
  if (!off.some((r) => Number.isFinite(c(r)))) return '–';
  const ratios = off.map((o) => c(on.find((r) => r.rep === o.rep) ?? {}) / c(o)).filter(Number.isFinite);
  return `${fix(median(off.map(c)), 3)} → ${fix(median(on.map(c)), 3)} (${fix(median(ratios), 2)})`;
}

function renderThroughput(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const runs = rows.filter((r) => r.section === 'run');
  const out = [header(meta, `, iperf3 ${meta.iperf3}, nginx ${meta.nginx}`), ''];
  out.push(
    `${meta.reps} repetitions × ${meta.seconds} s per workload and configuration; in each repetition every workload runs without the agent and with flowtel ` +
      `(configuration order alternated, workload order rotated). Ratio = with ÷ without within a repetition; the table gives the median ratio and its range, ` +
      `and median throughputs. iperf3 CPU-s per GB: the CPU both iperf3 ends used (iperf3’s cpu_utilization_percent) per GB received, a cost ratio > 1 means flowtel made each byte dearer. wrk: 1 thread, ${meta.connections} connections, nginx 1 worker, 1 KiB page. veth: namespaces \`bn-tc\` → \`bn-ts\`. ` +
      `Load = load average (1 min) / CPU of other processes during the runs (% of one core). Goal: ratio ≥ 0.98.`,
  );
  out.push('');
  out.push('| workload | without agent | with flowtel | ratio (range) | iperf3 CPU-s per GB: without → with (ratio) | flowtel CPU | load / others’ CPU |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  const missed = [];
  for (const w of Object.keys(WORKLOAD_NAMES)) {
    const of = (cfg) => runs.filter((r) => r.workload === w && r.config === cfg);
    if (!of('off').length) continue;
    const ratios = of('off')
      .map((off) => {
        const on = of('agent').find((r) => r.rep === off.rep);
        return on ? on.value / off.value : NaN;
      })
      .filter(Number.isFinite);
    const m = median(ratios);
    if (!(m >= 0.98)) missed.push(`${WORKLOAD_NAMES[w]} ${fix(m, 3)}`);
    const unit = of('off')[0].unit;
    const v = (cfg) => `${unit === 'Gbit/s' ? fix(median(of(cfg).map((r) => r.value)), 2) : int(median(of(cfg).map((r) => r.value)))} ${unit}`;
    out.push(
      `| ${WORKLOAD_NAMES[w]} | ${v('off')} | ${v('agent')} | ${verdict(m >= 0.98, [...of('off'), ...of('agent')])} **${fix(m, 3)}** (${range(ratios, 2)}) | ${cpuPerGb(of('off'), of('agent'))} | ` +
        `${fix(median(of('agent').map((r) => r.agent?.cpu_pct)), 1)} % | ${loadCell([...of('off'), ...of('agent')])} |`,
    );
  }
  out.push('');
  out.push(NOISE_NOTE);
  out.push('');
  out.push(conclusion(missed, noisy(runs)));
  return out.join('\n');
}

function conclusion(missed, wasNoisy) {
  const base = missed.length ? `Goal missed: ${missed.join('; ')}.` : 'Goal met on every row.';
  return wasNoisy ? `${base} (Measured on a busy machine: not conclusive.)` : base;
}

// ------------------------------------------------------------------ latency
function renderLatency(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const runs = rows.filter((r) => r.section === 'run');
  const out = [header(meta, `, nginx ${meta.nginx}`), ''];
  out.push(
    `HTTP GET at a constant ${int(meta.rate)} requests/s over ${meta.connections} keep-alive connections (\`bench/latency\`, open loop: latency from the time ` +
      `each request was due, so stalls are not hidden), nginx 1 worker, 1 KiB page; ${meta.reps} repetitions × ${meta.seconds} s per path and configuration, ` +
      `without agent and with flowtel alternated. Percentiles: medians over repetitions; p99 ratio: median of the per-repetition ratios. Goal: p99 within +5 %.`,
  );
  out.push('');
  out.push('| path | p50 without → with | p99 without → with | p99 ratio (range) | p99.9 without → with | errors | load / others’ CPU |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  const missed = [];
  const names = { lo: 'loopback', veth: 'veth (namespaces)' };
  for (const p of ['lo', 'veth']) {
    const of = (cfg) => runs.filter((r) => r.path === p && r.config === cfg);
    if (!of('off').length) continue;
    const q = (cfg, k) => median(of(cfg).map((r) => r.client[k]));
    const ratios = of('off')
      .map((off) => {
        const on = of('agent').find((r) => r.rep === off.rep);
        return on ? on.client.p99_us / off.client.p99_us : NaN;
      })
      .filter(Number.isFinite);
    const m = median(ratios);
    if (!(m <= 1.05)) missed.push(`${names[p]} p99 ×${fix(m, 2)}`);
    const errs = [...of('off'), ...of('agent')].reduce((s, r) => s + r.client.errors + r.client.unfinished, 0);
    out.push(
      `| ${names[p]} | ${int(q('off', 'p50_us'))} → ${int(q('agent', 'p50_us'))} µs | ${int(q('off', 'p99_us'))} → ${int(q('agent', 'p99_us'))} µs | ` +
        `${verdict(m <= 1.05, [...of('off'), ...of('agent')])} **${fix(m, 3)}** (${range(ratios, 2)}) | ${int(q('off', 'p999_us'))} → ${int(q('agent', 'p999_us'))} µs | ${errs} | ` +
        `${loadCell([...of('off'), ...of('agent')])} |`,
    );
  }
  out.push('');
  out.push(NOISE_NOTE);
  out.push('');
  out.push(conclusion(missed, noisy(runs)));
  return out.join('\n');
}

// ------------------------------------------------------------- churn ladder
function renderChurnLadder(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const runs = rows.filter((r) => r.section === 'run');
  const out = [header(meta), ''];
  out.push(
    `Per rate: a fresh flowtel (\`collection_interval: 1s\`) and ${meta.seconds} s of \`bench/churn\` between namespaces \`bn-cc\` → \`bn-cs\` (veth; the server ` +
      `closes each connection at once). Kernel = nstat deltas (client: TcpActiveOpens − TcpAttemptFails; server: TcpPassiveOpens); ` +
      `lost = kernel − flowtel, per side, for opened and closed. Goal: nothing lost at 20,000/s.`,
  );
  out.push('');
  out.push(
    '| asked /s | achieved /s | connections (kernel, client / server) | lost opened (client / server) | lost closed (client / server) | ring buffer full / recursion skips | made up: closes / opens unseen | flowtel CPU | flowtel RSS max | load / others’ CPU |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  let best = 0;
  let firstLoss;
  for (const r of runs.sort((a, b) => a.rate - b.rate)) {
    const kc = r.nstat.active_opens - r.nstat.attempt_fails;
    const ks = r.nstat.passive_opens;
    const a = r.agent;
    const lost = [kc - a.opened_out, ks - a.opened_in, kc - a.closed_out, ks - a.closed_in];
    const ok = lost.every((x) => x === 0);
    if (ok && firstLoss === undefined) best = Math.max(best, r.client.rate);
    if (!ok && firstLoss === undefined) firstLoss = r.rate;
    out.push(
      `| ${int(r.rate)} | ${int(r.client.rate)} | ${int(kc)} / ${int(ks)} | ${mark(lost[0] === 0 && lost[1] === 0)} ${int(lost[0])} / ${int(lost[1])} | ` +
        `${mark(lost[2] === 0 && lost[3] === 0)} ${int(lost[2])} / ${int(lost[3])} | ${int(a.dropped_ringbuf)} / ${int(a.dropped_recursion)} | ` +
        `${a.recovered_close === undefined ? '–' : `${int(a.recovered_close)} / ${int(a.recovered_open)}`} | ${fix(r.cpu_pct, 0)} % | ${mb(r.rss_max_kb)} | ${loadCell([r])} |`,
    );
  }
  out.push('');
  const runs20k = runs.filter((r) => r.rate === 20000);
  const at20k = runs20k[0];
  const ok20 = at20k && runs20k.every((r) => {
    const kc = r.nstat.active_opens - r.nstat.attempt_fails;
    return kc === r.agent.opened_out && kc === r.agent.closed_out && r.nstat.passive_opens === r.agent.opened_in && r.nstat.passive_opens === r.agent.closed_in;
  });
  out.push(
    `Highest rate with nothing lost (every lower rate lossless too): **${int(best)} connections/s** achieved` +
      `${firstLoss ? `; first loss at ${int(firstLoss)}/s asked` : ''}. ` +
      `Goal (no loss at 20,000/s): ${at20k ? (ok20 ? (at20k.client.rate >= 19000 ? '✓ met' : `~ no loss, but only ${int(at20k.client.rate)}/s achieved`) : '✗ missed') : 'not measured'}.` +
      (noisy(runs) ? ' (Busy machine: the achieved rates are lower than a quiet machine gives.)' : ''),
  );
  out.push('');
  out.push(
    '“Ring buffer full” is `flowtel_ebpf_dropped{reason="ringbuf_full"}`; “recursion skips” is `reason="program_recursion"`: runs of `handle_set_state` the kernel skipped ' +
      'because it was already running on that CPU; their connections are still counted closed once they are gone from the socket walk. ' +
      '“Made up” is `flowtel_ebpf_recovered`: state changes the kernel ran no program for (this kernel runs none while PID 1 is the current task, ' +
      'softirq packet processing on top of it included), a close counted from the walks, an opening at the close.',
  );
  return out.join('\n');
}

// -------------------------------------------------------------- concurrency
function collectionCell(r, meanMs) {
  const c = r.collection;
  const slow = r.slow_collections?.max_ms;
  const logged = slow ? `; logged slower than the interval: up to ${int(slow)} ms` : '';
  if (c.count > 0) return `**${fix(meanMs, 1)} ms** (${c.max_le === null ? '> top bucket' : `≤ ${fix(c.max_le / 1000, 0)} ms`}; ${c.count} collections${logged})`;
  if (slow) return `**≥ ${int(slow)} ms** (scrapes not answered${r.killed ? ', needed SIGKILL to stop' : ''}; from the agent’s log)`;
  return `– (scrapes not answered${r.killed ? ', needed SIGKILL to stop' : ''})`;
}

function renderConcurrency(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const runs = rows.filter((r) => r.section === 'run');
  const out = [header(meta), ''];
  out.push(
    `Per level: a fresh flowtel (\`collection_interval: 1s\`), N connections opened at ${int(meta.open_rate)}/s from ${meta.sources} source addresses in \`bn-xc\` ` +
      `to one server in \`bn-xs\` and held open; both ends are on this host, so flowtel tracks **2·N sockets**. Measured over ${meta.settle} s of steady state once ` +
      `\`flowtel_tracked_connections\` had seen them all. Collection = \`flowtel_collection_duration_us\` (ring-buffer drain, socket walk, UDP map, deltas): mean, and the ` +
      `upper bound of the histogram bucket of the slowest. BPF maps = \`bytes_memlock\` of the maps flowtel holds (bpftool; per-socket storage is charged to the sockets, not the map). ` +
      `Goals: RSS ≤ 150 MB at 65k connections; one collection of 65k connections ≤ 100 ms.`,
  );
  out.push('');
  out.push('| connections (sockets tracked) | opened in | flowtel RSS idle → max (peak) | flowtel CPU | one collection: mean (slowest ≤) | BPF maps | map full / ring full / recursion | load / others’ CPU |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  const missed = [];
  for (const r of runs.sort((a, b) => a.level - b.level)) {
    const c = r.collection;
    const slowMs = r.slow_collections?.max_ms ?? null;
    // Scrapes not answered: the agent's own log of its slowest collection is what is known.
    const meanMs = c.count > 0 ? c.mean / 1000 : (slowMs ?? NaN);
    const rssMb = r.rss_max_kb / 1024;
    const atGoal = r.level >= 60000 && r.level <= 70000;
    if (atGoal && rssMb > 150) missed.push(`RSS ${fix(rssMb, 0)} MB at ${int(r.level)}`);
    if (atGoal && meanMs > 100) missed.push(`collection ${fix(meanMs, 0)} ms at ${int(r.level)}`);
    const d = r.dropped;
    // A scrape that timed out (the agent busy collecting) tells nothing of its counters.
    const known = r.scrapes_answered !== false && r.tracked > 0;
    out.push(
      `| ${int(r.client.held)}${r.client.failed ? ` (${int(r.client.failed)} failed)` : ''} (${known ? int(r.tracked) : '?'}) | ${fix(r.client.seconds, 1)} s | ` +
        `${mb(r.rss_idle_kb)} → ${atGoal ? `${mark(rssMb <= 150)} ` : ''}**${mb(r.rss_max_kb)}** (${mb(r.hwm_kb)}) | ${fix(r.cpu_pct, 0)} % | ` +
        `${atGoal ? `${mark(meanMs <= 100)} ` : ''}${collectionCell(r, meanMs)} | ` +
        `${fix(r.maps.total / 1048576, 1)} MiB | ${known ? `${int(d.storage_alloc_failed + d.listener_map_full)} / ${int(d.ringbuf_full)} / ${int(d.program_recursion)}` : '? (not scraped)'} | ${loadCell([r])} |`,
    );
  }
  out.push('');
  const big = runs.sort((a, b) => b.level - a.level)[0];
  if (big) {
    const top = Object.entries(big.maps.maps ?? {}).sort((a, b) => b[1] - a[1]).slice(0, 4);
    out.push(`Largest BPF maps at ${int(big.level)}: ${top.map(([k, v]) => `\`${k}\` ${fix(v / 1048576, 1)} MiB`).join(', ')}.`);
    out.push('');
  }
  out.push(conclusion(missed, noisy(runs)));
  return out.join('\n');
}

// ------------------------------------------------------------------- ingest
function renderIngest(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const e2e = rows.filter((r) => r.section === 'e2e');
  const js = rows.filter((r) => r.section === 'js');
  const out = [header(meta), ''];
  out.push(
    `**End to end** — flowtel under \`bench/churn\` (\`bn-ic\` → \`bn-is\`, ${meta.seconds} s per rate); each connection writes 4 records to the ring buffer ` +
      '(open and close, both ends). Records/s = `flowtel_ebpf_records{kind="event"}` written ÷ seconds; every record written reaches JavaScript ' +
      '(the ring buffer is drained in order); “ring full” are records lost because it was full.',
  );
  out.push('');
  out.push('| asked connections/s | achieved | records/s reaching JS | ring full (lost) | recursion skips | flowtel CPU | CPU µs per record | load / others’ CPU |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of e2e) {
    const rps = r.event_records / r.seconds;
    out.push(
      `| ${int(r.rate)} | ${int(r.client.rate)} | **${int(rps)}** | ${mark(r.ringbuf_full === 0)} ${int(r.ringbuf_full)} | ${int(r.recursion)} | ${fix(r.cpu_pct, 0)} % | ` +
        `${fix((r.cpu_pct / 100) * 1e6 / rps, 1)} | ${loadCell([r])} |`,
    );
  }
  out.push('');
  if (js.length) {
    const meta = rows.find((r) => r.section === 'meta') ?? {};
    out.push(
      '**JavaScript alone** (`bench/ingest/replay.ts`: packed records of a connection-per-request workload, open and close of both ends, decoded, tracked, ' +
        'collected once per simulated second and recorded into flowtel’s metric store as an exporter’s reader collects it; one thread, no kernel), ' +
        `each run a fresh node process with the agent’s flags (\`${meta.node_flags || 'none'}\`); the median of the runs per rate, their range in brackets ` +
        '(this machine varies by ±20 % between runs of the same build). Ceiling = 1 / CPU per record.',
    );
    out.push('');
    out.push('| replayed connections/s | runs × records | CPU µs per record | ceiling: records per CPU-second | heap | load / others’ CPU |');
    out.push('|---:|---:|---:|---:|---:|---:|');
    const byRate = new Map();
    for (const r of js) byRate.set(r.rate, [...(byRate.get(r.rate) ?? []), r]);
    const medians = [];
    for (const [rate, runs] of byRate) {
      const us = runs.map((r) => r.cpu_us_per_record);
      const m = median(us);
      medians.push(m);
      out.push(
        `| ${int(rate)} | ${runs.length} × ${int(runs[0].records)} | ${fix(m, 2)} (${fix(Math.min(...us), 2)}–${fix(Math.max(...us), 2)}) | **${int(1e6 / m)}** | ` +
          `${fix(median(runs.map((r) => r.heap_mb)), 0)} MB | ${loadCell(runs)} |`,
      );
    }
    out.push('');
    const ceiling = Math.max(...medians.map((m) => 1e6 / m));
    const best = Math.max(...e2e.filter((r) => r.ringbuf_full === 0).map((r) => r.event_records / r.seconds), 0);
    out.push(
      `Goal ≥ 1,000,000 records/s on one core: ${ceiling >= 1e6 ? '✓ met by the JavaScript path' : `✗ **missed**: the JavaScript path alone tops out at ${int(ceiling)} records per CPU-second`}; ` +
        `end to end the highest rate measured with zero loss was ${int(best)} records/s, bounded ${best < ceiling * 0.8 ? 'by how fast this machine opens and closes connections (the churn client, the kernel and the agent share 2 cores)' : 'by the agent’s JavaScript'}.`,
    );
  }
  return out.join('\n');
}

// ------------------------------------------------------------------- export
function renderExport(rows) {
  const meta = rows.find((r) => r.section === 'meta') ?? {};
  const runs = rows.filter((r) => r.section === 'run');
  const out = [header(meta), ''];
  out.push(
    'N series (N/4 flows × `tcp_bytes_sent`, `tcp_bytes_received`, `tcp_connections_opened`, `tcp_rtt_us` histogram) through flowtel’s `otlp` exporter ' +
      'to a local OTLP/gRPC receiver (grpc-js defaults: requests over 4 MiB refused, as by the Collector), each size in a fresh process (`bench/export/export-cost.mjs`), ' +
      `node with the agent’s flags (\`${meta.node_flags || 'none'}\`). Each process` + ' runs several collection intervals over the same flows: the **first** creates every series ' +
      '(the agent’s first interval, or a burst of new flows; also cold JIT), the **steady** ones update them (every interval after that; medians). ' +
      'Record = handing the interval’s measurements to flowtel’s metric store (`InstrumentSink` → `FlowMetrics`); export = collect + serialize + send (`forceFlush`), CPU of the process (user + system, GC threads included). ' +
      'One request = the size of the whole collection as a single request; it is split into requests under 4 MiB (`src/exporters/otlp-split.ts`). ' +
      'Goal: 65k series exported in ≤ 1 s of CPU (judged on record + export of a steady interval: both happen for every collection; the first interval is shown beside it) with event-loop delay p99 ≤ 50 ms, never rejected.',
  );
  out.push('');
  out.push(
    '| series | first interval: record + export CPU | steady interval: record CPU | export CPU (wall) | record + export CPU | heap before → peak | event-loop delay p99 (max) | one request would be | requests received (all intervals) | data points received | load / others’ CPU |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const missed = [];
  for (const r of runs.sort((a, b) => a.series - b.series)) {
    const intervals = r.intervals ?? 1;
    const expected = r.series * intervals;
    const all = r.received.points === expected && r.failed_batches === 0;
    const at65 = r.series >= 60000 && r.series <= 70000;
    const st = r.steady ?? r;
    const first = r.record_cpu_ms + r.cpu_ms;
    const total = st.record_cpu_ms + st.cpu_ms;
    const eld = Math.max(r.eld_p99_ms, st.eld_p99_ms);
    if (at65 && total > 1000) missed.push(`record + export CPU ${int(total)} ms at ${int(r.series)} series in a steady interval (export alone ${int(st.cpu_ms)} ms)`);
    if (at65 && eld > 50) missed.push(`event-loop delay p99 ${fix(eld, 0)} ms at ${int(r.series)}`);
    if (!all) missed.push(`${int(r.series)} series: ${int(r.received.points)} of ${int(expected)} points received`);
    out.push(
      `| ${int(r.series)} | ${int(r.record_cpu_ms)} + ${int(r.cpu_ms)} = ${int(first)} ms | ${int(st.record_cpu_ms)} ms | ${int(st.cpu_ms)} ms (${int(st.wall_ms)} ms) | ${at65 ? `${mark(total <= 1000)} ` : ''}**${int(total)} ms** | ` +
        `${fix(r.heap_before_mb, 0)} → ${fix(Math.max(r.heap_peak_mb, st.heap_peak_mb ?? 0), 0)} MB | ` +
        `${at65 ? `${mark(eld <= 50)} ` : ''}${fix(eld, 1)} ms (${fix(Math.max(r.eld_max_ms, st.eld_max_ms ?? 0), 0)} ms) | ${fix(r.payload_bytes / 1048576, 2)} MiB${r.over_limit ? ' (> 4 MiB)' : ''} | ` +
        `${int(r.received.requests)} (largest ${fix(r.received.largest / 1048576, 2)} MiB) | ${mark(all)} ${int(r.received.points)} of ${int(expected)} | ${loadCell([r])} |`,
    );
  }
  out.push('');
  out.push(conclusion(missed, noisy(runs)));
  return out.join('\n');
}

// -------------------------------------------------------------------- hooks
const HOOKS = {
  handle_set_state: 'tp_btf/inet_sock_set_state: every TCP state change',
  handle_send_reset: 'tp_btf/tcp_send_reset',
  handle_receive_reset: 'tp_btf/tcp_receive_reset',
  dump_tracked: 'iter/bpf_sk_storage_map: per tracked socket, each collection',
  dump_tracked_compat: 'iter/bpf_sk_storage_map: dump_tracked on kernels before 6.2',
  dump_tcp: 'iter/tcp: at start',
  udp_egress: 'cgroup_skb/egress: every packet sent',
  udp_ingress: 'cgroup_skb/ingress: every packet received',
  udp_sock_create: 'cgroup/sock_create: every socket created',
  set_state_spare: 'tp_btf/inet_sock_set_state: every TCP state change (the changes handle_set_state was skipped for)',
};

function renderHooks(_rows, { results }) {
  const load = (suite) => readRuns(join(results, suite, 'runs.jsonl'));
  const sources = [
    { suite: 'throughput', label: 'throughput (iperf3, wrk)', runs: load('throughput').filter((r) => r.section === 'run' && r.agent).map((r) => ({ ...r, bpf: r.agent.bpf })) },
    { suite: 'latency', label: 'latency (fixed-rate HTTP)', runs: load('latency').filter((r) => r.section === 'run' && r.agent).map((r) => ({ ...r, bpf: r.agent.bpf })) },
    { suite: 'churn-ladder', label: 'churn ladder', runs: load('churn-ladder').filter((r) => r.section === 'run') },
  ].filter((s) => s.runs.length);
  const out = [];
  if (!sources.length) return '(no results: run `bash bench/run.sh throughput latency churn-ladder hooks`)';
  for (const s of sources) {
    const meta = load(s.suite).find((r) => r.section === 'meta') ?? {};
    out.push(`- ${s.label}: measured ${meta.date}, flowtel ${meta.commit}, \`${meta.env ? `${meta.env.trim()} ` : ''}${meta.command}\`, load ${range(s.runs.map((r) => r.loadavg), 1)}.`);
  }
  out.push('');
  out.push(
    'Per program: ns per run = ΣΔ`run_time_ns` ÷ ΣΔ`run_cnt` over all runs of that suite with flowtel (`kernel.bpf_stats_enabled=1`, which itself adds ' +
      'two clock reads per run); runs/s = ΣΔ`run_cnt` ÷ Σ seconds. One run is one event (a packet, a state change, a socket). Goal: ≤ 150 ns per event on the hottest hooks ' +
      '(those that run at least a quarter as often as the busiest). The overhead section above has the same numbers for its own runs.',
  );
  out.push('');
  out.push(`| program | hook | ${sources.map((s) => `${s.label}: ns/run | runs/s`).join(' | ')} | verdict |`);
  out.push(`|---|---|${sources.map(() => '---:|---:').join('|')}|---|`);
  const names = [...new Set(sources.flatMap((s) => s.runs.flatMap((r) => Object.keys(r.bpf ?? {}))))];
  const order = Object.keys(HOOKS);
  names.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const totals = new Map();
  for (const n of names) {
    let ns = 0;
    let cnt = 0;
    for (const s of sources) for (const r of s.runs) if (r.bpf?.[n]) (ns += r.bpf[n].ns), (cnt += r.bpf[n].cnt);
    totals.set(n, { ns, cnt });
  }
  // Hot: run at least a quarter as often as the busiest program (two programs on one hook are both hot; a top-3 cut could drop one of them by a few runs).
  const busiest = Math.max(0, ...[...totals.values()].map((t) => t.cnt));
  const hottest = [...totals].filter(([, t]) => t.cnt > 0 && t.cnt >= busiest / 4).map(([n]) => n);
  const missed = [];
  for (const n of names) {
    const cells = sources.map((s) => {
      let ns = 0;
      let cnt = 0;
      let secs = 0;
      for (const r of s.runs) {
        secs += r.seconds ?? 0;
        if (r.bpf?.[n]) (ns += r.bpf[n].ns), (cnt += r.bpf[n].cnt);
      }
      return cnt ? `${int(ns / cnt)} | ${int(cnt / secs)}` : '– | 0';
    });
    const t = totals.get(n);
    const avg = t.cnt ? t.ns / t.cnt : NaN;
    const hot = hottest.includes(n);
    if (hot && !(avg <= 150)) missed.push(`\`${n}\` ${int(avg)} ns`);
    out.push(`| \`${n}\` | ${HOOKS[n] ?? ''} | ${cells.join(' | ')} | ${hot ? `${mark(avg <= 150)} ${int(avg)} ns (hot)` : `${int(avg)} ns`} |`);
  }
  out.push('');
  const all = sources.flatMap((s) => s.runs);
  out.push(conclusion(missed, noisy(all)));
  return out.join('\n');
}

// ------------------------------------------------------------------- suites
const RENDER = {
  throughput: renderThroughput,
  latency: renderLatency,
  'churn-ladder': renderChurnLadder,
  concurrency: renderConcurrency,
  ingest: renderIngest,
  export: renderExport,
  hooks: renderHooks,
};

function render(suite, runsPath) {
  const f = RENDER[suite];
  if (!f) throw new Error(`no renderer for suite ${suite}`);
  // hooks reads the other suites' results: its argument is the results directory.
  if (suite === 'hooks') return `${f([], { results: runsPath })}\n`;
  return `${f(readRuns(runsPath), { results: join(HERE, '.results') })}\n`;
}

function insert(suite, docPath, tablePath) {
  const table = readFileSync(tablePath, 'utf8').trimEnd();
  const block = `${begin(suite)}\n${table}\n${end(suite)}`;
  let doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Performance\n\n';
  const a = doc.indexOf(begin(suite));
  const b = doc.indexOf(end(suite));
  if (a >= 0 && b > a) doc = doc.slice(0, a) + block + doc.slice(b + end(suite).length);
  else doc = `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(docPath, doc);
}

export { RENDER };

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'render') process.stdout.write(render(args[0], args[1]));
else if (cmd === 'insert') insert(args[0], args[1], args[2]);
else if (cmd !== undefined) {
  process.stderr.write('usage: node bench/suites.mjs render SUITE RUNS.jsonl | insert SUITE DOC TABLE.md\n');
  process.exit(2);
}
