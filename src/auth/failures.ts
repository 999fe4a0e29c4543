import { performance } from 'node:perf_hooks';
import type { FastifyRequest } from 'fastify';
import type { GatewayError } from '../errors.js';

/** Turns a failed authentication into a 429 once the client address has used up its budget. */
export type JudgeAuthFailure = (err: GatewayError, req: FastifyRequest) => GatewayError;

/** Addresses remembered at once; past this the longest-quiet one is forgotten. */
const MAX_ADDRESSES = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Failed authentications per client address: a token bucket of `perMinute` failures, refilled
 * continuously. Only failures are counted and only failures are refused, so a valid key (or
 * the admin key) from an address that has used up its budget still works. The count is kept in
 * this process: with several replicas each allows its own budget.
 */
export class AuthFailures {
  /** In least-recently-failed order: a failure moves its address to the end. */
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly maxAddresses = MAX_ADDRESSES,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Counts a failure from `address`: 0 while within the budget, else the ms until one is allowed again. */
  fail(address: string, now = performance.now()): number {
    if (this.perMinute === 0) return 0;
    let b = this.buckets.get(address);
    if (b === undefined) {
      if (this.buckets.size >= this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.perMinute, at: now };
    } else {
      this.buckets.delete(address);
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    this.buckets.set(address, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.perMs);
  }
}
