import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

// Who owns a hold: a store instance, named by a random id, with a lease row that says where it
// runs (host and pid) and until when it is known to be alive. Another instance may release its
// holds once the lease has run out; on the same machine it need not wait when the process is
// plainly gone.

function read(f: () => string): string {
  try {
    return f().trim();
  } catch {
    return '';
  }
}

/**
 * The machine and process namespace this process runs in: two processes with the same HOST see
 * each other's pids. The boot id makes a process of a previous boot a stranger (its lease then
 * decides), and the pid namespace does the same for another container on the same host.
 */
export const HOST = [
  hostname(),
  read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
  read(() => readlinkSync('/proc/self/ns/pid')),
].join('/');

/** Whether a process with this pid exists (EPERM: it exists but belongs to another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LeaseRow {
  owner: string;
  host: string;
  pid: number;
  expiresAt: number;
}

/** A lease whose owner can no longer settle its holds: run out, or its process is gone from this machine. */
export function ownerGone(l: LeaseRow, now: number): boolean {
  return l.expiresAt < now || (l.host === HOST && l.pid !== process.pid && !processAlive(l.pid));
}
