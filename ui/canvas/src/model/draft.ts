/** Unsaved work kept in the browser's storage (offered back after a reload) and the
 * recently opened flows, per API server. */

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
