// A lost state.json: the sidecar starts at weight 0 (the safe direction) but
// continues the generation found in the include file's header, so generations
// stay increasing per config directory; and `status --json | head` does not crash.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { startStack, binPath, userEnv } from '../fixtures/stack.js';
import { buildModel } from '../../src/nginx/model.js';
import { renderUpstreams } from '../../src/nginx/render.js';
import { waitFor } from '../../src/util/wait.js';

t.test('without state.json the generation continues from the include file', async (t) => {
  const stack = await startStack(t, { target: 0 });
  // The include as a previous sidecar left it: generation 7, canary at 0.
  await writeFile(
    stack.config.nginx.upstreamsFile,
    renderUpstreams(buildModel(stack.config, { gateway: 0 }, 7, 'oss')),
  );
  await stack.startSidecar();
  const doc = await waitFor(
    async () => {
      const s = await stack.status();
      return s.generation > 7 ? s : null;
    },
    { timeoutMs: 10_000, what: 'a generation above 7' },
  );
  t.equal(doc.generation, 8, 'the reconcile apply used 7 + 1, not 1');
  t.equal(doc.services[0]?.weight, 0);

  const piped = spawnSync(
    'bash',
    ['-c', `"${process.execPath}" "${binPath}" -c "${stack.configFile}" status --json | true`],
    {
      encoding: 'utf8',
      env: userEnv(),
    },
  );
  t.equal(piped.status, 0);
  t.notMatch(piped.stderr, /EPIPE/, 'a closed pipe is not an error');
});
