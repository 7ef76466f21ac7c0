// Performance hooks read by web/test/explorer.mjs:
//   eye:open:<view>   when the route is entered
//   eye:ready:<view>  when the view has rendered its first data
//   eye:view:<view>   measure between the two
//   eye:trends:data / eye:trends:redraw  (see views/Trends.tsx)

const readyDone = new Set<string>();

export function markOpen(view: string) {
  readyDone.delete(view);
  try {
    performance.mark(`eye:open:${view}`);
  } catch {
    /* ignore */
  }
}

/** Marks the view ready once per entry; later calls do nothing. */
export function markReady(view: string) {
  if (readyDone.has(view)) return;
  readyDone.add(view);
  try {
    performance.mark(`eye:ready:${view}`);
    performance.measure(`eye:view:${view}`, `eye:open:${view}`, `eye:ready:${view}`);
  } catch {
    /* a mark may be missing if the page was entered oddly; never break the view */
  }
}
