/**
 * Every token request is audited: granted ones as a login of the client, refused ones under the
 * client id they claimed, with the reason, and the secret never.
 */
import t from 'tap';
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const ok = await ta.anonymous({ method: 'POST', url: '/auth/token', headers: FORM, payload: 'grant_type=client_credentials&client_id=township1-his&client_secret=township1-his-secret' });
    t.equal(ok.statusCode, 200);
    const bad = await ta.anonymous({ method: 'POST', url: '/auth/token', headers: FORM, payload: 'grant_type=client_credentials&client_id=township1-his&client_secret=guess' });
    t.equal(bad.statusCode, 401);

    const auditor = await ta.token('auditor');
    const r = await ta.app.inject({ method: 'GET', url: '/fhir/AuditEvent?subtype=token&agent=township1-his', headers: { authorization: `Bearer ${auditor}` } });
    t.equal(r.statusCode, 200, r.body.slice(0, 200));
    const events = ((r.json() as Bundle).entry ?? []).map((e) => e.resource as AuditEvent);
    t.same(events.map((e) => e.outcome).sort(), ['0', '4'], 'one granted, one refused');
    const granted = events.find((e) => e.outcome === '0');
    t.equal(granted?.agent?.find((a) => a.who?.type === 'Organization')?.who?.identifier?.value, '1233042447102341XF', 'institution recorded');
    const refused = events.find((e) => e.outcome === '4');
    t.match(refused?.outcomeDesc, /invalid_client/);
    t.notMatch(JSON.stringify(events), /guess|township1-his-secret/, 'no secret in the audit trail');
  });
}
