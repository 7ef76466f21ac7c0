import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { EventPage, EyeEvent } from '../api';
import { api, isAbort } from '../api';
import { Card, Empty, ErrorBox, EventTable, LoadMore, Loading, PageHead, RangeInputs } from '../components';
import { useCategories } from '../data';
import { markReady } from '../perf';
import type { Route } from '../router';
import { navigate } from '../router';

const LIVE_MS = 2000;

function pageSize(p: string | undefined): number {
  const n = Number(p);
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 100;
}

export function Events({ route }: { route: Route }) {
  const p = route.params;
  const filters = { session_id: p.session_id ?? '', category: p.category ?? '', name: p.name ?? '', from: p.from ?? '', to: p.to ?? '' };
  const limit = pageSize(p.limit);
  const live = p.live === '1';
  const cats = useCategories();

  // Form state (applied to the hash on submit).
  const [form, setForm] = useState(filters);
  useEffect(() => setForm(filters), [route.raw]);

  const [events, setEvents] = useState<EyeEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [lastPoll, setLastPoll] = useState<number | null>(null);
  const state = useRef({ events, cursor, busy });
  state.current = { events, cursor, busy };

  const key = JSON.stringify([filters, limit]);
  const params = (extra: Record<string, string | number | null>) => ({ ...filters, order: 'asc', limit, ...extra });

  const merge = (incoming: EyeEvent[], markFresh: boolean) => {
    const seen = new Set(state.current.events.map((e) => `${e.session_id}\u0000${e.event_id}`));
    const add = incoming.filter((e) => !seen.has(`${e.session_id}\u0000${e.event_id}`));
    if (add.length === 0) return;
    const next = [...state.current.events, ...add];
    state.current.events = next;
    setEvents(next);
    if (markFresh) setFresh(new Set(add.map((e) => e.event_id)));
  };

  useEffect(() => {
    const ac = new AbortController();
    setEvents([]);
    state.current.events = [];
    setCursor(null);
    setLoaded(false);
    setError(null);
    setBusy(true);
    setFresh(new Set());
    api<EventPage>('/v1/events', params({}), { signal: ac.signal })
      .then((r) => {
        state.current.events = r.events;
        setEvents(r.events);
        setCursor(r.next_cursor);
        setLoaded(true);
      })
      .catch((e) => {
        if (!isAbort(e)) setError(e);
      })
      .finally(() => {
        if (!ac.signal.aborted) setBusy(false);
      });
    return () => ac.abort();
  }, [key]);

  useEffect(() => {
    if (loaded || error) markReady('events');
  }, [loaded, error]);

  const more = async () => {
    if (!state.current.cursor) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api<EventPage>('/v1/events', params({ cursor: state.current.cursor }));
      merge(r.events, false);
      setCursor(r.next_cursor);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  // Live mode: follow the cursor while there are pages, then ask for anything at or after
  // the newest event shown (duplicates are dropped), every LIVE_MS.
  useEffect(() => {
    if (!live || !loaded) return;
    let stop = false;
    let timer: number | undefined;
    const tick = async () => {
      if (stop) return;
      if (!state.current.busy) {
        try {
          const { cursor: c, events: ev } = state.current;
          if (c) {
            const r = await api<EventPage>('/v1/events', params({ cursor: c }));
            if (stop) return;
            merge(r.events, true);
            setCursor(r.next_cursor);
          } else {
            const newest = ev.length ? ev[ev.length - 1].timestamp : filters.from;
            const r = await api<EventPage>('/v1/events', params({ from: newest || null, limit: 1000 }));
            if (stop) return;
            merge(r.events, true);
          }
          setLastPoll(Date.now());
          setError(null);
        } catch (e) {
          if (!stop) setError(e);
        }
      }
      if (!stop) timer = window.setTimeout(tick, LIVE_MS);
    };
    timer = window.setTimeout(tick, LIVE_MS);
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [live, loaded, key]);

  const apply = (f: typeof form, liveOn = live) => navigate('events', { ...f, limit: p.limit, live: liveOn });

  const catOptions = useMemo(() => [...new Set((cats.data ?? []).map((c) => c.category))].sort(), [cats.data]);
  const nameOptions = useMemo(() => [...new Set((cats.data ?? []).filter((c) => !form.category || c.category === form.category).map((c) => c.name))].sort(), [cats.data, form.category]);

  return (
    <div class="view" data-testid="view-events">
      <PageHead title="Events" sub="Stored events in time order. Filters live in the address bar: share the link.">
        <label class={`toggle ${live ? 'on' : ''}`} data-testid="live-toggle-label">
          <input type="checkbox" data-testid="live-toggle" checked={live} onChange={(ev) => apply(filters, (ev.target as HTMLInputElement).checked)} />
          <span class="toggle-dot" />
          Live
        </label>
      </PageHead>
      <Card>
        <form
          class="filters"
          data-testid="events-filters"
          onSubmit={(ev) => {
            ev.preventDefault();
            apply(form);
          }}
        >
          <label class="field">
            <span>Category</span>
            <input type="text" name="category" data-testid="input-category" list="dl-categories" placeholder="any" value={form.category} onInput={(ev) => setForm({ ...form, category: (ev.target as HTMLInputElement).value })} />
          </label>
          <label class="field">
            <span>Name</span>
            <input type="text" name="name" data-testid="input-name" list="dl-names" placeholder="any" value={form.name} onInput={(ev) => setForm({ ...form, name: (ev.target as HTMLInputElement).value })} />
          </label>
          <label class="field">
            <span>Session</span>
            <input type="text" name="session_id" data-testid="input-session" placeholder="any" value={form.session_id} onInput={(ev) => setForm({ ...form, session_id: (ev.target as HTMLInputElement).value })} />
          </label>
          <RangeInputs from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
          <div class="field actions">
            <button type="submit" class="btn btn-primary" data-testid="apply-filters">
              Apply
            </button>
            <button type="button" class="btn btn-ghost" onClick={() => apply({ session_id: '', category: '', name: '', from: '', to: '' })}>
              Clear
            </button>
          </div>
          <datalist id="dl-categories">
            {catOptions.map((c) => (
              <option key={c} value={c} />
            ))}
          </datalist>
          <datalist id="dl-names">
            {nameOptions.map((c) => (
              <option key={c} value={c} />
            ))}
          </datalist>
        </form>
      </Card>
      <Card
        testid="events-results"
        title="Results"
        actions={
          live ? (
            <span class="live-note" data-testid="live-status">
              <span class="pulse" /> Live{lastPoll ? ` · checked ${new Date(lastPoll).toLocaleTimeString()}` : ' · starting'}
            </span>
          ) : null
        }
      >
        <ErrorBox error={error} title="Could not list events" />
        {!loaded && busy ? <Loading /> : null}
        {loaded && events.length === 0 ? <Empty>No events match these filters{live ? ' yet — new ones will appear here as they become queryable' : ''}.</Empty> : null}
        {events.length > 0 ? <EventTable events={events} fresh={fresh} testid="events-table" /> : null}
        {loaded ? <LoadMore onClick={more} busy={busy} hasMore={cursor !== null} count={events.length} noun="events" /> : null}
      </Card>
    </div>
  );
}
