// NginxCommand.reload on the real nginx: SIGHUP straight to the master the pid
// file names when /proc shows an nginx master there (no `nginx -s reload`
// process); `nginx -s reload` through the configured binary otherwise — a pid
// file naming some other process is never signalled by the sidecar itself.
import { spawn } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { NginxCommand } from '../../src/nginx/ctl.js';
import { isNginxMaster, stillAccepting, workerProcesses } from '../../src/nginx/workers.js';
import { waitFor } from '../../src/util/wait.js';
import { startTestNginx } from '../fixtures/nginx/harness.js';

t.test(
  'reload signals the master directly; a pid file naming another process goes through nginx -s reload',
  async (t) => {
    const h = await startTestNginx(t);
    // The configured binary: a wrapper that records every run, then runs the real nginx.
    const calls = path.join(h.dir, 'calls');
    const wrapper = path.join(h.dir, 'nginx-wrapper');
    await writeFile(calls, '');
    await writeFile(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec nginx "$@"\n`);
    await chmod(wrapper, 0o755);
    const ctl = new NginxCommand({ ...h.config.nginx, binary: wrapper });
    t.ok(await isNginxMaster(h.nginx.pid), 'the test nginx is a master in /proc');

    const before = await workerProcesses(h.nginx.pid);
    if (before === null) throw new Error('no /proc view of the test nginx');
    await ctl.reload();
    await waitFor(async () => (await stillAccepting(before)).length === 0, {
      what: 'the workers from before the reload to retire',
      timeoutMs: 10_000,
    });
    t.equal(await readFile(calls, 'utf8'), '', 'no nginx process was run: the master got SIGHUP from the sidecar');

    // A stale pid file naming a process that is not nginx (a `sleep`, which SIGHUP ends).
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => sleeper.once('exit', (_c, sig) => resolve(sig)));
    t.teardown(() => sleeper.kill('SIGKILL'));
    if (sleeper.pid === undefined) throw new Error('sleep did not start');
    const pidFile = h.nginx.pidFile;
    const masterPid = await readFile(pidFile, 'utf8');
    await writeFile(pidFile, `${sleeper.pid}\n`);
    t.teardown(() => writeFile(pidFile, masterPid));
    t.notOk(await isNginxMaster(sleeper.pid), 'sleep is no nginx master');
    await ctl.reload();
    t.match(await readFile(calls, 'utf8'), /-s reload/, 'the reload went through the configured binary');
    t.equal(await exited, 'SIGHUP', 'whose nginx -s reload signalled the pid it read, as nginx does');
  },
);
