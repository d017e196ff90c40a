/**
 * KPIs by month: mutual recognition (recognised, repeated, saved), referrals up, down and out of
 * the county with the +15% down-referral target, upload completeness of each institution against
 * 90% — as charts, each card with the figures behind its charts downloadable as CSV.
 */
import type { ReactNode } from 'react';
import type { Parameters } from '@medplum/fhirtypes';
import { ApiError, getJson, num, param } from '../api';
import { BarChart } from '../chart';
import { downloadCsv } from '../csv';
import { fmt, useT, type Key } from '../i18n';
import { Status, useLoad, type Loaded } from '../load';
import { institutionNames } from '../orgs';

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

/** Chart labels of months: the year on the first and on each January only. */
function monthLabels(months: readonly Month[]): string[] {
  return months.map((m, i) => (i === 0 || m.date.getMonth() === 0 ? fmt.month(m.date) : fmt.monthOnly(m.date)));
}

/** Down-referral target of a month: the same month a year earlier plus 15%, when there was one. */
export function downTarget(downByMonth: number[], i: number): number | undefined {
  const before = downByMonth[i - 12];
  return before === undefined || before === 0 ? undefined : Math.round(before * 1.15 * 100) / 100;
}

/** The figures behind a card's charts, as they download. */
interface Csv {
  filename: string;
  header: readonly string[];
  rows: readonly (readonly (string | number)[])[];
}

/** One KPI: its title, the CSV of its figures, its loading state and, once loaded, its charts. */
function KpiCard<T>({ title, testId, loaded, csv, wide, children }: { title: Key; testId: string; loaded: Loaded<T>; csv: (data: T) => Csv; wide?: boolean; children: (data: T) => ReactNode }) {
  const t = useT();
  const data = loaded.data;
  return (
    <article className={wide ? 'kpi wide' : 'kpi'} data-testid={testId}>
      <header className="bar">
        <h3>{t(title)}</h3>
        <button
          disabled={data === undefined}
          data-testid="csv"
          onClick={() => {
            if (data === undefined) return;
            const c = csv(data);
            downloadCsv(c.filename, c.header, c.rows);
          }}
        >
          {t('downloadCsv')}
        </button>
      </header>
      <Status loaded={loaded} />
      {data !== undefined && children(data)}
    </article>
  );
}

const TARGET_COLOR = '#c0392b';

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
  return (
    <KpiCard
      title="recognition"
      testId="kpi-recognition"
      loaded={loaded}
      csv={(data) => ({ filename: 'recognition.csv', header: ['month', 'offered', 'recognised', 'repeated', 'saved_cny'], rows: data.map((d) => [d.month, d.offered, d.accepted, d.repeated, d.saved]) })}
    >
      {(data) => (
        <>
          <BarChart
            labels={monthLabels(months)}
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
    </KpiCard>
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
      ).then((all) => all.slice(12).map((d, i) => ({ ...d, target: downTarget(all.map((x) => x.down), i + 12) }))),
    [],
  );
  return (
    <KpiCard
      title="referrals"
      testId="kpi-referrals"
      loaded={loaded}
      csv={(shown) => ({
        filename: 'referrals.csv',
        header: ['month', 'up', 'down', 'out_of_county', 'returned_after_out_of_county', 'down_target'],
        rows: shown.map((d) => [d.month, d.up, d.down, d.outOfCounty, d.returned, d.target ?? '']),
      })}
    >
      {(shown) => (
        <BarChart
          labels={monthLabels(months.slice(12))}
          series={[
            { label: t('up'), values: shown.map((d) => d.up), color: '#2f6fb0' },
            { label: t('down'), values: shown.map((d) => d.down), color: '#27ae60' },
            { label: t('outOfCounty'), values: shown.map((d) => d.outOfCounty), color: '#8e44ad' },
            { label: t('downTarget'), values: shown.map((d) => d.target), color: TARGET_COLOR, line: true },
          ]}
        />
      )}
    </KpiCard>
  );
}

/** The community's target for upload completeness, in %. */
export const UPLOAD_TARGET = 90;

/** Upload completeness of each institution, month by month over the last 12 months (one request each). */
function Upload() {
  const t = useT();
  const months = lastMonths(12);
  const loaded = useLoad(async () => {
    const names = await institutionNames();
    const all = await Promise.all(
      [...names].map(async ([uscc, name]) => {
        const url = `/fhir/$upload-stats?institution=${encodeURIComponent(uscc)}&start=${months[0].key}&end=${months[months.length - 1].key}`;
        // A member institution's client sees its own figures only: the others are left out.
        const p = await getJson<Parameters>(url).catch((e: unknown) => {
          if (e instanceof ApiError && e.status === 403) return undefined;
          throw e;
        });
        if (p === undefined) return undefined;
        const byMonth = new Map((p.parameter ?? []).filter((x) => x.name === 'month').map((x) => [param(x.part, 'period')?.valueString, x.part]));
        return {
          uscc,
          name,
          months: months.map((m) => {
            const parts = byMonth.get(m.key);
            const received = num(parts, 'received');
            return { month: m.key, received, complete: num(parts, 'complete'), completeness: received === 0 ? undefined : num(parts, 'completeness') };
          }),
        };
      }),
    );
    return all.filter((i) => i !== undefined);
  }, []);
  return (
    <KpiCard
      title="upload"
      testId="kpi-upload"
      wide
      loaded={loaded}
      csv={(data) => ({
        filename: 'upload-completeness.csv',
        header: ['institution', 'uscc', 'month', 'received', 'complete', 'completeness_pct', 'target_pct'],
        rows: data.flatMap((i) => i.months.map((m) => [i.name, i.uscc, m.month, m.received, m.complete, m.completeness ?? '', UPLOAD_TARGET])),
      })}
    >
      {(data) => {
        const uploading = data.filter((i) => i.months.some((m) => m.received > 0));
        const silent = data.filter((i) => !uploading.includes(i));
        return (
          <>
            <div className="multiples">
              {uploading.map((i) => (
                <div key={i.uscc} data-testid="upload-institution">
                  <h4>{i.name}</h4>
                  <BarChart
                    labels={monthLabels(months)}
                    max={100}
                    series={[
                      { label: t('completeness'), values: i.months.map((m) => m.completeness), color: '#2f6fb0' },
                      { label: t('target90'), values: months.map(() => UPLOAD_TARGET), color: TARGET_COLOR, line: true },
                    ]}
                  />
                </div>
              ))}
            </div>
            {silent.length > 0 && <p className="muted">{`${t('noUploads')}: ${silent.map((i) => i.name).join('、')}`}</p>}
          </>
        );
      }}
    </KpiCard>
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
