/** The document as React Flow nodes and edges, and back.
 *
 * Conversions reuse the previous node and edge objects for everything that did not
 * change (same node spec, same position, same branches), so React Flow's memoized node
 * components skip them: an edit of one node in a 200-node flow redraws one node. */

import type { Edge, Node } from "@xyflow/react";
import { edgeIds, NODE_H, NODE_W } from "./document";
import { branchLabels } from "./routes";
import { keyParams } from "./schema";
import {
  END, START,
  type FlowDocument, type NodeAnalysis, type NodeSpec, type NodeTypeInfo, type Position,
} from "./types";

export interface StepNodeData extends Record<string, unknown> {
  spec: NodeSpec;
  info?: NodeTypeInfo;
  routes: string[] | null;
  keyParams: [string, string][];
}

export interface TerminalNodeData extends Record<string, unknown> {
  end: typeof START | typeof END;
}

export type StepNode = Node<StepNodeData, "step">;
export type TerminalNode = Node<TerminalNodeData, "terminal">;
export type CanvasNode = StepNode | TerminalNode;

export interface CanvasEdgeData extends Record<string, unknown> {
  condition?: string;
  index: number;
}
export type CanvasEdge = Edge<CanvasEdgeData>;

export const BRANCH_PREFIX = "branch:";
export const OUT_HANDLE = "out";
export const IN_HANDLE = "in";

/** Every node's position: its layout entry, else a free slot on a row below; START left
 * of the leftmost node and END right of the rightmost one when the layout has none. */
export function positions(doc: FlowDocument): Record<string, Position> {
  const layout = doc.layout.nodes;
  const out: Record<string, Position> = {};
  let missing = 0;
  const placed = doc.nodes.map((n) => layout[n.id]).filter(Boolean);
  const maxY = placed.length ? Math.max(...placed.map((p) => p.y)) : 0;
  for (const node of doc.nodes) {
    const p = layout[node.id];
    out[node.id] = p ? { x: p.x, y: p.y }
      : { x: NODE_W * (1 + missing++), y: maxY + NODE_H * 1.5 };
  }
  const pts = doc.nodes.map((n) => out[n.id]);
  const xs = pts.length ? pts.map((p) => p.x) : [NODE_W];
  const ys = pts.length ? pts.map((p) => p.y) : [NODE_H];
  const mid = (Math.min(...ys) + Math.max(...ys)) / 2;
  out[START] = layout[START] ?? { x: Math.min(...xs) - NODE_W * 0.8, y: mid };
  out[END] = layout[END] ?? { x: Math.max(...xs) + NODE_W * 1.2, y: mid };
  return out;
}

export interface CanvasContext {
  types: Record<string, NodeTypeInfo>;
  analysis?: Record<string, NodeAnalysis>;
}

function sameList(a: unknown[] | null, b: unknown[] | null): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  return a.every((x, i) => JSON.stringify(x) === JSON.stringify(b[i]));
}

/** React Flow nodes of the document; objects of `prev` are reused where nothing changed
 * (their selection kept). */
export function toCanvasNodes(doc: FlowDocument, ctx: CanvasContext, prev: CanvasNode[] = []): CanvasNode[] {
  const old = new Map(prev.map((n) => [n.id, n]));
  const pos = positions(doc);
  const out: CanvasNode[] = [];
  for (const end of [START, END] as const) {
    const before = old.get(end) as TerminalNode | undefined;
    // without a layout entry, START and END stay where they were drawn first
    const p = doc.layout.nodes[end] ?? before?.position ?? pos[end];
    if (before && before.position.x === p.x && before.position.y === p.y) out.push(before);
    else {
      out.push({ id: end, type: "terminal", position: p, data: { end }, deletable: false,
        selected: before?.selected ?? false });
    }
  }
  for (const spec of doc.nodes) {
    const p = pos[spec.id];
    const info = ctx.types[spec.type];
    const routes = branchLabels(spec, info, ctx.analysis?.[spec.id]);
    const before = old.get(spec.id) as StepNode | undefined;
    if (before && before.type === "step" && before.data.spec === spec && before.data.info === info &&
        sameList(before.data.routes, routes) && before.position.x === p.x &&
        before.position.y === p.y) {
      out.push(before);
      continue;
    }
    const data: StepNodeData = before && before.data.spec === spec && before.data.info === info
      ? { ...before.data, routes: sameList(before.data.routes, routes) ? before.data.routes : routes }
      : { spec, info, routes, keyParams: keyParams(spec, info) };
    out.push({ id: spec.id, type: "step", position: p, data, selected: before?.selected ?? false });
  }
  return out;
}

/** React Flow edges of the document: a router branch's edge leaves that branch's handle
 * and carries its label (an edge whose branch the node lacks leaves its plain handle, so
 * it is still drawn); `prev`'s objects are reused where nothing changed. */
export function toCanvasEdges(
  doc: FlowDocument, prev: CanvasEdge[] = [], routesOf: (id: string) => string[] | null = () => null,
): CanvasEdge[] {
  const old = new Map(prev.map((e) => [e.id, e]));
  const ids = edgeIds(doc);
  return doc.edges.map((e, index) => {
    const id = ids[index];
    const condition = e.condition ?? undefined;
    const sourceHandle = condition && routesOf(e.source)?.includes(condition)
      ? `${BRANCH_PREFIX}${condition}` : OUT_HANDLE;
    const before = old.get(id);
    if (before && before.data?.index === index && before.sourceHandle === sourceHandle) return before;
    return {
      id,
      source: e.source,
      target: e.target,
      sourceHandle,
      targetHandle: IN_HANDLE,
      label: condition,
      data: { condition, index },
      selected: before?.selected ?? false,
    };
  });
}

export interface EdgeEnds {
  source: string;
  target: string;
  condition?: string | null;
}

/** Where a reconnected edge goes: the new ends of `connection`, and its condition. The
 * edge keeps its condition while it leaves the same source from the same handle (its
 * target moved, or it was dropped back); moved to another branch handle it takes that
 * branch; moved to another node it takes the branch it was dropped on, if any. */
export function reconnection(
  old: { source: string; sourceHandle?: string | null; condition?: string | null },
  connection: { source: string; sourceHandle?: string | null; target: string },
): EdgeEnds {
  const handle = connection.sourceHandle ?? null;
  const sameSource = connection.source === old.source &&
    (handle === null || handle === (old.sourceHandle ?? null));
  const condition = sameSource ? (old.condition || null) : conditionOf(handle);
  return { source: connection.source, target: connection.target, condition };
}

/** The condition an edge drawn from `sourceHandle` carries (a router's branch), if any. */
export function conditionOf(sourceHandle: string | null | undefined): string | null {
  return sourceHandle?.startsWith(BRANCH_PREFIX) ? sourceHandle.slice(BRANCH_PREFIX.length) : null;
}
