/** Auto layout: a layered left-to-right drawing (dagre), START first and END last. */

import dagre from "@dagrejs/dagre";
import { moveNodes, NODE_H, NODE_W } from "./document";
import { END, START, type FlowDocument, type Position } from "./types";

export interface Size {
  width: number;
  height: number;
}

/** New positions for every node; `sizes` are measured node sizes where known. */
export function layoutPositions(doc: FlowDocument, sizes: Record<string, Size> = {}): Record<string, Position> {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 36, ranksep: 90, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const size = (id: string): Size => sizes[id] ??
    (id === START || id === END ? { width: 90, height: 40 } : { width: NODE_W - 20, height: NODE_H - 20 });
  for (const id of [START, ...doc.nodes.map((n) => n.id), END]) g.setNode(id, { ...size(id) });
  const known = new Set([START, END, ...doc.nodes.map((n) => n.id)]);
  doc.edges.forEach((e, i) => {
    if (known.has(e.source) && known.has(e.target)) {
      g.setEdge(e.source, e.target, { minlen: 1, weight: e.condition ? 1 : 2 }, `e${i}`);
    }
  });
  dagre.layout(g);
  const out: Record<string, Position> = {};
  for (const id of g.nodes()) {
    const n = g.node(id);
    const s = size(id);
    out[id] = { x: Math.round(n.x - s.width / 2), y: Math.round(n.y - s.height / 2) };
  }
  return out;
}

export function autoLayout(doc: FlowDocument, sizes: Record<string, Size> = {}): FlowDocument {
  return moveNodes(doc, layoutPositions(doc, sizes));
}
