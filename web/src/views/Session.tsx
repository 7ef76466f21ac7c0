import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef } from 'preact/hooks';
import type uPlot from 'uplot';
import type { EyeEvent, SessionDetail } from '../api';
import { api, seg } from '../api';
import { PALETTE, UChart, tzDateFn } from '../chart';
import { Card, Empty, ErrorBox, EventTable, LoadMore, Loading, Mono, PageHead, Time } from '../components';
import { fmtDuration, fmtNum, fmtTime, useUtc } from '../format';
import { usePages } from '../pages';
import { markReady } from '../perf';
import type { Route } from '../router';
import { href } from '../router';

const PAGE = 1000;
/** Pages fetched without asking; beyond that, "Load more". */
const AUTO_PAGES = 10;

function Timeline({ events }: { events: EyeEvent[] }) {
  const utc = useUtc();
  const hover = useRef<HTMLDivElement>(null);
  const { lanes, data } = useMemo(() => {
    const laneOf = new Map<string, number>();
    for (const e of events) {
      const k = `${e.category}/${e.name}`;
      if (!laneOf.has(k)) laneOf.set(k, laneOf.size);
    }
    const lanes = [...laneOf.keys()];
    const xs = events.map((e) => new Date(e.timestamp).getTime() / 1e3);
    const series = lanes.map((_, li) => events.map((e) => (laneOf.get(`${e.category}/${e.name}`) === li ? li : null)));
    return { lanes, data: [xs, ...series] as uPlot.AlignedData };
  }, [events]);

  const height = Math.min(420, 70 + lanes.length * 28);
  const labelWidth = Math.min(260, 24 + Math.max(...lanes.map((l) => l.length)) * 7);

  return (
    <div class="timeline">
      <UChart
        testid="session-timeline"
        height={height}
        data={data}
        deps={[lanes.join('\n'), utc, height]}
        build={(width, h) => ({
          width,
          height: h,
          tzDate: tzDateFn(utc),
          legend: { show: false },
          cursor: { points: { size: 10 }, y: false, drag: { x: true, y: false, setScale: true } },
          scales: {
            x: {
              time: true,
              range: (_u, min, max) => {
                const pad = Math.max((max - min) * 0.02, 0.5);
                return [min - pad, max + pad];
              },
            },
            y: { auto: false, range: [-0.6, lanes.length - 0.4] },
          },
          axes: [
            { stroke: '#667', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#dde' } },
            {
              stroke: '#445',
              size: labelWidth,
              splits: () => lanes.map((_, i) => i),
              values: (_u, splits) => splits.map((v) => lanes[v] ?? ''),
              grid: { stroke: '#eef0f4' },
              ticks: { show: false },
              font: '12px ui-monospace, SFMono-Regular, Menlo, monospace',
            },
          ],
          series: [
            {},
            ...lanes.map((l, i) => ({
              label: l,
              stroke: PALETTE[i % PALETTE.length],
              fill: PALETTE[i % PALETTE.length],
              width: 0,
              paths: () => null,
              points: { show: true, size: 9, width: 1, fill: PALETTE[i % PALETTE.length], stroke: '#fff' },
            })),
          ],
          hooks: {
            setCursor: [
              (u: uPlot) => {
                const el = hover.current;
                if (!el) return;
                const i = u.cursor.idx;
                if (i == null || !events[i]) {
                  el.textContent = 'Hover a dot to see the event; drag to zoom, double-click to reset; click to jump to it in the list.';
                  return;
                }
                const e = events[i];
                el.textContent = `${fmtTime(e.timestamp, utc)} · ${e.category}/${e.name} · ${e.event_id}`;
              },
            ],
            ready: [
              (u: uPlot) => {
                u.over.addEventListener('click', () => {
                  const i = u.cursor.idx;
                  if (i == null || !events[i]) return;
                  const row = document.querySelector(`tr[data-event-id="${CSS.escape(events[i].event_id)}"]`);
                  if (row) {
                    row.scrollIntoView({ block: 'center', behavior: 'smooth' });
                    row.classList.remove('flash');
                    void (row as HTMLElement).offsetWidth;
                    row.classList.add('flash');
                  }
                });
              },
            ],
          },
        })}
      />
      <div class="chart-hover small muted" ref={hover} data-testid="timeline-hover">
        Hover a dot to see the event; drag to zoom, double-click to reset; click to jump to it in the list.
      </div>
    </div>
  );
}

function Stat({ label, mono, testid, children }: { label: string; mono?: boolean; testid?: string; children: ComponentChildren }) {
  return (
    <div class="stat">
      <span class="stat-label">{label}</span>
      <span class={mono ? 'stat-value mono' : 'stat-value'} data-testid={testid}>
        {children}
      </span>
    </div>
  );
}

export function Session({ route }: { route: Route }) {
  const id = route.params.id ?? '';
  const follow = async (first: string | null, pages: number, signal: AbortSignal) => {
    let c = first;
    const acc: EyeEvent[] = [];
    for (let p = 0; p < pages && c; p++) {
      const r = await api<SessionDetail>(`/v1/sessions/${seg(id)}`, { limit: PAGE, cursor: c }, { signal });
      acc.push(...r.events);
      c = r.next_cursor;
    }
    return { items: acc, next: c };
  };
  // The first page carries the session's details; AUTO_PAGES of events are fetched before it shows.
  const pages = usePages<EyeEvent, { items: EyeEvent[]; next: string | null; detail?: SessionDetail }>(
    'session',
    id
      ? async (cursor, signal) => {
          if (cursor) return follow(cursor, 1, signal);
          const d = await api<SessionDetail>(`/v1/sessions/${seg(id)}`, { limit: PAGE }, { signal });
          const rest = await follow(d.next_cursor, AUTO_PAGES - 1, signal);
          return { items: [...d.events, ...rest.items], next: rest.next, detail: d };
        }
      : null,
    [id],
  );
  const { items: events, busy, error } = pages;
  const detail = pages.first?.detail ?? null;

  useEffect(() => {
    if (!id) markReady('session');
  }, [id]);

  if (!id) {
    return (
      <div class="view" data-testid="view-session">
        <PageHead title="Session" />
        <Empty>
          No session chosen. <a href={href('find')}>Find one</a>.
        </Empty>
      </div>
    );
  }

  const notFound = detail && detail.event_count === 0 && !detail.started_at && !detail.ended_at && events.length === 0;
  const span = detail?.first_event_at && detail?.last_event_at ? new Date(detail.last_event_at).getTime() - new Date(detail.first_event_at).getTime() : null;

  return (
    <div class="view" data-testid="view-session">
      <PageHead title="Session" sub={<Mono>{id}</Mono>}>
        <a class="btn" href={href('events', { session_id: id })}>
          Open in Events
        </a>
      </PageHead>
      {(error as { code?: string })?.code === 'session_not_found' ? (
        <Empty>
          <strong>No session with this id.</strong> Nothing has been stored for it (yet): events become queryable a moment after they are sent. <a href={href('find')}>Find another</a>.
        </Empty>
      ) : (
        <ErrorBox error={error} title="Could not load the session" />
      )}
      {!detail && busy ? <Loading label="Loading the session…" /> : null}
      {detail ? (
        <>
          <div class="stats" data-testid="session-meta">
            <Stat label="User" mono testid="session-user">
              {detail.user_id ? <a href={href('find', { user: detail.user_id })}>{detail.user_id}</a> : '—'}
            </Stat>
            <Stat label="Machine" mono testid="session-machine">
              {detail.machine_id ? <a href={href('find', { machine: detail.machine_id })}>{detail.machine_id}</a> : '—'}
            </Stat>
            {detail.org_id ? (
              <Stat label="Org" mono>
                {detail.org_id}
              </Stat>
            ) : null}
            <Stat label="Started" testid="session-start">
              <Time iso={detail.started_at} />
            </Stat>
            <Stat label="Ended" testid="session-end">
              {detail.ended_at ? <Time iso={detail.ended_at} /> : <span class="badge">{detail.started_at ? 'still open' : 'unknown'}</span>}
            </Stat>
            <Stat label="Events">{fmtNum(detail.event_count)}</Stat>
            <Stat label="Span">{span !== null ? fmtDuration(span) : '—'}</Stat>
          </div>
          {notFound ? (
            <Empty>No session with this id has been stored (yet). Events become queryable a moment after they are sent.</Empty>
          ) : (
            <>
              <Card title="Timeline">{events.length > 0 ? <Timeline events={events} /> : <Empty>This session has no events yet.</Empty>}</Card>
              <Card title="Events" testid="session-events">
                {events.length > 0 ? <EventTable events={events} showSession={false} testid="session-events-table" /> : <Empty>No events.</Empty>}
                <LoadMore onClick={pages.more} busy={busy} hasMore={pages.hasMore} count={events.length} noun="events" />
              </Card>
            </>
          )}
        </>
      ) : null}
    </div>
  );
}
