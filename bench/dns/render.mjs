// Renders bench/dns/run.sh's runs.jsonl as markdown, or puts a rendered table
// into a document between the DNS bench markers.
//   node bench/dns/render.mjs RUNS.jsonl            > table.md
//   node bench/dns/render.mjs --insert DOC table.md
import { readFileSync, writeFileSync } from 'node:fs';

const BEGIN = '<!-- bench:dns:begin (written by bench/dns/run.sh) -->';
const END = '<!-- bench:dns:end -->';
const GOAL_PPS = 50_000;

const HOOKS = {
  dns_filter: 'socket filter (every packet of the captured namespace)',
  dns_owner_egress: 'cgroup_skb/egress (every packet leaving a socket)',
  dns_connect4: 'cgroup/connect4',
  dns_connect6: 'cgroup/connect6',
  dns_sendmsg4: 'cgroup/sendmsg4',
  dns_sendmsg6: 'cgroup/sendmsg6',
};

const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');

function render(lines) {
  const runs = lines.map((l) => JSON.parse(l));
  const meta = runs.find((r) => r.section === 'meta') ?? {};
  const dns = runs.filter((r) => r.section === 'dns');
  const out = [];
  out.push(
    `Measured ${meta.date} on ${meta.cpus} × ${meta.cpu}, kernel ${meta.kernel}, Node ${meta.node}, dnsmasq ${meta.dnsmasq}, dnsperf ${meta.dnsperf}, flowtel ${meta.commit}; ` +
      `${meta.seconds} s per run, ${meta.clients} dnsperf sockets, ${meta.names} names; the agent captures in the client's namespace (one capture per packet).`,
  );
  out.push('');
  out.push('| queries/s asked | attribution | dnsperf sent / completed | agent queries / responses | attributed to dnsperf | capture drops | DNS packets/s | agent CPU during the flood | counts final after | agent CPU-s in all | packets per agent CPU-second | agent RSS | load avg before → after | machine busy |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const notes = [];
  for (const r of dns) {
    const pkts = r.agent.queries + r.agent.responses;
    const pps = pkts / r.seconds;
    const perCore = r.agent_cpu_s > 0 ? pkts / r.agent_cpu_s : NaN;
    const exact = r.agent.queries === r.dnsperf.sent ? '' : ' ✗';
    out.push(
      `| ${fmt(r.rate)} | ${r.attribution ? 'on' : 'off'} | ${fmt(r.dnsperf.sent)} / ${fmt(r.dnsperf.completed)} | ${fmt(r.agent.queries)}${exact} / ${fmt(r.agent.responses)} | ` +
        `${r.attribution ? fmt(r.agent.attributed) : '–'} | ${fmt(r.agent.capture_drops)} | ${fmt(pps)} | ${r.agent_cpu_pct.toFixed(1)} % | ${r.caught_up_s} s | ${r.agent_cpu_s.toFixed(1)} | ${fmt(perCore)} | ` +
        `${Math.round(r.rss_max_kb / 1024)} MB | ${r.loadavg_before} → ${r.loadavg_after} | ${r.machine_busy_pct.toFixed(0)} % |`,
    );
    if (r.agent.queries !== r.dnsperf.sent) notes.push(`${fmt(r.rate)} q/s: the agent counted ${fmt(r.agent.queries)} queries for ${fmt(r.dnsperf.sent)} sent (capture drops ${fmt(r.agent.capture_drops)}).`);
    if (r.agent.responses < r.dnsperf.completed) notes.push(`${fmt(r.rate)} q/s: fewer responses counted (${fmt(r.agent.responses)}) than dnsperf completed (${fmt(r.dnsperf.completed)}).`);
    if (r.agent.malformed > 0 || r.agent.dropped > 0) notes.push(`${fmt(r.rate)} q/s: malformed ${fmt(r.agent.malformed)}, not tracked ${fmt(r.agent.dropped)}.`);
  }
  out.push('');
  out.push(
    '"DNS packets/s" = (queries + responses the agent counted) / flood time. "Counts final after": how long after the flood the agent\'s counts reached dnsperf\'s ' +
      '(a backlog, when the agent got less CPU than it needed). "Packets per agent CPU-second" = those packets / the CPU time the agent used from the start of the flood until its counts were final ' +
      `(its JS thread and native threads together): the rate one core would sustain at that cost per packet (goal: ≥ ${fmt(GOAL_PPS)}). "Machine busy" is the CPU time of everything on the host during the flood ` +
      `(100 % = one of its ${meta.cpus} CPUs), the load average is /proc/loadavg's 1-minute figure: other work on a shared machine shows there.`,
  );
  const bpfRows = [];
  for (const r of dns) {
    for (const [name, s] of Object.entries(r.bpf ?? {})) {
      if (!s.cnt) continue;
      bpfRows.push(`| ${fmt(r.rate)} | ${r.attribution ? 'on' : 'off'} | \`${name}\` (${HOOKS[name] ?? name}) | ${fmt(s.cnt)} | ${(s.ns / s.cnt).toFixed(0)} |`);
    }
  }
  if (bpfRows.length) {
    out.push('');
    out.push('| queries/s | attribution | BPF program | runs | ns per run |');
    out.push('|---|---|---|---|---|');
    out.push(...bpfRows);
  }
  const best = dns.filter((r) => r.attribution).map((r) => (r.agent.queries + r.agent.responses) / r.agent_cpu_s);
  if (best.length) {
    const worst = Math.min(...best);
    out.push('');
    const exact = dns.every((r) => r.agent.queries === r.dnsperf.sent && r.agent.capture_drops === 0);
    out.push(
      (worst >= GOAL_PPS ? `Goal met: ≥ ${fmt(GOAL_PPS)} DNS packets per agent CPU-second in every run with attribution (lowest ${fmt(worst)})` : `Goal missed: lowest ${fmt(worst)} DNS packets per agent CPU-second < ${fmt(GOAL_PPS)}`) +
        (exact ? '; every query counted, no capture drops.' : '; NOT every query counted or capture drops: see below.'),
    );
  }
  if (notes.length) {
    out.push('');
    for (const n of notes) out.push(`- ${n}`);
  }
  return out.join('\n') + '\n';
}

const args = process.argv.slice(2);
if (args[0] === '--insert') {
  const [, doc, table] = args;
  const text = readFileSync(doc, 'utf8');
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b < 0 || e < b) throw new Error(`${doc} has no ${BEGIN} … ${END} markers`);
  writeFileSync(doc, text.slice(0, b + BEGIN.length) + '\n' + readFileSync(table, 'utf8') + text.slice(e));
} else {
  process.stdout.write(render(readFileSync(args[0], 'utf8').split('\n').filter((l) => l.trim())));
}
