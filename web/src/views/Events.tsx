import { useEffect, useMemo, useState } from 'preact/hooks';
import type { EventPage, EyeEvent } from '../api';
import { api } from '../api';
import { Card, EventTable, FilterActions, Filters, PageHead, RangeInputs, TextField } from '../components';
import { useCategories } from '../data';
import { parseInputTime } from '../format';
import { Paged, apiPages, usePages } from '../pages';
import type { Route } from '../router';
import { navigate } from '../router';

const LIVE_MS = 2000;
/** How far back live mode looks for events that became readable late (as `eye tail --window-s`). */
const LIVE_WINDOW_MS = 5 * 60_000;

const eventKey = (e: EyeEvent) => `${e.session_id}\u0000${e.event_id}`;

/**
 * Where live mode's read for late arrivals starts: LIVE_WINDOW_MS before `now`, but not before
 * the filters' `from`; null when the filters' `to` is already past that.
 */
function lateWindow(from: string, to: string, now: number): string | null {
  const start = now - LIVE_WINDOW_MS;
  const fromMs = parseInputTime(from);
  const toMs = parseInputTime(to);
  if (!Number.isNaN(toMs) && toMs <= Math.max(start, Number.isNaN(fromMs) ? start : fromMs)) return null;
  return !Number.isNaN(fromMs) && fromMs >= start ? from : new Date(start).toISOString();
}

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

  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [lastPoll, setLastPoll] = useState<number | null>(null);

  const key = JSON.stringify([filters, limit]);
  const params = (extra: Record<string, string | number | null>) => ({ ...filters, order: 'asc', limit, ...extra });
  const page = apiPages('/v1/events', params({}), (r: EventPage) => r.events);
  const pages = usePages<EyeEvent>('events', page, [key], { keyOf: eventKey });
  const { items: events, loaded } = pages;
  useEffect(() => setFresh(new Set()), [key]);

  // Live mode: follow the cursor while there are pages, then, every LIVE_MS, ask for what is
  // at or after the newest event shown, and for the newest of the last LIVE_WINDOW_MS.
  // The second read catches late arrivals: events reach the store by partition, so one can
  // become readable after a newer one was already shown. Duplicates are dropped by key.
  useEffect(() => {
    if (!live || !loaded) return;
    const stop = new AbortController();
    let timer: number | undefined;
    const tick = async () => {
      const added = await pages.poll(async ({ cursor, items }, signal) => {
        if (cursor) return page(cursor, signal);
        const newest = items.reduce<string | null>((m, e) => (m === null || e.timestamp > m ? e.timestamp : m), null) ?? (filters.from || null);
        const after = api<EventPage>('/v1/events', params({ from: newest, limit: 1000 }), { signal });
        const late = lateWindow(filters.from, filters.to, Date.now());
        const recent = late ? api<EventPage>('/v1/events', params({ from: late, order: 'desc', limit: 1000 }), { signal }) : null;
        const found = new Map<string, EyeEvent>();
        for (const r of await Promise.all([after, recent])) for (const e of r?.events ?? []) found.set(eventKey(e), e);
        const byTime = [...found.values()].sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
        return { items: byTime };
      }, stop.signal);
      if (stop.signal.aborted) return;
      if (added) {
        if (added.length > 0) setFresh(new Set(added.map((e) => e.event_id)));
        setLastPoll(Date.now());
      }
      timer = window.setTimeout(tick, LIVE_MS);
    };
    timer = window.setTimeout(tick, LIVE_MS);
    return () => {
      stop.abort();
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
      <Filters testid="events-filters" onApply={() => apply(form)}>
        <TextField label="Category" name="category" testid="input-category" list="dl-categories" options={catOptions} placeholder="any" value={form.category} onValue={(category) => setForm({ ...form, category })} />
        <TextField label="Name" name="name" testid="input-name" list="dl-names" options={nameOptions} placeholder="any" value={form.name} onValue={(name) => setForm({ ...form, name })} />
        <TextField label="Session" name="session_id" testid="input-session" placeholder="any" value={form.session_id} onValue={(session_id) => setForm({ ...form, session_id })} />
        <RangeInputs from={form.from} to={form.to} onChange={(from, to) => setForm({ ...form, from, to })} />
        <FilterActions testid="apply-filters" onClear={() => apply({ session_id: '', category: '', name: '', from: '', to: '' })} />
      </Filters>
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
        <Paged pages={pages} errorTitle="Could not list events" empty={<>No events match these filters{live ? ' yet — new ones will appear here as they become queryable' : ''}.</>} noun="events">
          <EventTable events={events} fresh={fresh} testid="events-table" />
        </Paged>
      </Card>
    </div>
  );
}
