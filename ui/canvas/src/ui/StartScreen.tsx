/** The start screen: a blank flow, the example flows as templates (name, description, a
 * small preview), saved flows to open, recent flows, and unsaved work offered back. */

import { memo, useEffect, useMemo } from "react";
import type { FlowSummary } from "../api";
import { askDelete } from "../deleting";
import { positions } from "../model/canvas";
import { deletable, isTemplate } from "../model/flows";
import type { FlowDocument } from "../model/types";
import {
  discardDraft, guardUnsaved, loadTemplate, newBlank, openFlow, openTemplate, restoreDraft, useEditor,
} from "../store";

/** A flow's shape in miniature: boxes where its nodes sit, lines for its edges. */
export const Preview = memo(function Preview({ doc }: { doc?: FlowDocument }) {
  const shape = useMemo(() => {
    if (!doc) return null;
    const pos = positions(doc);
    const ids = Object.keys(pos);
    const xs = ids.map((id) => pos[id].x);
    const ys = ids.map((id) => pos[id].y);
    const minX = Math.min(...xs), maxX = Math.max(...xs) + 200, minY = Math.min(...ys), maxY = Math.max(...ys) + 80;
    return { pos, box: `${minX - 20} ${minY - 20} ${maxX - minX + 40} ${maxY - minY + 40}` };
  }, [doc]);
  if (!doc || !shape) return <div className="fl-preview fl-preview-empty" />;
  const { pos } = shape;
  const w = (id: string) => (id === "START" || id === "END" ? 110 : 200);
  return (
    <svg className="fl-preview" viewBox={shape.box} preserveAspectRatio="xMidYMid meet" aria-hidden>
      {doc.edges.map((e, i) => pos[e.source] && pos[e.target] && (
        <line key={i} x1={pos[e.source].x + w(e.source)} y1={pos[e.source].y + 30} x2={pos[e.target].x} y2={pos[e.target].y + 30}
          stroke="#94a3b8" strokeWidth={6} />
      ))}
      {Object.entries(pos).map(([id, p]) => (
        <rect key={id} x={p.x} y={p.y} width={w(id)} height={60} rx={14}
          fill={id === "START" || id === "END" ? "#e2e8f0" : "#eef2ff"} stroke={id === "START" || id === "END" ? "#94a3b8" : "#6366f1"} strokeWidth={5} />
      ))}
    </svg>
  );
});

const TRASH = (
  <svg width="14" height="14" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2"
    strokeLinecap="round" strokeLinejoin="round" aria-hidden>
    <path d="M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v6M14 11v6" />
  </svg>
);

/** Delete a flow (asks first); for a flow from a file, a button that does nothing and
 * whose tooltip says why. */
export function DeleteFlowButton({ id, name, flow, testId, className }: {
  id: string; name?: string; flow: FlowSummary | undefined; testId: string; className: string;
}) {
  const can = deletable(flow);
  return (
    <button type="button" className={`fl-btn ${className}`} data-testid={testId}
      aria-disabled={!can.ok} aria-label={`Delete ${name ?? id}`}
      title={can.ok ? `Delete “${name ?? id}” (${id}) from the server…` : can.why}
      onClick={() => { if (can.ok) askDelete(id, name); }}>{TRASH}</button>
  );
}

export function OpenList({ flows, filter = "", prefix = "open-" }: { flows: FlowSummary[]; filter?: string; prefix?: string }) {
  const q = filter.trim().toLowerCase();
  const shown = flows.filter((f) => !q || `${f.id} ${f.name} ${f.description ?? ""}`.toLowerCase().includes(q));
  if (!shown.length) return <p className="fl-muted">{flows.length ? "No flow matches." : "No flows on the server yet."}</p>;
  return (
    <ul className="fl-open-list">
      {shown.map((f) => (
        <li key={f.id} className="fl-open-row">
          <button type="button" className="fl-open-main" data-testid={`${prefix}${f.id}`} onClick={() => guardUnsaved(() => void openFlow(f.id), "Open")}>
            <span className="fl-open-name">{f.name}</span>
            <code className="fl-open-id">{f.id}</code>
            <span className={`fl-badge ${isTemplate(f) ? "example" : "saved"}`}>{isTemplate(f) ? "example" : "saved"}</span>
            {f.node_count !== undefined && <span className="fl-muted">{f.node_count} node{f.node_count === 1 ? "" : "s"}</span>}
            {f.description && <span className="fl-open-desc">{f.description}</span>}
          </button>
          <DeleteFlowButton id={f.id} name={f.name} flow={f} testId={`${prefix.replace(/open-$/, "")}delete-${f.id}`}
            className="fl-delete-row" />
        </li>
      ))}
    </ul>
  );
}

export function StartScreen() {
  const flows = useEditor((s) => s.flows);
  const flowsError = useEditor((s) => s.flowsError);
  const templates = useEditor((s) => s.templates);
  const recent = useEditor((s) => s.recent);
  const draft = useEditor((s) => s.draftOffer);
  const hasDoc = useEditor((s) => !!s.doc);
  const examples = flows.filter(isTemplate);
  const saved = flows.filter((f) => !isTemplate(f));
  useEffect(() => {
    for (const f of examples) void loadTemplate(f.id);
  }, [examples.map((f) => f.id).join()]);
  const known = new Set(flows.map((f) => f.id));
  return (
    <div className="fl-start">
      <div className="fl-start-inner">
        {draft && (
          <div className="fl-draft-offer" data-testid="draft-offer">
            <div>
              <strong>Unsaved work from {new Date(draft.at).toLocaleString()}</strong>: “{draft.doc.name}”
              {draft.savedId ? <> (<code>{draft.savedId}</code>)</> : " (never saved)"}, {draft.doc.nodes.length} node{draft.doc.nodes.length === 1 ? "" : "s"}.
            </div>
            <div className="fl-row">
              <button type="button" className="fl-btn fl-primary" data-testid="draft-restore" onClick={restoreDraft}>Restore</button>
              <button type="button" className="fl-btn" data-testid="draft-discard" onClick={discardDraft}>Discard</button>
            </div>
          </div>
        )}
        <h2>Start a flow</h2>
        <div className="fl-gallery">
          <button type="button" className="fl-card fl-card-blank" data-testid="new-blank"
            onClick={() => guardUnsaved(newBlank, "Start a blank flow")}>
            <div className="fl-preview fl-preview-blank">＋</div>
            <div className="fl-card-name">Blank flow</div>
            <div className="fl-card-desc">START and END; add nodes from the palette.</div>
          </button>
          {examples.map((f) => (
            <button key={f.id} type="button" className="fl-card" data-testid={`template-${f.id}`}
              onClick={() => guardUnsaved(() => void openTemplate(f.id), "Start from this template")}>
              <Preview doc={templates[f.id]} />
              <div className="fl-card-name">{f.name}</div>
              <div className="fl-card-desc">{f.description}</div>
            </button>
          ))}
        </div>
        <div className="fl-start-cols">
          <section>
            <h3>Open a saved flow</h3>
            {flowsError ? <div className="fl-error-box">The flows did not load: {flowsError}</div> : <OpenList flows={saved} prefix="start-open-" />}
            {examples.length > 0 && <details className="fl-examples-edit"><summary>Edit an example in place</summary><OpenList flows={examples} prefix="start-open-" /></details>}
          </section>
          <section>
            <h3>Recent</h3>
            {recent.length ? (
              <ul className="fl-open-list">
                {recent.map((r) => (
                  <li key={r.id}>
                    <button type="button" data-testid={`recent-${r.id}`} disabled={flows.length > 0 && !known.has(r.id)}
                      onClick={() => guardUnsaved(() => void openFlow(r.id), "Open")}>
                      <span className="fl-open-name">{r.name}</span><code className="fl-open-id">{r.id}</code>
                      <span className="fl-muted">{new Date(r.at).toLocaleDateString()}</span>
                    </button>
                  </li>
                ))}
              </ul>
            ) : <p className="fl-muted">Flows you open or save show here.</p>}
          </section>
        </div>
        {hasDoc && <p className="fl-muted">Your current flow stays open behind this screen until you pick another.</p>}
      </div>
    </div>
  );
}
