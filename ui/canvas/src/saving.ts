/** Saving, "Save as", import and export: one document identity.
 *
 * Save writes exactly `savedId` (with If-Match on the ETag the flow was opened with);
 * "Save as" writes a new id (If-None-Match: *) and re-labels the whole history with it, so
 * no undo brings back another flow's id; a flow changed on the server since it was opened
 * is reported, never written over. */

import { Api, ApiError } from "./api";
import { normalizeDocument, sameContent, withId } from "./model/document";
import type { History } from "./model/history";
import { exportFile, importFlow } from "./model/io";
import { pinProblems } from "./model/problems";
import type { FlowDocument } from "./model/types";
import { startRun } from "./runs";
import { flushDraft, loadDocument, message, refreshFlows, rememberRecent, toast, useEditor } from "./store";

const get = useEditor.getState;
const set = useEditor.setState;

/** Rename every document in the history (Save as): the id is identity, not an edit. */
function relabel(h: History<FlowDocument>, id: string): History<FlowDocument> {
  const to = (d: FlowDocument) => (d.id === id ? d : { ...d, id });
  return { ...h, past: h.past.map(to), present: to(h.present), future: h.future.map(to) };
}

function saveRefused(e: unknown, id: string): string {
  if (e instanceof ApiError && e.status === 422 && e.problems.length) {
    const doc = get().doc!;
    set((s) => ({ validation: { ...s.validation, problems: e.problems,
      pinned: pinProblems(e.problems, doc, s.validation.pinned), checked: true, pending: false } }));
    return `Not saved: ${e.problems.length} problem${e.problems.length > 1 ? "s" : ""} to fix first (see Problems).`;
  }
  if (e instanceof ApiError && e.status === 412) return `A flow '${id}' exists already: choose another id.`;
  return `Not saved: ${message(e)}`;
}

/** Save the document under its id; a document never saved asks for one first. */
export async function save(thenRun?: string): Promise<boolean> {
  const { api, doc, savedId, etag, saving } = get();
  if (!api || !doc || saving) return false;
  if (savedId === null) {
    set({ dialog: { kind: "saveAs", thenRun } });
    return false;
  }
  const target = doc.id === savedId ? doc : { ...doc, id: savedId };
  set({ saving: true });
  try {
    if (!etag) await checkUnchanged(api, savedId);
    const result = await api.save(target, { etag });
    afterSave(target, savedId, result.etag, result.notes);
    if (thenRun !== undefined) void startRun(thenRun);
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 412) {
      set({ dialog: { kind: "conflict", message: `The server's copy of '${savedId}' changed since you ` +
        "opened it (someone saved it, in another tab or with the API). Your changes are not " +
        "written over it: save them under another id, or open the server's copy (your version " +
        "stays in the draft until then)." } });
    } else {
      toast(saveRefused(e, savedId), "error", 7000);
    }
    return false;
  } finally {
    set({ saving: false });
  }
}

/** Without an ETag from the server: compare its copy with the one opened. */
async function checkUnchanged(api: Api, id: string): Promise<void> {
  const base = get().base;
  if (!base) return;
  let server: FlowDocument;
  try {
    server = normalizeDocument((await api.flow(id)).doc);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return; // deleted meanwhile: saving recreates it
    throw e;
  }
  if (!sameContent(server, base)) throw new ApiError(412, "changed on the server");
}

/** Save under a new id; refused when a flow has that id already. */
export async function saveAs(id: string, thenRun?: string): Promise<boolean> {
  const { api, doc, history, saving } = get();
  if (!api || !doc || !history || saving) return false;
  let target: FlowDocument;
  try {
    target = withId(doc, id.trim());
  } catch (e) {
    set({ dialog: { kind: "saveAs", thenRun, error: message(e) } });
    return false;
  }
  set({ saving: true });
  try {
    try { // a server without If-None-Match support would write over an existing flow
      await api.flow(target.id);
      throw new ApiError(412, "exists");
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    const result = await api.save(target, { create: true });
    set({ history: relabel(history, target.id) });
    afterSave(target, target.id, result.etag, result.notes, true);
    if (thenRun !== undefined) void startRun(thenRun);
    return true;
  } catch (e) {
    set({ dialog: { kind: "saveAs", thenRun, error: saveRefused(e, target.id) } });
    return false;
  } finally {
    set({ saving: false });
  }
}

function afterSave(saved: FlowDocument, id: string, etag: string | null, notes: string[], as = false): void {
  set((s) => {
    const history = s.history && s.history.present.id !== id ? relabel(s.history, id) : s.history;
    const doc = history?.present ?? saved;
    return { history, doc, savedId: id, etag, base: saved, dirty: !sameContent(doc, saved), dialog: null };
  });
  rememberRecent(id, saved.name);
  flushDraft();
  void refreshFlows();
  toast(`${as ? "Saved as" : "Saved"} ${id}.${notes.length ? ` ${notes.join("; ")}` : ""}`, "success");
}

// -- import / export --------------------------------------------------------------------

export async function importText(text: string): Promise<void> {
  const api = get().api;
  if (!api) return;
  try {
    const { doc, notes } = await importFlow(text, (d) => api.validate(d));
    loadDocument(doc, { savedId: null, etag: null, base: null });
    toast(`Imported ${doc.id}${notes.length ? ` (${notes.join("; ")})` : ""}. Save it to keep it on the server.`, "success", 6000);
  } catch (e) {
    toast(`Import failed: ${message(e)}`, "error", 7000);
  }
}

/** The document as a file: the server's export (prompt versions pinned and carried) when
 * what is shown is what is saved, else the document as edited. */
export async function exportJson(): Promise<{ name: string; text: string } | null> {
  const { api, doc, savedId, dirty } = get();
  if (!doc) return null;
  if (api && savedId && !dirty) {
    try {
      return exportFile(doc, await api.exportText(savedId));
    } catch (e) {
      toast(`The server's export failed (${message(e)}); exporting the document as edited.`, "error");
    }
  }
  return exportFile(doc);
}
