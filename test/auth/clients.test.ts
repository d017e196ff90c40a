import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import {
  ClientsFileError,
  DEMO_CLIENTS_URL,
  grantScopes,
  hashSecret,
  loadClients,
  loadConfiguredClients,
  normalizeScope,
  parseClients,
  verifySecret,
} from '../../src/auth/index.js';
import { USCC_SYSTEM } from '../../src/fhir/systems.js';

const FAST = { n: 1024, r: 8, p: 1 };

async function problemsOf(data: unknown): Promise<string[]> {
  try {
    await parseClients(data, 'clients.json');
  } catch (e) {
    if (e instanceof ClientsFileError) return [...e.problems];
    throw e;
  }
  return [];
}

t.test('the demo clients', async (t) => {
  const registry = await loadClients(DEMO_CLIENTS_URL);
  const community = JSON.parse(await readFile(new URL('../../demo/community.json', import.meta.url), 'utf8')) as {
    entry: Array<{ resource: { resourceType: string; name?: string; identifier?: Array<{ system: string; value: string }> } }>;
  };
  const usccOf = (name: string) =>
    community.entry.find((e) => e.resource.resourceType === 'Organization' && e.resource.name === name)?.resource.identifier?.find((i) => i.system === USCC_SYSTEM)?.value;
  const expected: Record<string, { institution?: string; scopes: string[]; role: string }> = {
    'county-his': { institution: usccOf('青山县人民医院'), scopes: ['system/*.cruds'], role: 'his' },
    'township1-his': { institution: usccOf('青山县城关镇卫生院'), scopes: ['system/*.cruds'], role: 'his' },
    'village1-his': { institution: usccOf('城关镇东河村卫生室'), scopes: ['system/*.cruds'], role: 'his' },
    'regional-platform': { scopes: ['system/*.rs', 'system/Subscription.cruds'], role: 'platform' },
    auditor: { scopes: ['system/AuditEvent.rs'], role: 'auditor' },
    admin: { scopes: ['system/*.cruds'], role: 'admin' },
  };
  for (const [id, want] of Object.entries(expected)) {
    const c = registry.get(id);
    t.ok(c, `${id} is registered`);
    if (want.institution !== undefined) t.ok(want.institution, `${id}'s institution is in demo/community.json`);
    t.equal(c?.institution, want.institution, `${id} institution`);
    t.same(c?.scopes, want.scopes, `${id} scopes`);
    t.equal(c?.role, want.role, `${id} role`);
    t.ok(await verifySecret(`${id}-secret`, c?.secretHash), `${id}'s demo secret is ${id}-secret`);
  }
  t.equal(registry.get('county-his')?.subordinates, true, 'the county HIS writes for the institutions under it');
  for (const c of registry.clients) {
    if (c.institution) t.ok(community.entry.some((e) => e.resource.identifier?.some((i) => i.system === USCC_SYSTEM && i.value === c.institution)), `${c.clientId}'s USCC exists`);
  }
});

t.test('the demo operators act as the admin and auditor clients', async (t) => {
  const registry = await loadClients(DEMO_CLIENTS_URL);
  for (const [username, client] of [
    ['zhangwei', 'admin'],
    ['liming', 'auditor'],
  ]) {
    const o = registry.operator(username);
    t.equal(o?.client, client, `${username} acts as ${client}`);
    t.ok(await verifySecret(`${username}-secret`, o?.secretHash), `${username}'s demo password is ${username}-secret`);
  }
  t.equal(registry.operator('admin'), undefined, 'a client is not an operator');
});

t.test('a bad operator fails loading with a message naming the operator and the field', async (t) => {
  const secretHash = await hashSecret('a-good-secret-1', FAST);
  const clients = [
    { clientId: 'admin', name: 'Admin', role: 'admin', scopes: ['system/*.cruds'], secretHash },
    { clientId: 'app', name: 'App', role: 'resident', scopes: ['patient/*.rs'], secretHash },
  ];
  const ok = { username: 'zhangwei', name: '张伟', client: 'admin', secretHash };
  t.same(await problemsOf({ clients, operators: [ok] }), []);
  t.match(await problemsOf({ clients, operators: [{ ...ok, client: 'nobody' }] }), [/operator #0 \("zhangwei"\), field "client" "nobody" is not a registered client/]);
  t.match(await problemsOf({ clients, operators: [{ ...ok, client: 'app' }] }), [/field "client" "app" is a resident app/]);
  t.match(await problemsOf({ clients, operators: [ok, ok] }), [/operator #1 \("zhangwei"\) repeats the username/]);
  t.match(await problemsOf({ clients, operators: [{ ...ok, secretHash: secretHash.replace('$1024$', '$1000$') }] }), [/operator #0 \("zhangwei"\), field "secretHash" has N=1000/]);
  t.match(await problemsOf({ clients, operators: [{ ...ok, password: 'x' }] }), [/operators\/0 has unknown field "password"/], 'a password in clear is refused');
  t.match(await problemsOf({ clients, operators: [{ ...ok, secretHash: undefined }] }), [/operators\/0 lacks required field "secretHash"/]);
});

t.test('without CLIENTS_FILE the demo clients are used, with a warning', async (t) => {
  const warnings: string[] = [];
  const registry = await loadConfiguredClients({ clientsFile: undefined }, { warn: (_o, msg) => warnings.push(msg) });
  t.ok(registry.get('county-his'));
  t.match(warnings, [/CLIENTS_FILE is not set/]);
});

t.test('a bad clients file fails loading with a message naming the entry and the field', async (t) => {
  const secretHash = await hashSecret('a-good-secret-1', FAST);
  const ok = { clientId: 'county-his', name: 'HIS', institution: '1233042447101234XX', scopes: ['system/*.cruds'], secretHash };
  t.same(await problemsOf({ clients: [ok] }), []);

  t.match(await problemsOf({ clients: [ok, { ...ok, clientId: 'bad-uscc', institution: '12345' }] }), [/client #1 \("bad-uscc"\), field "institution" must be an 18-character unified social credit code/]);
  t.match(await problemsOf({ clients: [ok, { ...ok, clientId: 'no-scopes', scopes: undefined }] }), [/client #1 \("no-scopes"\) lacks required field "scopes"/]);
  t.match(await problemsOf({ clients: [{ ...ok, secretHash: 'plain-text-secret' }] }), [/client #0 \("county-his"\), field "secretHash" must be scrypt\$N\$r\$p\$salt\$hash/]);
  t.match(await problemsOf({ clients: [{ ...ok, secret: 'x' }] }), [/client #0 \("county-his"\) has unknown field "secret"/]);
  t.match(await problemsOf({ clients: [{ ...ok, scopes: ['system/*.cruds', 'user/*.read'] }] }), [/client #0 \("county-his"\), field "scopes.1" "user\/\*.read" is not a system scope/]);
  t.match(await problemsOf({ clients: [{ ...ok, scopes: ['system/*.cruds', 'patient/*.read'] }] }), [/client #0 \("county-his"\), field "scopes.1" "patient\/\*.read" is a patient scope: only a resident app/]);
  t.match(await problemsOf({ clients: [{ ...ok, role: 'resident', scopes: ['patient/*.rs', 'system/*.rs'] }] }), [/field "scopes.1" "system\/\*.rs" is a system scope: a resident app has patient scopes only/]);
  t.same(await problemsOf({ clients: [{ ...ok, role: 'resident', scopes: ['patient/*.read'] }] }), []);
  t.match(await problemsOf({ clients: [{ ...ok, secretHash: undefined }] }), [/client #0 \("county-his"\) needs "secretHash" or "jwks"/]);
  t.match(await problemsOf({ clients: [ok, ok] }), [/client #1 \("county-his"\) repeats the clientId/]);
  t.match(await problemsOf({ clients: [{ ...ok, secretHash: secretHash.replace('$1024$', '$1000$') }] }), [/field "secretHash" has N=1000/]);
  t.match(await problemsOf({ client: [] }), [/lacks required field "clients"/]);

  const { privateKey } = await generateKeyPair('ES384', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  t.match(await problemsOf({ clients: [{ ...ok, secretHash: undefined, jwks: { keys: [privateJwk] } }] }), [/field "jwks.keys.0" is a private or symmetric key/]);
  const { publicKey: p256 } = await generateKeyPair('ES256', { extractable: true });
  t.match(await problemsOf({ clients: [{ ...ok, secretHash: undefined, jwks: { keys: [await exportJWK(p256)] } }] }), [/field "jwks.keys.0" has crv "P-256"; ES384 needs P-384/]);

  const dir = t.testdir({ 'broken.json': '{ "clients": [', 'bad.json': JSON.stringify({ clients: [{ ...ok, institution: 'x' }] }) });
  await t.rejects(loadClients(join(dir, 'broken.json')), /Invalid clients file .*broken\.json:\n {2}- is not valid JSON/);
  await t.rejects(loadClients(join(dir, 'bad.json')), /Invalid clients file .*bad\.json:\n {2}- client #0 \("county-his"\), field "institution"/);
  await t.rejects(loadClients(join(dir, 'missing.json')), /cannot be read/);
  await writeFile(join(dir, 'good.json'), JSON.stringify({ clients: [ok] }));
  t.equal((await loadConfiguredClients({ clientsFile: join(dir, 'good.json') }, { warn: () => t.fail('no warning') })).clients.length, 1);
});

t.test('secrets are stored as salted scrypt hashes and compared in constant time', async (t) => {
  const a = await hashSecret('county-his-secret', FAST);
  const b = await hashSecret('county-his-secret', FAST);
  t.match(a, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
  t.not(a, b, 'a fresh salt each time');
  t.notMatch(a, 'county-his-secret');
  t.ok(await verifySecret('county-his-secret', a));
  t.ok(await verifySecret('county-his-secret', b));
  t.notOk(await verifySecret('county-his-secreT', a));
  t.notOk(await verifySecret('', a));
  t.notOk(await verifySecret('county-his-secret', undefined), 'no hash: never a match');
  t.notOk(await verifySecret('county-his-secret', 'scrypt$garbage'));
});

t.test('scopes: normalisation and grants', async (t) => {
  t.equal(normalizeScope('system/*.read'), 'system/*.rs');
  t.equal(normalizeScope('system/Observation.write'), 'system/Observation.cud');
  t.equal(normalizeScope('system/Patient.*'), 'system/Patient.cruds');
  t.equal(normalizeScope('system/Observation.rs?category=laboratory'), 'system/Observation.rs?category=laboratory');
  t.equal(normalizeScope('system/Observation.sr'), undefined, 'v2 permissions in order');
  t.equal(normalizeScope('patient/Observation.read'), 'patient/Observation.rs', 'patient scopes, for resident apps');
  t.equal(normalizeScope('user/Observation.rs'), undefined);
  t.equal(normalizeScope('system/observation.rs'), undefined);

  const platform = ['system/*.rs', 'system/Subscription.cruds'];
  t.same(grantScopes(platform, undefined), platform);
  t.same(grantScopes(platform, ['system/Patient.read']), ['system/Patient.rs']);
  t.same(grantScopes(platform, ['system/Patient.cruds']), ['system/Patient.rs'], 'narrowed');
  t.same(grantScopes(platform, ['system/Subscription.c']), ['system/Subscription.c']);
  t.same(grantScopes(platform, ['system/Patient.cud']), [], 'nothing grantable');
  t.same(grantScopes(['system/Observation.rs?category=laboratory'], ['system/Observation.rs']), [], 'a query-limited scope does not cover the whole type');
  t.same(grantScopes(['system/Observation.rs'], ['system/Observation.r?category=laboratory']), ['system/Observation.r?category=laboratory']);
  t.same(grantScopes(['system/*.cruds'], ['system/*.read', 'system/*.rs']), ['system/*.rs'], 'duplicates after normalisation collapse');
  t.same(grantScopes(platform, ['system/AuditEvent.rs']), [], 'a wildcard does not grant the audit log');
  t.same(grantScopes(['system/AuditEvent.rs'], ['system/AuditEvent.read']), ['system/AuditEvent.rs']);
});
