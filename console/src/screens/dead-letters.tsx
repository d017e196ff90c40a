/**
 * Dead letters: list and filter, the raw message decoded by its character set with the failing
 * segment and field highlighted, replay one, several or all matching, discard with a reason.
 */
import { useState, type FormEvent } from 'react';
import { getJson, postJson, type DeadLetter, type DeadLetterDetail, type DeadLetterPage, type ReplayBatch, type ReplayResult } from '../api';
import { fmt, useT } from '../i18n';
import { Status, useLoad } from '../load';

/** Segment name, its occurrence (1-based) and field of an error location such as `OBX[2]-5.1` or `PID-3`. */
export function parseLocation(loc: string | undefined): { segment: string; occurrence: number; field?: number } | undefined {
  const m = loc ? /^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?/.exec(loc) : null;
  if (!m) return undefined;
  return { segment: m[1], occurrence: m[2] ? Number(m[2]) : 1, ...(m[3] ? { field: Number(m[3]) } : {}) };
}

function Message({ text, location }: { text: string; location?: string }) {
  const at = parseLocation(location);
  const seen = new Map<string, number>();
  const lines = text.split(/\r\n|\r|\n/).filter((l) => l !== '');
  return (
    <pre className="hl7" data-testid="raw-message">
      {lines.map((line, i) => {
        const name = line.slice(0, 3);
        const n = (seen.get(name) ?? 0) + 1;
        seen.set(name, n);
        const hit = at && name === at.segment && n === at.occurrence;
        if (!hit) return <div key={i}>{line}</div>;
        const fields = line.split('|');
        // MSH-1 is the separator itself: MSH field n is at index n - 1.
        const index = at.field === undefined ? -1 : name === 'MSH' ? at.field - 1 : at.field;
        return (
          <div key={i} className="hit-segment" data-testid="failing-segment">
            {fields.map((f, k) => (
              <span key={k}>
                {k > 0 && '|'}
                {k === index ? (
                  <mark data-testid="failing-field">{f || '\u00a0'}</mark>
                ) : (
                  f
                )}
              </span>
            ))}
          </div>
        );
      })}
    </pre>
  );
}

export function DeadLetters() {
  const t = useT();
  const [filter, setFilter] = useState({ sender: '', error: '', status: 'new' });
  const [applied, setApplied] = useState(filter);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [shown, setShown] = useState<DeadLetterDetail | undefined>();
  const [discarding, setDiscarding] = useState<number | undefined>();
  const [reason, setReason] = useState('');
  const [notice, setNotice] = useState<string | undefined>();
  const query = new URLSearchParams(Object.entries(applied).filter(([, v]) => v !== ''));
  query.set('_count', '100');
  const loaded = useLoad(() => getJson<DeadLetterPage>(`/ingest/dead-letters?${query.toString()}`), [query.toString()]);

  const act = async (fn: () => Promise<string>) => {
    try {
      setNotice(await fn());
    } catch (e) {
      setNotice(`${t('error')}: ${(e as Error).message}`);
    }
    setSelected(new Set());
    setShown(undefined);
    loaded.reload();
  };
  const summary = (results: ReplayResult[]) => results.map((r) => `#${r.id}: ${r.outcome}${r.errorText ? ` (${r.errorText})` : ''}`).join('; ') || t('noData');
  const replay = (ids: number[]) =>
    act(async () => {
      const results: ReplayResult[] = [];
      for (const id of ids) {
        const r = await postJson<ReplayResult>(`/ingest/dead-letters/${id}/$replay`);
        if (r) results.push(r);
      }
      return `${t('replayResult')}: ${summary(results)}`;
    });
  const replayAll = () =>
    act(async () => {
      const body = { ...(applied.sender ? { sender: applied.sender } : {}), ...(applied.error ? { error: applied.error } : {}) };
      const r = await postJson<ReplayBatch>('/ingest/dead-letters/$replay', body);
      return `${t('replayResult')}: ${summary(r?.results ?? [])}`;
    });
  const discard = (e: FormEvent) => {
    e.preventDefault();
    const id = discarding as number;
    void act(async () => {
      await postJson(`/ingest/dead-letters/${id}/$discard`, { reason });
      setDiscarding(undefined);
      setReason('');
      return `#${id}: ${t('statusDiscarded')}`;
    });
  };
  const show = async (id: number) => {
    try {
      setShown(await getJson<DeadLetterDetail>(`/ingest/dead-letters/${id}`));
    } catch (e) {
      setNotice(`${t('error')}: ${(e as Error).message}`);
    }
  };
  const statusText = (s: DeadLetter['status']) => t(s === 'new' ? 'statusNew' : s === 'replayed' ? 'statusReplayed' : 'statusDiscarded');
  const items = loaded.data?.items ?? [];

  return (
    <section>
      <header className="bar">
        <h2>{t('deadLetters')}</h2>
        <button onClick={loaded.reload}>{t('refresh')}</button>
      </header>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter);
        }}
      >
        <label>
          {t('sender')} <input name="sender" value={filter.sender} onChange={(e) => setFilter({ ...filter, sender: e.target.value })} />
        </label>
        <label>
          {t('errorText')} <input name="error" value={filter.error} onChange={(e) => setFilter({ ...filter, error: e.target.value })} />
        </label>
        <label>
          {t('status')}{' '}
          <select name="status" value={filter.status} onChange={(e) => setFilter({ ...filter, status: e.target.value })}>
            <option value="">{t('all')}</option>
            <option value="new">{t('statusNew')}</option>
            <option value="replayed">{t('statusReplayed')}</option>
            <option value="discarded">{t('statusDiscarded')}</option>
          </select>
        </label>
        <button type="submit">{t('filter')}</button>
        <button type="button" disabled={selected.size === 0} onClick={() => void replay([...selected])}>
          {t('replaySelected')} {selected.size > 0 && `(${selected.size})`}
        </button>
        <button type="button" onClick={() => void replayAll()}>
          {t('replayAllMatching')}
        </button>
      </form>
      {notice && (
        <p className="notice" data-testid="notice">
          {notice}
        </p>
      )}
      <Status loaded={loaded} />
      {loaded.data && (
        <table data-testid="dead-letters-table">
          <thead>
            <tr>
              <th />
              <th>#</th>
              <th>{t('received')}</th>
              <th>{t('sender')}</th>
              <th>{t('type')}</th>
              <th>{t('errorText')}</th>
              <th>{t('status')}</th>
              <th className="num">{t('attempts')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.length === 0 && (
              <tr>
                <td colSpan={9} className="muted">
                  {t('noData')}
                </td>
              </tr>
            )}
            {items.map((d) => (
              <tr key={d.id} data-testid="dead-letter-row" data-id={d.id}>
                <td>
                  <input
                    type="checkbox"
                    disabled={d.status !== 'new'}
                    checked={selected.has(d.id)}
                    onChange={(e) => {
                      const next = new Set(selected);
                      if (e.target.checked) next.add(d.id);
                      else next.delete(d.id);
                      setSelected(next);
                    }}
                  />
                </td>
                <td>{d.id}</td>
                <td>{fmt.dateTime(d.receivedAt)}</td>
                <td>{d.sender ?? '—'}</td>
                <td>{d.messageType ?? '—'}</td>
                <td className="err">
                  {d.errorCode}: {d.errorText} {d.errorLocation && <code>{d.errorLocation}</code>}
                </td>
                <td>{statusText(d.status)}</td>
                <td className="num">{d.attempts}</td>
                <td className="actions">
                  <button onClick={() => void show(d.id)}>{t('show')}</button>
                  {d.status === 'new' && (
                    <>
                      <button data-testid="replay" onClick={() => void replay([d.id])}>
                        {t('replay')}
                      </button>
                      <button onClick={() => setDiscarding(d.id)}>{t('discard')}</button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {discarding !== undefined && (
        <form className="panel" onSubmit={discard}>
          <h3>
            {t('discard')} #{discarding}
          </h3>
          <label>
            {t('discardReason')}
            <textarea name="reason" value={reason} minLength={3} maxLength={1000} required onChange={(e) => setReason(e.target.value)} />
          </label>
          <button type="submit" disabled={reason.trim().length < 3}>
            {t('confirmDiscard')}
          </button>
          <button type="button" onClick={() => setDiscarding(undefined)}>
            {t('cancel')}
          </button>
        </form>
      )}
      {shown && (
        <div className="panel" data-testid="dead-letter-detail">
          <header className="bar">
            <h3>
              #{shown.id} · {shown.messageType ?? ''} · {shown.charset ?? 'UTF-8'}
            </h3>
            <button onClick={() => setShown(undefined)}>{t('close')}</button>
          </header>
          <p className="err">
            {shown.errorCode}: {shown.errorText}
            {shown.errorLocation && (
              <>
                {' '}
                · {t('failingAt')} <code>{shown.errorLocation}</code>
              </>
            )}
          </p>
          <h4>{t('rawMessage')}</h4>
          <Message text={shown.message} location={shown.errorLocation} />
        </div>
      )}
    </section>
  );
}
