import { useEffect, useState } from 'preact/hooks';
import type { Category, SchemaEntry } from './api';
import { api } from './api';

interface Cached<T> {
  at: number;
  promise: Promise<T>;
}

const TTL_MS = 30_000;
const cache = new Map<string, Cached<unknown>>();

function cached<T>(key: string, load: () => Promise<T>, fresh = false): Promise<T> {
  const c = cache.get(key) as Cached<T> | undefined;
  if (!fresh && c && Date.now() - c.at < TTL_MS) return c.promise;
  const promise = load();
  cache.set(key, { at: Date.now(), promise });
  promise.catch(() => cache.delete(key));
  return promise;
}

export function clearCache() {
  cache.clear();
}

export function loadCategories(fresh = false): Promise<Category[]> {
  return cached('categories', () => api<{ categories: Category[] }>('/v1/categories').then((r) => r.categories), fresh);
}

/** null when the endpoint is not there (404): the catalogue says so. */
export function loadSchemas(fresh = false): Promise<SchemaEntry[] | null> {
  return cached(
    'schemas',
    () =>
      api<{ schemas: SchemaEntry[] }>('/v1/schemas')
        .then((r) => r.schemas)
        .catch((e) => {
          if (e?.status === 404) return null;
          throw e;
        }),
    fresh,
  );
}

export interface AsyncState<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
}

export function useCategories(): AsyncState<Category[]> {
  const [s, set] = useState<AsyncState<Category[]>>({ data: null, error: null, loading: true });
  useEffect(() => {
    let live = true;
    loadCategories()
      .then((data) => live && set({ data, error: null, loading: false }))
      .catch((error) => live && set({ data: null, error, loading: false }));
    return () => {
      live = false;
    };
  }, []);
  return s;
}
