/**
 * Owners of listening sockets that were open before the agent attached.
 *
 * The kernel side learns a listener's process when it calls listen(); for
 * one that was already listening, the agent finds the owner in /proc and
 * teaches the kernel (setListenerOwner). Connections the listener accepted
 * in between — from the programs' attach to that moment, tens of
 * milliseconds at start — carry no owner in their records. Their records
 * are still waiting to be read when the owners are known, so they are given
 * their listener's owner here, in place, before anything reads them. So are
 * those the first walk brings before their open record: one
 * still in the accept queue has no file yet, so /proc cannot tell its owner.
 */
import { CONN_RECORD_SIZE, ConnDirection, ConnEventKind, ConnRecordCursor, writeOwner, type ConnRecord } from './records';

export interface SocketOwner {
  readonly pid: number;
  readonly comm: string;
}

export class ListenerOwners {
  private readonly byPort = new Map<string, SocketOwner>();

  get size(): number {
    return this.byPort.size;
  }

  set(netns: number, port: number, owner: SocketOwner): void {
    this.byPort.set(`${netns}:${port}`, owner);
  }

  /** The listener's owner for an incoming connection that has none, if the listener is known. */
  private ownerOf(r: Pick<ConnRecord, 'direction' | 'pid' | 'kind' | 'netns' | 'sport'>): SocketOwner | undefined {
    if (r.direction !== ConnDirection.Incoming || r.pid !== 0 || r.kind === ConnEventKind.Listener) return undefined;
    return this.byPort.get(`${r.netns}:${r.sport}`);
  }

  /** Incoming connections of a known listener with no owner get the listener's (packed flowtel_conn records, changed in place). Returns how many. */
  fill(buf: Buffer): number {
    let filled = 0;
    const n = Math.floor(buf.length / CONN_RECORD_SIZE);
    const cursor = new ConnRecordCursor(buf);
    for (let i = 0; i < n; i++) {
      const owner = this.ownerOf(cursor.moveTo(i));
      if (!owner) continue;
      writeOwner(buf, i, owner);
      filled++;
    }
    return filled;
  }
}
