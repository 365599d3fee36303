/** Undo/redo over whole documents: a list of past documents, the present one and the
 * undone ones. Documents share what did not change, so keeping 100 costs little.
 *
 * Edits of the same thing in quick succession (typing in one field) coalesce into one
 * step when they carry the same `key` within `coalesceMs`. */

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
  /** What the last step edited and when, for coalescing. */
  lastKey: string | null;
  lastAt: number;
}

export const HISTORY_LIMIT = 100;

export function createHistory<T>(present: T): History<T> {
  return { past: [], present, future: [], lastKey: null, lastAt: 0 };
}

export interface PushOptions {
  key?: string | null;
  at?: number;
  coalesceMs?: number;
  limit?: number;
}

/** `next` as the present; the old present goes to the past (unless the step coalesces
 * with the last one); redo is cleared. Pushing the present itself changes nothing. */
export function push<T>(h: History<T>, next: T, opts: PushOptions = {}): History<T> {
  if (next === h.present) return h;
  const at = opts.at ?? Date.now();
  const key = opts.key ?? null;
  const coalesce = key !== null && key === h.lastKey && h.past.length > 0 &&
    at - h.lastAt <= (opts.coalesceMs ?? 1200);
  if (coalesce) return { past: h.past, present: next, future: [], lastKey: key, lastAt: at };
  const limit = opts.limit ?? HISTORY_LIMIT;
  const past = [...h.past, h.present];
  if (past.length > limit) past.splice(0, past.length - limit);
  return { past, present: next, future: [], lastKey: key, lastAt: at };
}

/** Replace the present without a new step (a follow-up of the same user action, such
 * as declaring the state field a node just added writes). */
export function amend<T>(h: History<T>, next: T): History<T> {
  return next === h.present ? h : { ...h, present: next };
}

export function canUndo<T>(h: History<T>): boolean {
  return h.past.length > 0;
}

export function canRedo<T>(h: History<T>): boolean {
  return h.future.length > 0;
}

export function undo<T>(h: History<T>): History<T> {
  if (!h.past.length) return h;
  const past = h.past.slice(0, -1);
  return { past, present: h.past[h.past.length - 1], future: [h.present, ...h.future],
    lastKey: null, lastAt: 0 };
}

export function redo<T>(h: History<T>): History<T> {
  if (!h.future.length) return h;
  const [present, ...future] = h.future;
  return { past: [...h.past, h.present], present, future, lastKey: null, lastAt: 0 };
}
