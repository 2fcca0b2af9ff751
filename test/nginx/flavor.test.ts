import t from 'tap';
import { parseVersion } from '../../src/nginx/flavor.js';
import { CanaryError } from '../../src/errors.js';

const OSS = `nginx version: nginx/1.22.1
built with OpenSSL 3.0.22 25 Aug 2026 (running with OpenSSL 3.0.19 27 Jan 2026)
TLS SNI support enabled
configure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx --with-http_stub_status_module
`;
const PLUS = `nginx version: nginx/1.25.3 (nginx-plus-r31-p1)
built by gcc 12.2.0 (Debian 12.2.0-14)
configure arguments: --prefix=/etc/nginx --build=nginx-plus-r31-p1
`;

t.test('open-source nginx', async (t) => {
  t.same(parseVersion(OSS), { flavor: 'oss', version: '1.22.1', prefix: '/usr/share/nginx' });
});

t.test('NGINX Plus names nginx-plus in the version line', async (t) => {
  t.same(parseVersion(PLUS), { flavor: 'plus', version: '1.25.3 (nginx-plus-r31-p1)', prefix: '/etc/nginx' });
});

t.test('"nginx-plus" outside the version line does not make it Plus', async (t) => {
  t.equal(
    parseVersion('nginx version: nginx/1.24.0\nconfigure arguments: --add-module=../nginx-plus-compat\n').flavor,
    'oss',
  );
});

t.test("without --prefix the compiled prefix is nginx's default, /usr/local/nginx", async (t) => {
  t.equal(parseVersion('nginx version: nginx/1.24.0\nconfigure arguments: --with-debug\n').prefix, '/usr/local/nginx');
  t.equal(
    parseVersion('nginx version: nginx/1.24.0\nconfigure arguments: --with-debug --prefix=/opt/ngx\n').prefix,
    '/opt/ngx',
  );
});

t.test('output without a version line is not nginx', async (t) => {
  const err = t.throws(() => parseVersion('sleep: invalid option -- V\n', '/bin/sleep'));
  t.ok(err instanceof CanaryError);
  t.equal((err as CanaryError).code, 'NC_NGINX_BINARY');
  t.match((err as CanaryError).message, '/bin/sleep');
});

t.test('the error names "nginx" when no binary is given', async (t) => {
  t.throws(() => parseVersion(''), { code: 'NC_NGINX_BINARY', message: /"nginx"/ });
});
