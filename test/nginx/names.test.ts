/**
 * The config loader's name-collision check (validate.ts `upstreamNames`)
 * against what the renderer writes: a config it accepts never renders two
 * upstreams, or two `$nginx_canary_*` variables, of one name. nginx would
 * refuse a duplicate upstream, but lets a second `map`/`split_clients`/`geo`
 * silently redefine a variable, so the loader is the only guard there.
 */
import fc from 'fast-check';
import t from 'tap';
import { validateConfig } from '../../src/config/validate.js';
import { buildModel } from '../../src/nginx/model.js';

/** Names chosen to collide: a service, its rendered suffixes, and names built on them. */
const NAMES = [
  'a',
  'a_primary',
  'a_canary',
  'a_split',
  'a_canary_split',
  'b',
  'b_split_primary',
  'a_split_canary',
  'a_override',
  'a_split_override',
];

/** A weights.yaml value: each service `[name, split, with an override.allow]`. */
function raw(services: [string, 'weighted' | 'split_clients', boolean?][]): unknown {
  return {
    nginx: { conf: '/etc/nginx/nginx.conf', upstreams_file: '/etc/nginx/u.conf', access_log: '/var/log/a.json' },
    services: Object.fromEntries(
      services.map(([name, split, override], i) => [
        name,
        {
          split,
          primary: [{ server: `127.0.0.1:${1000 + 2 * i}` }],
          canary: [{ server: `127.0.0.1:${1001 + 2 * i}` }],
          ...(override === true ? { override: { allow: ['127.0.0.1'] } } : {}),
        },
      ]),
    ),
  };
}

function duplicates(xs: string[]): string[] {
  return xs.filter((x, i) => xs.indexOf(x) !== i);
}

t.test('a config the loader accepts renders no upstream and no variable twice', async (t) => {
  let accepted = 0;
  let runs = 0;
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 4 }),
      fc.array(fc.constantFrom('weighted' as const, 'split_clients' as const), { minLength: 4, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      (names, splits, overrides) => {
        runs++;
        const r = validateConfig(
          raw(names.map((n, i) => [n, splits[i] ?? 'weighted', overrides[i] ?? false])),
          '/srv/weights.yaml',
          () => null,
        );
        if (!r.ok) return r.problems.every((p) => /renders nginx upstream/.test(p.message));
        accepted++;
        const m = buildModel(r.value, {}, 1, 'oss');
        const upstreams = m.services.flatMap((s) => s.upstreams.map((u) => u.name));
        const variables = m.services.flatMap((s) => [
          s.route.variable,
          ...(s.splitClients ? [s.splitClients.variable] : []),
          ...(s.override ? [s.override.variable] : []),
        ]);
        return duplicates(upstreams).length === 0 && duplicates(variables).length === 0;
      },
    ),
    { numRuns: 500 },
  );
  t.equal(runs, 500);
  t.ok(accepted > 0 && accepted < 500, `both outcomes exercised (${accepted} accepted)`);
});

t.test('the collisions the loader refuses', async (t) => {
  const problems = (services: [string, 'weighted' | 'split_clients'][]): string[] => {
    const r = validateConfig(raw(services), '/srv/weights.yaml', () => null);
    return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
  };
  t.match(
    problems([
      ['a', 'split_clients'],
      ['a_split', 'weighted'],
    ]),
    [/services\.a_split: renders nginx upstream "a_split", which service "a" renders too/],
    'variable $nginx_canary_a_split: the split_clients variable of a and the route map of a_split',
  );
  t.match(
    problems([
      ['a', 'weighted'],
      ['a_canary', 'weighted'],
    ]),
    [/services\.a_canary: renders nginx upstream "a_canary"/],
    'a weighted service renders a_canary too (the X-Canary: always upstream)',
  );
  t.match(
    problems([
      ['a_primary', 'split_clients'],
      ['a', 'split_clients'],
    ]),
    [/services\.a: renders nginx upstream "a_primary"/],
  );
  t.same(
    problems([
      ['a', 'weighted'],
      ['b', 'split_clients'],
    ]),
    [],
    'distinct services pass',
  );
});
