/**
 * A kernel TCP record (bpf/flowtel_tcp.h's flowtel_conn, decoded) for unit
 * tests: an outgoing IPv4 connection 10.0.0.1:40000 → 10.0.0.2:443 of pid 42
 * (curl), closed, with every counter 0; `over` sets the fields a test is about.
 */
import { AF_INET, ConnDirection, ConnEventKind, type ConnRecord } from '../../src/flows/records';

export function connRecord(over: Partial<ConnRecord> = {}): ConnRecord {
  const saddr = Buffer.alloc(16);
  saddr.set([10, 0, 0, 1]);
  const daddr = Buffer.alloc(16);
  daddr.set([10, 0, 0, 2]);
  return {
    cookie: 1, tsNs: 0n, establishedNs: 0n, bytesSent: 0, bytesReceived: 0, bytesRetrans: 0, ino: 0, segsOut: 0, segsIn: 0,
    totalRetrans: 0, srttUs: 0, rttvarUs: 0, connectUs: 0, pid: 42, netns: 1, err: 0, family: AF_INET, sport: 40000, dport: 443,
    kind: ConnEventKind.Close, direction: ConnDirection.Outgoing, state: 7, oldState: 1, flags: 0, saddr, daddr, comm: 'curl',
    ...over,
  };
}
