/**
 * The web console end to end, in headless Chromium (Debian `chromium`, driven by playwright-core)
 * against a gateway on the embedded store with the demo community and its sample traffic:
 * log in, open each screen, see a stale feed highlighted, look at a dead letter (failing segment
 * highlighted), replay after a mapping fix (one, the selected, all matching a filter) and see them
 * leave the list, discard one with a reason, chart the KPIs by month and download their figures,
 * retry a subscription, find in the audit trail the access this test made to a resident's record
 * and its break-glass access flagged, switch the language while dates keep the browser's locale
 * (and follow another browser's), end the session by logout and by idle time (the gateway's and
 * the page's own timer). Nothing personal may be left in the browser: no storage, no cached
 * answer, nothing in its profile on disk. Then the gateway as `npm start` runs it, on an empty
 * embedded store: the demo community and its traffic give every screen something to show, and
 * an operator logs in with her own account and is named in the audit trail.
 * Screenshots go to test/artifacts/.
 *
 * Without /usr/bin/chromium the test is skipped, except in CI (CI set), where that is a failure.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Bundle, Consent, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/app.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices, processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';
import { engineMap, type MapFn } from '../../src/ingest/index.js';
import { loadMappings, MappingError } from '../../src/ingest/hl7v2/mapping/index.js';
import { valueAt } from '../../src/ingest/hl7v2/model.js';
import { standardCodings } from '../../src/terminology/index.js';
import { loadDemoCommunity, readDemoQualifications, sendDemoTraffic } from '../../src/demo/index.js';
import { CONSOLE_ROOT } from '../../src/console/index.js';
import { start } from '../../src/server.js';
import { ID_CARD_SYSTEM, USCC_SYSTEM } from '../../src/fhir/systems.js';
import { openTestDb } from '../helpers/db.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** 周桂兰, a demo resident registered at three institutions. */
const ZHOU_ID_CARD = '330424195603120047';
const E2E_MRN = 'E2E-0001';
const COUNTY = '1233042447101234XX';
const TOWNSHIP1 = '1233042447102341XF';
/** The browser's time zone, so that the dates the page shows can be formatted here the same way. */
const TIME_ZONE = 'Asia/Shanghai';
const DATE_TIME = { dateStyle: 'medium', timeStyle: 'medium', timeZone: TIME_ZONE } as const;

/** The newest modification time under a directory. */
function newest(dir: string): number {
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
}

/** The files under a directory whose bytes contain `needle`. */
function filesHolding(dir: string, needle: Buffer): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => readFileSync(f).includes(needle));
}

/** The console as `npm run build` makes it, built here when its sources are newer. */
function buildConsoleIfStale(): void {
  const built = join(CONSOLE_ROOT, 'index.html');
  if (!existsSync(built) || newest(join(ROOT, 'console')) > statSync(built).mtimeMs) {
    execFileSync('npx', ['vite', 'build', '--config', 'console/vite.config.ts', '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
  }
}

const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// One browser and one gateway for each test; the demo traffic alone takes a while.
t.setTimeout(300_000);

if (!existsSync(CHROMIUM)) {
  if (process.env.CI) t.fail(`${CHROMIUM} is missing: install the Debian package chromium (apt-get install -y chromium); CI must run the console end-to-end test`);
  else t.plan(0, `${CHROMIUM} is missing (apt-get install -y chromium): console end-to-end test skipped`);
} else {
  t.test('console end to end', async (t) => {
    buildConsoleIfStale();
    const { chromium } = await import('playwright-core');
    mkdirSync(ARTIFACTS, { recursive: true });
    const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-spool-'));
    const profile = mkdtempSync(join(tmpdir(), 'console-chromium-'));
    // A gateway on a free port: the console needs a real origin for its cookie; it calls the API by
    // relative URLs, so BASE_URL (links, token audience) need not name that port.
    const config = loadConfig({ BASE_URL: 'http://gateway.test', LOG_LEVEL: 'silent', HL7_SPOOL_DIR: spoolDir, MLLP_PORT: '0', CONSOLE_IDLE_MINUTES: '2' });
    const tdb = await openTestDb('pglite');
    await prepareAudit(tdb.db, config);
    const fhir = await createFhirServices(config, tdb.db);
    // The real mapping, with a defect in it until the test "fixes" it: messages for E2E_MRN fail.
    const real = engineMap(loadMappings(config.hl7MappingsDir), standardCodings(fhir.terminology));
    const mapping = { broken: true };
    const hl7Map: MapFn = (msg, ctx) => {
      const pid = msg.segments.find((s) => s.name === 'PID');
      if (mapping.broken && valueAt(pid, 3) === E2E_MRN) throw new MappingError(102, { segment: 'PID', field: 3, component: 1 }, 'identifier type not mapped (test defect)');
      return real(msg, ctx);
    };
    const app = await buildApp(config, { db: tdb.db, logger: createLogger('silent'), fhir, hl7Map });
    await loadDemoCommunity((bundle) => processBundle(fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
    for (const q of await readDemoQualifications()) await app.recognition.service.qualify(q, { ...SYSTEM_CONTEXT, channel: 'demo' });
    const traffic = await sendDemoTraffic(app);
    t.ok(traffic.hl7 > 0 && traffic.deadLetters === 1 && traffic.referrals > 0 && traffic.recognitions > 0, 'the demo traffic went through');
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: BROWSER_ARGS,
      locale: 'zh-CN',
      timezoneId: TIME_ZONE,
      viewport: { width: 1400, height: 900 },
    });
    t.teardown(async () => {
      await browser.close();
      await app.close();
      await tdb.close();
      rmSync(spoolDir, { recursive: true, force: true });
      rmSync(profile, { recursive: true, force: true });
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
    // Every answer with data from the gateway's API to the page, with its Cache-Control.
    const answers: { url: string; cacheControl?: string }[] = [];
    page.on('response', (r) => {
      if (r.ok() && /\/(fhir|ingest|subscriptions)\//.test(new URL(r.url()).pathname)) answers.push({ url: r.url(), cacheControl: r.headers()['cache-control'] });
    });

    // A lab message that the mapping cannot handle yet: kept as a dead letter.
    const county = { authorization: `Bearer ${await app.auth.mint('county-his')}` };
    // Three of them: one is replayed alone, one as selected, one as all that match a filter.
    for (const n of [1, 2, 3]) {
      const hl7 = [`MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|E2E-LIS-${n}|P|2.5`, `PID|1||${E2E_MRN}^^^QSXRMYY^MR||褚^卫东||19700101|M`, `OBR|1|O-${n}|F-${n}|2345-7^Glucose^LN`, 'OBX|1|NM|2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||F'].join('\r');
      const posted = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...county, 'content-type': 'x-application/hl7-v2+er7' }, payload: `${hl7}\r` });
      t.match(posted.body, new RegExp(`MSA\\|AE\\|E2E-LIS-${n}`), `message ${n} is answered AE`);
    }
    // A clinician at the county hospital looks the resident up: the access the auditor must find.
    const looked = await app.inject({ url: `/fhir/Patient?identifier=${ID_CARD_SYSTEM}|${ZHOU_ID_CARD}`, headers: { ...county, 'x-user-id': 'e2e-doctor-7' } });
    t.ok((looked.json() as Bundle).entry?.length, 'the resident was read');
    // The resident withholds her record from the township centre; in an emergency a clinician
    // there breaks the glass to see her county HbA1c: the access the auditor must see flagged.
    const admin = { authorization: `Bearer ${await app.auth.mint('admin')}` };
    const township = { authorization: `Bearer ${await app.auth.mint('township1-his')}` };
    const township1Org = (await app.inject({ url: `/fhir/Organization?identifier=${USCC_SYSTEM}|${TOWNSHIP1}`, headers: admin })).json<Bundle>().entry?.[0]?.resource?.id;
    const zhou = (await app.inject({ url: `/fhir/Patient?identifier=${ID_CARD_SYSTEM}|${ZHOU_ID_CARD}`, headers: admin })).json<Bundle>().entry?.[0]?.resource?.id;
    const consent = await app.inject({
      method: 'POST',
      url: '/fhir/Consent',
      headers: { ...county, 'content-type': 'application/fhir+json' },
      payload: {
        resourceType: 'Consent',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: `Patient/${zhou}` },
        policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
        provision: { type: 'deny', actor: [{ role: { text: 'recipient' }, reference: { reference: `Organization/${township1Org}` } }] },
      } satisfies Consent,
    });
    t.equal(consent.statusCode, 201, consent.body.slice(0, 300));
    const hba1c = `/fhir/Observation?subject=Patient/${zhou}&code=http://loinc.org|4548-4`;
    t.same((await app.inject({ url: hba1c, headers: township })).json<Bundle>().entry ?? [], [], 'the township no longer sees her county results');
    const glass = await app.inject({ url: hba1c, headers: { ...township, 'x-user-id': 'e2e-doctor-9', 'x-break-glass': encodeURIComponent('急诊昏迷，需了解血糖控制情况') } });
    t.ok(glass.json<Bundle>().entry?.length, 'breaking the glass shows them');

    const login = async (clientId: string, secret: string) => {
      await page.getByTestId('login-form').waitFor();
      await page.locator('input[name=clientId]').fill(clientId);
      await page.locator('input[name=clientSecret]').fill(secret);
      await page.locator('form[data-testid=login-form] button[type=submit]').click();
      await page.getByTestId('who').waitFor();
    };

    await t.test('login with a wrong secret fails, with the right one opens the console', async (t) => {
      await page.goto(`${base}/console/`);
      await page.locator('input[name=clientId]').fill('admin');
      await page.locator('input[name=clientSecret]').fill('not-the-secret');
      await page.locator('form[data-testid=login-form] button[type=submit]').click();
      await page.getByTestId('login-failed').waitFor();
      await shot('login');
      await login('admin', 'admin-secret');
      t.match(await page.getByTestId('who').textContent(), /admin/);
      t.notMatch(page.url(), /secret|token/i, 'nothing of the login is in the URL');
      const cookies = await browser.cookies(base);
      const session = cookies.find((c) => c.name === 'hie_console');
      t.ok(session?.httpOnly, 'the session cookie is httpOnly');
      t.equal(session?.sameSite, 'Strict');
      t.equal(await page.evaluate('document.cookie'), '', 'the page cannot read the session cookie');
    });

    await t.test('feeds', async (t) => {
      await page.getByTestId('nav-feeds').click();
      await page.getByTestId('feed-row').first().waitFor();
      const text = await page.getByTestId('feeds-table').textContent();
      t.match(text, /county-lis/, 'the county laboratory feed is listed');
      t.match(text, /township1-lis/);
      t.ok(await page.locator('[data-testid=throughput-chart] rect').count(), 'the throughput chart has bars');
      t.equal(await page.locator('[data-testid=feed-row].stale').count(), 0, 'no feed is stale');
      // The village clinic's messages of today move three hours back: a busy feed gone quiet.
      await tdb.db.query(`UPDATE hl7_processed SET processed_at = processed_at - interval '3 hours' WHERE sender_id = 'village1-his'`);
      await page.getByRole('button', { name: '刷新' }).click();
      const stale = page.locator('[data-testid=feed-row].stale');
      await stale.first().waitFor();
      t.equal(await stale.count(), 1, 'one stale feed');
      t.match(await stale.textContent(), /village1-his.*停滞/, 'the quiet feed is highlighted');
      await shot('feeds');
    });

    await t.test('dead letters: show with the failing field highlighted, replay after the fix, it leaves the list', async (t) => {
      await page.getByTestId('nav-dead-letters').click();
      const row = page.getByTestId('dead-letter-row').filter({ hasText: 'E2E-LIS-1' }).or(page.getByTestId('dead-letter-row').filter({ hasText: 'county-lis' }));
      await row.first().waitFor();
      const gbk = page.getByTestId('dead-letter-row').filter({ hasText: 'township1-lis' });
      t.equal(await gbk.count(), 1, 'the demo dead letter (GBK) is listed');
      await gbk.getByRole('button', { name: '查看' }).click();
      await page.getByTestId('raw-message').waitFor();
      t.match(await page.getByTestId('raw-message').textContent(), /沈\^玉兰/, 'GBK text is decoded');
      await shot('dead-letter-gbk');
      const mine = page.getByTestId('dead-letter-row').filter({ hasText: 'county-lis' });
      t.equal(await mine.count(), 3, 'the test messages are dead letters');
      const first = mine.first();
      await first.getByRole('button', { name: '查看' }).click();
      await page.getByTestId('failing-field').waitFor();
      t.equal(await page.getByTestId('failing-field').textContent(), `${E2E_MRN}^^^QSXRMYY^MR`, 'PID-3 is marked');
      await shot('dead-letter');
      mapping.broken = false;
      // Locator waits run outside the page's own scripts, which the console's CSP keeps from eval.
      const gone = async (id: string | null) => page.locator(`[data-testid=dead-letter-row][data-id="${id}"]`).waitFor({ state: 'detached' });
      const one = await first.getAttribute('data-id');
      await first.getByTestId('replay').click();
      await page.getByTestId('notice').filter({ hasText: `#${one}` }).waitFor();
      t.match(await page.getByTestId('notice').textContent(), /stored/);
      await gone(one);
      t.equal(await mine.count(), 2, 'the replayed message left the list of new dead letters');
      await shot('dead-letter-replayed');
      // One selected and replayed.
      const second = await mine.first().getAttribute('data-id');
      await mine.first().locator('input[type=checkbox]').check();
      await page.getByRole('button', { name: /重放所选/ }).click();
      await page.getByTestId('notice').filter({ hasText: `#${second}: stored` }).waitFor();
      await gone(second);
      // The sender filter, then all that match it replayed.
      await page.locator('input[name=sender]').fill('county-lis');
      await page.getByRole('button', { name: '筛选' }).click();
      await gbk.first().waitFor({ state: 'detached' });
      t.equal(await page.getByTestId('dead-letter-row').count(), 1, 'the filter shows the one left of the sender');
      const third = await mine.first().getAttribute('data-id');
      await page.getByRole('button', { name: '重放全部符合条件的' }).click();
      await page.getByTestId('notice').filter({ hasText: `#${third}: stored` }).waitFor();
      await gone(third);
      t.equal(await mine.count(), 0, 'all three replayed');
      await page.locator('input[name=sender]').fill('');
      await page.getByRole('button', { name: '筛选' }).click();
      await gbk.first().waitFor();
      // The demo's unmappable message is discarded, with a reason.
      await gbk.getByRole('button', { name: '丢弃' }).click();
      await page.locator('textarea[name=reason]').fill('演示数据，患者标识缺失，已电话通知乡镇卫生院重发');
      await page.getByRole('button', { name: '确认丢弃' }).click();
      await page.getByTestId('dead-letter-row').filter({ hasText: 'township1-lis' }).first().waitFor({ state: 'detached' });
      t.equal(await page.getByTestId('dead-letter-row').count(), 0, 'no new dead letter is left');
      const { rows } = await tdb.db.query<{ outcome: string }>(`SELECT outcome FROM audit_event WHERE subtype = '$discard' AND client_id = 'admin'`);
      t.same(rows, [{ outcome: '0' }], 'the discard is audited');
    });

    await t.test('KPIs: recognition, referrals with the down-referral target, upload completeness by month against 90%, as CSV', async (t) => {
      await page.getByTestId('nav-kpis').click();
      for (const id of ['kpi-recognition', 'kpi-referrals', 'kpi-upload']) {
        await page.locator(`[data-testid=${id}] svg rect`).first().waitFor({ timeout: 60_000 });
        t.ok(await page.locator(`[data-testid=${id}] svg rect[height]:not([height="0"])`).count(), `${id} has bars`);
      }
      t.ok(await page.locator('[data-testid=kpi-referrals] polyline, [data-testid=kpi-referrals] circle').count(), 'the +15% target line is drawn');
      const csvOf = async (id: string) => {
        const download = page.waitForEvent('download');
        await page.locator(`[data-testid=${id}] [data-testid=csv]`).click();
        const file = await download;
        return { name: file.suggestedFilename(), lines: readFileSync(await file.path(), 'utf8').replace(/^\ufeff/, '').trim().split('\r\n') };
      };
      const referrals = await csvOf('kpi-referrals');
      t.equal(referrals.name, 'referrals.csv', 'the figures download as CSV');
      t.equal(referrals.lines.length, 13, 'a header and 12 months');

      // Upload completeness: a chart of the last 12 months for each institution that uploaded, each
      // with the 90% target line, and the figures per institution and month as CSV.
      const charts = page.locator('[data-testid=kpi-upload] [data-testid=upload-institution]');
      t.ok(await charts.count() >= 2, 'a chart for each uploading institution');
      for (const chart of await charts.all()) {
        t.equal(await chart.locator('svg text.tick[text-anchor=middle]').count(), 12, `${await chart.locator('h4').textContent()}: 12 months`);
        t.equal(await chart.locator('svg polyline').count(), 1, 'with the 90% target line');
      }
      const upload = await csvOf('kpi-upload');
      t.equal(upload.name, 'upload-completeness.csv');
      t.equal(upload.lines[0], 'institution,uscc,month,received,complete,completeness_pct,target_pct');
      const rows = upload.lines.slice(1).map((l) => l.split(','));
      t.equal(rows.length % 12, 0, '12 months for each institution');
      // The county hospital's row of this month is what $upload-stats answers for it.
      const month = new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit' }).format(new Date());
      const stats = (await app.inject({ url: `/fhir/$upload-stats?institution=${COUNTY}&period=${month}`, headers: admin })).json<Parameters>();
      const total = (name: string) => stats.parameter?.find((p: ParametersParameter) => p.name === name);
      const countyNow = rows.find((r) => r[1] === COUNTY && r[2] === month);
      t.ok(Number(total('received')?.valueInteger) > 0, 'the county hospital uploaded this month');
      t.same(countyNow?.slice(3), [String(total('received')?.valueInteger), String(total('complete')?.valueInteger), String(total('completeness')?.valueDecimal), '90'], 'the CSV has the gateway\'s figures');
      await shot('kpis');
    });

    await t.test('subscriptions: status, backlog, last error, retry now', async (t) => {
      await page.getByTestId('nav-subscriptions').click();
      const row = page.getByTestId('subscription-row').first();
      await row.waitFor();
      t.match(await row.textContent(), /regional-platform/);
      await row.getByTestId('retry').click();
      await page.getByTestId('notice').waitFor();
      t.match(await page.getByTestId('notice').textContent(), /立即重试/);
      await shot('subscriptions');
    });

    await t.test('logout ends the session; nothing is left in browser storage', async (t) => {
      t.same(await page.evaluate('[localStorage.length, sessionStorage.length]'), [0, 0], 'no local or session storage');
      await page.getByTestId('logout').click();
      await page.getByTestId('login-form').waitFor();
      const status = await page.evaluate(async () => (await fetch('/ingest/dead-letters', { headers: { 'X-Console': '1' } })).status);
      t.equal(status, 401, 'the API refuses the browser after logout');
    });

    await t.test('audit: the resident\'s access history shows the access made by this test; the chain verifies', async (t) => {
      await login('auditor', 'auditor-secret');
      await page.getByTestId('nav-audit').click();
      await page.locator('input[name=identifier]').fill(ZHOU_ID_CARD);
      await page.locator('form.filters button[type=submit]').click();
      await page.getByTestId('audit-timeline').waitFor();
      await page.getByTestId('audit-user').filter({ hasText: 'e2e-doctor-7' }).first().waitFor();
      const entry = page.getByTestId('audit-entry').filter({ hasText: 'e2e-doctor-7' }).first();
      t.match(await entry.textContent(), /county-his/, 'the access names the client and the user');
      t.equal(await entry.getByTestId('break-glass').count(), 0, 'an ordinary access is not flagged');
      // The clinician's search, made for the emergency (purpose of use BTG), and what it revealed.
      const emergency = page.getByTestId('audit-entry').filter({ hasText: 'e2e-doctor-9' });
      t.equal(await emergency.count(), 2, 'the search and the break-glass access');
      t.equal(await emergency.filter({ has: page.getByTestId('break-glass') }).count(), 2, 'both flagged');
      const glass = emergency.filter({ hasText: '急诊昏迷' });
      t.match(await glass.getByTestId('break-glass').textContent(), /紧急授权/);
      t.match(await glass.textContent(), /break-glass.*township1-his.*e2e-doctor-9.*BTG.*急诊昏迷.*Observation\//s, 'with the client, the clinician, the purpose of use, the reason and what was revealed');
      t.match(await glass.getAttribute('class'), /\bbtg\b/, 'and marked out');
      // Dates in the browser's locale (zh-CN here), whatever the console's language.
      const time = entry.locator('time');
      const recorded = new Date((await time.getAttribute('datetime')) as string);
      const zhDate = new Intl.DateTimeFormat('zh-CN', DATE_TIME).format(recorded);
      t.equal(await time.textContent(), zhDate, 'the time as the browser\'s locale writes it');
      // Other filters: the client, the action and the dates of today.
      const today = new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE }).format(new Date());
      await page.locator('input[name=identifier]').fill('');
      await page.locator('input[name=client]').fill('township1-his');
      await page.locator('select[name=action]').selectOption('E');
      await page.locator('input[name=from]').fill(today);
      await page.locator('input[name=to]').fill(today);
      await page.locator('form.filters button[type=submit]').click();
      await page.getByTestId('audit-client').first().waitFor();
      await page.getByTestId('audit-entry').filter({ hasText: '$recognition-decision' }).first().waitFor();
      const clients = new Set(await page.getByTestId('audit-client').allTextContents());
      t.same([...clients], ['township1-his'], 'only the client asked for');
      const actions = new Set(await page.locator('[data-testid=audit-entry] .badge:not(.warn-badge)').allTextContents());
      t.same([...actions], ['执行'], 'only the action asked for');
      const day = new Intl.DateTimeFormat('zh-CN', { dateStyle: 'medium', timeZone: TIME_ZONE }).format(new Date());
      t.same([...new Set((await page.locator('[data-testid=audit-entry] time').allTextContents()).map((x) => x.split(' ')[0]))], [day], 'only today, in the browser\'s calendar');
      await page.locator('input[name=client]').fill('');
      await page.locator('select[name=action]').selectOption('');
      await page.locator('input[name=from]').fill('');
      await page.locator('input[name=to]').fill('');
      await page.locator('input[name=identifier]').fill(ZHOU_ID_CARD);
      await page.locator('form.filters button[type=submit]').click();
      await page.getByTestId('audit-user').filter({ hasText: 'e2e-doctor-7' }).first().waitFor();
      await page.getByTestId('verify').click();
      await page.getByTestId('verify-result').waitFor();
      t.match(await page.getByTestId('verify-result').textContent(), /审计链完整/);
      await shot('audit');
      const exported = page.waitForEvent('download');
      await page.getByRole('button', { name: '导出 NDJSON' }).click();
      const file = await exported;
      t.match(file.suggestedFilename(), /^audit-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.ndjson$/, 'the trail of the dates exports as NDJSON');
      const lines = readFileSync(await file.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { resourceType: string; agent?: { who?: { identifier?: { value?: string } } }[] });
      t.ok(lines.every((e) => e.resourceType === 'AuditEvent'), 'of AuditEvents');
      t.ok(lines.some((e) => e.agent?.some((a) => a.who?.identifier?.value === 'e2e-doctor-7')), 'today\'s, with the access made by this test');
      await page.getByTestId('lang').click();
      await page.getByText('Access timeline').waitFor();
      t.equal(await page.getByTestId('nav-audit').textContent(), 'Audit', 'switched to English');
      t.match(await glass.getByTestId('break-glass').textContent(), /Break the glass/);
      t.equal(await time.textContent(), zhDate, 'dates keep the browser\'s locale in English');
      await shot('audit-en');
      await page.getByTestId('lang').click();
      await page.getByText('访问时间线').waitFor();
      t.equal(await page.getByTestId('nav-audit').textContent(), '审计', 'and back to Chinese');
    });

    await t.test('the session ends after idle time', async (t) => {
      await tdb.db.query(`UPDATE console_session SET last_seen = now() - interval '3 minutes'`);
      await page.locator('form.filters button[type=submit]').click();
      await page.getByTestId('login-form').waitFor();
      t.match(await page.getByTestId('login-form').textContent(), /会话已结束/, 'the login form says why');
      await shot('idle');
    });

    await t.test('the page itself ends the session after idle time, at the gateway too', async (t) => {
      await login('auditor', 'auditor-secret');
      // The page's clock, from the next load on: 2 idle minutes pass in an instant.
      await page.clock.install();
      await page.reload();
      await page.getByTestId('who').waitFor();
      await page.clock.runFor(125_000);
      await page.getByTestId('login-form').waitFor();
      t.match(await page.getByTestId('login-form').textContent(), /会话已结束/, 'the login form says why');
      const status = await page.evaluate(async () => (await fetch('/fhir/AuditEvent?_count=1', { headers: { 'X-Console': '1' } })).status);
      t.equal(status, 401, 'the session has ended at the gateway: the page logged out');
    });

    await t.test('another browser locale: dates as that locale writes them, English by default', async (t) => {
      const other = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
      t.teardown(() => other.close());
      const context = await other.newContext({ locale: 'en-GB', timezoneId: TIME_ZONE, viewport: { width: 1400, height: 900 } });
      const p = await context.newPage();
      await p.goto(`${base}/console/`);
      await p.locator('input[name=clientId]').fill('auditor');
      await p.locator('input[name=clientSecret]').fill('auditor-secret');
      await p.locator('form[data-testid=login-form] button[type=submit]').click();
      await p.getByTestId('nav-audit').click();
      t.equal(await p.getByTestId('nav-audit').textContent(), 'Audit', 'an English browser gets English');
      await p.locator('input[name=identifier]').fill(ZHOU_ID_CARD);
      await p.locator('form.filters button[type=submit]').click();
      const time = p.getByTestId('audit-entry').filter({ hasText: 'e2e-doctor-7' }).first().locator('time');
      await time.waitFor();
      const recorded = new Date((await time.getAttribute('datetime')) as string);
      t.equal(await time.textContent(), new Intl.DateTimeFormat('en-GB', DATE_TIME).format(recorded), 'the time as en-GB writes it');
      t.not(await time.textContent(), new Intl.DateTimeFormat('zh-CN', DATE_TIME).format(recorded));
      await p.screenshot({ path: join(ARTIFACTS, 'console-audit-en-gb.png'), fullPage: true });
    });

    await t.test('nothing personal is left in the browser: no storage, no cached answer, nothing in the profile', async (t) => {
      await login('admin', 'admin-secret');
      await page.getByTestId('nav-dead-letters').click();
      await page.locator('select[name=status]').selectOption('replayed');
      await page.getByRole('button', { name: '筛选' }).click();
      await page.getByTestId('dead-letter-row').filter({ hasText: 'county-lis' }).first().getByRole('button', { name: '查看' }).click();
      await page.getByTestId('raw-message').waitFor();
      t.match(await page.getByTestId('raw-message').textContent(), /褚\^卫东/, 'a message with a name in it was shown');
      // A string, evaluated in the page (the page's own types are not this file's).
      const stored = await page.evaluate(`(async () => ({
        local: localStorage.length,
        session: sessionStorage.length,
        indexedDb: (await indexedDB.databases()).length,
        caches: (await caches.keys()).length,
        workers: (await navigator.serviceWorker.getRegistrations()).length,
        cookie: document.cookie,
      }))()`);
      t.same(stored, { local: 0, session: 0, indexedDb: 0, caches: 0, workers: 0, cookie: '' }, 'no storage of any kind');
      t.ok(answers.length > 20, 'the API answered the page');
      t.same(answers.filter((a) => a.cacheControl !== 'no-store'), [], 'every answer was no-store');
      await page.getByTestId('logout').click();
      await page.getByTestId('login-form').waitFor();
      await browser.close();
      const leftovers = [ZHOU_ID_CARD, '周桂兰', '褚^卫东', '沈^玉兰', E2E_MRN].flatMap((text) => filesHolding(profile, Buffer.from(text)).map((f) => `${text} in ${f.slice(profile.length)}`));
      t.ok(filesHolding(profile, Buffer.from(new URL(base).host)).length > 0, 'the profile on disk is read: it has the visits to the console');
      t.same(leftovers, [], 'no name, ID card number or record number in the browser profile on disk');
    });
  });
  t.test('right after start on an empty embedded store, as npm start runs it, every screen has something to show', async (t) => {
    buildConsoleIfStale();
    const { chromium } = await import('playwright-core');
    const dataDir = mkdtempSync(join(tmpdir(), 'console-start-'));
    const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-spool-'));
    const running = await start(loadConfig({ HOST: '127.0.0.1', PORT: '0', MLLP_PORT: '0', LOG_LEVEL: 'silent', DATA_DIR: dataDir, HL7_SPOOL_DIR: spoolDir }), createLogger('silent'));
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    t.teardown(async () => {
      await browser.close();
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(spoolDir, { recursive: true, force: true });
    });
    const page = await (await browser.newContext({ locale: 'zh-CN', timezoneId: TIME_ZONE, viewport: { width: 1400, height: 900 } })).newPage();
    const login = async (clientId: string) => {
      await page.getByTestId('login-form').waitFor();
      await page.locator('input[name=clientId]').fill(clientId);
      await page.locator('input[name=clientSecret]').fill(`${clientId}-secret`);
      await page.locator('form[data-testid=login-form] button[type=submit]').click();
      await page.getByTestId('who').waitFor();
    };
    await page.goto(`${running.address}/console/`);
    await login('admin');
    await page.getByTestId('feed-row').first().waitFor();
    t.ok((await page.getByTestId('feed-row').count()) >= 5, 'feeds of several senders');
    t.ok(await page.locator('[data-testid=throughput-chart] rect').count(), 'the throughput chart has bars');
    await page.getByTestId('nav-dead-letters').click();
    await page.getByTestId('dead-letter-row').first().waitFor();
    t.equal(await page.getByTestId('dead-letter-row').count(), 1, 'the demo dead letter');
    await page.getByTestId('nav-kpis').click();
    for (const id of ['kpi-recognition', 'kpi-referrals', 'kpi-upload']) {
      await page.locator(`[data-testid=${id}] svg rect`).first().waitFor({ timeout: 60_000 });
      t.ok(await page.locator(`[data-testid=${id}] svg rect[height]:not([height="0"])`).count(), `${id} has bars`);
    }
    t.ok((await page.getByTestId('upload-institution').count()) >= 3, 'upload completeness of several institutions');
    await page.screenshot({ path: join(ARTIFACTS, 'console-start-kpis.png'), fullPage: true });
    await page.getByTestId('nav-subscriptions').click();
    await page.getByTestId('subscription-row').first().waitFor();
    t.match(await page.getByTestId('subscription-row').first().textContent(), /regional-platform/, 'the demo subscriber');
    await page.getByTestId('logout').click();
    // An auditor of the health bureau logs in with her own operator account.
    await page.getByTestId('login-as-operator').click();
    await page.locator('input[name=username]').fill('liming');
    await page.locator('input[name=password]').fill('wrong');
    await page.locator('form[data-testid=login-form] button[type=submit]').click();
    await page.getByTestId('login-failed').waitFor();
    await page.locator('input[name=password]').fill('liming-secret');
    await page.locator('form[data-testid=login-form] button[type=submit]').click();
    await page.getByTestId('who').waitFor();
    t.match(await page.getByTestId('who').textContent(), /李明.*liming.*auditor/, 'the operator, by name, acting as the auditor client');
    await page.getByTestId('nav-audit').click();
    await page.locator('input[name=identifier]').fill(ZHOU_ID_CARD);
    await page.locator('form.filters button[type=submit]').click();
    await page.getByTestId('audit-entry').first().waitFor();
    t.ok((await page.getByTestId('audit-entry').count()) > 10, 'the demo resident has an access history');
    // Her own search of the resident's history is in it, in her name.
    await page.locator('form.filters button[type=submit]').click();
    await page.getByTestId('audit-user').filter({ hasText: 'liming' }).first().waitFor();
    t.match(await page.getByTestId('audit-entry').filter({ has: page.getByTestId('audit-user').filter({ hasText: 'liming' }) }).first().textContent(), /auditor/, 'the audit trail names the operator');
    await page.screenshot({ path: join(ARTIFACTS, 'console-start-operator-audit.png'), fullPage: false });
    // A member institution's client sees the upload completeness of its own institution only.
    await page.getByTestId('logout').click();
    await page.getByTestId('login-as-client').click();
    await login('township1-his');
    await page.getByTestId('nav-kpis').click();
    await page.getByTestId('upload-institution').first().waitFor();
    t.same(await page.locator('[data-testid=upload-institution] h4').allTextContents(), ['青山县城关镇卫生院'], 'the township sees its own figures');
  });
}
