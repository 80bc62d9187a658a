/**
 * Test PKI made with openssl at test time: a CA, a valid server certificate for www.example
 * and 203.0.113.10, an expired one from the same CA, and a self-signed one.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/util/exec.js';

export interface TestCerts {
  ca: string;
  good: { cert: string; key: string };
  expired: { cert: string; key: string };
  selfSigned: { cert: string; key: string };
}

const openssl = (args: string[], cwd: string): Promise<unknown> => run('openssl', args, { timeoutMs: 30_000, cwd });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export async function makeCerts(dir: string): Promise<TestCerts> {
  const p = (f: string): string => join(dir, f);
  await openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=vipd test CA'], dir);
  writeFileSync(p('san.cnf'), 'subjectAltName=DNS:www.example,IP:203.0.113.10\n');
  for (const name of ['good', 'expired']) {
    await openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=www.example'], dir);
  }
  await openssl(
    ['x509', '-req', '-in', 'good.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'good.pem'],
    dir,
  );
  // `openssl x509` (3.0) cannot backdate; `openssl ca` can, given a minimal CA setup.
  writeFileSync(p('index.txt'), '');
  writeFileSync(p('serial'), '1000\n');
  writeFileSync(
    p('ca.cnf'),
    `[ca]\ndefault_ca = test\n[test]\ndatabase = ${p('index.txt')}\nnew_certs_dir = ${dir}\nserial = ${p('serial')}\n` +
      `default_md = sha256\npolicy = any\ncopy_extensions = none\nx509_extensions = ext\n[any]\ncommonName = supplied\n` +
      `[ext]\nsubjectAltName = DNS:www.example,IP:203.0.113.10\n`,
  );
  await openssl(
    ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', 'expired.csr', '-out', 'expired.pem', '-notext', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z'],
    dir,
  );
  await openssl(
    ['req', '-x509', ...EC, '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=www.example', '-addext', 'subjectAltName=DNS:www.example,IP:203.0.113.10'],
    dir,
  );
  return {
    ca: p('ca.pem'),
    good: { cert: p('good.pem'), key: p('good.key') },
    expired: { cert: p('expired.pem'), key: p('expired.key') },
    selfSigned: { cert: p('self.pem'), key: p('self.key') },
  };
}
