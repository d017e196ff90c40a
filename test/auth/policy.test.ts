import t from 'tap';
import type { Observation } from '@medplum/fhirtypes';
import { assertCan, authorizeWrite, can, institutionOf } from '../../src/auth/policy.js';
import { GatewayError } from '../../src/errors.js';
import { INSTITUTION_TAG_SYSTEM } from '../../src/fhir/systems.js';
import type { RequestContext } from '../../src/fhir/context.js';

const COUNTY = '1233042447101234XX';
const VILLAGE = '52330424681045633Y';

const ctx = (scopes: string[], institution?: string): RequestContext => ({ channel: 'rest', clientId: 'c1', scopes, institution });

const obs = (institution?: string): Observation => ({
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { text: 'x' },
  ...(institution ? { meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] } } : {}),
});

function code(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof GatewayError ? e.code : String(e);
  }
}

t.test('SMART scopes', async (t) => {
  t.ok(can(ctx(['system/Observation.rs']), 'Observation', 'r'));
  t.ok(can(ctx(['system/Observation.rs']), 'Observation', 's'));
  t.notOk(can(ctx(['system/Observation.rs']), 'Observation', 'c'));
  t.notOk(can(ctx(['system/Observation.rs']), 'Patient', 'r'));
  t.ok(can(ctx(['system/*.cruds']), 'Patient', 'd'));
  t.ok(can(ctx(['system/*.read']), 'Patient', 's'), 'v1 read = rs');
  t.ok(can(ctx(['system/*.write']), 'Patient', 'u'), 'v1 write = cud');
  t.notOk(can(ctx(['system/*.write']), 'Patient', 'r'));
  t.notOk(can(ctx(['patient/*.rs']), 'Patient', 'r'), 'patient scopes grant no system access');
  t.notOk(can(ctx(['system/Observation.sr']), 'Observation', 'r'), 'v2 letters must be in order');
  t.notOk(can(ctx([]), 'Patient', 'r'), 'no scopes, no access');
  t.ok(can({ channel: 'system' }, 'Patient', 'd'), 'the gateway itself');
});

t.test('a wildcard never covers the audit log', async (t) => {
  t.notOk(can(ctx(['system/*.cruds']), 'AuditEvent', 'r'));
  t.notOk(can(ctx(['system/*.cruds']), 'AuditEvent', 's'));
  t.ok(can(ctx(['system/AuditEvent.rs']), 'AuditEvent', 's'));
  t.equal(code(() => assertCan(ctx(['system/*.cruds']), 'AuditEvent', 'r')), 'GW_ERR_FORBIDDEN');
});

t.test('institution policy on writes', async (t) => {
  const village = ctx(['system/*.cruds'], VILLAGE);
  const own = new Set([VILLAGE]);
  const next = obs();
  authorizeWrite(village, own, { type: 'Observation', method: 'POST', next, where: 'Observation' });
  t.equal(institutionOf(next), VILLAGE, 'a new resource is tagged with the writer institution');
  t.equal(next.meta?.source, 'urn:county-hie:client:c1');

  t.equal(
    code(() => authorizeWrite(village, own, { type: 'Observation', method: 'POST', next: obs(COUNTY), where: 'Observation' })),
    'GW_ERR_FORBIDDEN',
    'may not write as another institution',
  );
  t.equal(
    code(() => authorizeWrite(village, own, { type: 'Observation', method: 'PUT', current: obs(COUNTY), next: obs(), where: 'Observation' })),
    'GW_ERR_FORBIDDEN',
    "may not change another institution's data",
  );
  t.equal(
    code(() => authorizeWrite(village, own, { type: 'Observation', method: 'DELETE', current: obs(undefined), where: 'Observation' })),
    'GW_ERR_FORBIDDEN',
    'may not delete untagged community data',
  );
  t.equal(code(() => authorizeWrite(village, own, { type: 'Observation', method: 'DELETE', current: obs(VILLAGE), where: 'Observation' })), undefined);
  const county = ctx(['system/*.cruds'], COUNTY);
  t.equal(
    code(() => authorizeWrite(county, new Set([COUNTY, VILLAGE]), { type: 'Observation', method: 'PUT', current: obs(VILLAGE), next: obs(VILLAGE), where: 'Observation' })),
    undefined,
    'an institution may write for the ones under it when allowed',
  );
  const admin = ctx(['system/*.cruds']);
  t.equal(code(() => authorizeWrite(admin, undefined, { type: 'Observation', method: 'PUT', current: obs(COUNTY), next: obs(COUNTY), where: 'Observation' })), undefined, 'admin');
  t.equal(
    code(() => authorizeWrite(admin, undefined, { type: 'AuditEvent', method: 'POST', next: { resourceType: 'AuditEvent' } as never, where: 'AuditEvent' })),
    'GW_ERR_METHOD_NOT_ALLOWED',
    'no one writes AuditEvents',
  );
  t.equal(
    code(() => authorizeWrite(ctx(['system/Observation.rs']), undefined, { type: 'Observation', method: 'POST', next: obs(), where: 'Observation' })),
    'GW_ERR_FORBIDDEN',
    'read-only scopes cannot create',
  );
  t.equal(
    code(() => authorizeWrite(ctx(['system/Observation.u']), undefined, { type: 'Observation', method: 'PUT', next: obs(), where: 'Observation' })),
    'GW_ERR_FORBIDDEN',
    'create-on-update needs the create right too',
  );
});
