import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FILTER_EXCLUDE, FILTER_INCLUDE, encodeKernelFilter } from '../../src/receivers/ebpf_tcp/kernel-filter';

test('kernel filter map entries: ports, IPv4/IPv6/IPv4-mapped CIDRs as LPM keys, command names', () => {
  const { entries, includePorts, includeCidrs, includeComms } = encodeKernelFilter({
    ports: { include: [443], exclude: [22] },
    cidrs: { include: [], exclude: ['10.0.0.0/8', 'fd00::/8', '::ffff:192.168.0.0/112'] },
    processes: { include: ['nginx'], exclude: [] },
  });
  assert.deepEqual([includePorts, includeCidrs, includeComms], [true, false, true]);
  const hex = entries.map((e) => `${e.map} ${e.key.toString('hex')} ${e.value[0]}`);
  assert.deepEqual(hex, [
    `filter_ports bb01 ${FILTER_INCLUDE}`,
    `filter_ports 1600 ${FILTER_EXCLUDE}`,
    `filter_cidr4 080000000a000000 ${FILTER_EXCLUDE}`,
    `filter_cidr6 08000000fd000000000000000000000000000000 ${FILTER_EXCLUDE}`,
    `filter_cidr4 10000000c0a80000 ${FILTER_EXCLUDE}`,
    `filter_comms ${Buffer.from('nginx').toString('hex')}${'00'.repeat(11)} ${FILTER_INCLUDE}`,
  ]);
});
