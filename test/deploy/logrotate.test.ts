// The shipped logrotate file (deploy/logrotate/nginx-canary; README "The access log on Debian"),
// run by the real logrotate on a real nginx while the sidecar follows the log
// and traffic flows: Debian's /etc/logrotate.d/nginx only rotates
// /var/log/nginx/*.log, so without this file canary.json grows for ever.
//
// The file is used as shipped except two lines (comments aside): its path /var/log/nginx/ moves
// to the test nginx's log directory, and its postrotate command
// (`invoke-rc.d nginx rotate`, which signals the system's nginx) becomes a
// `kill -USR1` of the test nginx's master — what `invoke-rc.d nginx rotate`
// sends. A forced rotation (`logrotate -f`) mid-traffic must lose no line:
// lines nginx served = lines the sidecar counted = lines in the two files.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { waitFor } from '../../src/util/wait.js';
import { startInProcess } from '../fixtures/in-process.js';
import { captureLogger } from '../fixtures/integration/sidecar.js';
import { repoRoot, sample, startStack } from '../fixtures/stack.js';

const SHIPPED = path.join(repoRoot, 'deploy', 'logrotate', 'nginx-canary');
const LOGROTATE = '/usr/sbin/logrotate';
/** Requests sent, paced at RATE per second (10 s of traffic); the rotation comes once ROTATE_AFTER lines were read. */
const TOTAL = 4000;
const RATE = 400;
const ROTATE_AFTER = 1000;

/** Runs a command, killed after `timeoutMs`; resolves to its exit code (null when killed) and output. */
function run(file: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, out: `${stdout}${stderr}${err !== null && code === null ? err.message : ''}` });
    });
  });
}

const lineCount = async (file: string): Promise<number> =>
  (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').length;

t.test('a real logrotate of canary.json mid-traffic: no line lost, the new file 0640', async (t) => {
  const version = await run(LOGROTATE, ['--version'], 10_000);
  if (version.code !== 0) {
    t.plan(0, `${LOGROTATE} is not installed here (apt-get install logrotate; .ci/run does): skipped`);
    return;
  }
  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root: the shipped `create 0640 www-data adm` chowns the new file: skipped');
    return;
  }
  const adm = /^adm:[^:]*:(\d+):/m.exec(await readFile('/etc/group', 'utf8'));
  const wwwData = /^www-data:/m.test(await readFile('/etc/passwd', 'utf8'));
  if (!adm?.[1] || !wwwData) {
    t.plan(0, 'needs the Debian user www-data and group adm named by `create 0640 www-data adm`: skipped');
    return;
  }
  t.comment(version.out.split('\n')[0] ?? '');

  const stack = await startStack(t, { target: 0 });
  // nginx's workers (user nobody under a root master) reopen the log by path after USR1: they must reach it.
  // (logrotate, for its part, refuses a log directory writable by anyone but root; this one is 0755 root.)
  await chmod(stack.dir, 0o755);
  const file = stack.config.nginx.accessLog;
  const logs = path.dirname(file);
  t.equal(path.basename(file), 'canary.json', 'the stack logs to canary.json, as the shipped file expects');

  const shipped = await readFile(SHIPPED, 'utf8');
  const conf = shipped
    .split('\n')
    .map((l) =>
      l.startsWith('#')
        ? l
        : l
            .replaceAll('/var/log/nginx/', `${logs}/`)
            .replace(/^(\s*)invoke-rc\.d nginx rotate >\/dev\/null 2>&1$/, `$1kill -USR1 ${stack.nginx.pid}`),
    )
    .join('\n');
  const before = shipped.split('\n');
  const changed = conf.split('\n').filter((l, i) => l !== before[i]);
  t.same(
    changed.map((l) => l.trim()),
    [`${logs}/canary.json {`, `kill -USR1 ${stack.nginx.pid}`],
    'only the path and the postrotate command differ from the shipped file',
  );
  const confFile = path.join(stack.dir, 'logrotate.conf');
  await writeFile(confFile, conf, { mode: 0o644 });
  const stateFile = path.join(stack.dir, 'logrotate.status');

  const cap = captureLogger();
  await startInProcess(t, stack.config, { log: cap.log });
  const counted = async (): Promise<number> => {
    const m = await stack.metrics();
    return ['parsed', 'invalid', 'unattributed']
      .map((r) => sample(m, `nginx_canary_log_lines_total{result="${r}"}`))
      .reduce((a, b) => a + b, 0);
  };
  t.equal(await counted(), 0, 'the sidecar starts at the end of the log');

  // Bounded, paced traffic: TOTAL requests at RATE/s, in batches of 20, within 60 s.
  const statuses: number[] = [];
  const started = performance.now();
  const traffic = (async () => {
    while (statuses.length < TOTAL && performance.now() - started < 60_000) {
      statuses.push(...(await stack.send(20)));
      const ahead = started + (statuses.length / RATE) * 1000 - performance.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
    }
  })();

  await waitFor(async () => (await counted()) >= ROTATE_AFTER, {
    timeoutMs: 30_000,
    intervalMs: 50,
    what: `${ROTATE_AFTER} lines read before the rotation`,
  });
  const rotate = await run(LOGROTATE, ['-f', '-v', '-s', stateFile, confFile], 30_000);
  t.equal(rotate.code, 0, 'logrotate -f exits 0');
  if (rotate.code !== 0) t.comment(rotate.out);
  t.ok(statuses.length < TOTAL, `the rotation came mid-traffic (after ${statuses.length} of ${TOTAL} requests)`);
  await traffic;

  const served = statuses.filter((s) => s === 200).length;
  t.equal(served, TOTAL, `nginx answered all ${TOTAL} requests`);
  const seen = await waitFor(
    async () => {
      const n = await counted();
      return n >= served ? n : null;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: `the sidecar to count ${served} lines` },
  ).catch(async () => counted());
  t.equal(seen, served, 'no line lost: the sidecar counted every request nginx served');
  const inFiles = (await lineCount(`${file}.1`)) + (await lineCount(file));
  t.equal(inFiles, served, 'and the rotated and the new file hold exactly those lines');
  t.ok((await lineCount(file)) > 0, 'nginx writes to the new file (the postrotate USR1 reopened it)');
  t.ok((await lineCount(`${file}.1`)) >= ROTATE_AFTER, 'the rotated file holds the lines from before');
  t.equal(
    sample(await stack.metrics(), 'nginx_canary_log_lines_total{result="invalid"}'),
    0,
    'no half or garbled line',
  );
  t.notMatch(cap.text(), /not at its path/, 'the sidecar never had to ask nginx to reopen: logrotate did');

  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o640, 'the new canary.json is 0640 (create 0640 www-data adm)');
  t.equal(st.gid, Number(adm[1]), '… group adm (nginx, reopening it, sets only the owner: its worker user)');
  await t.rejects(stat(`${file}.1.gz`), { code: 'ENOENT' }, 'delaycompress: the rotated file is not compressed yet');
  t.match(rotate.out, /renaming .*canary\.json to .*canary\.json\.1/, 'logrotate renamed it (not copytruncate)');
  t.match(rotate.out, /log files >= 104857600 are rotated earlier/, 'maxsize 100M is in force');

  // The next rotation compresses the previous one (delaycompress), after the sidecar has long finished it.
  const [firstLines, secondLines] = [await lineCount(`${file}.1`), await lineCount(file)];
  const again = await run(LOGROTATE, ['-f', '-v', '-s', stateFile, confFile], 30_000);
  t.equal(again.code, 0, 'a second logrotate -f exits 0');
  if (again.code !== 0) t.comment(again.out);
  const gz = gunzipSync(await readFile(`${file}.2.gz`)).toString('utf8');
  t.equal(gz.split('\n').filter((l) => l !== '').length, firstLines, 'canary.json.2.gz: the first rotated file');
  t.equal(await lineCount(`${file}.1`), secondLines, 'canary.json.1: the second, not compressed yet');
  t.equal(await counted(), served, 'the sidecar still counts exactly the lines served');
});
