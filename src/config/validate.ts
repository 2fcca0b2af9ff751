/**
 * Pure validation of weights.yaml: raw parsed value → `Config` (types.ts) or
 * every problem found. Structure and types come from the TypeBox schema
 * (schema.ts); the rules a schema cannot state live here: the safe character
 * sets (nothing a user writes may inject nginx syntax), host:port and
 * `unix:/path` servers, paths,
 * uniqueness and cross-field rules, the design's defaults (docs/design.md "Numbers"),
 * and normalization (ms, percent 0–100, ratio 0–1, absolute paths).
 *
 * No I/O: positions come from the `locate` callback the loader passes in,
 * and relative paths resolve against `dirname(file)` as a string operation.
 */
import path from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import type { ConfigProblem, SourcePosition } from '../errors.js';
import type {
  Config,
  FleetConfig,
  GatesConfig,
  ListenAddress,
  OverrideConfig,
  Pool,
  ProbeConfig,
  RolloutConfig,
  ServerConfig,
  ServiceConfig,
  SplitMode,
} from './types.js';
import { WeightsSchema } from './schema.js';
import { neverConclusive } from './conclusive.js';
import { formatDuration, parseDuration, parsePercent, percentToRatio, toTenthPercent } from './units.js';

/** One step of a key path: a mapping key or a list index. */
export type PathSegment = string | number;

/**
 * Finds the source position of a key path. `at: 'key'` asks for the key
 * itself (unknown or misnamed keys), `'value'` (default) for its value. A
 * path that does not exist answers the position of its deepest existing
 * ancestor (a missing key points at its parent mapping); null when unknown.
 */
export type Locate = (path: readonly PathSegment[], at?: 'key' | 'value') => SourcePosition | null;

/** Outcome of {@link validateConfig}: the normalized Config, or every problem (sorted by position). */
export type ValidateResult = { ok: true; value: Config } | { ok: false; problems: ConfigProblem[] };

/**
 * Service names whose route variable `$nginx_canary_<name>` would be one of the access-log sampling
 * variables the include file defines (nginx/model.ts LOG_SAMPLE_VARIABLE, LOG_SAMPLED_VARIABLE).
 */
const RESERVED_SERVICE_NAMES: ReadonlySet<string> = new Set(['log', 'log_sampled']);

/**
 * The values nginx.access_log_sample takes: the percents that divide 100, so a sampled line stands
 * for a whole number of requests (counts stay integers, as fleet snapshots require).
 */
export const ACCESS_LOG_SAMPLES: readonly number[] = Object.freeze([1, 2, 4, 5, 10, 20, 25, 50, 100]);

/** Service names, 1–48 characters: also the nginx upstream name (types.ts ServiceConfig.name). */
export const SERVICE_NAME_RE = /^[a-z][a-z0-9_]{0,47}$/;
/** Characters allowed in any file path (after resolution too). */
export const SAFE_PATH_RE = /^[A-Za-z0-9._/+~-]+$/;
/** A binary given as a bare command name (looked up on PATH): safe characters, no leading `-`. */
export const COMMAND_RE = /^[A-Za-z0-9._+~][A-Za-z0-9._+~-]*$/;
/** Probe paths (`/health`). */
export const PROBE_PATH_RE = /^\/[A-Za-z0-9._~/-]*$/;
/** split_clients key: nginx variables only. */
export const SPLIT_KEY_RE = /^(\$[a-z_][a-z0-9_]*)+$/;

/**
 * Longest unix-socket path a server may name, bytes: `sun_path` holds 108
 * with the terminating NUL, and nginx 1.22 refuses a longer path ("too long
 * path in the unix domain socket").
 */
export const MAX_SOCKET_PATH_BYTES = 107;

const HOST_PORT_RE = /^(?:\[([0-9A-Fa-f:]+)\]|([A-Za-z0-9.-]+)):([0-9]+)$/;
/** parseHostPort's reason when the text is not host:port at all. */
const NOT_HOST_PORT = 'must be host:port (IPv4, hostname or [IPv6], then a port)';
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PRINTABLE_RE = /^[\x21-\x7e]+$/;

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** Server defaults per pool (docs/design.md "Numbers": primary `max_fails=3 fail_timeout=20s`; canary `max_fails=1 fail_timeout=10s slow_start=30s`). */
const SERVER_DEFAULTS: Readonly<Record<Pool, { maxFails: number; failTimeoutMs: number; slowStartMs: number | null }>> =
  {
    primary: { maxFails: 3, failTimeoutMs: 20 * SEC, slowStartMs: null },
    canary: { maxFails: 1, failTimeoutMs: 10 * SEC, slowStartMs: 30 * SEC },
  };

/**
 * Formats a key path the way problems show it: `services.gateway.canary[0].max_fails`.
 * Keys that are not plain identifiers are quoted: `services["gate;way"]`.
 */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/**
 * Parses `host:port` with the safe host forms: IPv4 dotted quad, hostname
 * (`[A-Za-z0-9.-]`, DNS label rules), or `[ipv6]` in canonical compressed form
 * (what nginx writes in `$upstream_addr`). Port 1–65535 without leading
 * zeros. Returns the parts (IPv6 host without brackets) or a reason string.
 */
export function parseHostPort(text: string): ListenAddress | string {
  const m = HOST_PORT_RE.exec(text);
  if (!m) return NOT_HOST_PORT;
  const [, v6, name, portText = ''] = m;
  const port = Number(portText);
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || port > 65535) return `port ${portText} is not a port from 1 to 65535`;
  if (v6 !== undefined) {
    if (!isIPv6(v6)) return `[${v6}] is not an IPv6 address`;
    const canonical = new URL(`http://[${v6}]/`).hostname;
    if (canonical !== `[${v6}]`)
      return `IPv6 address [${v6}] must be written in canonical form ${canonical}, as nginx logs it`;
    return { host: v6, port };
  }
  const host = name!; // the pattern matched either [v6] or a name
  if (/^[0-9.]+$/.test(host)) {
    if (!isIPv4(host)) return `${host} is not an IPv4 address (four numbers 0-255, no leading zeros)`;
  } else if (host.length > 253 || !HOSTNAME_RE.test(host)) {
    return `${host} is not a valid hostname`;
  }
  return { host, port };
}

/** A parsed `server` value: TCP (`socketPath` null) or a unix socket (`host` '', `port` 0). */
export type ServerAddress = Pick<ServerConfig, 'host' | 'port' | 'socketPath'>;

/** Why a `server` value was refused: the message (validateConfig adds `(got …)`) and how to write it instead. */
export interface ServerAddressProblem {
  message: string;
  fix: string;
}

const TCP_SERVER_FIX =
  'Write host:port with an IPv4 address, a hostname or [IPv6], e.g. `server: 127.0.0.1:18789`, or a unix socket as `server: unix:/run/app.sock`';

/**
 * Parses the `server` of an upstream server entry: `host:port` as
 * {@link parseHostPort} reads it, or `unix:` then the absolute path of a
 * unix-domain socket (`unix:/run/app.sock`), as nginx's `server` directive
 * takes it. The path must be made of the safe path characters
 * ({@link SAFE_PATH_RE}: no whitespace, `;`, `{`, `}`, quotes, `$`, `#`, and
 * no `:`, since nginx's `$upstream_addr` separates groups with ` : `), be
 * normalized (no `//`, `.` or `..` segment, no trailing `/`: nginx logs the
 * path as written and attribution matches it exactly) and hold at most
 * {@link MAX_SOCKET_PATH_BYTES} bytes. The `unix:` prefix must be lower case
 * (nginx takes any case, but logs it as written).
 *
 * Returns the address, or the problem (message and fix). Never throws.
 */
export function parseServerAddress(text: string): ServerAddress | ServerAddressProblem {
  if (!/^unix:/i.test(text)) {
    const tcp = parseHostPort(text);
    if (typeof tcp !== 'string') return { ...tcp, socketPath: null };
    return { message: tcp === NOT_HOST_PORT ? `${tcp} or unix:/absolute/path` : tcp, fix: TCP_SERVER_FIX };
  }
  const socketPath = text.slice('unix:'.length);
  const example = 'e.g. `server: unix:/run/app.sock`';
  if (!socketPath.startsWith('/') || socketPath.endsWith('/'))
    return {
      message: 'must be unix: followed by the absolute path of the socket file',
      fix: `Write the socket's absolute path after unix:, ${example}`,
    };
  if (!SAFE_PATH_RE.test(socketPath))
    return {
      message: 'the unix-socket path contains characters that are not allowed',
      fix: 'Use only letters, digits and . _ / + ~ - in the path (no spaces, quotes, ; { } $ #, and no : which $upstream_addr puts between groups): it is written into an nginx file',
    };
  if (socketPath.length > MAX_SOCKET_PATH_BYTES)
    return {
      message: `the unix-socket path is ${socketPath.length} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a socket address holds`,
      fix: `Move the socket to a shorter path, ${example} (sun_path is 108 bytes with its final NUL)`,
    };
  const normal = path.posix.normalize(socketPath);
  if (normal !== socketPath)
    return {
      message: `the unix-socket path is not in normal form (${normal})`,
      fix: `Write \`server: unix:${normal}\`: nginx logs the path as written, and access-log lines are matched to it exactly`,
    };
  // Last, so the fix only ever echoes a path that passed the checks above.
  if (!text.startsWith('unix:'))
    return {
      message: 'the unix-socket prefix must be written in lower case',
      fix: `Write \`server: unix:${socketPath}\``,
    };
  return { host: '', port: 0, socketPath };
}

/** One accepted entry of `override.allow` (see {@link parseAllowEntry}). */
export interface AllowEntry {
  /** 4 for IPv4, 6 for IPv6. */
  family: 4 | 6;
  /** The address part as written (IPv6 in canonical compressed form). */
  address: string;
  /** The prefix length: as written after `/`, else 32 (IPv4) or 128 (IPv6). */
  prefix: number;
  /** `address/prefix`: two entries with the same network are the same nginx geo network. */
  network: string;
}

/** Why an `override.allow` entry was refused: the message (validateConfig adds `(got …)`) and how to write it. */
export interface AllowEntryProblem {
  message: string;
  fix: string;
}

/** Characters an `override.allow` entry may hold before it is parsed (letters only so a host name gets a clear message). */
const ALLOW_CHARS_RE = /^[0-9A-Za-z.:/]+$/;

/** A 32-bit IPv4 address (validated by isIPv4) as a bigint. */
function ipv4Bits(a: string): bigint {
  return a.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

/** Dotted quad of the low 32 bits. */
function ipv4Text(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

/** A canonical compressed IPv6 address (no dotted tail, see parseAllowEntry) as a 128-bit bigint. */
function ipv6Bits(a: string): bigint {
  const [head = '', tail] = a.split('::');
  const hi = head === '' ? [] : head.split(':');
  const lo = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? hi : [...hi, ...Array<string>(8 - hi.length - lo.length).fill('0'), ...lo];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Canonical compressed text of a 128-bit IPv6 value. */
function ipv6Text(v: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((v >> BigInt(16 * (7 - i))) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * Parses one entry of `services.<name>.override.allow`: a client address or
 * network as nginx `geo` takes it (ngx_http_geo_module: "address", or
 * "address/prefix" in CIDR notation; IPv6 since nginx 1.3.10). Accepted:
 * - IPv4 `127.0.0.1` or CIDR `10.1.2.0/24` (prefix 0–32, no leading zeros);
 * - IPv6 `::1` or CIDR `fd00::/8` (prefix 0–128) in canonical compressed
 *   lower-case form (what the rest of weights.yaml uses), without a zone;
 * and refused besides:
 * - bits set past the prefix (`10.1.2.5/24`): nginx only warns "low address
 *   bits of … are meaningless" and uses the network, which hides a typo;
 * - IPv4-mapped IPv6 (`::ffff:127.0.0.1`): nginx geo looks an IPv4 client up
 *   among the IPv4 entries only, so such an entry never matches (checked on
 *   nginx 1.22).
 * Only `0-9 a-f . : /` can pass, so an entry cannot inject nginx syntax.
 *
 * Returns the entry, or the problem (message and fix). Never throws.
 */
export function parseAllowEntry(text: string): AllowEntry | AllowEntryProblem {
  const example = 'e.g. `allow: [127.0.0.1, 10.1.2.0/24, "::1"]`';
  if (text.length === 0 || text.length > 64 || !ALLOW_CHARS_RE.test(text))
    return {
      message: 'contains characters that are not allowed',
      fix: `Write one address or CIDR made of digits, letters a-f, . : and / only (no spaces, quotes, ; { } $ #, no %zone): it is written into an nginx geo block, ${example}`,
    };
  const parts = text.split('/');
  const [address = '', prefixText] = parts;
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : null;
  if (parts.length > 2 || family === null)
    return {
      message: 'is not an IPv4 or IPv6 address or CIDR',
      fix: `nginx geo matches client addresses, not host names: write an address or a network, ${example}`,
    };
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    prefix = Number(prefixText);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || prefix > bits)
      return {
        message: `the prefix /${prefixText} is not a number from 0 to ${bits}`,
        fix: `Write the prefix length of the network, e.g. ${family === 4 ? '10.1.2.0/24' : 'fd00::/8'}, or the address alone for one client`,
      };
  }
  const suffix = prefixText === undefined ? '' : `/${prefix}`;
  let value: bigint;
  if (family === 6) {
    const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    if (canonical !== address)
      return {
        message: `IPv6 address ${address} must be written in canonical form ${canonical}`,
        fix: `Write \`${canonical}${suffix}\` (lower case, zeros compressed), as the rest of weights.yaml writes IPv6`,
      };
    value = ipv6Bits(address);
    if (value >> 32n === 0xffffn && prefix >= 96)
      return {
        message:
          'is an IPv4-mapped IPv6 address, which nginx geo never matches (it looks IPv4 clients up among the IPv4 entries)',
        fix: `Write the IPv4 form, \`${ipv4Text(value)}${prefixText === undefined ? '' : `/${prefix - 96}`}\``,
      };
  } else {
    value = ipv4Bits(address);
  }
  const host = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & host) !== 0n) {
    const net = value & ~host;
    const netText = `${family === 4 ? ipv4Text(net) : ipv6Text(net)}/${prefix}`;
    return {
      message: `has address bits set past its /${prefix} prefix (the network is ${netText})`,
      fix: `Write \`${netText}\` for the network, or \`${address}\` alone for one client (nginx only warns "low address bits are meaningless")`,
    };
  }
  return { family, address, prefix, network: `${address}/${prefix}` };
}

/**
 * `services.<name>.override`: null when absent or `~` (no override); else the
 * allow list, each entry checked by {@link parseAllowEntry} and listed once
 * (as a network: `127.0.0.1` and `127.0.0.1/32` are one). Wrong types are
 * the schema's to report.
 */
function override(r: Reader): OverrideConfig | null {
  const list = asMap(r.raw('override'))?.['allow'];
  if (!Array.isArray(list)) return null;
  const at: PathSegment[] = [...r.at, 'override', 'allow'];
  const seen = new Map<string, number>();
  const allow: string[] = [];
  list.forEach((item: unknown, i) => {
    if (typeof item !== 'string') return; // the schema reported it
    const entry = parseAllowEntry(item);
    if ('message' in entry) {
      r.out.add([...at, i], `${entry.message} (got ${show(item)})`, entry.fix);
      return;
    }
    const first = seen.get(entry.network);
    if (first !== undefined) {
      r.out.add(
        [...at, i],
        `${item} is the same network as ${formatPath([...at, first])} (${String(list[first])})`,
        'List each address or network once (nginx geo warns "duplicate network" and keeps one)',
      );
      return;
    }
    seen.set(entry.network, i);
    allow.push(item);
  });
  return { allow };
}

/** Why a `fleet.etcd` entry was refused: the message (validateConfig adds `(got …)`) and how to write it. */
export interface EtcdEndpointProblem {
  message: string;
  fix: string;
}

/** The example every `fleet.etcd` fix shows: etcd's default client port is 2379. */
const ETCD_EXAMPLE = 'http://10.0.0.5:2379';

/**
 * The problem both `check` and `run` report when no `fleet.etcd` endpoint answers: at `position` (the
 * key `fleet.etcd`, or null when the file could not be read), naming the fleet `prefix` and `detail`
 * (which endpoints were tried and why each failed), with one fix for both commands. 2379 is etcd's
 * client port (etcd docs, op-guide "Configuration options": "The official etcd ports are 2379 for
 * client requests", and `--listen-client-urls` defaults to `http://localhost:2379`). Never throws.
 */
export function noEtcdAnswersProblem(prefix: string, detail: string, position: SourcePosition | null): ConfigProblem {
  return {
    position,
    path: 'fleet.etcd',
    message: `no etcd endpoint answers, so this host cannot join fleet ${prefix}: ${detail}`,
    fix: "Start etcd on those hosts, or correct the client URLs in fleet.etcd (etcd's client port is 2379 by default); for a local try, `apt-get install etcd-server` and start etcd, which listens on http://127.0.0.1:2379 by default",
  };
}

/** `scheme://` at the start of a URL-like text: the scheme (any case) and what follows `://`. */
const SCHEME_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s;

/**
 * Parses one entry of `fleet.etcd`: an etcd member's client URL, `http://` or `https://` (lower case),
 * then a host (IPv4, hostname or `[IPv6]` in canonical form, as {@link parseHostPort} reads it) and an
 * explicit port, and nothing else: no `user:password@`, path, query or fragment (one trailing `/` is
 * allowed and dropped). Printable ASCII, at most 2048 characters.
 *
 * Returns the normalized URL (`http://10.0.0.5:2379`), or the problem (message and fix, the fix with an
 * example of a good URL). A message never repeats a password. Never throws.
 */
export function parseEtcdEndpoint(text: string): string | EtcdEndpointProblem {
  const fix = `Write each etcd member's client URL as scheme, host and port, e.g. \`${ETCD_EXAMPLE}\``;
  if (text.length > 2048 || !PRINTABLE_RE.test(text))
    return { message: 'must be a URL without spaces or control characters', fix };
  const m = SCHEME_RE.exec(text);
  if (!m) return { message: 'must be an http:// or https:// URL with a host and a port', fix };
  const [, scheme = '', rest = ''] = m;
  if (scheme !== 'http' && scheme !== 'https')
    return { message: `must start with http:// or https://, not ${scheme}://`, fix };
  const cut = rest.search(/[/?#]/);
  const authority = cut === -1 ? rest : rest.slice(0, cut);
  const tail = cut === -1 ? '' : rest.slice(cut);
  if (authority.includes('@'))
    return {
      message: 'must not carry a user or password (user:password@ before the host)',
      fix: `Remove user:password@ and write the scheme, host and port only, e.g. \`${ETCD_EXAMPLE}\``,
    };
  if (authority === '') return { message: 'has no host', fix };
  if (!authority.includes(':') || /^\[[^\]]*\]$/.test(authority))
    return {
      message: 'has no port',
      fix: `Add the client port, e.g. \`${scheme}://${authority}:2379\` (2379 is etcd's default client port)`,
    };
  const hostPort = parseHostPort(authority);
  // parseHostPort speaks of nginx's logs for IPv6; the canonical form is what the rest of weights.yaml writes.
  if (typeof hostPort === 'string') return { message: hostPort.replace(/, as nginx logs it$/, ''), fix };
  if (tail !== '' && tail !== '/')
    return {
      message: 'must not have a path, query or fragment after the port',
      fix: `Write the client URL alone, \`${scheme}://${authority}\`: the client adds its own paths`,
    };
  return `${scheme}://${authority}`;
}

/** `fleet.etcd` texts shown in messages: the password of a `user:password@` replaced by `***`. */
function hidePassword(text: string): string {
  return text.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#@:]*):[^/?#]*@/s, '$1:***@');
}

/** Characters of `fleet.prefix`: it is an etcd key prefix that also appears in status, logs and messages. */
const FLEET_PREFIX_CHARS_RE = /^[A-Za-z0-9._/-]+$/;
/** Longest `fleet.prefix`, characters (a chosen sanity bound: etcd keys may be longer). */
const MAX_FLEET_PREFIX = 256;
/** `fleet.host` (and a hostname taken as its default): 1–63 characters, a DNS label's length. */
export const FLEET_HOST_RE = /^[A-Za-z0-9._-]{1,63}$/;
/** The example `fleet.prefix` of the fixes. */
const PREFIX_EXAMPLE = '/nginx-canary/edge-prod';

/**
 * Why `fleet.prefix` is refused, or null when it is fine: it must start with `/`, must not end with `/`,
 * has no empty (`//`), `.` or `..` segment, is made of `A-Z a-z 0-9 . _ / -` only and is at most
 * {@link MAX_FLEET_PREFIX} characters. Pure.
 */
export function fleetPrefixProblem(prefix: string): EtcdEndpointProblem | null {
  const example = `e.g. \`prefix: ${PREFIX_EXAMPLE}\``;
  if (prefix.length > MAX_FLEET_PREFIX || !FLEET_PREFIX_CHARS_RE.test(prefix))
    return {
      message: `must be at most ${MAX_FLEET_PREFIX} letters, digits and . _ / - only`,
      fix: `Name the fleet's etcd key prefix with those characters, ${example}`,
    };
  if (!prefix.startsWith('/')) return { message: 'must start with /', fix: `Write it as a key path, ${example}` };
  if (prefix === '/')
    return { message: 'must name a key path below /', fix: `One fleet is one key prefix, ${example}` };
  const segments = prefix.slice(1).split('/');
  if (segments.some((x) => x === '.' || x === '..') || segments.slice(0, -1).some((x) => x === ''))
    return {
      message: 'must not have an empty (//), . or .. segment',
      fix: `Write each segment out, ${example}: every host of the fleet must write the very same prefix`,
    };
  if (prefix.endsWith('/')) return { message: 'must not end with /', fix: `Write \`prefix: ${prefix.slice(0, -1)}\`` };
  return null;
}

/** Options of {@link validateConfig}. */
export interface ValidateOptions {
  /**
   * The machine's hostname, the default of `fleet.host` (default `os.hostname()`); asked only when a
   * `fleet:` section has no `host`.
   */
  hostname?: () => string;
}

/**
 * The `fleet:` section: null when absent or `~`. Checks every `etcd` entry ({@link parseEtcdEndpoint},
 * each URL once), the prefix ({@link fleetPrefixProblem}), the host (given, or the machine's hostname,
 * {@link FLEET_HOST_RE}) and lease_ttl (whole seconds, 2s–60s, default 5s). Wrong types and missing
 * keys are the schema's to report.
 */
function fleet(root: Reader, hostname: () => string): FleetConfig | null {
  const r = root.child('fleet');
  if (r.map === undefined) return null;
  const endpoints: string[] = [];
  const list = r.raw('etcd');
  const seen = new Map<string, number>();
  (Array.isArray(list) ? list : []).forEach((item: unknown, i) => {
    if (typeof item !== 'string') return; // the schema reported it
    const at: PathSegment[] = [...r.at, 'etcd', i];
    const url = parseEtcdEndpoint(item);
    if (typeof url !== 'string') {
      r.out.add(at, `${url.message} (got ${show(hidePassword(item))})`, url.fix);
      return;
    }
    const key = url.toLowerCase(); // scheme and host names are case-insensitive
    const first = seen.get(key);
    if (first !== undefined) {
      r.out.add(
        at,
        `${url} is already listed at ${formatPath([...r.at, 'etcd', first])}`,
        'List each etcd member once',
      );
      return;
    }
    seen.set(key, i);
    endpoints.push(url);
  });

  const prefixText = r.string('prefix') ?? '';
  const bad = r.string('prefix') === undefined ? null : fleetPrefixProblem(prefixText);
  if (bad) r.problem('prefix', `${bad.message} (got ${show(prefixText)})`, bad.fix);

  const hostFix =
    'Name this host in the fleet with 1 to 63 letters, digits, . _ or -, e.g. `host: edge-1`; each host of the fleet needs its own';
  let host = r.matching('host', FLEET_HOST_RE, 63, 'must be 1 to 63 letters, digits, . _ or -', hostFix);
  if (r.string('host') === undefined) {
    const own = hostname();
    if (FLEET_HOST_RE.test(own)) host = own;
    else
      r.problem(
        'host',
        `is not set, and this machine's hostname ${show(own)} is not a fleet host name (1 to 63 letters, digits, . _ or -)`,
        hostFix,
      );
  }

  const ttlText = r.string('lease_ttl');
  const ttl = ttlText === undefined ? null : parseDuration(ttlText);
  let leaseTtlMs = 5 * SEC;
  if (ttl !== null && ttl % SEC !== 0)
    r.problem(
      'lease_ttl',
      `must be a whole number of seconds (got ${ttlText}); etcd lease TTLs are whole seconds`,
      `Write it like \`lease_ttl: ${Math.min(60, Math.max(2, Math.round(ttl / SEC)))}s\``,
    );
  else leaseTtlMs = r.duration('lease_ttl', 5 * SEC, { min: 2 * SEC, max: 60 * SEC });

  return { endpoints, prefix: prefixText, host: host ?? '', leaseTtlMs };
}

/** Short rendering of a value for messages; never echoes control characters raw. */
function show(value: unknown): string {
  if (value === null) return 'null (~)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    return s.length > 64 ? `${s.slice(0, 60)}…"` : s;
  }
  return `${value as number | boolean}`; // YAML gives nothing else
}

/** Levenshtein distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The valid key closest to `key` (case and `-`/`_` insensitive, or ≤ 1/3 edits), if any. */
function closest(key: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, '');
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = norm(c) === norm(key) ? 0 : distance(key.toLowerCase(), c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

/** The schema annotations problems are built from (schema.ts sets them on every leaf). */
interface Schema {
  /** Every schema in schema.ts has one. */
  description: string;
  examples?: readonly (string | number | boolean)[];
  properties?: Record<string, unknown>;
  anyOf?: readonly unknown[];
}

/** Collects problems; knows how to place them. */
class Collector {
  readonly list: ConfigProblem[] = [];
  readonly #locate: Locate;
  constructor(locate: Locate) {
    this.#locate = locate;
  }
  add(
    segments: readonly PathSegment[],
    message: string,
    fix: string,
    at: 'key' | 'value' = 'value',
    locateAt = segments,
  ): void {
    this.list.push({ position: this.#locate(locateAt, at), path: formatPath(segments), message, fix });
  }
}

/** Splits a TypeBox JSON pointer into segments, using the raw value to tell list indexes from keys. */
function pointerToSegments(pointer: string, raw: unknown): PathSegment[] {
  const out: PathSegment[] = [];
  let cur: unknown = raw;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      out.push(Number(key));
      cur = cur[Number(key)] as unknown;
    } else {
      out.push(key);
      cur = (cur as Record<string, unknown> | null | undefined)?.[key];
    }
  }
  return out;
}

/** Unwraps `Opt(x)` unions (x | null) so the error names what x wanted, not "expected union". */
function* unwrap(e: ValueError): Generator<ValueError> {
  if (e.type === ValueErrorType.Union) {
    const variants = (e.schema as unknown as { anyOf: readonly { type?: unknown }[] }).anyOf;
    const nonNull = e.errors.filter((_, i) => variants[i]?.type !== 'null');
    if (nonNull.length === 1) {
      for (const sub of nonNull.flatMap((it) => [...it])) yield* unwrap(sub);
      return;
    }
  }
  yield e;
}

/** `key: <example>` from the schema, or null when the schema has no example or the place is a list item. */
function exampleOf(key: PathSegment | undefined, schema: Schema): string | null {
  const example = schema.examples?.[0];
  return example === undefined || typeof key !== 'string' ? null : `${key}: ${String(example)}`;
}

function exampleFix(key: PathSegment | undefined, schema: Schema): string {
  const example = exampleOf(key, schema);
  return example === null ? `Write ${schema.description} here` : `Write it like \`${example}\``;
}

/** Turns TypeBox structural errors into problems. */
function schemaProblems(raw: unknown, out: Collector): void {
  for (const top of Value.Errors(WeightsSchema, raw)) {
    for (const e of unwrap(top)) {
      const segs = pointerToSegments(e.path, raw);
      const key = segs[segs.length - 1];
      const schema = e.schema as Schema;
      if (e.type === ValueErrorType.ObjectAdditionalProperties) {
        const valid = Object.keys((schema as Required<Schema>).properties);
        const near = closest(String(key), valid);
        const list = valid.join(', ');
        out.add(
          segs,
          `unknown key ${JSON.stringify(key)}`,
          near ? `Did you mean "${near}"? Valid keys here: ${list}` : `Remove it; valid keys here: ${list}`,
          'key',
        );
      } else if (e.type === ValueErrorType.ObjectRequiredProperty) {
        // `e.schema` is the missing property's schema here.
        const parent = segs.slice(0, -1);
        const where = parent.length === 0 ? 'at the top level' : `under ${formatPath(parent)}`;
        // Every required key in schema.ts has an example.
        const example = String((schema as Required<Schema>).examples[0]);
        out.add(
          segs,
          `missing required key "${String(key)}"`,
          `Add \`${String(key)}:\` ${where}, e.g. ${String(key)}: ${example}`,
          'value',
          parent,
        );
      } else if (e.value === undefined && segs.length > 0) {
        continue; // a missing key: reported once as ObjectRequiredProperty
      } else if (e.type === ValueErrorType.ArrayMinItems || e.type === ValueErrorType.ObjectMinProperties) {
        out.add(segs, `must not be empty: write ${schema.description}`, exampleFix(key, schema));
      } else if (segs.length === 0) {
        out.add(
          segs,
          `the top level must be a mapping with nginx: and services: (got ${show(e.value)})`,
          'Start from examples/weights.production.yaml',
        );
      } else {
        out.add(segs, `must be ${schema.description} (got ${show(e.value)})`, exampleFix(key, schema));
      }
    }
  }
}

/** `v` as a mapping when it is one (the schema has already reported it otherwise). */
function asMap(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

interface Range {
  min: number;
  max: number;
}

/** Reads fields of one mapping, applying defaults and semantic checks. */
class Reader {
  readonly out: Collector;
  readonly at: readonly PathSegment[];
  readonly map: Record<string, unknown> | undefined;
  constructor(out: Collector, at: readonly PathSegment[], map: Record<string, unknown> | undefined) {
    this.out = out;
    this.at = at;
    this.map = map;
  }

  child(key: string): Reader {
    return new Reader(this.out, [...this.at, key], asMap(this.map?.[key]));
  }

  raw(key: string): unknown {
    return this.map?.[key];
  }

  problem(key: string, message: string, fix: string): void {
    this.out.add([...this.at, key], message, fix);
  }

  /** A duration in ms within `range`; `unit: 's'` demands whole seconds (nginx counts some in seconds). */
  duration(key: string, def: number, range: Range, unit: 'ms' | 's' = 'ms'): number {
    const v = this.raw(key);
    if (typeof v !== 'string') return def;
    const ms = parseDuration(v);
    if (ms === null) return def; // the schema reported the format
    if (unit === 's' && ms % SEC !== 0) {
      this.problem(
        key,
        `must be a whole number of seconds (got ${v}); nginx counts ${key} in seconds`,
        `Write it like \`${key}: ${Math.max(1, Math.round(ms / SEC))}s\``,
      );
    } else if (!Number.isInteger(ms)) {
      this.problem(
        key,
        `must be a whole number of milliseconds (got ${v})`,
        `Write it like \`${key}: ${Math.max(1, Math.round(ms))}ms\``,
      );
    } else if (ms < range.min || ms > range.max) {
      this.problem(
        key,
        `must be from ${formatDuration(range.min)} to ${formatDuration(range.max)} (got ${v})`,
        `Choose a duration in that range; the default is ${formatDuration(def)}`,
      );
    } else {
      return ms;
    }
    return def;
  }

  /** A percentage 0–100 within `range` (bounds exclusive when `open`), optionally with at most one decimal. */
  percent(key: string, def: number, range: Range, opts: { tenth?: boolean; open?: boolean } = {}): number {
    const v = this.raw(key);
    const p = v === null || v === undefined ? null : parsePercent(v);
    if (p === null) return def; // absent, or the schema reported it
    const outside = opts.open ? p <= range.min || p >= range.max : p < range.min || p > range.max;
    const tenth = toTenthPercent(p);
    if (outside) {
      const span = opts.open ? `above ${range.min} % and below ${range.max} %` : `from ${range.min} to ${range.max} %`;
      this.problem(
        key,
        `must be a percentage ${span} (got ${show(v)})`,
        `Set ${key} to a value ${span}; the default is ${def}`,
      );
    } else if (opts.tenth && tenth === null) {
      this.problem(
        key,
        `must have at most one decimal (got ${show(v)}); weights have 0.1 % resolution`,
        `Round it, e.g. ${key}: ${Math.round(p * 10) / 10}`,
      );
    } else {
      return opts.tenth && tenth !== null ? tenth : p;
    }
    return def;
  }

  integer(key: string, def: number): number {
    const v = this.raw(key);
    return typeof v === 'number' && Number.isInteger(v) ? v : def; // ranges are in the schema
  }

  number(key: string, def: number): number {
    const v = this.raw(key);
    return typeof v === 'number' && Number.isFinite(v) ? v : def; // ranges are in the schema
  }

  string(key: string): string | undefined {
    const v = this.raw(key);
    return typeof v === 'string' ? v : undefined;
  }

  /** A string matching `re`, else a problem with `message`/`fix`; undefined when absent or invalid. */
  matching(key: string, re: RegExp, maxLength: number, message: string, fix: string): string | undefined {
    const v = this.string(key);
    if (v === undefined) return undefined;
    if (v.length > maxLength || !re.test(v)) {
      this.problem(key, `${message} (got ${show(v)})`, fix);
      return undefined;
    }
    return v;
  }
}

/** Resolves user paths against the config directory and keeps them in the safe set. */
class Paths {
  readonly baseDir: string;
  constructor(baseDir: string) {
    this.baseDir = baseDir;
  }

  /** Absolute path of `r.<key>`, `def` (relative to the config dir) when absent, undefined when invalid. */
  read(r: Reader, key: string, def?: string): string | undefined {
    const v = r.string(key);
    const text = v ?? def;
    if (text === undefined) return undefined;
    if (v !== undefined && (v.length > 4096 || !SAFE_PATH_RE.test(v))) {
      r.problem(
        key,
        `path ${show(v)} contains characters that are not allowed`,
        'Use only letters, digits and . _ / + ~ - (no spaces, quotes, ; { } $ #): the path may reach an nginx file',
      );
      return undefined;
    }
    const abs = path.resolve(this.baseDir, text);
    if (!SAFE_PATH_RE.test(abs)) {
      r.problem(
        key,
        `path resolves to ${show(abs)}, which contains characters that are not allowed`,
        'Write an absolute path, or move weights.yaml to a directory whose path uses only letters, digits and . _ / + ~ -',
      );
      return undefined;
    }
    return abs;
  }
}

/** True when `child` is strictly inside directory `dir` (both absolute). */
function isInside(child: string, dir: string): boolean {
  const rel = path.relative(dir, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function listen(r: Reader, key: string, def: ListenAddress): ListenAddress {
  const v = r.string(key);
  if (v === undefined) return def;
  const parsed = parseHostPort(v);
  if (typeof parsed === 'string') {
    r.problem(key, `${parsed} (got ${show(v)})`, `Write a loopback address like \`${key}: 127.0.0.1:${def.port}\``);
    return def;
  }
  return parsed;
}

function servers(r: Reader, pool: Pool, seen: Map<string, string>): ServerConfig[] {
  const list = r.raw(pool);
  if (!Array.isArray(list)) return [];
  const d = SERVER_DEFAULTS[pool];
  return list.map((item, i): ServerConfig => {
    const s = new Reader(r.out, [...r.at, pool, i], asMap(item));
    const text = s.string('server') ?? '';
    const parsed = s.string('server') === undefined ? null : parseServerAddress(text);
    let address: ServerAddress = { host: '', port: 0, socketPath: null };
    if (parsed && 'message' in parsed) {
      s.problem('server', `${parsed.message} (got ${show(text)})`, parsed.fix);
    } else if (parsed) {
      address = parsed;
      const where = formatPath([...s.at]);
      // Host names are case-insensitive; socket paths are not.
      const key = parsed.socketPath === null ? text.toLowerCase() : text;
      const first = seen.get(key);
      if (first !== undefined) {
        s.problem(
          'server',
          `server ${text} is already listed at ${first}`,
          `List each ${parsed.socketPath === null ? 'host:port' : 'unix socket'} once across all services and pools: access-log lines are attributed to a server by its address`,
        );
      } else {
        seen.set(key, where);
      }
    }
    const slowStartMs = s.duration('slow_start', d.slowStartMs ?? 0, { min: 0, max: HOUR }, 's');
    return {
      server: text,
      ...address,
      maxFails: s.integer('max_fails', d.maxFails),
      failTimeoutMs: s.duration('fail_timeout', d.failTimeoutMs, { min: SEC, max: DAY }, 's'),
      slowStartMs: slowStartMs === 0 ? null : slowStartMs,
    };
  });
}

function probe(r: Reader): ProbeConfig {
  const pathFix = 'Use a URL path starting with / made of letters, digits and . _ ~ / -';
  const intervalMs = r.duration('interval', 5 * SEC, { min: 100, max: HOUR });
  const timeoutMs = r.duration('timeout', 2 * SEC, { min: 10, max: MIN });
  if (timeoutMs > intervalMs) {
    r.problem(
      'timeout',
      `must not exceed probe.interval (${formatDuration(intervalMs)})`,
      'Lower timeout or raise interval so probes never overlap',
    );
  }
  return {
    health: r.matching('health', PROBE_PATH_RE, 1024, 'must be a URL path such as /health', pathFix) ?? '/health',
    ready: r.matching('ready', PROBE_PATH_RE, 1024, 'must be a URL path such as /ready', pathFix) ?? '/ready',
    intervalMs,
    timeoutMs,
  };
}

function rollout(r: Reader): RolloutConfig {
  return {
    target: r.percent('target', 0, { min: 0, max: 100 }, { tenth: true }),
    slice: r.percent('slice', 5, { min: 5, max: 12 }, { tenth: true }),
    sliceSoakMs: r.duration('slice_soak', 48 * HOUR, { min: 0, max: 365 * DAY }),
    step: r.percent('step', 10, { min: 1, max: 50 }, { tenth: true }),
    stepSoakMs: r.duration('step_soak', 15 * MIN, { min: 0, max: 365 * DAY }),
    version:
      r.matching(
        'version',
        VERSION_RE,
        128,
        'must be a build label made of letters, digits and . _ + - (such as v2.4.1 or a git sha)',
        'Use the label your deploy tool gives the canary build, without spaces or other characters',
      ) ?? null,
    promoteCommand: promoteCommand(r),
    promoteTimeoutMs: r.duration('promote_timeout', 5 * MIN, { min: SEC, max: HOUR }),
  };
}

/** `rollout.version`: a build label; it reaches logs, metrics labels and the status, never nginx. */
const VERSION_RE = /^[A-Za-z0-9._+-]+$/;

/** `rollout.promote_command`: argv for execFile (no shell); every argument printable, no control characters. */
function promoteCommand(r: Reader): string[] | null {
  const raw = r.raw('promote_command');
  if (!Array.isArray(raw) || raw.length === 0) return null;
  const args = raw.filter((a): a is string => typeof a === 'string');
  if (args.length !== raw.length) return null; // the schema reported it
  if (args.some((a) => [...a].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f))) {
    r.problem(
      'promote_command',
      'must not contain control characters (newlines, tabs, NUL)',
      'Write each argument as its own list item, e.g. [/usr/local/bin/deploy-primary, gateway]',
    );
  }
  return args;
}

function gates(r: Reader): GatesConfig {
  return {
    windowMs: r.duration('window', 15 * MIN, { min: SEC, max: DAY }),
    minRequests: r.integer('min_requests', 200),
    connectP95Ms: r.duration('connect_p95', 120, { min: 1, max: MIN }),
    errorRatio: percentToRatio(r.percent('error_ratio', 0.5, { min: 0, max: 100 }, { open: true })),
    probeFailureRatio: percentToRatio(r.percent('probe_failure_ratio', 5, { min: 0, max: 100 }, { open: true })),
    baselineP95Factor: r.number('baseline_p95_factor', 5),
    minProbes: r.integer('min_probes', 20),
    crashLoopRestarts: r.integer('crash_loop_restarts', 3),
    crashLoopWindowMs: r.duration('crash_loop_window', 5 * MIN, { min: SEC, max: DAY }),
  };
}

function service(r: Reader, name: string, seen: Map<string, string>): ServiceConfig {
  const split = r.raw('split') === 'split_clients' ? 'split_clients' : 'weighted';
  return {
    name,
    split: split satisfies SplitMode,
    splitKey:
      r.matching(
        'split_key',
        SPLIT_KEY_RE,
        256,
        'must be nginx variables only, such as $remote_addr$http_user_agent',
        'Use one or more $variable names (lowercase letters, digits, _) with nothing between them',
      ) ?? '$remote_addr$http_user_agent',
    primary: servers(r, 'primary', seen),
    canary: servers(r, 'canary', seen),
    probe: probe(r.child('probe')),
    rollout: rollout(r.child('rollout')),
    gates: gates(r.child('gates')),
    override: override(r),
  };
}

/**
 * Names a service claims in the include file (src/nginx/model.ts), which
 * must not be claimed by two services:
 * - upstreams `<service>_primary`, `<service>_canary`, and `<service>` when
 *   weighted;
 * - the suffix N of every variable `$nginx_canary_N` it sets: `<service>`
 *   (the route map), for split_clients `<service>_split` (the split_clients
 *   variable), and with an `override` `<service>_override` (the `geo` of
 *   allowed clients). nginx lets a second `map`/`split_clients`/`geo`
 *   silently redefine a variable, so such a clash would not fail `nginx -t`.
 * Upstream and variable suffixes share one set: a clash between them is
 * not an nginx error but would make `$proxy_host` ambiguous for attribution.
 */
function upstreamNames(s: ServiceConfig): string[] {
  const pools = [`${s.name}_primary`, `${s.name}_canary`];
  const names = s.split === 'weighted' ? [s.name, ...pools] : [...pools, s.name, `${s.name}_split`];
  return s.override === null ? names : [...names, `${s.name}_override`];
}

function sortByPosition(problems: ConfigProblem[]): ConfigProblem[] {
  const key = (p: ConfigProblem) => (p.position ? p.position.line * 1e6 + p.position.column : -1);
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => key(a.p) - key(b.p) || a.i - b.i)
    .map(({ p }) => p);
}

/**
 * Validates a parsed weights.yaml and normalizes it into `Config`.
 *
 * - `raw`: the plain JS value of the YAML document (yaml's `toJS()`).
 * - `file`: path of weights.yaml; relative paths inside resolve against its
 *   directory (`path.resolve`, so a relative `file` resolves against the cwd).
 * - `locate`: maps a key path to a file position (see {@link Locate}); pass
 *   `() => null` when there is no source text.
 *
 * Returns `{ ok: true, value }` or `{ ok: false, problems }` with every
 * problem found, sorted by position. Never throws for any `raw`.
 *
 * Defaults (docs/design.md "Numbers"): primary max_fails 3, fail_timeout 20s;
 * canary max_fails 1, fail_timeout 10s, slow_start 30s (`0s` = none); probe
 * /health, /ready, 5s, 2s; rollout target 0, slice 5, slice_soak 48h, step
 * 10, step_soak 15m; gates window 15m, min_requests 200, connect_p95 120ms,
 * error_ratio 0.5 %, probe_failure_ratio 5 %, baseline_p95_factor 5, min_probes 20,
 * crash_loop_restarts 3, crash_loop_window 5m; nginx
 * binary `nginx`, managed false, status_listen 127.0.0.1:9465, snapshots
 * <dir of state_file>/snapshots keep 20, min_reload_interval 2s; sidecar
 * listen 127.0.0.1:9464, state_file .nginx-canary/state.json, no token; no
 * webhook; no `override` (the `X-Canary` header does nothing); no `fleet`
 * (`fleet` null: this host walks alone), and in a `fleet:` section host =
 * `opts.hostname()` (default `os.hostname()`), lease_ttl 5s.
 *
 * Ranges checked here (integer ranges are in schema.ts): fail_timeout 1s–1d
 * and slow_start 0–1h in whole seconds (nginx reads them in seconds); probe
 * interval 100ms–1h, timeout 10ms–1m and ≤ interval; target 0–100, slice
 * 5–12 (docs/design.md "Numbers"), step 1–50, each with at most one decimal; slice_soak and
 * step_soak 0–365d; window and crash_loop_window 1s–1d; connect_p95 1ms–1m;
 * error_ratio and probe_failure_ratio strictly between 0 and 100 %;
 * min_reload_interval 100ms–1h. Bounds without a source in docs/design.md
 * "Numbers" are sanity bounds chosen here.
 *
 * A server is `host:port` or `unix:/absolute/path` (see
 * {@link parseServerAddress}); each appears once across every service and
 * pool (host names compared without case, socket paths exactly). An
 * `override.allow` entry is an address or CIDR (see {@link parseAllowEntry}),
 * each network once per service. `fleet.etcd` entries are http(s) client
 * URLs with host and port (see {@link parseEtcdEndpoint}), each once;
 * `fleet.prefix` see {@link fleetPrefixProblem}; `fleet.host` (or the
 * hostname standing in for it) matches {@link FLEET_HOST_RE}; `fleet.lease_ttl`
 * is whole seconds from 2s to 60s (etcd lease TTLs are whole seconds).
 */
export function validateConfig(raw: unknown, file: string, locate: Locate, opts: ValidateOptions = {}): ValidateResult {
  const out = new Collector(locate);
  schemaProblems(raw, out);
  const absFile = path.resolve(file);
  const paths = new Paths(path.dirname(absFile));
  const root = new Reader(out, [], asMap(raw));

  const nx = root.child('nginx');
  const sc = root.child('sidecar');
  const al = root.child('alerts');

  const binaryText = nx.string('binary');
  const binary =
    binaryText !== undefined && !binaryText.includes('/')
      ? nx.matching(
          'binary',
          COMMAND_RE,
          255,
          'must be a command name or a path made of letters, digits and . _ / + ~ -',
          'Use a command name such as nginx, or an absolute path such as /usr/sbin/nginx',
        )
      : paths.read(nx, 'binary');
  const conf = paths.read(nx, 'conf') ?? '';
  const upstreamsFile = paths.read(nx, 'upstreams_file') ?? '';
  const confDir = path.dirname(conf);
  if (conf !== '' && upstreamsFile !== '' && !isInside(upstreamsFile, confDir)) {
    nx.problem(
      'upstreams_file',
      `${upstreamsFile} is not inside ${confDir}, the directory of nginx.conf`,
      `Put it under ${confDir} (e.g. ${path.join(confDir, 'conf.d', 'nginx-canary.conf')}) and include it from nginx.conf: snapshots cover that directory only`,
    );
  }
  const accessLog = paths.read(nx, 'access_log') ?? '';
  const stateFile = paths.read(sc, 'state_file', '.nginx-canary/state.json') ?? '';
  const sn = nx.child('snapshots');
  const snapshotsDir = paths.read(sn, 'dir') ?? path.join(path.dirname(stateFile), 'snapshots');
  // A snapshot archives dirname(conf) and a rollback restores it: state and snapshots must live elsewhere.
  const outsideConfDir = (r: Reader, key: string, value: string, what: string): void => {
    if (conf !== '' && value !== '' && (value === confDir || isInside(value, confDir))) {
      r.problem(
        key,
        `${what} ${value} is inside ${confDir}, the nginx config directory that every snapshot archives and a rollback restores`,
        `Set ${formatPath([...r.at, key])} to a path outside ${confDir}, e.g. under /var/lib/nginx-canary`,
      );
    }
  };
  outsideConfDir(sc, 'state_file', stateFile, 'the state file');
  outsideConfDir(sn, 'dir', snapshotsDir, 'the snapshot directory');
  outsideConfDir(nx, 'access_log', accessLog, 'the access log');
  const prefix = paths.read(nx, 'prefix') ?? null;
  const tokenFile = paths.read(sc, 'token_file') ?? null;
  const keep = sn.integer('keep', 20);
  const minReloadIntervalMs = nx.duration('min_reload_interval', 2 * SEC, { min: 100, max: HOUR });
  const upstreamKeepalive = nx.integer('upstream_keepalive', 32);
  const upstreamKeepaliveTimeoutMs = nx.duration('upstream_keepalive_timeout', 4 * SEC, { min: SEC, max: HOUR });
  const maxOldGenerations = nx.integer('max_old_generations', 3);
  let accessLogSample = nx.integer('access_log_sample', 100);
  if (!ACCESS_LOG_SAMPLES.includes(accessLogSample)) {
    nx.problem(
      'access_log_sample',
      `must divide 100 so each sampled line stands for a whole number of requests (got ${accessLogSample})`,
      `Write one of ${ACCESS_LOG_SAMPLES.join(', ')} (percent of the successful lines nginx logs)`,
    );
    accessLogSample = 100;
  }
  const statusListen = listen(nx, 'status_listen', { host: '127.0.0.1', port: 9465 });
  const sidecarListen = listen(sc, 'listen', { host: '127.0.0.1', port: 9464 });
  if (statusListen.host === sidecarListen.host && statusListen.port === sidecarListen.port) {
    sc.problem(
      'listen',
      `is the same address as nginx.status_listen (${statusListen.host}:${statusListen.port})`,
      'Give the sidecar and the nginx status server different ports',
    );
  }

  const webhookText = al.string('webhook_url');
  let webhookUrl: string | null = null;
  if (webhookText !== undefined) {
    let url: URL | null;
    try {
      url = PRINTABLE_RE.test(webhookText) && webhookText.length <= 2048 ? new URL(webhookText) : null;
    } catch {
      url = null;
    }
    if (url && (url.protocol === 'http:' || url.protocol === 'https:')) webhookUrl = webhookText;
    else
      al.problem(
        'webhook_url',
        `must be an http or https URL (got ${show(webhookText)})`,
        'Write e.g. `webhook_url: http://127.0.0.1:9093/api/v2/alerts`, or ~ for none',
      );
  }

  const pausedAfterMs = al.duration('paused_after', 30 * MIN, { min: MIN, max: 365 * DAY });
  const fleetConfig = fleet(root, opts.hostname ?? osHostname);

  const services: ServiceConfig[] = [];
  const seenServers = new Map<string, string>();
  const seenUpstreams = new Map<string, string>();
  const svcMap = asMap(raw)?.services;
  for (const [name, value] of Object.entries(asMap(svcMap) ?? {})) {
    if (!SERVICE_NAME_RE.test(name)) {
      out.add(
        ['services', name],
        `service name ${show(name)} is not allowed`,
        'Name it with a lowercase letter followed by up to 47 lowercase letters, digits or _ (it becomes the nginx upstream name), e.g. gateway',
        'key',
      );
    } else if (RESERVED_SERVICE_NAMES.has(name)) {
      out.add(
        ['services', name],
        `service name ${show(name)} is reserved: $nginx_canary_${name} is the sidecar's access-log variable`,
        `Name the service otherwise, e.g. ${name}_svc`,
        'key',
      );
    }
    const svc = service(new Reader(out, ['services', name], asMap(value)), name, seenServers);
    // Gates its own numbers make never conclusive (conclusive.ts), judged only on a service without other problems.
    const at = formatPath(['services', name]);
    if (!out.list.some((p) => p.path === at || p.path.startsWith(`${at}.`) || p.path.startsWith(`${at}[`)))
      for (const p of neverConclusive(svc)) out.add(['services', name, ...p.path], p.message, p.fix);
    for (const u of upstreamNames(svc)) {
      const other = seenUpstreams.get(u);
      if (other !== undefined) {
        out.add(
          ['services', name],
          `renders nginx upstream "${u}", which service "${other}" renders too`,
          'Rename one of the two services',
          'key',
        );
      }
      seenUpstreams.set(u, name);
    }
    services.push(svc);
  }

  if (out.list.length > 0) return { ok: false, problems: sortByPosition(out.list) };
  return {
    ok: true,
    value: {
      file: absFile,
      nginx: {
        binary: binary ?? 'nginx',
        conf,
        prefix,
        managed: nx.raw('managed') === true,
        upstreamsFile,
        accessLog,
        statusListen,
        snapshots: { dir: snapshotsDir, keep },
        minReloadIntervalMs,
        upstreamKeepalive,
        upstreamKeepaliveTimeoutMs,
        maxOldGenerations,
        accessLogSample,
      },
      sidecar: { listen: sidecarListen, stateFile, tokenFile },
      alerts: { webhookUrl, pausedAfterMs },
      services,
      fleet: fleetConfig,
    },
  };
}
