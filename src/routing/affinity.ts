import type { Deployment } from './catalog.js';

const CAPACITY = 100_000;

interface Entry {
  deployment: Deployment;
  at: number;
}

/**
 * Which deployment served a session last, so its next request finds the provider's prompt cache
 * warm. An LRU of fixed capacity: a Map keeps insertion order, so a hit is moved to the end and
 * the first entry is the least recently used. Each process keeps its own.
 */
export class Affinity {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly capacity = CAPACITY,
  ) {}

  /** The deployment that served this session within `ttlMs`, if any. */
  get(session: string, ttlMs: number): Deployment | null {
    const e = this.entries.get(session);
    if (e === undefined) return null;
    this.entries.delete(session);
    if (this.now() - e.at > ttlMs) return null;
    this.entries.set(session, e);
    return e.deployment;
  }

  set(session: string, deployment: Deployment): void {
    const e = this.entries.get(session);
    if (e !== undefined) {
      this.entries.delete(session);
      e.deployment = deployment;
      e.at = this.now();
      this.entries.set(session, e);
      return;
    }
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(session, { deployment, at: this.now() });
  }

  get size(): number {
    return this.entries.size;
  }
}
