/**
 * Pure parser of one access-log line in the `nginx_canary` format (docs/design.md
 * "Rendering"). nginx writes one JSON object per line with `escape=json`, so
 * every value is a JSON string:
 *
 * ```
 * {"msec":"1763744701.123","status":"200","upstream":"gateway","addr":"127.0.0.1:18890, 127.0.0.1:18789",
 *  "ustatus":"502, 200","connect":"-, 0.000","header":"-, 0.001","response":"0.000, 0.001","request_time":"0.002",
 *  "sample":"100"}
 * ```
 *
 * `sample` is the chance in percent (0–100) nginx had to log the line
 * (`$nginx_canary_log`, docs/design.md "Sampled access log"): `100` for a line
 * it always logs (a failed or retried attempt, or sampling off), the configured
 * `nginx.access_log_sample` for a sampled success (the line stands for
 * 100 / sample requests), `0` for a line nginx was told to leave out (the
 * `access_log` line lacks `if=$nginx_canary_log`, so every line is written).
 * A line without it (the format before sampling) or with anything else counts
 * as 100: it stands for itself.
 *
 * `addr`, `ustatus`, `connect`, `header` and `response` list one entry per
 * upstream attempt: `, ` separates attempts within a group, ` : ` separates
 * groups (after an internal redirect, e.g. `error_page … = @fallback`). A
 * request that never went upstream has empty (or `-`) upstream fields: no
 * attempts. `header` is not read.
 *
 * Shapes checked against nginx 1.22.1 (test/observe/nginx-log.test.ts):
 * - a refused connection is logged as status `502` with connect `-` for that
 *   attempt (nginx makes the 502 itself); a timeout as `504`;
 * - an attempt to a `server unix:/path;` is logged as `unix:/path`, exactly
 *   as the config writes it, and a missing socket file or a socket nobody
 *   listens on like a refused connection: `502`, connect `-`
 *   (test/observe/unix-socket.test.ts);
 * - when every server of an upstream is marked failed (max_fails), `addr` is
 *   the upstream name (e.g. `gateway`) with status `502`: no server was tried;
 * - `-` for a status means no response header was received (e.g. the client
 *   went away first);
 * - `response` ($upstream_response_time) holds a time for every attempt, also
 *   one that got no response: `0.000` for a refused connection, the time
 *   waited for a read timeout (504) or until the client hung up (499). See
 *   {@link responseSample} for which of them are response-time samples.
 *
 * How an attempt counts (see {@link attemptFailed}): an upstream status ≥ 500
 * or a missing (`-`) status is an error of the server it was sent to.
 *
 * {@link parseLine} is the reference: a fixed-order scan of the line as nginx
 * writes it ({@link scanFixed}, falling back to JSON.parse for anything else)
 * plus hand-written splitting and digit parsing, no regular expressions. The
 * sidecar's hot path is {@link LineCursor}: the same reading done on the
 * line's bytes in place (no string per line, field or attempt, no record),
 * for the lines scanFixed accepts that are ASCII; it hands any other line to
 * parseLine. Measured with `npm run bench:ingest`
 * (bench/ingest.ts prints both paths and checks that they agree).
 */
import type { Attempt, LogRecord } from './types.js';

/** The JSON object nginx writes for format `nginx_canary` (every value a string). */
interface RawLine {
  msec?: unknown;
  status?: unknown;
  upstream?: unknown;
  addr?: unknown;
  ustatus?: unknown;
  connect?: unknown;
  response?: unknown;
  request_time?: unknown;
  sample?: unknown;
}

/**
 * Parses one line. Returns null for a blank line, a line that is not JSON, a
 * JSON value that is not an object, or an object missing a field of the format
 * or holding an unusable `msec`/`status`; never throws.
 *
 * Units: `atMs` is epoch ms ($msec is epoch seconds with ms resolution);
 * `connectMs`, `responseMs` and `requestMs` are ms (nginx logs seconds). Per
 * attempt, `-` or an empty entry gives a null status / connect time / response
 * time. When `ustatus`, `connect` or `response` lists fewer entries than
 * `addr` (nginx never does), the missing ones are null. `header` and
 * `response` are not required: without a string `response` every response
 * time is null.
 */
export function parseLine(line: string): LogRecord | null {
  const f = SCRATCH;
  if (scanFixed(line, f)) return toRecord(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]);
  let raw: RawLine;
  try {
    raw = JSON.parse(line) as RawLine;
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const { msec, status, upstream, addr, ustatus, connect, response } = raw;
  const requestTime = raw.request_time;
  if (
    typeof msec !== 'string' ||
    typeof status !== 'string' ||
    typeof upstream !== 'string' ||
    typeof addr !== 'string' ||
    typeof ustatus !== 'string' ||
    typeof connect !== 'string' ||
    typeof requestTime !== 'string'
  ) {
    return null;
  }
  return toRecord(
    msec,
    status,
    upstream,
    addr,
    ustatus,
    connect,
    typeof response === 'string' ? response : '-',
    requestTime,
    typeof raw.sample === 'string' ? raw.sample : '',
  );
}

/** Builds the record from the field strings; null when `msec` or `status` is unusable. */
function toRecord(
  msec: string,
  status: string,
  upstream: string,
  addr: string,
  ustatus: string,
  connect: string,
  response: string,
  requestTime: string,
  sample: string,
): LogRecord | null {
  const atMs = secondsToMs(msec);
  const code = parseStatus(status);
  if (atMs === null || code === null) return null;
  const rec: LogRecord = {
    atMs,
    status: code,
    upstream,
    attempts: parseAttempts(addr, ustatus, connect, response),
    requestMs: secondsToMs(requestTime) ?? 0,
  };
  // Only a sampled (or left-out) line carries it: a line that stands for itself reads as before sampling.
  const pct = parseSample(sample);
  if (pct !== 100) rec.sample = pct;
  return rec;
}

/**
 * The `sample` field → the chance in percent (0–100) nginx had to log the
 * line: an integer 0–100 as written; empty, `-` or anything else → 100 (the
 * line stands for itself: undercounting successes errs toward a drain, never
 * away from one).
 */
export function parseSample(s: string): number {
  const n = s.length;
  if (n === 0 || n > 3) return 100;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return 100;
    v = v * 10 + c;
  }
  return v <= 100 ? v : 100;
}

/** The keys of format nginx_canary in the order nginx writes them, each as `"key":"` (after `{` or `,`). */
const FIXED_KEYS = [
  'msec',
  'status',
  'upstream',
  'addr',
  'ustatus',
  'connect',
  'header',
  'response',
  'request_time',
].map((k) => `"${k}":"`);

/** The optional last key of format nginx_canary (absent in lines written before sampling). */
const SAMPLE_KEY = ',"sample":"';

/**
 * The fields {@link scanFixed} extracts: msec, status, upstream, addr, ustatus, connect, response,
 * request_time, sample ('' when the line has none).
 */
export type FixedFields = [string, string, string, string, string, string, string, string, string];

/** Reused output of {@link scanFixed} inside parseLine (no allocation per line). */
const SCRATCH: FixedFields = ['', '', '', '', '', '', '', '', ''];

/**
 * Fast path for a line exactly as nginx writes it: `{"msec":"…",…,"request_time":"…","sample":"…"}`
 * with the keys in the log_format's order (`sample` may be left out), no backslash anywhere (so no
 * escape sequence to decode) and nothing but whitespace after the `}`. On
 * success writes msec, status, upstream, addr, ustatus, connect, response,
 * request_time and sample ('' when left out) into `out[0..8]` (header is skipped) and returns true;
 * otherwise returns false and parseLine falls back to JSON.parse (another key
 * order or an escaped value still parses there; garbage does not). Accepts
 * exactly the lines JSON.parse reads to the same values, except that it does
 * not reject a raw control character inside a value (nginx's escape=json
 * never writes one).
 */
export function scanFixed(line: string, out: FixedFields): boolean {
  if (line.charCodeAt(0) !== 123 /* { */ || line.indexOf('\\') !== -1) return false;
  let pos = 1;
  let o = 0;
  for (let k = 0; k < FIXED_KEYS.length; k++) {
    const key = FIXED_KEYS[k] as string;
    if (!line.startsWith(key, pos)) return false;
    pos += key.length;
    const end = line.indexOf('"', pos);
    if (end === -1) return false;
    if (k !== 6) out[o++] = line.slice(pos, end); // header is not used
    pos = end + 1;
    if (k === FIXED_KEYS.length - 1) break;
    if (line.charCodeAt(pos) !== 44 /* , */) return false;
    pos++;
  }
  out[8] = '';
  if (line.startsWith(SAMPLE_KEY, pos)) {
    pos += SAMPLE_KEY.length;
    const end = line.indexOf('"', pos);
    if (end === -1) return false;
    out[8] = line.slice(pos, end);
    pos = end + 1;
  }
  if (line.charCodeAt(pos) !== 125 /* } */) return false;
  pos++;
  for (; pos < line.length; pos++) {
    const c = line.charCodeAt(pos);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return false;
  }
  return true;
}

/**
 * True when an attempt counts as an error of the server it went to: upstream
 * status ≥ 500 (including the 502/504 nginx logs itself for a refused or
 * timed-out connection) or no status at all (`-`: no response was received).
 * `clientGaveUp` is true for the last attempt of a request nginx logged as 499
 * (the client closed the connection first): its missing status is the
 * client's doing, not the server's, so impatient clients cannot drain a
 * healthy canary.
 */
export function attemptFailed(attempt: Attempt, clientGaveUp = false): boolean {
  return statusFailed(attempt.status, clientGaveUp);
}

/** {@link attemptFailed} of an attempt whose upstream status is `status` (null: none, `-`). */
export function statusFailed(status: number | null, clientGaveUp = false): boolean {
  if (status === null) return !clientGaveUp;
  return status >= 500;
}

/**
 * The response-time sample of an attempt for the latency gates, ms, or null:
 * its $upstream_response_time when it connected (`connectMs` not null), else
 * null. nginx logs a time for every attempt; a refused attempt's `0.000` (or
 * the upstream name's, when no server was live) is not a time the server
 * took, and would pull the pool's p95 down. A connected attempt that got no
 * response (read timeout 504, client hang-up 499) counts with the time it
 * took: a lower bound of the server's response time, so a canary too slow to
 * answer before clients give up still shows as slow.
 */
export function responseSample(attempt: Attempt): number | null {
  return attempt.connectMs === null ? null : attempt.responseMs;
}

/**
 * Splits the four per-attempt fields and zips them into attempts. An empty
 * or `-` `addr` means the request never went upstream: no attempts.
 */
function parseAttempts(addr: string, ustatus: string, connect: string, response: string): Attempt[] {
  if (addr === '' || addr === '-') return [];
  // Fast path: one attempt (no separator, hence no space in the field).
  if (addr.indexOf(' ') === -1) {
    return [{ addr, status: parseStatus(ustatus), connectMs: secondsToMs(connect), responseMs: secondsToMs(response) }];
  }
  const addrs = splitList(addr);
  const statuses = splitList(ustatus);
  const connects = splitList(connect);
  const responses = splitList(response);
  const out: Attempt[] = new Array<Attempt>(addrs.length);
  for (let i = 0; i < addrs.length; i++) {
    const s = statuses[i];
    const c = connects[i];
    const r = responses[i];
    out[i] = {
      addr: addrs[i] as string,
      status: s === undefined ? null : parseStatus(s),
      connectMs: c === undefined ? null : secondsToMs(c),
      responseMs: r === undefined ? null : secondsToMs(r),
    };
  }
  return out;
}

/**
 * Splits `a, b : c` into `['a', 'b', 'c']`. nginx joins attempts with `, `
 * and groups with ` : `; no entry contains a space (IPv6 is `[::1]:80`, a
 * unix socket `unix:/path`), so splitting on spaces and dropping the `:`
 * tokens and trailing commas is exact.
 */
export function splitList(field: string): string[] {
  if (field.indexOf(' ') === -1) return [field];
  const parts = field.split(' ');
  const out: string[] = [];
  for (const p of parts) {
    if (p === ':' || p === '') continue;
    out.push(p.charCodeAt(p.length - 1) === 44 /* , */ ? p.slice(0, -1) : p);
  }
  return out;
}

/**
 * An HTTP status: three ASCII digits (fast path), else any non-negative
 * integer; `-`, empty or anything else → null.
 */
export function parseStatus(s: string): number | null {
  if (s.length === 3) {
    const a = s.charCodeAt(0) - 48;
    const b = s.charCodeAt(1) - 48;
    const c = s.charCodeAt(2) - 48;
    if (a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9) return a * 100 + b * 10 + c;
    return null;
  }
  if (s === '' || s === '-') return null;
  const n = Number(s);
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * Seconds as nginx logs them (`0.001`, `1763744701.123`) → ms, exact to the
 * µs (digits are read by hand: no binary-fraction residue, and faster than
 * Number on this hot path); `-`, empty, negative or non-numeric → null.
 * Unusual forms (exponent, more than 6 decimals) go through Number and are
 * rounded to the µs.
 */
export function secondsToMs(s: string): number | null {
  const n = s.length;
  let whole = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    whole = whole * 10 + c;
  }
  if (i === n && n > 0 && n <= 12) return whole * 1000;
  if (i > 0 && i <= 12 && i < n - 1 && n - i - 1 <= 6 && s.charCodeAt(i) === 46 /* . */) {
    let micros = 0;
    let scale = 1_000_000;
    for (i++; i < n; i++) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return slowSecondsToMs(s);
      scale /= 10;
      micros += c * scale;
    }
    return whole * 1000 + micros / 1000;
  }
  return slowSecondsToMs(s);
}

/** The general case of {@link secondsToMs}, through Number. */
function slowSecondsToMs(s: string): number | null {
  if (s === '' || s === '-') return null;
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) return null;
  return Math.round(n * 1e6) / 1e3;
}

// ---------------------------------------------------------------- the hot path, on bytes

/** `{"msec":"`, `,"status":"`, …: what precedes each value of format nginx_canary, as bytes. */
const FIXED_KEY_BYTES: readonly Uint8Array[] = FIXED_KEYS.map((k, i) =>
  Buffer.from(`${i === 0 ? '{' : ','}${k}`, 'latin1'),
);

/** {@link SAMPLE_KEY} as bytes. */
const SAMPLE_KEY_BYTES = Buffer.from(SAMPLE_KEY, 'latin1');

/**
 * What {@link LineCursor.read} made of a line: `ok`, a line scanFixed accepts, all ASCII, with a
 * usable msec and status (its attempts can be walked); `invalid`, such a line whose msec or status
 * is unusable (parseLine returns null for it too); `other`, any other line (another key order, an
 * escape, a byte ≥ 0x80, garbage): read it with parseLine.
 */
export type CursorRead = 'ok' | 'invalid' | 'other';

/**
 * The entries of one list field (`addr`, `ustatus`, `connect`, `response`) by
 * offsets, exactly as {@link splitList} splits the field's string, or the
 * whole field as one entry (`whole`: the single-attempt case of
 * parseAttempts). Allocates nothing.
 */
class ListCursor {
  buf: Uint8Array = EMPTY;
  /** Next offset to look at. */
  pos = 0;
  /** End (exclusive) of the field. */
  end = 0;
  /** The field is one entry. */
  whole = false;
  /** The entry found by the last successful {@link next}: `[start, stop)`. */
  start = 0;
  stop = 0;

  reset(buf: Uint8Array, start: number, end: number, whole: boolean): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.whole = whole || !hasSpace(buf, start, end);
  }

  /** Moves to the next entry; false when there is none. */
  next(): boolean {
    const buf = this.buf;
    const end = this.end;
    if (this.whole) {
      if (this.pos > end) return false;
      this.start = this.pos;
      this.stop = end;
      this.pos = end + 1;
      return true;
    }
    // splitList: split on ' ', drop '' and ':' tokens, strip one trailing ','.
    while (this.pos <= end) {
      const start = this.pos;
      let sp = start;
      while (sp < end && buf[sp] !== 32) sp++;
      this.pos = sp + 1;
      if (sp === start) continue;
      if (sp - start === 1 && buf[start] === 58 /* : */) continue;
      this.start = start;
      this.stop = buf[sp - 1] === 44 /* , */ ? sp - 1 : sp;
      return true;
    }
    return false;
  }
}

const EMPTY = new Uint8Array(0);

/** True when `buf[start, end)` holds a space. */
function hasSpace(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === 32) return true;
  return false;
}

/**
 * A reusable, allocation-free reader of one access-log line held as bytes,
 * the sidecar's hot path (aggregate.ts). {@link read} checks the line the way
 * {@link scanFixed} does, on bytes, and reads msec and status; {@link next}
 * then walks the attempts, setting the current one's fields. For a line
 * `read` returns `ok` for, the values equal {@link parseLine}'s record of the
 * same line (as UTF-8 text): `atMs`, `status`, and attempt by attempt
 * `addr()`, `attemptStatus`, `connectMs`, `responseMs` (test/observe/
 * parse.test.ts compares them on random lines); `invalid` exactly when
 * parseLine returns null for such a line; `other` for any line it leaves to
 * parseLine. Units as in parseLine: epoch ms, ms. The bytes must not change
 * while the line is read.
 */
export class LineCursor {
  /** The bytes of the line read last. */
  buf: Uint8Array = EMPTY;
  /** $msec, epoch ms (after an `ok` read). */
  atMs = 0;
  /** $status (after an `ok` read). */
  status = 0;
  /** Offsets of the current attempt's address in `buf`: `[addrStart, addrEnd)`. */
  addrStart = 0;
  addrEnd = 0;
  /** The current attempt's upstream status, or null (`-`, empty, or no entry). */
  attemptStatus: number | null = null;
  /** The current attempt's connect time, ms, or null. */
  connectMs: number | null = null;
  /** The current attempt's response time, ms, or null. */
  responseMs: number | null = null;
  /** The current attempt is the line's last. */
  last = false;
  /** The line's `sample`: the chance in percent (0–100) nginx had to log it ({@link parseSample}; after an `ok` read). */
  sample = 100;
  /** Start and end offsets of the values, in {@link FixedFields} order (header left out). */
  readonly #at = new Int32Array(18);
  readonly #addr = new ListCursor();
  readonly #ustatus = new ListCursor();
  readonly #connect = new ListCursor();
  readonly #response = new ListCursor();
  /** `#addr` holds an entry not handed out yet. */
  #pending = false;

  /** Starts reading the line `buf[start, end)` (no newline in it); see the class comment. Never throws. */
  read(buf: Uint8Array, start: number, end: number): CursorRead {
    const at = this.#at;
    this.#pending = false;
    if (!scanFixedBytes(buf, start, end, at)) return 'other';
    this.buf = buf;
    const atMs = bytesToMs(buf, at[0] as number, at[1] as number);
    const code = bytesToStatus(buf, at[2] as number, at[3] as number);
    if (atMs === null || code === null) return 'invalid';
    this.atMs = atMs;
    this.status = code;
    this.sample = bytesToSample(buf, at[16] as number, at[17] as number);
    const a0 = at[6] as number;
    const a1 = at[7] as number;
    // parseAttempts: an empty or `-` addr has no attempts; one without a space is one attempt with whole fields.
    if (a1 === a0 || (a1 - a0 === 1 && buf[a0] === 45) /* - */) return 'ok';
    const single = !hasSpace(buf, a0, a1);
    this.#addr.reset(buf, a0, a1, single);
    this.#ustatus.reset(buf, at[8] as number, at[9] as number, single);
    this.#connect.reset(buf, at[10] as number, at[11] as number, single);
    this.#response.reset(buf, at[12] as number, at[13] as number, single);
    this.#pending = this.#addr.next();
    return 'ok';
  }

  /** Moves to the next attempt of the line read last; false when there is none. */
  next(): boolean {
    if (!this.#pending) return false;
    const buf = this.buf;
    const addr = this.#addr;
    this.addrStart = addr.start;
    this.addrEnd = addr.stop;
    const u = this.#ustatus;
    const c = this.#connect;
    const r = this.#response;
    this.attemptStatus = u.next() ? bytesToStatus(buf, u.start, u.stop) : null;
    this.connectMs = c.next() ? bytesToMs(buf, c.start, c.stop) : null;
    this.responseMs = r.next() ? bytesToMs(buf, r.start, r.stop) : null;
    this.#pending = addr.next();
    this.last = !this.#pending;
    return true;
  }

  /** The current attempt's address (allocates; the hot path compares bytes instead). */
  addr(): string {
    return ascii(this.buf, this.addrStart, this.addrEnd);
  }

  /** $proxy_host of the line read last (allocates; needed only for an address several services share). */
  upstream(): string {
    return ascii(this.buf, this.#at[4] as number, this.#at[5] as number);
  }
}

/** `buf[start, end)` as a string, its bytes taken as char codes (exact for ASCII). */
function ascii(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

/**
 * {@link scanFixed} on bytes, for an ASCII line: true when `buf[start, end)` is
 * `{"msec":"…",…,"request_time":"…","sample":"…"}` with the keys in the log_format's order (`sample` may be left out: its offsets are then equal),
 * no backslash and no byte ≥ 0x80 anywhere, and only whitespace after the
 * `}`; then `out[2i]`, `out[2i + 1]` are the start and end offsets of value
 * `i` in {@link FixedFields} order (header left out). Allocates nothing.
 */
export function scanFixedBytes(buf: Uint8Array, start: number, end: number, out: Int32Array): boolean {
  let pos = start;
  let o = 0;
  for (let k = 0; k < FIXED_KEY_BYTES.length; k++) {
    const key = FIXED_KEY_BYTES[k] as Uint8Array;
    if (!bytesAt(buf, pos, end, key)) return false;
    pos += key.length;
    const from = pos;
    pos = valueEnd(buf, pos, end);
    if (pos < 0) return false;
    if (k !== 6) {
      out[o++] = from;
      out[o++] = pos;
    }
    pos++;
  }
  out[16] = pos;
  out[17] = pos;
  if (pos < end && buf[pos] === 44 /* , */) {
    if (!bytesAt(buf, pos, end, SAMPLE_KEY_BYTES)) return false;
    pos += SAMPLE_KEY_BYTES.length;
    out[16] = pos;
    pos = valueEnd(buf, pos, end);
    if (pos < 0) return false;
    out[17] = pos;
    pos++;
  }
  if (pos >= end || buf[pos] !== 125 /* } */) return false;
  for (pos++; pos < end; pos++) {
    const c = buf[pos];
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return false;
  }
  return true;
}

/** True when `buf[pos, end)` starts with `key`. */
function bytesAt(buf: Uint8Array, pos: number, end: number, key: Uint8Array): boolean {
  const n = key.length;
  if (pos + n > end) return false;
  for (let j = 0; j < n; j++) if (buf[pos + j] !== key[j]) return false;
  return true;
}

/**
 * The offset of the `"` closing the value that starts at `pos`, or -1 when the line ends first or
 * the value holds a backslash or a byte ≥ 0x80 (left to parseLine).
 */
function valueEnd(buf: Uint8Array, pos: number, end: number): number {
  for (; pos < end; pos++) {
    const c = buf[pos] as number;
    if (c === 34 /* " */) return pos;
    if (c === 92 /* \ */ || c >= 128) return -1;
  }
  return -1;
}

/** {@link parseSample} of the ASCII `buf[start, end)`. */
export function bytesToSample(buf: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n === 0 || n > 3) return 100;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = (buf[i] as number) - 48;
    if (c < 0 || c > 9) return 100;
    v = v * 10 + c;
  }
  return v <= 100 ? v : 100;
}

/** {@link parseStatus} of the ASCII `buf[start, end)`. */
export function bytesToStatus(buf: Uint8Array, start: number, end: number): number | null {
  const n = end - start;
  if (n === 3) {
    const a = (buf[start] as number) - 48;
    const b = (buf[start + 1] as number) - 48;
    const c = (buf[start + 2] as number) - 48;
    if (a >= 0 && a <= 9 && b >= 0 && b <= 9 && c >= 0 && c <= 9) return a * 100 + b * 10 + c;
    return null;
  }
  return parseStatus(ascii(buf, start, end));
}

/** {@link secondsToMs} of the ASCII `buf[start, end)`, the same digits read by hand. */
export function bytesToMs(buf: Uint8Array, start: number, end: number): number | null {
  const n = end - start;
  let whole = 0;
  let i = start;
  for (; i < end; i++) {
    const c = (buf[i] as number) - 48;
    if (c < 0 || c > 9) break;
    whole = whole * 10 + c;
  }
  const digits = i - start;
  if (digits === n && n > 0 && n <= 12) return whole * 1000;
  if (digits > 0 && digits <= 12 && digits < n - 1 && n - digits - 1 <= 6 && buf[i] === 46 /* . */) {
    let micros = 0;
    let scale = 1_000_000;
    for (i++; i < end; i++) {
      const c = (buf[i] as number) - 48;
      if (c < 0 || c > 9) return secondsToMs(ascii(buf, start, end));
      scale /= 10;
      micros += c * scale;
    }
    return whole * 1000 + micros / 1000;
  }
  return secondsToMs(ascii(buf, start, end));
}
