/**
 * Prints the template model into the include file with EJS
 * (`templates/upstreams.conf.ejs`). Every value is printed raw (`<%-`): EJS's
 * `<%=` escapes HTML, the wrong escaping for nginx, so the
 * values are validated to a safe character set by the config loader and
 * asserted again here before they reach the file.
 */
import { readFileSync } from 'node:fs';
import ejs from 'ejs';
import type { UpstreamsModel } from './model.js';

/** Absolute URL of the template (`templates/` at the package root; same depth from `src/` and `dist/`). */
export const TEMPLATE_URL = new URL('../../templates/upstreams.conf.ejs', import.meta.url);

/** Characters no model value may contain: nginx syntax (`; { } " ' # $ \`) and whitespace. */
const UNSAFE = /[;{}"'#$\\\s]/;

/**
 * Refuses a template that prints with `<%=`: EJS HTML-escapes those values, the wrong escaping for
 * nginx, so this template prints pre-validated values with `<%-` only. Checked on the source when it is
 * compiled, not through EJS's `escape` option: EJS calls that function on the file name while it
 * reports any other error in the template (`rethrow`), so a refusing one there hid every template
 * error behind its own message.
 *
 * @param source the template's text.
 * @param file its path, for the message.
 * @throws Error naming `file:line` of the first `<%=`.
 */
export function assertRawOutputOnly(source: string, file: string): void {
  const at = source.indexOf('<%=');
  if (at === -1) return;
  const line = source.slice(0, at).split('\n').length;
  throw new Error(`${file}:${line} uses <%= (HTML escaping); print pre-validated values with <%- only`);
}

type Render = (model: UpstreamsModel) => string;
let compiled: Render | undefined;

function template(): Render {
  if (compiled) return compiled;
  const source = readFileSync(TEMPLATE_URL, 'utf8');
  assertRawOutputOnly(source, TEMPLATE_URL.pathname);
  const fn = ejs.compile(source, { strict: true, _with: false, localsName: 'm', filename: TEMPLATE_URL.pathname });
  compiled = (model) => fn(model);
  return compiled;
}

/**
 * Walks every string and number in the model and throws when one could
 * inject nginx syntax. The config loader already restricts these values; this
 * is the second lock on the door.
 *
 * @throws Error naming the key path and value of the first unsafe value (a bug upstream of the renderer).
 */
export function assertSafeModel(model: UpstreamsModel): void {
  const visit = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      if (v === '' || UNSAFE.test(v))
        throw new Error(`unsafe value at ${path}: ${JSON.stringify(v)} (nginx syntax or whitespace)`);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`unsafe value at ${path}: ${v}`);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => visit(x, `${path}[${i}]`));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (UNSAFE.test(k)) throw new Error(`unsafe key at ${path}: ${JSON.stringify(k)}`);
        visit(x, `${path}.${k}`);
      }
    }
  };
  visit(model, 'model');
}

/**
 * Renders the include file: header comment (generation, weights, flavor, how
 * to route), `log_format nginx_canary`, per service its upstreams
 * (`<service>` when weighted, `<service>_primary`, `<service>_canary`), its
 * `split_clients` block (split_clients only), its override `geo` block (with
 * `override.allow` only) and its route map `map "<source>"
 * $nginx_canary_<service>` (see model.ts for the `X-Canary` override), then
 * the loopback status server (`/generation`, `/stub_status`). `$` is printed
 * by the template only, before names the model holds without it.
 *
 * Reads the template from disk once (first call), then is pure.
 *
 * @throws Error when a model value is unsafe (see {@link assertSafeModel}); on the first call, the fs
 *   error when the template cannot be read and EJS's error when it does not compile; EJS's error when
 *   the template names a value the model lacks (strict mode), with the template's line; on the first call, the
 *   error of {@link assertRawOutputOnly} when the template uses `<%=`.
 */
export function renderUpstreams(model: UpstreamsModel): string {
  assertSafeModel(model);
  return template()(model);
}

/** What the header of a rendered include file says. */
export interface RenderedHeader {
  /** The `# generation:` line, an integer ≥ 0. */
  generation: number;
  /** Canary weight per service, percent 0–100 (the `# weights:` line, `name=value` pairs). */
  weights: Record<string, number>;
}

/**
 * Reads generation and weights back from a file {@link renderUpstreams}
 * wrote (its header comment), e.g. to know what a snapshot holds.
 *
 * @returns the header, or null when the text is not a file this renderer wrote. Never throws.
 */
export function parseHeader(text: string): RenderedHeader | null {
  if (!text.startsWith('# Written by nginx-canary')) return null;
  const g = /^# generation: (\d+)$/m.exec(text);
  const w = /^# weights:(.*)$/m.exec(text);
  if (!g?.[1] || !w) return null;
  const weights: Record<string, number> = {};
  for (const pair of String(w[1]).trim().split(/\s+/)) {
    if (pair === '') continue;
    const [name, value] = pair.split('=');
    const n = Number(value);
    if (!name || value === undefined || !Number.isFinite(n)) return null;
    weights[name] = n;
  }
  return { generation: Number(g[1]), weights };
}
