/**
 * "Who saw this person's record", asked by any identifier: `patient:identifier=system|value`
 * on the audit trail finds the accesses to every record of the person (the resident ID card
 * number finds her registrations at each institution), `institution` narrows by the accessing
 * member institution; an unknown identifier answers an empty page, a malformed one 400.
 */
import t from 'tap';
import type { AuditEvent, Bundle, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';
import { ID_CARD_SYSTEM } from '../../src/fhir/systems.js';

const ZHOU = '330424195603120047';
const TOWNSHIP_MRN = 'https://fhir.county-hie.cn/sid/mrn/1233042447102341XF|CG2024008812';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
    const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
    // The village clinic reads one of her registrations, by its id.
    const found = (await ta.app.inject({ url: `/fhir/Patient?identifier=${TOWNSHIP_MRN}` })).json<Bundle<Patient>>();
    const township = found.entry?.[0]?.resource?.id as string;
    const read = await ta.app.inject({ url: `/fhir/Patient/${township}`, headers: { authorization: `Bearer ${await ta.token('village1-his')}`, 'x-user-id': 'dr-li' } });
    t.equal(read.statusCode, 200);

    const search = async (q: string) => ta.app.inject({ url: `/fhir/AuditEvent?${q}&_count=100`, headers: auditor });
    const byCard = await search(`patient:identifier=${ID_CARD_SYSTEM}|${ZHOU}&altid=dr-li`);
    t.equal(byCard.statusCode, 200, byCard.body);
    const events = (byCard.json() as Bundle<AuditEvent>).entry?.map((e) => e.resource as AuditEvent) ?? [];
    t.equal(events.length, 1, 'the ID card number finds the read of her township registration');
    t.ok(events[0]?.entity?.some((e) => e.what?.reference === `Patient/${township}`));
    t.equal(((await search(`patient:identifier=${TOWNSHIP_MRN}&altid=dr-li&institution=52330424681045633Y`)).json() as Bundle).entry?.length, 1, 'by a local MRN and the reading institution');
    t.equal(((await search(`patient:identifier=${TOWNSHIP_MRN}&altid=dr-li&institution=1233042447101234XX`)).json() as Bundle).entry?.length ?? 0, 0, 'another institution did not read it');
    t.equal(((await search(`patient:identifier=${ID_CARD_SYSTEM}|110101199003077777`)).json() as Bundle).entry?.length ?? 0, 0, 'an unknown person: no accesses');
    t.equal((await search('patient:identifier=no-bar')).statusCode, 400, 'system|value is required');
  });
}
