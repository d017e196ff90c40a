/**
 * Sample traffic for the demo community, sent once after the demo is loaded, through the same
 * doors real systems use (HL7 v2 over HTTP, FHIR transactions, $recognition-decision,
 * Subscription), so that the console shows non-empty feeds, a dead letter, referrals and
 * recognitions by month, upload figures and a subscriber in trouble right after `npm start`.
 * Every request is stored, audited and counted like any other; nothing is written around the
 * write path.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import iconv from 'iconv-lite';
import type { Bundle, BundleEntry, Organization, ServiceRequest, Task } from '@medplum/fhirtypes';
import { ID_CARD_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import { DIRECTION_EXTENSION, REFERRAL_CATEGORY, openingTask } from '../referral/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP1 = '1233042447102341XF';
const VILLAGE1 = '52330424681045633Y';
/** A provincial hospital outside the county, for out-of-county referrals and returns. */
const OUTSIDE = '12330000470000111K';
const CLIENT_OF: Record<string, string> = { [COUNTY]: 'county-his', [TOWNSHIP1]: 'township1-his', [VILLAGE1]: 'village1-his', [OUTSIDE]: 'admin' };
const ZHOU_ID_CARD = '330424195603120047';

export interface TrafficSummary {
  readonly hl7: number;
  readonly deadLetters: number;
  readonly referrals: number;
  readonly recognitions: number;
}

function hl7Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** The demo's HL7 v2 messages: results and registrations from four senders, one that cannot be mapped. */
function messages(now: Date): { client: string; body: Buffer }[] {
  const ts = hl7Time(now);
  const msh = (app: string, facility: string, type: string, id: string) => `MSH|^~\\&|${app}|${facility}|COUNTY-HIE|QS|${ts}||${type}|${id}|P|2.5`;
  const oru = (app: string, facility: string, id: string, pid: string, obx: string) => [msh(app, facility, 'ORU^R01^ORU_R01', id), pid, 'OBR|1|O-' + id + '|F-' + id + '|2345-7^Glucose^LN', obx].join('\r') + '\r';
  const out: { client: string; body: Buffer }[] = [];
  const county = [
    ['0001377120', '钱^立新', '19751103', 'M', '6.2', 'H'],
    ['0001377121', '孙^秀英', '19680412', 'F', '5.1', 'N'],
    ['0001377122', '吴^建国', '19590921', 'M', '7.4', 'H'],
  ];
  county.forEach(([mrn, name, birth, sex, value, flag], i) =>
    out.push({ client: 'county-his', body: Buffer.from(oru('QSLIS', 'QSXRMYY', `DEMO-LIS-${i + 1}`, `PID|1||${mrn}^^^QSXRMYY^MR||${name}||${birth}|${sex}`, `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|3.9-6.1|${flag}|||F`)) }),
  );
  out.push({
    client: 'county-his',
    body: Buffer.from([msh('QSHIS', 'QSXRMYY', 'ADT^A04^ADT_A01', 'DEMO-ADT-1'), `EVN|A04|${ts}`, 'PID|1||0001377123^^^QSXRMYY^MR||郑^晓梅||19820315|F', 'PV1|1|O'].join('\r') + '\r'),
  });
  // The township laboratory sends GBK (its registered default character set).
  const gbk = (text: string) => iconv.encode(text, 'gbk');
  out.push({ client: 'township1-his', body: gbk(oru('CGLIS', 'CGZWSY', 'DEMO-CG-1', 'PID|1||CG2024009001^^^CGZWSY^MR||冯^桂芝||19610707|F', 'OBX|1|NM|2345-7^葡萄糖^LN||5.6|mmol/L|3.9-6.1|N|||F')) });
  out.push({ client: 'township1-his', body: gbk(oru('CGLIS', 'CGZWSY', 'DEMO-CG-2', 'PID|1||CG2024009002^^^CGZWSY^MR||蒋^德华||19550130|M', 'OBX|1|NM|2345-7^葡萄糖^LN||8.1|mmol/L|3.9-6.1|H|||F')) });
  // This one has no patient identifier in PID-3: it is answered AE and kept as a dead letter.
  out.push({ client: 'township1-his', body: gbk(oru('CGLIS', 'CGZWSY', 'DEMO-CG-3', 'PID|1||||沈^玉兰||19640218|F', 'OBX|1|NM|2345-7^葡萄糖^LN||6.0|mmol/L|3.9-6.1|N|||F')) });
  out.push({
    client: 'village1-his',
    body: Buffer.from([msh('DHHIS', 'DHCWSS', 'ADT^A04^ADT_A01', 'DEMO-DH-1'), `EVN|A04|${ts}`, 'PID|1||DH0003001^^^DHCWSS^MR||韩^长青||19490808|M', 'PV1|1|O'].join('\r') + '\r'),
  });
  return out;
}

/** A day of month `back` months before `now` (local calendar), at 09:00 China time. */
function dayInMonth(now: Date, back: number, day: number): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1));
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  const dd = Math.min(day, back === 0 ? Math.max(1, now.getUTCDate() - 1) : last, last);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(dd).padStart(2, '0')}`;
}

export async function sendDemoTraffic(app: FastifyInstance, now = new Date()): Promise<TrafficSummary> {
  const tokens = new Map<string, string>();
  const auth = async (client: string) => {
    if (!tokens.has(client)) tokens.set(client, await app.auth.mint(client));
    return { authorization: `Bearer ${tokens.get(client)}` };
  };
  const fhir = async (client: string, method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const r = await app.inject({ method, url, headers: { ...(await auth(client)), 'content-type': 'application/fhir+json' }, ...(payload ? { payload: payload as object } : {}) });
    if (r.statusCode >= 300) throw new Error(`demo traffic: ${method} ${url} answered ${r.statusCode}: ${r.body.slice(0, 500)}`);
    return r.json<Bundle & Record<string, unknown>>();
  };

  // The regional platform subscribes to finished encounters at an address that does not answer:
  // the console shows its backlog and last error.
  await fhir('regional-platform', 'POST', '/fhir/Subscription', {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Demo: the regional platform (unreachable in the demo)',
    criteria: 'Observation?code=http://loinc.org|2345-7',
    channel: { type: 'rest-hook', endpoint: 'https://platform.qingshan.invalid/fhir-hook', payload: 'application/fhir+json' },
  });
  // HL7 v2 feeds.
  let hl7 = 0;
  let deadLetters = 0;
  for (const m of messages(now)) {
    const r = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...(await auth(m.client)), 'content-type': 'x-application/hl7-v2+er7' }, payload: m.body });
    if (/\rMSA\|AA\|/.test(r.body)) hl7++;
    else deadLetters++;
  }

  // The township centre's PACS describes a chest X-ray study (DICOM JSON, as QIDO-RS gives it).
  const study = [
    {
      '0020000D': { vr: 'UI', Value: ['1.2.156.112605.9.1'] },
      '0020000E': { vr: 'UI', Value: ['1.2.156.112605.9.1.1'] },
      '00080018': { vr: 'UI', Value: ['1.2.156.112605.9.1.1.1'] },
      '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.1.1'] },
      '00080060': { vr: 'CS', Value: ['DX'] },
      '00100020': { vr: 'LO', Value: ['CG2024009001'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: '冯^桂芝' }] },
      '00180015': { vr: 'CS', Value: ['CHEST'] },
    },
  ];
  const dicom = await app.inject({ method: 'POST', url: '/ingest/dicom', headers: { ...(await auth('township1-his')), 'content-type': 'application/dicom+json' }, payload: JSON.stringify(study) });
  if (dicom.statusCode !== 200) throw new Error(`demo traffic: DICOM answered ${dicom.statusCode}: ${dicom.body.slice(0, 300)}`);
  // The county hospital's HIS exports its patient index as CSV.
  const csv = 'mrn,name,id_card,gender,birth_date,phone,address\r\n0001377124,杨丽华,,F,1977-06-21,13905720011,青山县城关镇东河路12号\r\n0001377125,朱永福,,M,1950-02-14,,青山县石门乡\r\n';
  const extract = await app.inject({ method: 'POST', url: '/ingest/extract/patients', headers: { ...(await auth('county-his')), 'content-type': 'text/csv; charset=utf-8' }, payload: csv });
  if (extract.statusCode !== 200) throw new Error(`demo traffic: extract answered ${extract.statusCode}: ${extract.body.slice(0, 300)}`);

  // Institutions by USCC, and the out-of-county hospital.
  const orgs = await fhir('admin', 'GET', '/fhir/Organization?_count=100');
  const org: Record<string, string> = {};
  for (const e of orgs.entry ?? []) {
    const code = (e.resource as Organization).identifier?.find((i) => i.system === USCC_SYSTEM)?.value;
    if (code) org[code] = e.resource?.id as string;
  }
  const outside = await fhir('admin', 'POST', '/fhir/Organization', { resourceType: 'Organization', active: true, name: '浙江省人民医院', identifier: [{ system: USCC_SYSTEM, value: OUTSIDE }] } satisfies Organization);
  org[OUTSIDE] = outside.id as string;

  // Patients for the referrals and recognitions: the demo residents.
  const patients = (await fhir('admin', 'GET', '/fhir/Patient?_count=20&_elements=identifier')).entry?.map((e) => e.resource?.id as string) ?? [];
  const zhou = (await fhir('admin', 'GET', `/fhir/Patient?identifier=${ID_CARD_SYSTEM}|${ZHOU_ID_CARD}`)).entry?.[0]?.resource?.id;

  // Referrals over the last 15 months: down-referrals grow, as the policy wants.
  const kinds: { from: string; to: string; direction: 'up' | 'down'; icd10: string }[] = [
    { from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900' },
    { from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I21.900' },
    { from: COUNTY, to: OUTSIDE, direction: 'up', icd10: 'C34.900' },
    { from: COUNTY, to: TOWNSHIP1, direction: 'down', icd10: 'I69.300' },
    { from: TOWNSHIP1, to: VILLAGE1, direction: 'down', icd10: 'I10.x00' },
    { from: OUTSIDE, to: COUNTY, direction: 'down', icd10: 'Z50.100' },
  ];
  let referrals = 0;
  for (let back = 14; back >= 0; back--) {
    // Per month: 2 up, out of county every other month, down-referrals 1 → 3 over the period.
    const plan = [kinds[0], kinds[1], ...(back % 2 === 0 ? [kinds[2]] : []), kinds[3], ...(back < 10 ? [kinds[4]] : []), ...(back < 4 ? [kinds[5]] : [])];
    for (const [i, k] of plan.entries()) {
      const authoredOn = `${dayInMonth(now, back, 3 + i * 4)}T09:00:00+08:00`;
      const srUrl = `urn:uuid:${randomUUID()}`;
      const sr: ServiceRequest = {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        category: [{ coding: [REFERRAL_CATEGORY] }],
        extension: [{ url: DIRECTION_EXTENSION, valueCode: k.direction }],
        priority: 'routine',
        subject: { reference: `Patient/${patients[(back + i) % Math.max(1, patients.length)]}` },
        reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: k.icd10 }] }],
        requester: { reference: `Organization/${org[k.from]}` },
        performer: [{ reference: `Organization/${org[k.to]}` }],
        authoredOn,
      };
      const task: Task = { ...openingTask(sr, srUrl), authoredOn };
      const entry: BundleEntry[] = [
        { fullUrl: srUrl, request: { method: 'POST', url: 'ServiceRequest' }, resource: sr },
        { fullUrl: `urn:uuid:${randomUUID()}`, request: { method: 'POST', url: 'Task' }, resource: task },
      ];
      await fhir(CLIENT_OF[k.from], 'POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry });
      referrals++;
    }
  }

  // Mutual recognition: the township centre recognises the county hospital's HbA1c of 周桂兰,
  // or repeats it for a clinical reason, a few times a month over the last year.
  let recognitions = 0;
  const hba1c = zhou ? (await fhir('township1-his', 'GET', `/fhir/Observation?subject=Patient/${zhou}&code=http://loinc.org|4548-4&_count=1`)).entry?.[0]?.resource?.id : undefined;
  if (zhou && hba1c) {
    for (let back = 11; back >= 0; back--) {
      const accepted = 2 + ((11 - back) % 4);
      for (let i = 0; i < accepted + (back % 3 === 0 ? 1 : 0); i++) {
        const repeat = i >= accepted;
        await fhir('township1-his', 'POST', '/fhir/$recognition-decision', {
          resourceType: 'Parameters',
          parameter: [
            { name: 'identifier', valueIdentifier: { system: ID_CARD_SYSTEM, value: ZHOU_ID_CARD } },
            { name: 'item', valueString: 'hba1c' },
            { name: 'decision', valueString: repeat ? 'repeated' : 'accepted' },
            ...(repeat ? [{ name: 'reason', valueString: 'clinical-change' }] : [{ name: 'result', valueReference: { reference: `Observation/${hba1c}` } }]),
            { name: 'date', valueString: dayInMonth(now, back, 2 + i * 3) },
          ],
        });
        recognitions++;
      }
    }
  }

  return { hl7, deadLetters, referrals, recognitions };
}
