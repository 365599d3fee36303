/** Unsaved work kept in the tab's storage (offered back after a reload) and the recently
 * opened flows, per API server.
 *
 * A draft belongs to one tab: it lives in `sessionStorage`, which a reload (and the
 * browser's "reopen closed tab") keeps and every other tab has its own of, so two tabs
 * editing two flows never overwrite each other's unsaved work. The recent list is the
 * browser's (`localStorage`), shared by its tabs. */

import { normalizeDocument } from "./document";
import type { FlowDocument } from "./types";

export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface Draft {
  v: 1;
  doc: FlowDocument;
  /** The id the document is saved under on the server (null: never saved). */
  savedId: string | null;
  etag: string | null;
  /** The document as last opened or saved, to tell what is unsaved. */
  base: FlowDocument | null;
  at: number;
}

const PREFIX = "flowloom.canvas";

/** Where drafts and the recent list are kept; null where the browser refuses storage. */
export interface DraftPlaces {
  /** This tab's own: drafts. */
  tab: KeyValueStorage | null;
  /** Every tab's: the recent list (and the one draft an earlier version kept there). */
  browser: KeyValueStorage | null;
}

/** The tab's and the browser's storage of `win` (reading either may throw, in a
 * sandboxed frame or with storage blocked). */
export function draftPlaces(win: { readonly sessionStorage: KeyValueStorage; readonly localStorage: KeyValueStorage }): DraftPlaces {
  const read = (get: () => KeyValueStorage): KeyValueStorage | null => {
    try {
      return get() ?? null;
    } catch {
      return null;
    }
  };
  return { tab: read(() => win.sessionStorage), browser: read(() => win.localStorage) };
}

function key(kind: string, apiUrl: string): string {
  return `${PREFIX}.${kind}:${apiUrl.replace(/\/+$/, "")}`;
}

export function saveDraft(storage: KeyValueStorage, apiUrl: string, draft: Omit<Draft, "v">): boolean {
  try {
    storage.setItem(key("draft", apiUrl), JSON.stringify({ v: 1, ...draft }));
    return true;
  } catch {
    return false; // storage full or disabled: nothing to offer back, nothing lost here
  }
}

/** The stored draft, or null when there is none or it cannot be read. */
export function loadDraft(storage: KeyValueStorage, apiUrl: string): Draft | null {
  let raw: string | null;
  try {
    raw = storage.getItem(key("draft", apiUrl));
  } catch {
    return null;
  }
  if (!raw) return null;
  try {
    const d = JSON.parse(raw);
    if (d?.v !== 1 || !d.doc) return null;
    return {
      v: 1, doc: normalizeDocument(d.doc), savedId: typeof d.savedId === "string" ? d.savedId : null,
      etag: typeof d.etag === "string" ? d.etag : null,
      base: d.base ? normalizeDocument(d.base) : null, at: Number(d.at) || 0,
    };
  } catch {
    return null;
  }
}

export function clearDraft(storage: KeyValueStorage, apiUrl: string): void {
  try {
    storage.removeItem(key("draft", apiUrl));
  } catch {
    // nothing to clear
  }
}

/** The draft this tab offers back: its own; else, once, the draft an earlier version kept
 * for the whole browser (moved into this tab, so no other tab offers it too). */
export function tabDraft(places: DraftPlaces, apiUrl: string): Draft | null {
  if (!places.tab) return null;
  const own = loadDraft(places.tab, apiUrl);
  if (own || !places.browser) return own;
  const shared = loadDraft(places.browser, apiUrl);
  clearDraft(places.browser, apiUrl);
  if (shared) saveDraft(places.tab, apiUrl, shared);
  return shared;
}

/** What this browser keeps of a flow deleted from the server: its recent entry goes, and
 * this tab's draft when it is that flow's. Returns the recent list left. */
export function forgetFlow(places: DraftPlaces, apiUrl: string, id: string): RecentFlow[] {
  if (places.tab && loadDraft(places.tab, apiUrl)?.savedId === id) clearDraft(places.tab, apiUrl);
  return places.browser ? forgetRecent(places.browser, apiUrl, id) : [];
}

export interface RecentFlow {
  id: string;
  name: string;
  at: number;
}

export const RECENT_LIMIT = 8;

export function loadRecent(storage: KeyValueStorage, apiUrl: string): RecentFlow[] {
  try {
    const list = JSON.parse(storage.getItem(key("recent", apiUrl)) ?? "[]");
    return Array.isArray(list) ? list.filter((r) => typeof r?.id === "string").slice(0, RECENT_LIMIT) : [];
  } catch {
    return [];
  }
}

/** `flow` first in the recent list (once), at most RECENT_LIMIT kept. */
export function pushRecent(storage: KeyValueStorage, apiUrl: string, flow: Omit<RecentFlow, "at">,
  at = Date.now()): RecentFlow[] {
  const list = [{ ...flow, at }, ...loadRecent(storage, apiUrl).filter((r) => r.id !== flow.id)]
    .slice(0, RECENT_LIMIT);
  try {
    storage.setItem(key("recent", apiUrl), JSON.stringify(list));
  } catch {
    // not kept: the list is a convenience
  }
  return list;
}

export function forgetRecent(storage: KeyValueStorage, apiUrl: string, id: string): RecentFlow[] {
  const list = loadRecent(storage, apiUrl).filter((r) => r.id !== id);
  try {
    storage.setItem(key("recent", apiUrl), JSON.stringify(list));
  } catch {
    // as above
  }
  return list;
}
