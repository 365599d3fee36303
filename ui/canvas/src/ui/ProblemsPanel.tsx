/** The validator's problems under the canvas: each names its JSON path; clicking one
 * selects the node or edge it is pinned to; "Declare" fixes an undeclared state field. */

import { useState } from "react";
import { declareFix, locate } from "../model/problems";
import { declare, select, setTab, useEditor } from "../store";

export function ProblemsPanel() {
  const validation = useEditor((s) => s.validation);
  const doc = useEditor((s) => s.doc);
  const [open, setOpen] = useState(true);
  if (!doc) return null;
  const { problems, pending, checked, error } = validation;
  const status = error ? `Validation unavailable: ${error}`
    : !checked ? "Checking…"
      : problems.length ? `${problems.length} problem${problems.length > 1 ? "s" : ""}` : "No problems: the flow is valid.";
  return (
    <div className={`fl-problems ${problems.length ? "bad" : "good"}${open ? " open" : ""}`}>
      <button type="button" className="fl-problems-head" onClick={() => setOpen(!open)} aria-expanded={open}>
        <span className="fl-problems-icon">{error ? "⚠" : problems.length ? "⚠" : "✓"}</span>
        <span data-testid="problems-status">{status}</span>
        {pending && <span className="fl-spinner" title="validating" />}
        <span className="fl-problems-toggle">{open ? "▾" : "▸"}</span>
      </button>
      <ul className="fl-problems-list" data-testid="problems" hidden={!open}>
        {problems.map((p, i) => {
          const where = locate(p.path, doc);
          const fix = declareFix(p);
          return (
            <li key={`${p.path}-${i}`} className="fl-problem" data-path={p.path}
              onClick={() => {
                if (where.kind === "node") select([where.nodeId], []);
                else if (where.kind === "edge") select([], [where.edgeId]);
                else select([], []);
                setTab("inspect");
              }}>
              <code>{p.path || "/"}</code>
              <span className="fl-problem-msg">{p.message}</span>
              {p.choices?.length ? <span className="fl-muted"> (choices: {p.choices.slice(0, 8).join(", ")})</span> : null}
              {fix && (
                <button type="button" className="fl-btn fl-small" onClick={(e) => { e.stopPropagation(); declare(fix.field, fix.type); }}>
                  Declare {fix.field}
                </button>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
