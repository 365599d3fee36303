/** "Use it": copyable snippets that call the saved flow from code. */

import { useState } from "react";
import { snippets } from "../model/snippets";
import { toast, useEditor } from "../store";

/** Copy `text`: the Clipboard API where the iframe may use it, else a selected textarea. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

export function UseIt() {
  const doc = useEditor((s) => s.doc);
  const savedId = useEditor((s) => s.savedId);
  const dirty = useEditor((s) => s.dirty);
  const api = useEditor((s) => s.api);
  const [which, setWhich] = useState("curl");
  if (!doc || !api) return null;
  if (!savedId) {
    return <div className="fl-use"><p className="fl-muted">Save the flow first: the snippets call it on the server by its id.</p></div>;
  }
  const list = snippets({ ...doc, id: savedId }, api.baseUrl, { keyed: api.keyed });
  const current = list.find((s) => s.id === which) ?? list[0];
  return (
    <div className="fl-use">
      <p className="fl-muted">Call <code>{savedId}</code> on <code>{api.baseUrl}</code> from code{dirty ? " (as last saved)" : ""}:</p>
      <div className="fl-seg" role="tablist">
        {list.map((s) => (
          <button key={s.id} type="button" role="tab" aria-selected={s.id === current.id} data-testid={`snippet-tab-${s.id}`}
            className={s.id === current.id ? "on" : ""} onClick={() => setWhich(s.id)}>{s.title}</button>
        ))}
      </div>
      <div className="fl-snippet">
        <button type="button" className="fl-btn fl-small fl-copy" data-testid={`copy-${current.id}`}
          onClick={async () => toast((await copyText(current.code)) ? "Copied." : "Copy failed: select the text and copy it.", "info", 2000)}>
          Copy
        </button>
        <pre data-testid={`snippet-${current.id}`}>{current.code}</pre>
      </div>
    </div>
  );
}
