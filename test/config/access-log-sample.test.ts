/**
 * nginx.access_log_sample (README "Sampled access log"): a percent that
 * divides 100, default 100; anything else is refused with the file, line, key
 * and the values it takes. The service names whose route variable would be
 * one of the sampling variables are refused too.
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { ACCESS_LOG_SAMPLES } from '../../src/config/validate.js';
import { LOG_SAMPLE_VARIABLE, LOG_SAMPLED_VARIABLE, routeVariable } from '../../src/nginx/model.js';
import { BASE, problemsOf, withLine } from '../fixtures/config/hostile.js';

const FILE = '/srv/canary/weights.yaml';

t.test('default 100; every divisor of 100 is taken', async (t) => {
  t.equal(parseConfig(BASE, FILE).nginx.accessLogSample, 100);
  for (const s of ACCESS_LOG_SAMPLES) {
    const c = parseConfig(withLine(4, `  access_log: logs/canary.json\n  access_log_sample: ${s}`), FILE);
    t.equal(c.nginx.accessLogSample, s, `${s}`);
  }
});

t.test('a percent that does not divide 100, or out of range, is refused with the key, line and fix', async (t) => {
  for (const bad of ['30', '0', '101', '12.5', '"20%"']) {
    const problems = problemsOf(t, withLine(4, `  access_log: logs/canary.json\n  access_log_sample: ${bad}`), FILE);
    const p = problems.find((x) => x.path === 'nginx.access_log_sample');
    t.ok(p, `${bad}: a problem at nginx.access_log_sample (${JSON.stringify(problems.map((x) => x.path))})`);
    t.equal(p?.position?.line, 5, `${bad}: on line 5`);
    if (bad === '30') {
      t.match(p?.message ?? '', /must divide 100/);
      t.match(p?.fix ?? '', /1, 2, 4, 5, 10, 20, 25, 50, 100/);
    }
  }
});

t.test(
  'service names log and log_sampled are reserved (their route variables are the sampling variables)',
  async (t) => {
    // Derived from the include's variables, so a rename there that validate.ts misses fails here.
    const names = [LOG_SAMPLE_VARIABLE, LOG_SAMPLED_VARIABLE].map((v) => v.slice(routeVariable('').length));
    t.same(
      names.map((n) => routeVariable(n)),
      [LOG_SAMPLE_VARIABLE, LOG_SAMPLED_VARIABLE],
    );
    for (const name of names) {
      const problems = problemsOf(t, withLine(10, `  ${name}:`), FILE);
      t.ok(
        problems.some((p) => p.path === `services.${name}` && /reserved/.test(p.message)),
        `${name}: ${JSON.stringify(problems.map((p) => [p.path, p.message]))}`,
      );
    }
    t.equal(parseConfig(withLine(10, '  logs:'), FILE).services[0]?.name, 'logs', 'logs is a name like any other');
  },
);
