// Which failures mean "the database cannot be reached or written now" (the client gets 503
// store_unavailable, settlements are kept and retried) as opposed to a statement that failed on
// its own merits (a duplicate key), which is the caller's error as it is.

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * SQLSTATEs of the server's state rather than the statement's: connection exceptions (08),
 * insufficient resources such as a full disk (53), operator intervention such as a shutdown or
 * a statement cancelled by a timeout (57), system and I/O errors (58), a lock not granted within
 * lock_timeout (55P03), a read-only standby (25006), and serialization failures and deadlocks
 * (40001, 40P01), which are worth trying again.
 */
const SERVER = /^(08|53|57|58)|^(55P03|25006|40001|40P01)$/;

/** What node-postgres says when it never got, or lost, a connection. */
const DRIVER = /Connection terminated|timeout exceeded when trying to connect|Connection refused|connection error|Query read timeout|not queryable/i;

export function isFault(e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK.has(code) || SERVER.test(code))) return true;
  // A pool that cannot connect may report an AggregateError (one per address tried).
  if (e instanceof AggregateError) return e.errors.some(isFault);
  const message = (e as { message?: unknown }).message;
  return typeof code !== 'string' && typeof message === 'string' && DRIVER.test(message);
}

/** Connection-level SQLSTATEs: the connection failed (08) or the server is shutting down or starting (57P01–57P03). */
const CONNECTION = /^(08|57P0[123])/;

/**
 * The connection itself failed: what was sent may or may not have been executed (a COMMIT may
 * have arrived). Any other failure is the server's answer, and a transaction it answered with
 * an error was rolled back.
 */
export function isConnectionLost(e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return NETWORK.has(code) || CONNECTION.test(code);
  if (e instanceof AggregateError) return e.errors.some(isConnectionLost);
  const message = (e as { message?: unknown }).message;
  return typeof message === 'string' && DRIVER.test(message);
}
