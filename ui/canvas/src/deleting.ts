/** Deleting a saved flow from the server: asked first (the dialog names the flow), offered
 * only for flows saved through the API (examples come from files), a refusal shown in the
 * dialog. Deleting the open flow closes it: the start screen, with this tab's draft of it
 * and its recent entry gone. */

import { ApiError } from "./api";
import { forgetFlow } from "./model/draft";
import { deleteRefused } from "./model/flows";
import { stopRun } from "./runs";
import { closeDocument, message, places, refreshFlows, toast, useEditor } from "./store";

const get = useEditor.getState;
const set = useEditor.setState;

/** Ask before deleting flow `id` (`name` is what the dialog calls it). */
export function askDelete(id: string, name?: string): void {
  const listed = get().flows.find((f) => f.id === id);
  const open = get().savedId === id ? get().doc : null;
  set({ dialog: { kind: "delete", id, name: name ?? listed?.name ?? open?.name ?? id,
    fromOpen: get().dialog?.kind === "open" } });
}

/** Not deleted: back to the Open dialog it was asked from, else no dialog. */
export function cancelDelete(): void {
  const d = get().dialog;
  set({ dialog: d?.kind === "delete" && d.fromOpen ? { kind: "open" } : null });
}

/** Delete flow `id` on the server; false (the dialog says why) when it was refused. */
export async function deleteFlow(id: string): Promise<boolean> {
  const { api, dialog } = get();
  if (!api || (dialog?.kind === "delete" && dialog.busy)) return false;
  const asked = dialog?.kind === "delete" && dialog.id === id ? dialog : null;
  if (asked) set({ dialog: { ...asked, busy: true, error: undefined } });
  let gone = false;
  try {
    await api.deleteFlow(id);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      gone = true; // someone deleted it first: what it leaves here goes all the same
    } else {
      const text = e instanceof ApiError ? deleteRefused(id, e) : `Not deleted: ${message(e)}`;
      if (asked) set({ dialog: { ...asked, busy: false, error: text } });
      else toast(text, "error", 8000);
      return false;
    }
  }
  afterDelete(id);
  toast(gone ? `'${id}' was not on the server any more.` : `Deleted ${id}.`, gone ? "info" : "success");
  return true;
}

function afterDelete(id: string): void {
  const { apiUrl, savedId, runBusy, draftOffer } = get();
  if (savedId === id) {
    if (runBusy) void stopRun();
    closeDocument();
  } else if (get().dialog?.kind === "delete") {
    cancelDelete(); // the Open dialog it came from shows the list without it
  }
  forgetFlow(places(), apiUrl, id);
  set((s) => ({
    recent: s.recent.filter((r) => r.id !== id),
    flows: s.flows.filter((f) => f.id !== id),
    choices: { ...s.choices, flows: s.choices.flows.filter((f) => f !== id) },
    draftOffer: draftOffer?.savedId === id ? null : draftOffer,
  }));
  void refreshFlows();
}
