/**
 * The kernel's own network counters, as /proc/net/snmp and /proc/net/netstat
 * print them: pairs of lines, `Group: Name Name ...` then `Group: 1 2 ...`.
 */
import type { MetricDefinition } from '../../metrics/definitions';

export type NetstatTable = Map<string, number>; // "Tcp:RetransSegs" → value

export function parseNetstat(text: string, into: NetstatTable = new Map()): NetstatTable {
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const head = lines[i]!.trim().split(/\s+/);
    const vals = lines[i + 1]!.trim().split(/\s+/);
    const group = head[0]?.replace(/:$/, '');
    if (!group || vals[0] !== head[0] || head.length !== vals.length) continue;
    for (let k = 1; k < head.length; k++) {
      const v = Number(vals[k]);
      if (Number.isFinite(v)) into.set(`${group}:${head[k]}`, v);
    }
  }
  return into;
}

/** Counters that are levels, not running totals. */
const GAUGES = new Set(['Tcp:CurrEstab', 'Tcp:RtoAlgorithm', 'Tcp:RtoMin', 'Tcp:RtoMax', 'Tcp:MaxConn', 'Ip:Forwarding', 'Ip:DefaultTTL']);

export const DEFAULT_COUNTERS: readonly string[] = [
  'Tcp:ActiveOpens',
  'Tcp:PassiveOpens',
  'Tcp:AttemptFails',
  'Tcp:EstabResets',
  'Tcp:CurrEstab',
  'Tcp:InSegs',
  'Tcp:OutSegs',
  'Tcp:RetransSegs',
  'Tcp:InErrs',
  'Tcp:OutRsts',
  'TcpExt:ListenOverflows',
  'TcpExt:ListenDrops',
  'TcpExt:TCPTimeouts',
  'TcpExt:TCPSynRetrans',
  'TcpExt:TCPLostRetransmit',
  'TcpExt:TCPAbortOnTimeout',
  'TcpExt:TCPBacklogDrop',
  'Udp:InDatagrams',
  'Udp:OutDatagrams',
  'Udp:NoPorts',
  'Udp:InErrors',
  'Udp:RcvbufErrors',
  'Udp:SndbufErrors',
];

/** `TcpExt:TCPSynRetrans` → `netstat_tcpext_tcp_syn_retrans`. */
export function metricNameOf(counter: string): string {
  const [group = '', name = ''] = counter.split(':');
  const snake = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
  return `netstat_${group.toLowerCase()}_${snake}`;
}

export function definitionOf(counter: string): MetricDefinition {
  const gauge = GAUGES.has(counter);
  return {
    name: metricNameOf(counter),
    kind: gauge ? 'gauge' : 'counter',
    unit: '1',
    description: `The kernel's ${counter} counter (${counter.startsWith('TcpExt') || counter.startsWith('IpExt') ? '/proc/net/netstat' : '/proc/net/snmp'}${gauge ? ', a level' : ', delta per collection'}).`,
  };
}
