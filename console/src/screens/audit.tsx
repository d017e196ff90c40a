/**
 * Audit: search by patient (any identifier of any linked record), client, institution, date
 * range and action; the accesses as a timeline by day, break-glass accesses flagged; hash chain
 * verification; NDJSON export of the date range.
 */
import { useState, type FormEvent } from 'react';
import type { AuditEvent, Bundle, Parameters } from '@medplum/fhirtypes';
import { download, getJson } from '../api';
import { fmt, useT, type Key } from '../i18n';
import { Status, useLoad } from '../load';

const ID_CARD = 'urn:oid:2.16.156.10011.1.3';
const CLIENT_SYSTEM = 'urn:county-hie:client';
const USER_SYSTEM = 'urn:county-hie:user';
const USCC = 'https://fhir.county-hie.cn/sid/uscc';

function who(e: AuditEvent, system: string): string | undefined {
  return e.agent?.find((a) => a.who?.identifier?.system === system)?.who?.identifier?.value;
}

function subtypeOf(e: AuditEvent): string {
  const codes = (e.subtype ?? []).map((c) => c.code ?? '');
  return codes.find((c) => c !== '' && !['read', 'search-type', 'operation'].includes(c)) ?? codes[0] ?? '';
}

export function isBreakGlass(e: AuditEvent): boolean {
  return (e.subtype ?? []).some((c) => c.code === 'break-glass') || (e.purposeOfEvent ?? []).some((p) => p.coding?.some((c) => c.code === 'BTG'));
}

const pad = (n: number) => String(n).padStart(2, '0');
/** Today in the browser's calendar, as a date field holds it. */
const today = () => {
  const d = new Date();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
};

/** Midnight starting a day of a date field (plus `days`), in the browser's time zone, as an instant. */
export function startOfDay(day: string, days = 0): string {
  const d = new Date(`${day}T00:00:00`);
  d.setDate(d.getDate() + days);
  return d.toISOString();
}

export function Audit() {
  const t = useT();
  const [form, setForm] = useState({ system: ID_CARD, identifier: '', client: '', institution: '', from: '', to: '', action: '' });
  const [query, setQuery] = useState<{ text: string; asked: number } | undefined>();
  const [pages, setPages] = useState<Bundle<AuditEvent>[]>([]);
  const [verify, setVerify] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();

  const loaded = useLoad(async () => {
    if (query === undefined) return undefined;
    const first = await getJson<Bundle<AuditEvent>>(`/fhir/AuditEvent?${query.text}`);
    setPages([first]);
    return first;
  }, [query]);

  const search = (e: FormEvent) => {
    e.preventDefault();
    const p = new URLSearchParams();
    const id = form.identifier.trim();
    if (id) {
      if (form.system === 'patient') p.set('patient', id);
      else if (form.system === 'other') p.set('patient:identifier', id);
      else p.set('patient:identifier', `${form.system}|${id}`);
    }
    if (form.client.trim()) p.set('agent', form.client.trim());
    if (form.institution.trim()) p.set('institution', form.institution.trim());
    // The days as the operator's calendar has them, not as UTC days.
    if (form.from) p.append('date', `ge${startOfDay(form.from)}`);
    if (form.to) p.append('date', `lt${startOfDay(form.to, 1)}`);
    if (form.action) p.set('action', form.action);
    p.set('_count', '50');
    p.set('_sort', '-date');
    // A new object each time, so that asking the same again searches again.
    setQuery({ text: p.toString(), asked: Date.now() });
  };

  const more = async () => {
    const next = pages[pages.length - 1]?.link?.find((l) => l.relation === 'next')?.url;
    if (!next) return;
    const u = new URL(next);
    try {
      const page = await getJson<Bundle<AuditEvent>>(`/fhir/AuditEvent${u.search}`);
      setPages([...pages, page]);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const runVerify = async () => {
    setVerify(undefined);
    try {
      const p = await getJson<Parameters>('/fhir/AuditEvent/$verify');
      const ok = p.parameter?.find((x) => x.name === 'result')?.valueBoolean;
      const checked = p.parameter?.find((x) => x.name === 'checked');
      const broken = p.parameter?.find((x) => x.name === 'firstBroken')?.part;
      const part = (n: string) => broken?.find((x) => x.name === n);
      setVerify(
        ok
          ? t('chainOk', { n: fmt.number(checked?.valueInteger ?? checked?.valueDecimal) })
          : t('chainBroken', { chain: part('chain')?.valueInteger ?? '', seq: part('seq')?.valueInteger ?? '', reason: part('reason')?.valueCode ?? '' }),
      );
    } catch (e) {
      setVerify(`${t('error')}: ${(e as Error).message}`);
    }
  };

  const runExport = async () => {
    const start = form.from || today();
    const end = form.to || today();
    try {
      // From the first day's midnight to the last instant of the last day, in the browser's time zone.
      const last = new Date(Date.parse(startOfDay(end, 1)) - 1).toISOString();
      const range = new URLSearchParams({ start: startOfDay(start), end: last });
      await download(`/fhir/AuditEvent/$export?${range.toString()}`, `audit-${start}-${end}.ndjson`);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const events = pages.flatMap((p) => (p.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])));
  const days = new Map<string, AuditEvent[]>();
  for (const e of events) {
    const day = fmt.date(e.recorded);
    days.set(day, [...(days.get(day) ?? []), e]);
  }
  const hasNext = pages[pages.length - 1]?.link?.some((l) => l.relation === 'next');

  return (
    <section>
      <header className="bar">
        <h2>{t('audit')}</h2>
        <span>
          <button onClick={() => void runVerify()} data-testid="verify">
            {t('verifyChain')}
          </button>{' '}
          <button onClick={() => void runExport()}>{t('export')}</button>
        </span>
      </header>
      {verify && (
        <p className="notice" data-testid="verify-result">
          {verify}
        </p>
      )}
      {error && <p className="warn">{error}</p>}
      <form className="filters" onSubmit={search}>
        <label>
          {t('identifierSystem')}{' '}
          <select name="system" value={form.system} onChange={(e) => setForm({ ...form, system: e.target.value })}>
            <option value={ID_CARD}>{t('idCard')}</option>
            <option value="patient">{t('patientId')}</option>
            <option value="other">{t('otherSystem')}</option>
          </select>
        </label>
        <label>
          {t('patientIdentifier')} <input name="identifier" autoComplete="off" value={form.identifier} onChange={(e) => setForm({ ...form, identifier: e.target.value })} />
        </label>
        <label>
          {t('client')} <input name="client" value={form.client} onChange={(e) => setForm({ ...form, client: e.target.value })} />
        </label>
        <label>
          {t('institution')} <input name="institution" value={form.institution} onChange={(e) => setForm({ ...form, institution: e.target.value })} />
        </label>
        <label>
          {t('dateFrom')} <input type="date" name="from" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} />
        </label>
        <label>
          {t('dateTo')} <input type="date" name="to" value={form.to} onChange={(e) => setForm({ ...form, to: e.target.value })} />
        </label>
        <label>
          {t('action')}{' '}
          <select name="action" value={form.action} onChange={(e) => setForm({ ...form, action: e.target.value })}>
            <option value="">{t('all')}</option>
            {['C', 'R', 'U', 'D', 'E'].map((a) => (
              <option key={a} value={a}>
                {t(`action${a}` as Key)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">{t('search')}</button>
      </form>
      {query !== undefined && <Status loaded={loaded} />}
      {query !== undefined && loaded.data && (
        <div className="timeline" data-testid="audit-timeline">
          <h3>{t('timeline')}</h3>
          {events.length === 0 && <p className="muted">{t('noData')}</p>}
          {[...days].map(([day, list]) => (
            <div key={day} className="day">
              <h4>{day}</h4>
              <ol>
                {list.map((e) => (
                  <li key={e.id} className={`${isBreakGlass(e) ? 'btg' : ''} ${e.outcome !== '0' ? 'failed' : ''}`} data-testid="audit-entry">
                    <time dateTime={e.recorded}>{fmt.dateTime(e.recorded)}</time>
                    <span className="badge">{e.action ? t(`action${e.action}` as Key) : ''}</span>
                    <strong>{subtypeOf(e)}</strong>
                    {isBreakGlass(e) && (
                      <span className="badge warn-badge" data-testid="break-glass">
                        {t('breakGlass')}
                      </span>
                    )}
                    <span>
                      {t('client')}: <code data-testid="audit-client">{who(e, CLIENT_SYSTEM) ?? '—'}</code>
                    </span>
                    {who(e, USER_SYSTEM) && (
                      <span>
                        {t('user')}: <code data-testid="audit-user">{who(e, USER_SYSTEM)}</code>
                      </span>
                    )}
                    {who(e, USCC) && (
                      <span>
                        {t('institution')}: <code>{who(e, USCC)}</code>
                      </span>
                    )}
                    <span>
                      {t('purpose')}: {e.purposeOfEvent?.[0]?.coding?.[0]?.code ?? '—'}
                    </span>
                    <span>
                      {t('outcome')}: {e.outcome}
                      {e.outcomeDesc ? ` (${e.outcomeDesc})` : ''}
                    </span>
                    <span className="muted">{(e.entity ?? []).map((x) => x.what?.reference).filter(Boolean).slice(0, 5).join(', ')}</span>
                  </li>
                ))}
              </ol>
            </div>
          ))}
          {hasNext && <button onClick={() => void more()}>{t('more')}</button>}
        </div>
      )}
    </section>
  );
}
