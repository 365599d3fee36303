/** Modal dialogs: open a flow, save as (a new id), confirm dropping unsaved work, delete a
 * flow, save before a run, and a save conflict. */

import { useEffect, useRef, useState, type ReactNode } from "react";
import { cancelDelete, deleteFlow } from "../deleting";
import { save, saveAs } from "../saving";
import {
  closeDialog, guardUnsaved, openDialog, openFlow, refreshFlows, useEditor, type Dialog,
} from "../store";
import { OpenList } from "./StartScreen";

function Modal({ title, children, onClose, testId }: { title: string; children: ReactNode; onClose: () => void; testId?: string }) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => { if (e.key === "Escape") onClose(); };
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [onClose]);
  return (
    <div className="fl-modal-back" onMouseDown={(e) => { if (e.target === e.currentTarget) onClose(); }}>
      <div className="fl-modal" role="dialog" aria-label={title} data-testid={testId}>
        <div className="fl-modal-head"><h3>{title}</h3><button type="button" className="fl-icon-btn" onClick={onClose} aria-label="Close">✕</button></div>
        {children}
      </div>
    </div>
  );
}

function OpenDialog() {
  const flows = useEditor((s) => s.flows);
  const error = useEditor((s) => s.flowsError);
  const [filter, setFilter] = useState("");
  useEffect(() => { void refreshFlows(); }, []);
  return (
    <Modal title="Open a flow" onClose={closeDialog} testId="open-dialog">
      <input className="fl-input" autoFocus placeholder="Search by name or id…" value={filter} onChange={(e) => setFilter(e.target.value)} />
      {error ? <div className="fl-error-box">{error}</div> : <OpenList flows={flows} filter={filter} />}
    </Modal>
  );
}

function SaveAsDialog({ d }: { d: Extract<Dialog, { kind: "saveAs" }> }) {
  const doc = useEditor((s) => s.doc);
  const savedId = useEditor((s) => s.savedId);
  const saving = useEditor((s) => s.saving);
  const [id, setId] = useState(() => (savedId ? `${savedId}_copy` : doc?.id && doc.id !== "untitled" ? doc.id : ""));
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => { input.current?.select(); }, []);
  const submit = () => { if (id.trim() && !saving) void saveAs(id.trim(), d.thenRun); };
  return (
    <Modal title={savedId ? "Save as a new flow" : "Save the flow"} onClose={closeDialog}>
      <p className="fl-muted">{savedId
        ? <>A copy under a new id; <code>{savedId}</code> on the server stays as it is, and from now on you edit the copy.</>
        : "The id names the flow on the server: the API, the Chat page and snippets use it."}</p>
      <label className="fl-label">Flow id <span className="fl-muted">(letters, digits, _ and -)</span>
        <input ref={input} className="fl-input" autoFocus value={id} data-testid="save-as-id" placeholder="my_flow"
          onChange={(e) => setId(e.target.value)} onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); submit(); } }} />
      </label>
      {d.error && <div className="fl-error-box" data-testid="save-as-error">{d.error}</div>}
      <div className="fl-row fl-end">
        <button type="button" className="fl-btn" onClick={closeDialog}>Cancel</button>
        <button type="button" className="fl-btn fl-primary" disabled={!id.trim() || saving} onClick={submit}>
          {saving ? "Saving…" : d.thenRun !== undefined ? "Save and run" : "Save"}
        </button>
      </div>
    </Modal>
  );
}

function DeleteDialog({ d }: { d: Extract<Dialog, { kind: "delete" }> }) {
  const open = useEditor((s) => s.savedId === d.id && !!s.doc);
  const dirty = useEditor((s) => s.savedId === d.id && s.dirty);
  const draft = useEditor((s) => s.draftOffer?.savedId === d.id);
  return (
    <Modal title="Delete this flow?" onClose={cancelDelete} testId="delete-dialog">
      <p>Delete <strong>“{d.name}”</strong> (<code>{d.id}</code>) from the server? The API, the Chat
        page and snippets can no longer run it, and this cannot be undone (Export keeps a copy).</p>
      {open && <p>It is the flow open here: the Builder goes back to the start screen
        {dirty ? ", and your unsaved changes to it are dropped" : ""}.</p>}
      {!open && draft && <p>The unsaved work on it that this tab offers back is dropped too.</p>}
      {d.error && <div className="fl-error-box" role="alert" data-testid="delete-error">{d.error}</div>}
      <div className="fl-row fl-end">
        <button type="button" className="fl-btn" data-testid="cancel-delete" onClick={cancelDelete}>Cancel</button>
        <button type="button" className="fl-btn fl-danger fl-solid" data-testid="confirm-delete" disabled={d.busy}
          onClick={() => void deleteFlow(d.id)}>{d.busy ? "Deleting…" : `Delete ${d.id}`}</button>
      </div>
    </Modal>
  );
}

export function Dialogs() {
  const d = useEditor((s) => s.dialog);
  const savedId = useEditor((s) => s.savedId);
  if (!d) return null;
  switch (d.kind) {
    case "open":
      return <OpenDialog />;
    case "saveAs":
      return <SaveAsDialog d={d} />;
    case "confirm":
      return (
        <Modal title={d.title} onClose={closeDialog} testId="confirm-dialog">
          <p>{d.message}</p>
          <div className="fl-row fl-end">
            <button type="button" className="fl-btn" onClick={closeDialog}>Cancel</button>
            <button type="button" className="fl-btn fl-danger" data-testid="confirm-ok" onClick={() => { closeDialog(); d.onConfirm(); }}>{d.confirm}</button>
          </div>
        </Modal>
      );
    case "delete":
      return <DeleteDialog d={d} />;
    case "saveBeforeRun":
      return (
        <Modal title="Save before running?" onClose={closeDialog} testId="save-before-run">
          <p>{savedId
            ? <>The server runs the saved flow. Save your changes to <code>{savedId}</code> and run them?</>
            : "The server runs saved flows only. Save this flow (you pick its id) and run it?"}</p>
          <div className="fl-row fl-end">
            <button type="button" className="fl-btn" onClick={closeDialog}>Cancel</button>
            <button type="button" className="fl-btn fl-primary" data-testid="btn-save-run"
              onClick={() => { closeDialog(); void save(d.text); }}>{savedId ? "Save and run" : "Save…"}</button>
          </div>
        </Modal>
      );
    case "conflict":
      return (
        <Modal title="The flow changed on the server" onClose={closeDialog} testId="conflict-dialog">
          <p>{d.message}</p>
          <div className="fl-row fl-end">
            <button type="button" className="fl-btn" onClick={closeDialog}>Keep editing</button>
            <button type="button" className="fl-btn" onClick={() => guardUnsaved(() => void openFlow(savedId!), "Open the server's copy")}>Open the server's copy</button>
            <button type="button" className="fl-btn fl-primary" onClick={() => openDialog({ kind: "saveAs" })}>Save as…</button>
          </div>
        </Modal>
      );
    default:
      return null;
  }
}
