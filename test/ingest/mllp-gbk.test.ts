/**
 * A township lab (LIS) sends a GBK-encoded ORU^R01 over a real TCP MLLP connection to the
 * gateway as `npm start` runs it: the ACK comes after commit, the Chinese text reads correctly in
 * the FHIR JSON, the local lab code is translated to LOINC beside the original, and sending the
 * same message again stores it once.
 */
import t from 'tap';
import { freePort } from '../helpers/net.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import type { Bundle, Observation } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { start } from '../../src/server.js';
import { sendMllp } from '../../src/ingest/mllp/index.js';

let cached: string | undefined;
let tokenBase = '';


/** The township LIS (demo sender CGLIS/CGZWSY, GBK by default): HbA1c and fasting glucose. */
function oru(controlId: string, msh18 = ''): string {
  return [
    `MSH|^~\\&|CGLIS|CGZWSY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|${controlId}|P|2.5|||||CHN|${msh18}`,
    'PID|1||CG2019001207^^^CGZWSY^MR||吴^国平||19620708|M',
    'OBR|1|ORD-7781|LAB-7781|0403^糖化血红蛋白^L|||20261120073000',
    'OBX|1|NM|0403^糖化血红蛋白^L||7.2|%|4.0-6.0|H|||F|||20261120073000',
    'NTE|1||血糖控制欠佳，建议复查',
    'OBX|2|NM|0402^空腹血糖^L||8.1|mmol/L|3.9-6.1|H|||F|||20261120073000',
  ].join('\r');
}

t.test('GBK ORU^R01 over MLLP, stored once, Chinese intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hie-mllp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mllpPort = await freePort();
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', MLLP_PORT: String(mllpPort), DATA_DIR: dir, HL7_SPOOL_DIR: join(dir, 'spool'), LOG_LEVEL: 'silent' });
  const running = await start(config, createLogger('silent'));
  t.teardown(() => running.stop());
  t.equal(running.mllpPort, mllpPort);
  tokenBase = running.address;
  const token = async (): Promise<string> => {
    if (!cached) {
      const r = await fetch(`${tokenBase}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&client_id=township1-his&client_secret=township1-his-secret',
      });
      cached = ((await r.json()) as { access_token: string }).access_token;
    }
    return cached;
  };

  const search = async () => {
    const r = await fetch(`${running.address}/fhir/Observation?subject:Patient.identifier=CG2019001207&_count=50`, { headers: { authorization: `Bearer ${await token()}` } });
    const body = (await r.json()) as Bundle;
    if (body.resourceType !== 'Bundle') t.fail(JSON.stringify(body).slice(0, 300));
    return body.entry?.map((e) => e.resource as Observation) ?? [];
  };
  // The demo community already holds a result of this resident: count what the message adds.
  const before = (await search()).length;
  const gbk = iconv.encode(oru('CG-20261120-0001'), 'gbk');
  t.not(gbk.toString('utf8').includes('糖化血红蛋白'), true, 'the bytes on the wire are GBK, not UTF-8');
  const [ack] = await sendMllp('127.0.0.1', mllpPort, [gbk]);
  const ackText = iconv.decode(ack, 'gbk');
  t.match(ackText, /MSA\|AA\|CG-20261120-0001/, 'AA after commit');

  const stored = await search();
  t.equal(stored.length, before + 2, 'one Observation per OBX');
  const hba1c = stored.find((o) => o.code.coding?.some((c) => c.code === '0403'));
  t.ok(hba1c, 'the local code is kept');
  t.equal(hba1c?.code.coding?.find((c) => c.code === '0403')?.display, '糖化血红蛋白', 'Chinese display reads correctly');
  t.ok(hba1c?.code.coding?.some((c) => c.system === 'http://loinc.org' && c.code === '4548-4'), 'translated to LOINC beside the original');
  t.equal(hba1c?.valueQuantity?.value, 7.2);
  t.match(JSON.stringify(hba1c?.note ?? []), /血糖控制欠佳，建议复查/, 'NTE note in Chinese');
  t.match(hba1c?.meta?.tag, [{ code: '1233042447102341XF' }], 'tagged with the township institution');

  const [again] = await sendMllp('127.0.0.1', mllpPort, [gbk]);
  t.match(iconv.decode(again, 'gbk'), /MSA\|AA\|CG-20261120-0001/, 'a resend is acknowledged again');
  t.equal((await search()).length, before + 2, 'and stored once');

  const gb18030 = iconv.encode(oru('CG-20261120-0002', 'GB 18030-2000').replace('血糖控制欠佳', '𠀀血糖控制欠佳'), 'gb18030');
  const [ack2] = await sendMllp('127.0.0.1', mllpPort, [gb18030]);
  t.match(iconv.decode(ack2, 'gb18030'), /MSA\|AA\|CG-20261120-0002/, 'MSH-18 GB 18030 honoured');
});
