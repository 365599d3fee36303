/** The canvas: React Flow drawing the document. Positions move locally while a node is
 * dragged and become one document edit when it is dropped; everything else (connect,
 * reconnect an edge's end, delete, drop from the palette) is a document edit at once. */

import {
  Background, BackgroundVariant, Controls, MarkerType, MiniMap, ReactFlow, applyEdgeChanges,
  applyNodeChanges, useReactFlow, type Connection, type EdgeChange, type FinalConnectionState,
  type HandleType, type IsValidConnection, type NodeChange, type OnSelectionChangeParams,
} from "@xyflow/react";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { flushSync } from "react-dom";
import {
  BRANCH_PREFIX, conditionOf, OUT_HANDLE, reconnection, toCanvasEdges, toCanvasNodes,
  type CanvasEdge, type CanvasNode, type StepNode,
} from "../model/canvas";
import { connect, moveNodes, reconnectEdge } from "../model/document";
import { freeBranch } from "../model/routes";
import { END, START, type Position } from "../model/types";
import { addNode, edit, removeSelected, select, useEditor } from "../store";
import { CATEGORY_COLORS, nodeTypes } from "./nodes";

export const DRAG_TYPE = "application/x-flowloom-node";

/** What the palette asks of the canvas (set while the canvas is mounted). */
export const canvasBridge: {
  center?: () => Position;
  sizes?: () => Record<string, { width: number; height: number }>;
} = {};

const defaultEdgeOptions = {
  markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18, color: "#64748b" },
  style: { strokeWidth: 1.6, stroke: "#64748b" },
};

const proOptions = { hideAttribution: true };
const fitViewOptions = { padding: 0.15, maxZoom: 1.1 };
const deleteKeys = ["Delete", "Backspace"];
const multiKeys = ["Shift", "Meta", "Control"];

/** The node under the pointer where a drag ended (an edge's end dropped on a node's
 * body, away from its handles). */
function nodeAt(event: MouseEvent | TouchEvent, nodes: CanvasNode[]): CanvasNode | null {
  const p = "changedTouches" in event ? event.changedTouches[0] : event;
  if (!p) return null;
  const el = document.elementFromPoint(p.clientX, p.clientY)?.closest(".react-flow__node");
  const id = (el as HTMLElement | null)?.dataset.id;
  return id ? nodes.find((n) => n.id === id) ?? null : null;
}

/** Edges React Flow may draw: none out of END or into START, no loop but a router's branch. */
function allowed(c: { source: string; target: string; sourceHandle?: string | null }): boolean {
  return c.source !== END && c.target !== START && !(c.source === c.target && !conditionOf(c.sourceHandle ?? null));
}

export function CanvasView() {
  const doc = useEditor((s) => s.doc);
  const types = useEditor((s) => s.types);
  const analysis = useEditor((s) => s.validation.analysis);
  const pinnedEdges = useEditor((s) => s.validation.pinned.edges);
  const selection = useEditor((s) => s.selection);
  const fitRequest = useEditor((s) => s.fitRequest);
  const flow = useReactFlow<CanvasNode, CanvasEdge>();
  const wrapper = useRef<HTMLDivElement>(null);
  const [nodes, setNodes] = useState<CanvasNode[]>([]);
  const [edges, setEdges] = useState<CanvasEdge[]>([]);

  const nodesRef = useRef(nodes);
  nodesRef.current = nodes;
  const edgesRef = useRef(edges);
  edgesRef.current = edges;
  useLayoutEffect(() => {
    if (!doc) return;
    const next = toCanvasNodes(doc, { types, analysis }, nodesRef.current);
    const routes = new Map(next.filter((n) => n.type === "step").map((n) => [n.id, (n as StepNode).data.routes]));
    setNodes(next);
    setEdges(toCanvasEdges(doc, edgesRef.current, (id) => routes.get(id) ?? null));
  }, [doc, types, analysis]);

  // selection made elsewhere (a node added, a problem clicked) shows on the canvas
  useEffect(() => {
    const ns = new Set(selection.nodes);
    const es = new Set(selection.edges);
    setNodes((prev) => prev.some((n) => !!n.selected !== ns.has(n.id))
      ? prev.map((n) => (!!n.selected !== ns.has(n.id) ? { ...n, selected: ns.has(n.id) } as CanvasNode : n)) : prev);
    setEdges((prev) => prev.some((e) => !!e.selected !== es.has(e.id))
      ? prev.map((e) => (!!e.selected !== es.has(e.id) ? { ...e, selected: es.has(e.id) } : e)) : prev);
  }, [selection]);

  useEffect(() => {
    if (!fitRequest) return;
    // after React Flow measured the new nodes
    const t = window.setTimeout(() => void flow.fitView({ padding: 0.15, maxZoom: 1.1, duration: 0 }), 30);
    return () => window.clearTimeout(t);
  }, [fitRequest, flow]);

  useEffect(() => {
    canvasBridge.center = () => {
      const box = wrapper.current?.getBoundingClientRect();
      if (!box) return { x: 200, y: 120 };
      const p = flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 });
      return { x: Math.round(p.x - 110), y: Math.round(p.y - 60) };
    };
    canvasBridge.sizes = () => Object.fromEntries(flow.getNodes().filter((n) => n.measured?.width)
      .map((n) => [n.id, { width: n.measured!.width!, height: n.measured!.height! }]));
    return () => {
      canvasBridge.center = undefined;
      canvasBridge.sizes = undefined;
    };
  }, [flow]);

  const onNodesChange = useCallback((changes: NodeChange<CanvasNode>[]) => {
    // removal is a document edit (onDelete); the rest (drag, select, measure) is local
    const local = changes.filter((c) => c.type !== "remove");
    if (!local.length) return;
    const update = () => setNodes((prev) => applyNodeChanges(local, prev));
    // a dragged node is drawn in the frame of the pointer move, not one frame later
    if (local.some((c) => c.type === "position" && c.dragging)) flushSync(update);
    else update();
  }, []);

  const onEdgesChange = useCallback((changes: EdgeChange<CanvasEdge>[]) => {
    const local = changes.filter((c) => c.type !== "remove");
    if (local.length) setEdges((prev) => applyEdgeChanges(local, prev));
  }, []);

  const onNodeDragStop = useCallback((_e: unknown, _node: CanvasNode, dragged: CanvasNode[]) => {
    const positions: Record<string, Position> = {};
    for (const n of dragged) positions[n.id] = n.position;
    edit((d) => moveNodes(d, positions));
  }, []);

  const onDelete = useCallback(({ nodes: ns, edges: es }: { nodes: CanvasNode[]; edges: CanvasEdge[] }) => {
    removeSelected(ns.map((n) => n.id), es.map((e) => e.id));
  }, []);

  const onConnect = useCallback((c: Connection) => {
    edit((d) => connect(d, c.source, c.target, conditionOf(c.sourceHandle)));
  }, []);

  // an edge's end dragged to another handle (React Flow finds the handle), or dropped on
  // a node's body (found here): one document edit, the edge keeping its place and,
  // while it leaves the same branch, its condition
  const reconnected = useRef(false);
  const moveEdge = useCallback((old: CanvasEdge, c: { source: string; sourceHandle: string | null; target: string }) => {
    reconnected.current = true;
    let newId = old.id;
    const ok = edit((d) => {
      const [out, id] = reconnectEdge(d, old.id, reconnection(
        { source: old.source, sourceHandle: old.sourceHandle, condition: old.data?.condition }, c));
      newId = id;
      return out;
    });
    if (ok && newId !== old.id && useEditor.getState().selection.edges.includes(old.id)) select([], [newId]);
  }, []);

  const onReconnectStart = useCallback(() => { reconnected.current = false; }, []);

  const onReconnect = useCallback((old: CanvasEdge, c: Connection) => moveEdge(old, c), [moveEdge]);

  const onReconnectEnd = useCallback((event: MouseEvent | TouchEvent, old: CanvasEdge, fixed: HandleType,
    state: FinalConnectionState) => {
    if (reconnected.current || state.isValid) return;
    const node = nodeAt(event, nodesRef.current);
    if (!node) return; // dropped on the pane: the edge stays as it was
    let c: { source: string; sourceHandle: string | null; target: string };
    if (fixed === "source") { // its target end was dragged
      if (node.id === old.target) return;
      c = { source: old.source, sourceHandle: old.sourceHandle ?? null, target: node.id };
    } else {
      if (node.id === old.source) return;
      const routes = node.type === "step" ? node.data.routes : null;
      const taken = edgesRef.current.filter((e) => e.source === node.id).map((e) => e.data?.condition);
      const branch = freeBranch(routes, taken) ?? routes?.[0];
      c = { source: node.id, sourceHandle: branch ? `${BRANCH_PREFIX}${branch}` : OUT_HANDLE, target: old.target };
    }
    if (allowed(c)) moveEdge(old, c);
  }, [moveEdge]);

  const isValidConnection: IsValidConnection<CanvasEdge> = useCallback((c) => allowed(c), []);

  const onSelectionChange = useCallback(({ nodes: ns, edges: es }: OnSelectionChangeParams) => {
    select(ns.map((n) => n.id), es.map((e) => e.id));
  }, []);

  const onDragOver = useCallback((e: React.DragEvent) => {
    if (e.dataTransfer.types.includes(DRAG_TYPE)) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    }
  }, []);

  const onDrop = useCallback((e: React.DragEvent) => {
    const type = e.dataTransfer.getData(DRAG_TYPE);
    if (!type) return;
    e.preventDefault();
    const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
    addNode(type, { x: Math.round(p.x - 110), y: Math.round(p.y - 30) });
  }, [flow]);

  const shownEdges = useMemo(() => edges.map((e) => {
    const problems = pinnedEdges[e.id];
    if (!problems) return e;
    return { ...e, className: "fl-edge-problem", label: `⚠ ${e.label ?? ""}`.trim(),
      style: { stroke: "#dc2626", strokeWidth: 2 },
      markerEnd: { type: MarkerType.ArrowClosed, color: "#dc2626", width: 18, height: 18 } };
  }), [edges, pinnedEdges]);

  const minimapColor = useCallback((n: CanvasNode) => n.type === "terminal" ? "#94a3b8"
    : CATEGORY_COLORS[(n as StepNode).data.info?.category ?? ""] ?? "#94a3b8", []);

  if (!doc) return null;
  return (
    <div className="fl-canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop}>
      <ReactFlow<CanvasNode, CanvasEdge>
        nodes={nodes}
        edges={shownEdges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onNodeDragStop={onNodeDragStop}
        onDelete={onDelete}
        onConnect={onConnect}
        onReconnect={onReconnect}
        onReconnectStart={onReconnectStart}
        onReconnectEnd={onReconnectEnd}
        reconnectRadius={12}
        isValidConnection={isValidConnection}
        onSelectionChange={onSelectionChange}
        defaultEdgeOptions={defaultEdgeOptions}
        deleteKeyCode={deleteKeys}
        multiSelectionKeyCode={multiKeys}
        selectionKeyCode="Shift"
        connectionRadius={28}
        minZoom={0.1}
        maxZoom={2}
        proOptions={proOptions}
        fitView
        fitViewOptions={fitViewOptions}
      >
        <Background variant={BackgroundVariant.Dots} gap={18} size={1.2} color="#cbd5e1" />
        <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={2} maskColor="rgba(241,245,249,0.7)" />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
