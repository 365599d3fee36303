/** The node palette: every node type the server has, searchable, grouped by category;
 * drag one onto the canvas, or click it to add it in the middle of the view. */

import { memo, useMemo, useState } from "react";
import type { NodeTypeInfo } from "../model/types";
import { addNode, useEditor } from "../store";
import { canvasBridge, DRAG_TYPE } from "./CanvasView";
import { CATEGORY_COLORS } from "./nodes";

const CATEGORY_ORDER = ["models", "retrieval", "agents", "routing", "tools", "state"];
const CATEGORY_TITLES: Record<string, string> = {
  models: "Models", retrieval: "Retrieval", agents: "Agents", routing: "Routing",
  tools: "Tools", state: "State",
};

const PaletteItem = memo(function PaletteItem({ t }: { t: NodeTypeInfo }) {
  return (
    <button type="button" className="fl-palette-item" data-testid={`palette-${t.type}`} draggable
      style={{ ["--cat" as string]: CATEGORY_COLORS[t.category] ?? "#94a3b8" }}
      title={`${t.description}\n\nDrag onto the canvas, or click to add.`}
      onDragStart={(e) => {
        e.dataTransfer.setData(DRAG_TYPE, t.type);
        e.dataTransfer.setData("text/plain", t.type);
        e.dataTransfer.effectAllowed = "copy";
      }}
      onClick={() => addNode(t.type, canvasBridge.center?.(), { avoidOverlap: true })}>
      <span className="fl-palette-name"><span className="fl-cat-dot" />{t.name}<span className="fl-palette-version">@{t.version}</span></span>
      <span className="fl-palette-desc">{t.description}</span>
    </button>
  );
});

export function Palette() {
  const types = useEditor((s) => s.typeList);
  const error = useEditor((s) => s.catalogError);
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const q = query.trim().toLowerCase();
    const hits = types.filter((t) => !q || `${t.type} ${t.category} ${t.description}`.toLowerCase().includes(q));
    const by = new Map<string, NodeTypeInfo[]>();
    for (const t of hits) by.set(t.category, [...(by.get(t.category) ?? []), t]);
    const order = [...CATEGORY_ORDER, ...[...by.keys()].filter((c) => !CATEGORY_ORDER.includes(c)).sort()];
    return order.filter((c) => by.has(c)).map((c) => [c, by.get(c)!.sort((a, b) => a.type.localeCompare(b.type))] as const);
  }, [types, query]);
  return (
    <aside className="fl-palette" aria-label="Node palette">
      <div className="fl-panel-title">Nodes</div>
      <input className="fl-input fl-search" placeholder="Search nodes…" value={query} data-testid="palette-search"
        onChange={(e) => setQuery(e.target.value)} />
      {error && <div className="fl-error-box">The node catalogue did not load: {error}</div>}
      <div className="fl-palette-groups">
        {groups.map(([cat, list]) => (
          <section key={cat} className="fl-palette-group">
            <h4>{CATEGORY_TITLES[cat] ?? cat}</h4>
            {list.map((t) => <PaletteItem key={t.type} t={t} />)}
          </section>
        ))}
        {!groups.length && types.length > 0 && <div className="fl-muted">No node type matches “{query}”.</div>}
      </div>
      <div className="fl-palette-hint">Drag a node onto the canvas, or click to add it.</div>
    </aside>
  );
}
