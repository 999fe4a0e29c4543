import { UpstreamError } from './upstream-error.js';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

/**
 * Server-sent events from raw bytes, by the WHATWG rules the providers follow: a line ends with
 * CRLF, LF or CR; the `data:` lines of an event are joined with newlines; a blank line ends the
 * event; a line starting with `:` is a comment (a keep-alive). Other fields are ignored.
 *
 * Unlike a general parser it holds a bounded amount: an event, or a line not yet ended, that
 * grows past `maxEventBytes` fails the stream, so an upstream that never sends a newline cannot
 * fill the gateway's memory. Lines are decoded only once whole, so a character split across two
 * chunks needs no streaming decoder.
 */
export class SseDecoder {
  /** Complete lines so far (data, comments, other fields, blank): what counts as the upstream being alive. */
  lines = 0;
  /** The pieces of a line not yet ended. */
  private readonly partial: Buffer[] = [];
  private partialBytes = 0;
  /** The data of the event being read, or null if it has no data line yet. */
  private data: string | null = null;
  private eventBytes = 0;
  /** The last chunk ended with CR: an LF opening the next one belongs to it. */
  private afterCr = false;

  constructor(private readonly maxEventBytes: number) {}

  /** Appends to `out` the data of each event `chunk` completes. */
  feed(chunk: Buffer, out: string[]): void {
    const n = chunk.length;
    let start = 0;
    if (this.afterCr) {
      this.afterCr = false;
      if (chunk[start] === LF) start++;
    }
    // Searched once per chunk, and again only past the line they ended: most streams have no CR at all.
    let lf = chunk.indexOf(LF, start);
    let cr = chunk.indexOf(CR, start);
    while (start < n) {
      if (lf !== -1 && lf < start) lf = chunk.indexOf(LF, start);
      if (cr !== -1 && cr < start) cr = chunk.indexOf(CR, start);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (end === -1) {
        this.keep(chunk.subarray(start));
        return;
      }
      this.line(chunk, start, end, out);
      start = end + 1;
      if (chunk[end] === CR) {
        if (start === n) this.afterCr = true;
        else if (chunk[start] === LF) start++;
      }
    }
  }

  private keep(piece: Buffer): void {
    this.partialBytes += piece.length;
    this.check(this.partialBytes);
    this.partial.push(piece);
  }

  private line(chunk: Buffer, start: number, end: number, out: string[]): void {
    let buf = chunk;
    if (this.partialBytes > 0) {
      this.check(this.partialBytes + end - start);
      this.partial.push(chunk.subarray(start, end));
      buf = Buffer.concat(this.partial, this.partialBytes + end - start);
      this.partial.length = 0;
      this.partialBytes = 0;
      start = 0;
      end = buf.length;
    }
    if (this.lines++ === 0 && end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) start += 3; // a BOM
    if (start === end) {
      if (this.data !== null) out.push(this.data);
      this.data = null;
      this.eventBytes = 0;
      return;
    }
    // Only `data` matters here; `event`, `id`, `retry` and comments are skipped.
    if (end - start < 4 || buf[start] !== 0x64 || buf[start + 1] !== 0x61 || buf[start + 2] !== 0x74 || buf[start + 3] !== 0x61) return;
    let v = start + 4;
    if (v < end && buf[v] !== COLON) return; // a field named data…something
    if (v < end) v++;
    if (v < end && buf[v] === SPACE) v++;
    this.eventBytes += end - start;
    this.check(0);
    const value = buf.toString('utf8', v, end);
    this.data = this.data === null ? value : `${this.data}\n${value}`;
  }

  private check(pending: number): void {
    if (this.eventBytes + pending > this.maxEventBytes) {
      throw new UpstreamError('protocol', `upstream sent an SSE event or line over ${this.maxEventBytes} bytes`);
    }
  }
}
