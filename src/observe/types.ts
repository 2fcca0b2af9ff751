/**
 * What the access log tells us, shape by shape: a line → a parsed request →
 * the upstream attempts in it → per (service, pool) windows.
 */
import type { Pool } from '../config/types.js';

/** One upstream attempt inside one access-log line. */
export interface Attempt {
  /**
   * `host:port` or `unix:/path` as nginx logged it in $upstream_addr, or an upstream name when nginx had
   * no live server.
   */
  addr: string;
  /**
   * HTTP status of this attempt, or null when nginx logged `-` (no response header, e.g. the client closed
   * first). A refused or failed connection is logged by nginx 1.22 as 502, a timeout as 504 (see observe/parse.ts).
   */
  status: number | null;
  /** $upstream_connect_time of this attempt in ms (nginx logs seconds with ms resolution), or null for `-`. */
  connectMs: number | null;
  /**
   * $upstream_response_time of this attempt in ms (nginx logs seconds with ms resolution), or null for `-`
   * or a missing entry. nginx 1.22 logs a time for every attempt, also one that got no response: `0.000`
   * for a refused connection, the time waited for a read timeout or until the client hung up (see
   * `responseSample` in observe/parse.ts for which count as samples).
   */
  responseMs: number | null;
}

/** One parsed access-log line (format `nginx_canary`). */
export interface LogRecord {
  /** $msec as epoch ms. */
  atMs: number;
  /** Final status sent to the client ($status; e.g. 499 when the client closed the connection first). */
  status: number;
  /** $proxy_host: the upstream name the request was proxied to. */
  upstream: string;
  /** Every attempt in order: `, ` separates attempts within a group, ` : ` across groups (internal redirects). */
  attempts: Attempt[];
  /** $request_time in ms (nginx logs seconds with ms resolution); 0 when the field is unusable. */
  requestMs: number;
  /**
   * The chance in percent (0–100) nginx had to log this line (`$nginx_canary_log`, observe/parse.ts
   * `parseSample`): a sampled success stands for 100 / sample requests. Absent: 100.
   */
  sample?: number;
}

/** Where an attempt landed, after attribution by `addr`. */
export interface Attribution {
  /** Service name as in weights.yaml (`ServiceConfig.name`). */
  service: string;
  /** The pool of the configured server the address belongs to. */
  pool: Pool;
}
