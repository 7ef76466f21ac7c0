import { useEffect, useMemo, useState } from 'preact/hooks';
import type { EventPage, EyeEvent } from '../api';
import { api } from '../api';
import { Card, EventTable, FilterActions, Filters, PageHead, RangeInputs, TextField } from '../components';
import { useCategories } from '../data';
import { Paged, apiPages, usePages } from '../pages';
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

  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [lastPoll, setLastPoll] = useState<number | null>(null);

  const key = JSON.stringify([filters, limit]);
  const params = (extra: Record<string, string | number | null>) => ({ ...filters, order: 'asc', limit, ...extra });
  const page = apiPages('/v1/events', params({}), (r: EventPage) => r.events);
  const pages = usePages<EyeEvent>('events', page, [key], { keyOf: (e) => `${e.session_id}\u0000${e.event_id}` });
  const { items: events, loaded } = pages;
  useEffect(() => setFresh(new Set()), [key]);

  // Live mode: follow the cursor while there are pages, then ask for anything at or after
  // the newest event shown (duplicates are dropped), every LIVE_MS.
  useEffect(() => {
    if (!live || !loaded) return;
    const stop = new AbortController();
    let timer: number | undefined;
    const tick = async () => {
      const added = await pages.poll(async ({ cursor, items }, signal) => {
        if (cursor) return page(cursor, signal);
        const newest = items.length ? items[items.length - 1].timestamp : filters.from;
        const r = await api<EventPage>('/v1/events', params({ from: newest || null, limit: 1000 }), { signal });
        return { items: r.events };
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
