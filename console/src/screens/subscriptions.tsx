/** Subscriptions: each subscriber's status, backlog, failures and last error, and "retry now". */
import { useState } from 'react';
import { getJson, postJson, type SubscriptionDelivery } from '../api';
import { fmt, useT } from '../i18n';
import { Status, useLoad } from '../load';

export function Subscriptions() {
  const t = useT();
  const loaded = useLoad(() => getJson<{ subscriptions: SubscriptionDelivery[] }>('/subscriptions/delivery'), []);
  const [notice, setNotice] = useState<string | undefined>();
  const retry = async (id: string) => {
    try {
      await postJson(`/fhir/Subscription/${id}/$retry`);
      setNotice(`${id}: ${t('retried')}`);
    } catch (e) {
      setNotice(`${t('error')}: ${(e as Error).message}`);
    }
    loaded.reload();
  };
  const list = loaded.data?.subscriptions ?? [];
  return (
    <section>
      <header className="bar">
        <h2>{t('subscriptions')}</h2>
        <button onClick={loaded.reload}>{t('refresh')}</button>
      </header>
      {notice && (
        <p className="notice" data-testid="notice">
          {notice}
        </p>
      )}
      <Status loaded={loaded} />
      {loaded.data && (
        <table data-testid="subscriptions-table">
          <thead>
            <tr>
              <th>{t('subscription')}</th>
              <th>{t('owner')}</th>
              <th>{t('topic')}</th>
              <th>{t('status')}</th>
              <th className="num">{t('events')}</th>
              <th className="num">{t('backlog')}</th>
              <th className="num">{t('failures')}</th>
              <th>{t('lastError')}</th>
              <th>{t('lastDelivered')}</th>
              <th>{t('nextAttempt')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.length === 0 && (
              <tr>
                <td colSpan={11} className="muted">
                  {t('noData')}
                </td>
              </tr>
            )}
            {list.map((s) => (
              <tr key={s.id} className={s.status === 'error' ? 'stale' : ''} data-testid="subscription-row">
                <td>
                  <code>{s.id}</code> <span className="muted">{s.channel}</span>
                </td>
                <td>{s.owner ?? '—'}</td>
                <td className="wrap">{s.topic ?? '—'}</td>
                <td>
                  <span className={`badge ${s.status === 'error' ? 'warn-badge' : ''}`}>{s.status}</span>
                </td>
                <td className="num">{fmt.number(s.events)}</td>
                <td className={`num ${s.backlog > 0 ? 'err' : ''}`}>{fmt.number(s.backlog)}</td>
                <td className="num">{s.failures}</td>
                <td className="err wrap">{s.lastError ?? '—'}</td>
                <td>{fmt.dateTime(s.lastDelivered)}</td>
                <td>{fmt.dateTime(s.nextAttempt)}</td>
                <td>
                  {s.status !== 'off' && (
                    <button data-testid="retry" onClick={() => void retry(s.id)}>
                      {t('retryNow')}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
