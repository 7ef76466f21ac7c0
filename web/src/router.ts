import { useEffect, useState } from 'preact/hooks';
import { markOpen } from './perf';

export const VIEWS = ['find', 'session', 'events', 'trends', 'catalogue', 'rejected', 'pipeline'] as const;
export type View = (typeof VIEWS)[number];

export interface Route {
  view: View;
  params: Record<string, string>;
  /** The hash as read, for keys that must change when anything in it does. */
  raw: string;
}

/** `#/events?category=a&name=b` → {view:'events', params:{category:'a',name:'b'}} */
export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, '');
  const q = h.indexOf('?');
  const path = (q >= 0 ? h.slice(0, q) : h).replace(/^\/+/, '').replace(/\/+$/, '');
  const params: Record<string, string> = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(h.slice(q + 1))) params[k] = v;
  }
  const view = (VIEWS as readonly string[]).includes(path) ? (path as View) : 'find';
  return { view, params, raw: h };
}

export function href(view: View, params: Record<string, string | number | boolean | null | undefined> = {}): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    u.set(k, v === true ? '1' : String(v));
  }
  const s = u.toString();
  return `#/${view}${s ? `?${s}` : ''}`;
}

export function navigate(view: View, params: Record<string, string | number | boolean | null | undefined> = {}, replace = false) {
  const h = href(view, params);
  if (location.hash === h) return;
  if (replace) {
    history.replaceState(null, '', h);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = h;
  }
}

let lastView: View | null = null;
let lastRaw: string | null = null;

function enter(r: Route) {
  // A view is "entered" when the route's view or its filters change.
  if (r.view !== lastView || r.raw !== lastRaw) {
    lastView = r.view;
    lastRaw = r.raw;
    markOpen(r.view);
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => {
    const r = parseHash(location.hash);
    enter(r);
    return r;
  });
  useEffect(() => {
    const on = () => {
      const r = parseHash(location.hash);
      enter(r);
      setRoute(r);
    };
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
