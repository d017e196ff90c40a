/** Feeds: per institution and feed, messages and errors of the last hour and day, last message, throughput; stale feeds highlighted. */
import { getJson, type Feed, type FeedReport } from '../api';
import { BarChart, Sparkline } from '../chart';
import { fmt, useT, type Key } from '../i18n';
import { Status, useLoad } from '../load';
import { institutionNames, nameOf } from '../orgs';

const KIND: Record<Feed['kind'], Key> = { hl7v2: 'kindHl7', dicom: 'kindDicom', extract: 'kindExtract' };

export function Feeds() {
  const t = useT();
  const loaded = useLoad(async () => ({ report: await getJson<FeedReport>('/ingest/feeds?hours=24'), names: await institutionNames() }), []);
  const r = loaded.data?.report;
  const end = r ? new Date(r.generatedAt) : new Date();
  const labels = r ? Array.from({ length: r.hours }, (_, i) => fmt.hour(new Date(Math.floor(end.getTime() / 3_600_000) * 3_600_000 - (r.hours - 1 - i) * 3_600_000))) : [];
  const sum = (pick: (f: Feed) => number[]) => labels.map((_, i) => (r?.feeds ?? []).reduce((a, f) => a + (pick(f)[i] ?? 0), 0));
  return (
    <section>
      <header className="bar">
        <h2>{t('feeds')}</h2>
        <button onClick={loaded.reload}>{t('refresh')}</button>
      </header>
      <Status loaded={loaded} />
      {r && (
        <>
          <BarChart
            testId="throughput-chart"
            labels={labels}
            series={[
              { label: t('messages'), values: sum((f) => f.hourly), color: '#2f6fb0' },
              { label: t('errors'), values: sum((f) => f.hourlyErrors), color: '#c0392b' },
            ]}
          />
          <p className="muted">{t('staleHint', { n: r.staleMinutes })}</p>
          <table data-testid="feeds-table">
            <thead>
              <tr>
                <th>{t('institution')}</th>
                <th>{t('kind')}</th>
                <th>{t('feed')}</th>
                <th>{t('channels')}</th>
                <th className="num">{t('lastHour')}</th>
                <th className="num">{t('lastDay')}</th>
                <th className="num">{`${t('errors')} (${t('lastHour')} / ${t('lastDay')})`}</th>
                <th>{t('lastMessage')}</th>
                <th>{t('throughput')}</th>
              </tr>
            </thead>
            <tbody>
              {r.feeds.map((f) => (
                <tr key={`${f.institution}|${f.kind}|${f.source}`} className={f.stale ? 'stale' : ''} data-testid="feed-row">
                  <td>{nameOf(loaded.data?.names, f.institution)}</td>
                  <td>{t(KIND[f.kind])}</td>
                  <td>
                    {f.source} {f.stale && <span className="badge warn-badge">{t('stale')}</span>}
                  </td>
                  <td>{f.channels.join(', ') || '—'}</td>
                  <td className="num">{fmt.number(f.lastHour)}</td>
                  <td className="num">{fmt.number(f.lastDay)}</td>
                  <td className={`num ${f.errorsLastDay > 0 ? 'err' : ''}`}>{`${fmt.number(f.errorsLastHour)} / ${fmt.number(f.errorsLastDay)}`}</td>
                  <td>{fmt.dateTime(f.lastMessage)}</td>
                  <td>
                    <Sparkline values={f.hourly} errors={f.hourlyErrors} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
