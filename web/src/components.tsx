import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { EyeEvent } from './api';
import { ApiError } from './api';
import { fmtNum, fmtTime, isoNoMs, parseInputTime, useUtc, utcTitle } from './format';
import { href } from './router';

export function Time({ iso, ms = true }: { iso: string | null | undefined; ms?: boolean }) {
  const utc = useUtc();
  if (!iso) return <span class="muted">—</span>;
  return (
    <time class="time" dateTime={iso} title={utcTitle(iso)}>
      {fmtTime(iso, utc, ms)}
    </time>
  );
}

export function Mono({ children, title }: { children: ComponentChildren; title?: string }) {
  return (
    <span class="mono" title={title}>
      {children}
    </span>
  );
}

export function pretty(v: unknown): string {
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}

/** JSON (or any text) shown as text in a <pre>; never parsed as HTML. */
export function Pre({ text, testid, cls }: { text: string; testid?: string; cls?: string }) {
  return (
    <pre class={`pre ${cls ?? ''}`} data-testid={testid}>
      {text}
    </pre>
  );
}

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error as ApiError;
  const isApi = e instanceof ApiError;
  return (
    <div class="alert alert-error" role="alert" data-testid="error">
      <strong>{title ?? 'Something went wrong'}</strong>
      <div>
        {isApi && e.code ? <span class="mono code-chip">{e.code}</span> : null} {e?.message ?? String(error)}
      </div>
      {isApi && e.details.length > 0 ? (
        <ul class="details">
          {e.details.map((d, i) => (
            <li key={i}>
              <span class="mono">{d.field || '(item)'}</span> <span class="mono code-chip">{d.code}</span> {d.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="loading" data-testid="loading" aria-busy="true">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return (
    <div class="empty" data-testid="empty">
      {children}
    </div>
  );
}

export function Card({ title, children, actions, testid }: { title?: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren; testid?: string }) {
  return (
    <section class="card" data-testid={testid}>
      {title || actions ? (
        <header class="card-head">
          <h2>{title}</h2>
          <div class="card-actions">{actions}</div>
        </header>
      ) : null}
      {children}
    </section>
  );
}

/** A view's filter form, in its card: submitting calls `onApply` instead of reloading the page. */
export function Filters({ testid, onApply, children }: { testid: string; onApply: () => void; children: ComponentChildren }) {
  return (
    <Card>
      <form
        class="filters"
        data-testid={testid}
        onSubmit={(ev) => {
          ev.preventDefault();
          onApply();
        }}
      >
        {children}
      </form>
    </Card>
  );
}

/** A filter's text input; `options` become its suggestions (a datalist with the id `list`). */
export function TextField({ label, name, testid, value, onValue, placeholder, list, options }: { label: string; name: string; testid: string; value: string; onValue: (v: string) => void; placeholder?: string; list?: string; options?: string[] }) {
  return (
    <label class="field">
      <span>{label}</span>
      <input type="text" name={name} data-testid={testid} list={list} placeholder={placeholder} value={value} onInput={(ev) => onValue((ev.target as HTMLInputElement).value)} />
      {list && options ? (
        <datalist id={list}>
          {options.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
      ) : null}
    </label>
  );
}

/** A filter form's buttons: submit (`label`), and Clear when `onClear` is given. */
export function FilterActions({ testid, label = 'Apply', disabled, onClear }: { testid: string; label?: string; disabled?: boolean; onClear?: () => void }) {
  return (
    <div class="field actions">
      <button type="submit" class="btn btn-primary" data-testid={testid} disabled={disabled}>
        {label}
      </button>
      {onClear ? (
        <button type="button" class="btn btn-ghost" onClick={onClear}>
          Clear
        </button>
      ) : null}
    </div>
  );
}

export function PageHead({ title, sub, children }: { title: string; sub?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <header class="page-head">
      <div>
        <h1>{title}</h1>
        {sub ? <p class="sub">{sub}</p> : null}
      </div>
      <div class="page-head-actions">{children}</div>
    </header>
  );
}

function EventRow({ e, showSession, fresh }: { e: EyeEvent; showSession: boolean; fresh: boolean }) {
  const [open, setOpen] = useState(false);
  const cols = showSession ? 6 : 5;
  return (
    <>
      <tr data-testid="event-row" data-event-id={e.event_id} class={fresh ? 'fresh' : undefined}>
        <td class="nowrap">
          <Time iso={e.timestamp} />
        </td>
        <td>
          <span class="type">
            <span class="cat">{e.category}</span>
            <span class="sep">/</span>
            <span class="name">{e.name}</span>
          </span>
        </td>
        {showSession ? (
          <td class="mono ellipsis">
            <a href={href('session', { id: e.session_id })} title={e.session_id}>
              {e.session_id}
            </a>
          </td>
        ) : null}
        <td class="mono ellipsis small" title={e.event_id}>
          {e.event_id}
        </td>
        <td class="num">{e.value === undefined ? <span class="muted">—</span> : fmtNum(e.value, 6)}</td>
        <td class="right">
          <button type="button" class="btn btn-xs" data-testid="toggle-data" aria-expanded={open} onClick={() => setOpen(!open)}>
            {open ? 'Hide data' : 'Data'}
          </button>
        </td>
      </tr>
      {open ? (
        <tr class="detail-row" data-testid="event-data-row">
          <td colSpan={cols}>
            <div class="detail-grid">
              <div>
                <Pre text={pretty(e.data)} testid="event-data" />
              </div>
              <dl class="kv small">
                <dt>event_id</dt>
                <dd class="mono">{e.event_id}</dd>
                <dt>session</dt>
                <dd class="mono">{e.session_id}</dd>
                <dt>timestamp</dt>
                <dd class="mono">{e.timestamp}</dd>
                <dt>client time</dt>
                <dd class="mono">{e.client_timestamp}</dd>
                {e.sent_at ? (
                  <>
                    <dt>sent at</dt>
                    <dd class="mono">{e.sent_at}</dd>
                  </>
                ) : null}
                <dt>received</dt>
                <dd class="mono">{e.received_at}</dd>
              </dl>
            </div>
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function EventTable({ events, showSession = true, fresh, testid = 'event-table' }: { events: EyeEvent[]; showSession?: boolean; fresh?: Set<string>; testid?: string }) {
  return (
    <div class="table-wrap">
      <table class="table" data-testid={testid}>
        <thead>
          <tr>
            <th>Time</th>
            <th>Type</th>
            {showSession ? <th>Session</th> : null}
            <th>Event id</th>
            <th class="num">Value</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <EventRow key={`${e.session_id}\u0000${e.event_id}`} e={e} showSession={showSession} fresh={fresh?.has(e.event_id) ?? false} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

const PRESETS: [string, number][] = [
  ['1 h', 3600e3],
  ['24 h', 86400e3],
  ['7 d', 7 * 86400e3],
  ['30 d', 30 * 86400e3],
  ['1 y', 365 * 86400e3],
];

/** From/to text inputs (RFC 3339, ISO 8601 or epoch, as the API takes) with quick ranges. */
export function RangeInputs({ from, to, onChange }: { from: string; to: string; onChange: (from: string, to: string) => void }) {
  const hint = (s: string) => {
    if (!s.trim()) return null;
    const ms = parseInputTime(s);
    if (Number.isNaN(ms)) return <span class="hint bad">not a time the API will take?</span>;
    return <span class="hint">{fmtTime(new Date(ms).toISOString(), undefined, false)}</span>;
  };
  return (
    <div class="range">
      <label class="field">
        <span>From</span>
        <input type="text" name="from" data-testid="input-from" placeholder="2026-01-01T00:00:00Z" value={from} onInput={(ev) => onChange((ev.target as HTMLInputElement).value, to)} />
        {hint(from)}
      </label>
      <label class="field">
        <span>To</span>
        <input type="text" name="to" data-testid="input-to" placeholder="now" value={to} onInput={(ev) => onChange(from, (ev.target as HTMLInputElement).value)} />
        {hint(to)}
      </label>
      <div class="field presets">
        <span>Last</span>
        <div class="btn-group">
          {PRESETS.map(([label, ms]) => (
            <button
              type="button"
              key={label}
              class="btn btn-xs"
              onClick={() => {
                const now = Date.now();
                onChange(isoNoMs(now - ms), isoNoMs(now + 60e3));
              }}
            >
              {label}
            </button>
          ))}
          <button type="button" class="btn btn-xs btn-ghost" onClick={() => onChange('', '')}>
            All
          </button>
        </div>
      </div>
    </div>
  );
}

export function LoadMore({ onClick, busy, hasMore, count, noun }: { onClick: () => void; busy: boolean; hasMore: boolean; count: number; noun: string }) {
  return (
    <div class="load-more">
      <span class="muted" data-testid="shown-count">
        {fmtNum(count)} {noun} shown{hasMore ? '' : count > 0 ? ' — that is all' : ''}
      </span>
      {hasMore ? (
        <button type="button" class="btn" data-testid="load-more" disabled={busy} onClick={onClick}>
          {busy ? 'Loading…' : 'Load more'}
        </button>
      ) : null}
    </div>
  );
}
