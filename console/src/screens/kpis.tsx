/**
 * KPIs by month: mutual recognition (recognised, repeated, saved), referrals up, down and out of
 * the county with the +15% down-referral target, upload completeness per institution against
 * 90% — as charts, each with its figures downloadable as CSV.
 */
import { useState } from 'react';
import { getJson, num, type FhirParameter } from '../api';
import { BarChart } from '../chart';
import { downloadCsv } from '../csv';
import { fmt, useT } from '../i18n';
import { Status, useLoad } from '../load';
import { institutionNames } from '../orgs';

interface Parameters {
  parameter?: FhirParameter[];
}

const pad = (n: number) => String(n).padStart(2, '0');

interface Month {
  key: string; // YYYY-MM
  start: string;
  end: string;
  date: Date;
}

/** The `n` months up to the current one, oldest first, in the browser's calendar. */
export function lastMonths(n: number, now = new Date()): Month[] {
  const out: Month[] = [];
  for (let i = n - 1; i >= 0; i--) {
    const d = new Date(now.getFullYear(), now.getMonth() - i, 1);
    const last = new Date(d.getFullYear(), d.getMonth() + 1, 0).getDate();
    const key = `${d.getFullYear()}-${pad(d.getMonth() + 1)}`;
    out.push({ key, start: `${key}-01`, end: `${key}-${pad(last)}`, date: d });
  }
  return out;
}

/** Down-referral target of a month: the same month a year earlier plus 15%, when there was one. */
export function downTarget(downByMonth: number[], i: number): number | undefined {
  const before = downByMonth[i - 12];
  return before === undefined || before === 0 ? undefined : Math.round(before * 1.15 * 100) / 100;
}

function Recognition() {
  const t = useT();
  const months = lastMonths(12);
  const loaded = useLoad(
    () =>
      Promise.all(
        months.map(async (m) => {
          const p = await getJson<Parameters>(`/fhir/$recognition-stats?start=${m.start}&end=${m.end}`);
          const rows = (p.parameter ?? []).filter((x) => x.name === 'row').map((x) => x.part);
          const sum = (name: string) => rows.reduce((a, r) => a + num(r, name), 0);
          return { month: m.key, offered: sum('offered'), accepted: sum('accepted'), repeated: sum('repeated'), saved: Math.round(sum('saved') * 100) / 100 };
        }),
      ),
    [],
  );
  const data = loaded.data ?? [];
  return (
    <article className="kpi" data-testid="kpi-recognition">
      <header className="bar">
        <h3>{t('recognition')}</h3>
        <button
          disabled={!loaded.data}
          onClick={() => downloadCsv('recognition.csv', ['month', 'offered', 'recognised', 'repeated', 'saved_cny'], data.map((d) => [d.month, d.offered, d.accepted, d.repeated, d.saved]))}
        >
          {t('downloadCsv')}
        </button>
      </header>
      <Status loaded={loaded} />
      {loaded.data && (
        <>
          <BarChart
            labels={months.map((m) => fmt.month(m.date))}
            series={[
              { label: t('recognised'), values: data.map((d) => d.accepted), color: '#2f6fb0' },
              { label: t('repeated'), values: data.map((d) => d.repeated), color: '#e08e0b' },
            ]}
          />
          <p>
            {t('saved')}: <strong data-testid="saved-total">{fmt.number(data.reduce((a, d) => a + d.saved, 0))}</strong>
          </p>
        </>
      )}
    </article>
  );
}

function Referrals() {
  const t = useT();
  const months = lastMonths(24);
  const loaded = useLoad(
    () =>
      Promise.all(
        months.map(async (m) => {
          const p = await getJson<Parameters>(`/fhir/$referral-stats?start=${m.start}&end=${m.end}`);
          return { month: m.key, up: num(p.parameter, 'up'), down: num(p.parameter, 'down'), outOfCounty: num(p.parameter, 'outOfCounty'), returned: num(p.parameter, 'returnedAfterOutOfCounty') };
        }),
      ),
    [],
  );
  const all = loaded.data ?? [];
  const shown = all.slice(12);
  const targets = shown.map((_, i) => downTarget(all.map((d) => d.down), i + 12));
  return (
    <article className="kpi" data-testid="kpi-referrals">
      <header className="bar">
        <h3>{t('referrals')}</h3>
        <button
          disabled={!loaded.data}
          onClick={() =>
            downloadCsv(
              'referrals.csv',
              ['month', 'up', 'down', 'out_of_county', 'returned_after_out_of_county', 'down_target'],
              shown.map((d, i) => [d.month, d.up, d.down, d.outOfCounty, d.returned, targets[i] ?? '']),
            )
          }
        >
          {t('downloadCsv')}
        </button>
      </header>
      <Status loaded={loaded} />
      {loaded.data && (
        <BarChart
          labels={months.slice(12).map((m) => fmt.month(m.date))}
          series={[
            { label: t('up'), values: shown.map((d) => d.up), color: '#2f6fb0' },
            { label: t('down'), values: shown.map((d) => d.down), color: '#27ae60' },
            { label: t('outOfCounty'), values: shown.map((d) => d.outOfCounty), color: '#8e44ad' },
            { label: t('downTarget'), values: targets, color: '#c0392b', line: true },
          ]}
        />
      )}
    </article>
  );
}

function Upload() {
  const t = useT();
  const months = lastMonths(12);
  const [period, setPeriod] = useState(months[months.length - 1].key);
  const loaded = useLoad(async () => {
    const names = await institutionNames();
    const rows = [];
    for (const [uscc, name] of names) {
      const p = await getJson<Parameters>(`/fhir/$upload-stats?institution=${uscc}&period=${period}`);
      const feeds = (p.parameter ?? []).filter((x) => x.name === 'feed').map((x) => x.part);
      const received = feeds.reduce((a, f) => a + num(f, 'received'), 0);
      const complete = feeds.reduce((a, f) => a + num(f, 'complete'), 0);
      // Completeness of the fields, weighted by the records received in each feed.
      const weighted = received === 0 ? 0 : feeds.reduce((a, f) => a + num(f, 'completeness') * num(f, 'received'), 0) / received;
      rows.push({ uscc, name, received, complete, completeness: Math.round(weighted * 100) / 100 });
    }
    return rows;
  }, [period]);
  const data = loaded.data ?? [];
  return (
    <article className="kpi" data-testid="kpi-upload">
      <header className="bar">
        <h3>{t('upload')}</h3>
        <span>
          <label>
            {t('period')}{' '}
            <select value={period} onChange={(e) => setPeriod(e.target.value)}>
              {months.map((m) => (
                <option key={m.key} value={m.key}>
                  {fmt.month(m.date)}
                </option>
              ))}
            </select>
          </label>{' '}
          <button
            disabled={!loaded.data}
            onClick={() => downloadCsv(`upload-${period}.csv`, ['institution', 'uscc', 'received', 'complete', 'completeness_pct', 'target_pct'], data.map((d) => [d.name, d.uscc, d.received, d.complete, d.completeness, 90]))}
          >
            {t('downloadCsv')}
          </button>
        </span>
      </header>
      <Status loaded={loaded} />
      {loaded.data && (
        <BarChart
          labels={data.map((d) => d.name)}
          series={[
            { label: t('completeness'), values: data.map((d) => d.completeness), color: '#2f6fb0' },
            { label: t('target90'), values: data.map(() => 90), color: '#c0392b', line: true },
          ]}
        />
      )}
    </article>
  );
}

export function Kpis() {
  const t = useT();
  return (
    <section>
      <header className="bar">
        <h2>{t('kpis')}</h2>
      </header>
      <div className="kpis">
        <Recognition />
        <Referrals />
        <Upload />
      </div>
    </section>
  );
}
