import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Params } from './api';
import { api, isAbort } from './api';
import { Empty, ErrorBox, LoadMore, Loading } from './components';
import { markReady } from './perf';

/** One page of a cursor-paged listing: its items and the cursor of the next page (null: none). */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** Fetches the page at `cursor` (null: the first page). */
export type FetchPage<T, P extends Page<T>> = (cursor: string | null, signal: AbortSignal) => Promise<P>;

/** Pages of an API listing: `path` with `params`, the items `itemsOf` an answer, its `next_cursor`. */
export function apiPages<R extends { next_cursor: string | null }, T>(path: string, params: Params, itemsOf: (r: R) => T[]): FetchPage<T, Page<T>> {
  return (cursor, signal) => api<R>(path, { ...params, cursor }, { signal }).then((r) => ({ items: itemsOf(r), next: r.next_cursor }));
}

/** What a background fetch (live mode) gets: the cursor and the items shown now. */
export interface PollFrom<T> {
  cursor: string | null;
  items: T[];
}

export interface Pages<T, P extends Page<T> = Page<T>> {
  items: T[];
  /** The first page as fetched (a listing's head, e.g. a session's details); null until loaded. */
  first: P | null;
  /** The first page has arrived (it may be empty). */
  loaded: boolean;
  busy: boolean;
  error: unknown;
  hasMore: boolean;
  /** Fetches the next page and appends it; does nothing without a next page. */
  more: () => Promise<void>;
  /**
   * One background fetch (live mode), skipped (null) while a page is loading. What it returns is
   * appended (without items already shown, given `keyOf`) and its `next`, when it has one,
   * becomes the cursor; an error is shown, a success clears it. Resolves to the items added, or
   * null when skipped, failed or no longer wanted (`stop` aborted, or the listing started over).
   */
  poll: (fetch: (from: PollFrom<T>, signal: AbortSignal) => Promise<{ items: T[]; next?: string | null }>, stop?: AbortSignal) => Promise<T[] | null>;
}

export interface PagesOptions<T> {
  /** An item's identity: with it, items already shown are not added again. */
  keyOf?: (item: T) => string;
}

/**
 * A cursor-paged listing: fetches the first page whenever `deps` change (aborting whatever the
 * previous listing still had under way), then "load more" a page at a time. Marks `view` ready
 * (perf.ts) once the first page, or its error, is there. `fetchPage` null fetches nothing.
 */
export function usePages<T, P extends Page<T> = Page<T>>(view: string, fetchPage: FetchPage<T, P> | null, deps: unknown[], opts: PagesOptions<T> = {}): Pages<T, P> {
  const [items, setItems] = useState<T[]>([]);
  const [first, setFirst] = useState<P | null>(null);
  const [cursor, setCursorState] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusyState] = useState(fetchPage !== null);
  const [error, setError] = useState<unknown>(null);
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;
  const keyRef = useRef(opts.keyOf);
  keyRef.current = opts.keyOf;
  // What the callbacks read between renders, kept current as soon as anything changes. `signal`
  // belongs to the listing under way: once aborted, nothing it fetches is shown.
  const st = useRef({ items: [] as T[], cursor: null as string | null, busy: false, signal: new AbortController().signal });

  const setBusy = (b: boolean) => {
    st.current.busy = b;
    setBusyState(b);
  };
  const setCursor = (c: string | null) => {
    st.current.cursor = c;
    setCursorState(c);
  };
  const append = (incoming: T[]): T[] => {
    const key = keyRef.current;
    let add = incoming;
    if (key) {
      const seen = new Set(st.current.items.map(key));
      add = incoming.filter((x) => !seen.has(key(x)));
    }
    if (add.length > 0) {
      st.current.items = [...st.current.items, ...add];
      setItems(st.current.items);
    }
    return add;
  };

  useEffect(() => {
    const ac = new AbortController();
    const fetchFirst = fetchRef.current;
    st.current = { items: [], cursor: null, busy: fetchFirst !== null, signal: ac.signal };
    setItems([]);
    setFirst(null);
    setCursorState(null);
    setLoaded(false);
    setError(null);
    setBusyState(fetchFirst !== null);
    if (!fetchFirst) return;
    fetchFirst(null, ac.signal)
      .then((r) => {
        if (ac.signal.aborted) return;
        st.current.items = r.items;
        setItems(r.items);
        setCursor(r.next);
        setFirst(r);
        setLoaded(true);
      })
      .catch((e) => {
        if (!ac.signal.aborted && !isAbort(e)) setError(e);
      })
      .finally(() => {
        if (!ac.signal.aborted) setBusy(false);
      });
    return () => ac.abort();
  }, deps);

  useEffect(() => {
    if (loaded || error) markReady(view);
  }, [loaded, error]);

  const more = async () => {
    const { cursor: c, signal } = st.current;
    const fetchNext = fetchRef.current;
    if (!c || !fetchNext) return;
    setBusy(true);
    setError(null);
    try {
      const r = await fetchNext(c, signal);
      if (signal.aborted) return;
      append(r.items);
      setCursor(r.next);
    } catch (e) {
      if (!signal.aborted && !isAbort(e)) setError(e);
    } finally {
      if (!signal.aborted) setBusy(false);
    }
  };

  const poll: Pages<T, P>['poll'] = async (fetch, stop) => {
    const { cursor: c, items: shown, busy: b, signal } = st.current;
    if (b) return null;
    const gone = () => signal.aborted || !!stop?.aborted;
    try {
      const r = await fetch({ cursor: c, items: shown }, signal);
      if (gone()) return null;
      const add = append(r.items);
      if (r.next !== undefined) setCursor(r.next);
      setError(null);
      return add;
    } catch (e) {
      if (!gone() && !isAbort(e)) setError(e);
      return null;
    }
  };

  return { items, first, loaded, busy, error, hasMore: cursor !== null, more, poll };
}

/**
 * A paged listing's body: its error, "Loading…" until the first page, `empty` when there is
 * nothing, the items (`children`) when there are some, then the count and "Load more".
 */
export function Paged<T>({ pages, errorTitle, empty, noun, children }: { pages: Pages<T, Page<T>>; errorTitle: string; empty: ComponentChildren; noun: string; children: ComponentChildren }) {
  const { items, loaded, busy, error, hasMore, more } = pages;
  return (
    <>
      <ErrorBox error={error} title={errorTitle} />
      {!loaded && busy ? <Loading /> : null}
      {loaded && items.length === 0 ? <Empty>{empty}</Empty> : null}
      {items.length > 0 ? children : null}
      {loaded ? <LoadMore onClick={more} busy={busy} hasMore={hasMore} count={items.length} noun={noun} /> : null}
    </>
  );
}
