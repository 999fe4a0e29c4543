import type { ServerResponse } from 'node:http';

/** A whole reply. `release` gives back what the body holds of the buffer budget once it is gone. */
export function writeBody(res: ServerResponse, status: number, headers: Record<string, string>, body: string | readonly Buffer[], release?: () => void): void {
  if (release !== undefined) {
    if (res.destroyed || res.writableFinished) release();
    else res.once('close', release);
  }
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, headers);
  if (typeof body === 'string') {
    res.end(body);
    return;
  }
  // In pieces, so that a relayed embeddings answer is never joined into one more copy.
  for (const piece of body) res.write(piece);
  res.end();
}

/**
 * A stream, frame by frame: the next frame is asked for only once the client has taken the last
 * (backpressure reaches the upstream). A client that goes away ends the frames early, which
 * tells the pipeline to bill what was delivered and close the upstream.
 */
export async function writeFrames(res: ServerResponse, status: number, headers: Record<string, string>, frames: AsyncGenerator<string, void, undefined>): Promise<void> {
  if (res.destroyed) {
    await frames.return();
    return;
  }
  res.writeHead(status, headers);
  for await (const frame of frames) {
    if (res.destroyed) break;
    if (!res.write(frame)) await drained(res);
  }
  if (!res.destroyed) res.end();
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
