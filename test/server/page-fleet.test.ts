// The status page's fleet section (src/server/page.ts fleetSection and templates/status.html.ejs): one
// row per host with the leader and this host marked, live or stale, weights, verified or behind, last
// seen, the apply error and the services difference; everything a host reports escaped; no section
// outside fleet mode.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ejs from 'ejs';
import { NO_LEADER } from '../../src/cli/format.js';
import type { FleetHostStatus, FleetStatus } from '../../src/fleet/host.js';
import { CHART_CSS } from '../../src/server/chart.js';
import { buildStatusPage, fleetSection, type StatusPage } from '../../src/server/page.js';
import type { StatusDocument } from '../../src/runner.js';
import { repoRoot } from '../fixtures/stack.js';
import { fleetHost, fleetStatus, serviceStatus } from '../fixtures/status.js';

const NOW = 1_700_000_100_000;

const HOSTILE = 'nginx: [emerg] unknown directive "<script>alert(1)</script>" in /etc/nginx/nginx.conf:12\n& more';

const host = (over: Partial<FleetHostStatus> = {}): FleetHostStatus => fleetHost(NOW, over);
const fleet = (over: Partial<FleetStatus> = {}): FleetStatus =>
  fleetStatus(
    NOW,
    { applyError: HOSTILE, edge4: { differs: ['gateway.gates differs', 'extra <web>'], localDrains: ['gateway'] } },
    over,
  );

function doc(f?: FleetStatus): StatusDocument {
  const d: StatusDocument = {
    generation: 7,
    lastReloadAt: NOW - 5000,
    services: [serviceStatus({ since: NOW - 5000 })],
    history: [],
  };
  return f ? { ...d, fleet: f } : d;
}

function page(f?: FleetStatus): StatusPage {
  return buildStatusPage({ status: doc(f), snapshots: [], now: NOW, refreshSeconds: 5 });
}

async function renderer(): Promise<(p: StatusPage) => string> {
  const file = path.join(repoRoot, 'templates', 'status.html.ejs');
  const render = ejs.compile(await readFile(file, 'utf8'), { filename: file });
  return (p) => render({ page: p, chartCss: CHART_CSS });
}

/** The hosts table's rows by host name (the `<tr data-host>` elements). */
function rows(html: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of html.matchAll(/<tr data-host="([^"]*)"[\s\S]*?<\/tr>/g)) out.set(m[1] ?? '', m[0]);
  return out;
}

t.test('the view model: the same facts as the CLI block', async (t) => {
  const f = fleetSection(fleet(), NOW);
  t.equal(f.leaderText, 'edge-1');
  t.equal(f.desiredGeneration, '17');
  t.equal(f.stale, 1);
  t.same(
    f.hosts.map((h) => [h.host, h.marks, h.live, h.generation, h.behind, h.weights, h.seenAge]),
    [
      ['edge-1', ['leader'], true, 'verified gen 17', false, 'gateway 15 %, api 0 %', '1 s ago'],
      ['edge-2', ['this host'], true, 'verified gen 17', false, 'gateway 15 %, api 0 %', 'just now'],
      ['edge-3', [], true, 'behind (desired 17, verified gen 16)', true, 'gateway 5 %, api 0 %', '1 s ago'],
      ['edge-4', [], false, 'behind (desired 17)', true, 'gateway 15 %, api 0 %', '4 min ago'],
    ],
  );
  t.equal(f.hosts[2]?.applyError, HOSTILE, 'the model keeps the text; the template escapes it');
  t.equal(f.hosts[3]?.differs, 'gateway.gates differs, extra <web>');
  t.equal(f.hosts[3]?.localDrains, 'gateway');
  t.equal(f.hosts[3]?.seen, '22:11:00', 'the clock time of its last report (UTC)');
  const none = fleetSection(fleet({ leader: null, desiredGeneration: null, hosts: [] }), NOW);
  t.equal(none.leader, null);
  t.equal(none.leaderText, NO_LEADER);
  t.equal(none.desiredGeneration, 'none read');
});

t.test('without fleet: no section, no fleet field, and the HTML does not mention a fleet', async (t) => {
  const render = await renderer();
  const p = page();
  t.equal(p.fleet, null);
  const html = render(p);
  t.notMatch(html, /fleet/i);
  t.equal(html, render({ ...p, fleet: null }), 'the same bytes as an explicit null');
  // The template with its fleet block cut out is the template as it was before fleet mode: the same bytes.
  const file = path.join(repoRoot, 'templates', 'status.html.ejs');
  const src = await readFile(file, 'utf8');
  const from = src.indexOf('<% if (page.fleet)');
  const to = src.indexOf('<section class="snapshots">');
  t.ok(from > 0 && to > from, 'the fleet block stands right before the snapshots');
  const before = ejs.compile(src.slice(0, from) + src.slice(to), { filename: file });
  t.equal(html, before({ page: p, chartCss: CHART_CSS }), 'byte for byte what the page was without the block');
});

t.test('the hosts table: one row per host, leader and this host marked, stale marked', async (t) => {
  const html = (await renderer())(page(fleet()));
  t.match(html, /<section class="fleet" id="fleet" data-prefix="\/nginx-canary\/edge-prod" data-leader="edge-1"/);
  const r = rows(html);
  t.same([...r.keys()], ['edge-1', 'edge-2', 'edge-3', 'edge-4'], 'in the order given (sorted by name)');
  t.match(r.get('edge-1'), /<strong>edge-1<\/strong><span class="live-tag">leader<\/span><\/td>/);
  t.match(r.get('edge-2'), /<strong>edge-2<\/strong><span class="live-tag">this host<\/span><\/td>/);
  t.notMatch(r.get('edge-3'), /live-tag/);
  t.match(r.get('edge-1'), /<td class="pass">live<\/td>/);
  t.match(r.get('edge-4'), /data-live="false"/);
  t.match(r.get('edge-4'), /<td class="inconclusive">stale<\/td>/);
  t.match(r.get('edge-1'), /<td>gateway 15 %, api 0 %<\/td>/);
  t.match(r.get('edge-1'), />verified gen 17</);
  t.match(r.get('edge-3'), /data-behind="true"/);
  t.match(r.get('edge-3'), /<td class="inconclusive">behind \(desired 17, verified gen 16\)<\/td>/);
  t.match(
    r.get('edge-4'),
    /<time datetime="2023-11-14T22:11:00\.000Z">22:11:00<\/time> <span class="age">4 min ago<\/span>/,
  );
  t.match(html, /1 stale: their lease expired/);
  t.match(html, /<dt>leader<\/dt><dd class="">edge-1<\/dd>/);
  t.match(html, /<dt>this host<\/dt><dd>edge-2<\/dd>/);
  t.match(html, /<dt>etcd<\/dt><dd class="pass">up<\/dd>/);
  t.match(html, /<dt>desired generation<\/dt><dd>17<\/dd>/);
  t.match(
    html,
    /<dt>hold<\/dt><dd class="inconclusive">barrier: waiting for edge-3 \(applying generation 17 \(verified 16\)\)<\/dd>/,
  );
});

t.test("a hostile apply error is escaped, in its host's row, with the host's name", async (t) => {
  const html = (await renderer())(page(fleet()));
  t.notMatch(html, /<script/i, 'no script element');
  t.notMatch(html, /<web>/, 'the difference escaped too');
  const row = rows(html).get('edge-3') ?? '';
  t.match(row, /<p class="fail">apply failed on edge-3:<\/p>/);
  t.ok(
    row.includes(
      '<pre class="summary" style="white-space: pre-wrap">nginx: [emerg] unknown directive &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; in /etc/nginx/nginx.conf:12\n&amp; more</pre>',
    ),
    'every line of it, escaped',
  );
  for (const h of ['edge-1', 'edge-2', 'edge-4']) t.notMatch(rows(html).get(h), /apply failed/, `not on ${h}`);
  const other = rows(html).get('edge-4') ?? '';
  t.match(other, /<p class="fail">services differ: gateway\.gates differs, extra &lt;web&gt;<\/p>/);
  t.match(other, /<p>drained on its own evidence: gateway<\/p>/);
  t.match(rows(html).get('edge-1'), /<span class="muted">—<\/span>/, 'nothing to say: a dash');
});

t.test('hostile names and prefix are escaped in attributes and text', async (t) => {
  const bad = '"><script>x</script>';
  const html = (await renderer())(page(fleet({ prefix: bad, host: bad, leader: bad, hosts: [host({ host: bad })] })));
  t.notMatch(html, /<script/i);
  t.match(html, /data-prefix="&#34;&gt;&lt;script&gt;x&lt;\/script&gt;"/);
  t.match(html, /<tr data-host="&#34;&gt;&lt;script&gt;x&lt;\/script&gt;"/);
});

t.test('no leader, etcd down, no host yet', async (t) => {
  const html = (await renderer())(
    page(fleet({ leader: null, etcd: 'down', hold: null, desiredGeneration: null, hosts: [] })),
  );
  t.ok(html.includes(`<dt>leader</dt><dd class="fail">${NO_LEADER}</dd>`), 'the no-leader line, in red');
  t.match(html, /<dt>etcd<\/dt><dd class="fail">down<\/dd>/);
  t.match(html, /<dt>desired generation<\/dt><dd>none read<\/dd>/);
  t.notMatch(html, /<dt>hold<\/dt>/);
  t.match(html, /No host seen yet\./);
  t.equal(rows(html).size, 0);
  t.match(html, /data-leader=""/);
});
