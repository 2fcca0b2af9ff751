/**
 * Pure parser of one access-log line in the `nginx_canary` format (docs/design.md
 * "Rendering"). nginx writes one JSON object per line with `escape=json`, so
 * every value is a JSON string:
 *
 * ```
 * {"msec":"1763744701.123","status":"200","upstream":"gateway","addr":"127.0.0.1:18890, 127.0.0.1:18789",
 *  "ustatus":"502, 200","connect":"-, 0.000","header":"-, 0.001","response":"0.000, 0.001","request_time":"0.002"}
 * ```
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
 * The hot path is a fixed-order scan of the line as nginx writes it
 * ({@link scanFixed}, falling back to JSON.parse for anything else) plus
 * hand-written splitting and digit parsing, no regular expressions
 * (docs/design.md "Targets": ingest speed is a goal, ~0.6–0.8 M lines/s with JSON.parse and
 * aggregation on one core).
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
  if (scanFixed(line, f)) return toRecord(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
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
): LogRecord | null {
  const atMs = secondsToMs(msec);
  const code = parseStatus(status);
  if (atMs === null || code === null) return null;
  return {
    atMs,
    status: code,
    upstream,
    attempts: parseAttempts(addr, ustatus, connect, response),
    requestMs: secondsToMs(requestTime) ?? 0,
  };
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

/** The fields {@link scanFixed} extracts: msec, status, upstream, addr, ustatus, connect, response, request_time. */
export type FixedFields = [string, string, string, string, string, string, string, string];

/** Reused output of {@link scanFixed} inside parseLine (no allocation per line). */
const SCRATCH: FixedFields = ['', '', '', '', '', '', '', ''];

/**
 * Fast path for a line exactly as nginx writes it: `{"msec":"…",…,"request_time":"…"}`
 * with the keys in the log_format's order, no backslash anywhere (so no
 * escape sequence to decode) and nothing but whitespace after the `}`. On
 * success writes msec, status, upstream, addr, ustatus, connect, response and
 * request_time into `out[0..7]` (header is skipped) and returns true;
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
    if (line.charCodeAt(pos) !== (k === FIXED_KEYS.length - 1 ? 125 /* } */ : 44) /* , */) return false;
    pos++;
  }
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
  if (attempt.status === null) return !clientGaveUp;
  return attempt.status >= 500;
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
