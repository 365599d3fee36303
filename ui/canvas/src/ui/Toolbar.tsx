/** The toolbar: which flow this is (its id is the id Save writes), whether it is saved
 * and valid, and the document commands. */

import { useRef } from "react";
import { canRedo, canUndo } from "../model/history";
import { autoLayout } from "../model/layout";
import { exportJson, importText, save } from "../saving";
import {
  edit, guardUnsaved, openDialog, redo, requestFit, showStart, toast, undo, useEditor,
} from "../store";
import { canvasBridge } from "./CanvasView";
import { DeleteFlowButton } from "./StartScreen";

/** Download `text` as a file (the iframe is allowed downloads). */
export function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Toolbar() {
  const doc = useEditor((s) => s.doc);
  const screen = useEditor((s) => s.screen);
  const savedId = useEditor((s) => s.savedId);
  const dirty = useEditor((s) => s.dirty);
  const saving = useEditor((s) => s.saving);
  const history = useEditor((s) => s.history);
  const problems = useEditor((s) => s.validation.problems.length);
  const checked = useEditor((s) => s.validation.checked);
  const listed = useEditor((s) => (s.savedId === null ? undefined : s.flows.find((f) => f.id === s.savedId)));
  const file = useRef<HTMLInputElement>(null);
  const editing = screen === "editor" && !!doc;
  return (
    <header className="fl-toolbar">
      <button type="button" className="fl-brand" onClick={showStart} title="Start screen: templates, open, recent">
        <span className="fl-logo">◆</span> flowloom <span className="fl-muted">Builder</span>
      </button>
      <div className="fl-identity">
        {doc && (
          <>
            <span className="fl-flow-name" title={doc.description ?? ""}>{doc.name}</span>
            <code className="fl-flow-id" data-testid="flow-id" title="The id Save writes">{savedId ?? doc.id}</code>
            {savedId === null ? <span className="fl-badge warn" data-testid="save-state">not saved yet</span>
              : dirty ? <span className="fl-badge warn" data-testid="save-state">unsaved changes</span>
                : <span className="fl-badge ok" data-testid="save-state">saved</span>}
            {checked && (problems ? <span className="fl-badge bad">{problems} problem{problems > 1 ? "s" : ""}</span>
              : <span className="fl-badge ok">valid</span>)}
          </>
        )}
      </div>
      <div className="fl-tools">
        <button type="button" className="fl-btn" data-testid="btn-new" onClick={() => guardUnsaved(showStart, "Start a new flow")} title="New flow: blank or from a template">New</button>
        <button type="button" className="fl-btn" data-testid="btn-open" onClick={() => openDialog({ kind: "open" })} title="Open a flow saved on the server">Open</button>
        <button type="button" className="fl-btn fl-primary" data-testid="btn-save" disabled={!editing || saving} onClick={() => void save()} title="Save (Ctrl-S)">{saving ? "Saving…" : "Save"}</button>
        <button type="button" className="fl-btn" data-testid="btn-save-as" disabled={!editing || saving} onClick={() => openDialog({ kind: "saveAs" })}>Save as…</button>
        {editing && savedId !== null && (
          <DeleteFlowButton id={savedId} name={doc!.name} flow={listed} testId="btn-delete" className="fl-icon fl-delete-tool" />
        )}
        <span className="fl-sep" />
        <button type="button" className="fl-btn fl-icon" data-testid="btn-undo" disabled={!editing || !history || !canUndo(history)} onClick={undo} title="Undo (Ctrl-Z)">↶</button>
        <button type="button" className="fl-btn fl-icon" data-testid="btn-redo" disabled={!editing || !history || !canRedo(history)} onClick={redo} title="Redo (Ctrl-Shift-Z)">↷</button>
        <button type="button" className="fl-btn" data-testid="btn-layout" disabled={!editing} title="Arrange the nodes left to right"
          onClick={() => { edit((d) => autoLayout(d, canvasBridge.sizes?.() ?? {})); requestFit(); }}>Auto layout</button>
        <span className="fl-sep" />
        <button type="button" className="fl-btn" data-testid="btn-import" onClick={() => file.current?.click()} title="Import a flow file (older versions are migrated)">Import</button>
        <input ref={file} type="file" accept=".json,application/json" hidden data-testid="import-file"
          onChange={async (e) => {
            const f = e.target.files?.[0];
            e.target.value = "";
            if (f) {
              const text = await f.text();
              guardUnsaved(() => void importText(text), "Import");
            }
          }} />
        <button type="button" className="fl-btn" data-testid="btn-export" disabled={!editing}
          onClick={async () => {
            const out = await exportJson();
            if (out) {
              download(out.name, out.text);
              toast(`Exported ${out.name}.`, "info", 2500);
            }
          }}>Export</button>
      </div>
    </header>
  );
}
