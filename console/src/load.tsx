/** Loading state of a screen: data, error (403 shown as "no permission"), reload. */
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from './api';
import { useT } from './i18n';

export interface Loaded<T> {
  data?: T;
  error?: ApiError | Error;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const run = useCallback(fn, deps);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    run().then(
      (data) => live && setState({ data, loading: false }),
      (error: Error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [run, tick]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}

export function Status({ loaded }: { loaded: Loaded<unknown> }) {
  const t = useT();
  if (loaded.loading) return <p className="muted">{t('loading')}</p>;
  if (loaded.error instanceof ApiError && loaded.error.status === 403) return <p className="warn" data-testid="forbidden">{t('forbidden')}</p>;
  if (loaded.error) return <p className="warn">{`${t('error')}: ${loaded.error.message}`}</p>;
  return null;
}
