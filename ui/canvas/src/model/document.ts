/** Edits of a flow document: pure functions that return a new document and share every
 * node, edge and section that did not change (so React can skip what did not change,
 * and a history of 100 documents costs little). An edit that would break the document
 * throws `ModelError` with a message that says what and why. */

import {
  END, ID_PATTERN, ModelError, SCHEMA_VERSION, START,
  type EdgeSpec, type FlowDocument, type JsonSchema, type NodeSpec, type NodeTypeInfo,
  type Params, type Position, type StateField,
} from "./types";

export function newDocument(id = "untitled", name = "Untitled flow"): FlowDocument {
  return {
    schema_version: SCHEMA_VERSION,
    id,
    name,
    description: "",
    state: { messages: { type: "messages", description: "The conversation so far." } },
    nodes: [],
    edges: [],
    io: {},
    recursion_limit: 25,
    metadata: {},
    layout: { nodes: {} },
  };
}

/** A document from the server or a file, with every section the editor reads present. */
export function normalizeDocument(raw: unknown): FlowDocument {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ModelError("a flow document must be a JSON object");
  }
  const doc = raw as Partial<FlowDocument>;
  if (!Array.isArray(doc.nodes ?? [])) throw new ModelError("nodes must be a list");
  if (!Array.isArray(doc.edges ?? [])) throw new ModelError("edges must be a list");
  const nodes = (doc.nodes ?? []).map((n, i) => {
    if (!n || typeof n !== "object" || typeof n.id !== "string") {
      throw new ModelError(`nodes[${i}] needs a string id`);
    }
    return { ...n, params: n.params && typeof n.params === "object" ? n.params : {} };
  });
  const edges = (doc.edges ?? []).map((e, i) => {
    if (!e || typeof e.source !== "string" || typeof e.target !== "string") {
      throw new ModelError(`edges[${i}] needs a string source and target`);
    }
    return e;
  });
  const layoutNodes = doc.layout?.nodes && typeof doc.layout.nodes === "object"
    ? doc.layout.nodes : {};
  return {
    ...doc,
    schema_version: doc.schema_version ?? SCHEMA_VERSION,
    id: typeof doc.id === "string" ? doc.id : "untitled",
    name: typeof doc.name === "string" ? doc.name : String(doc.id ?? "Untitled flow"),
    state: doc.state && typeof doc.state === "object" ? doc.state : {},
    nodes,
    edges,
    layout: { ...(doc.layout ?? {}), nodes: layoutNodes },
  } as FlowDocument;
}

// -- ids ------------------------------------------------------------------------------

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id) && id !== START && id !== END;
}

/** `base` made a valid id, suffixed `_2`, `_3`, ... until it is not in `taken`. */
export function uniqueId(base: string, taken: Iterable<string>): string {
  let slug = base.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^[_-]+|[_-]+$/g, "") || "node";
  if (!/^[A-Za-z_]/.test(slug)) slug = `n_${slug}`;
  slug = slug.slice(0, 60);
  const used = new Set([...taken, START, END]);
  if (!used.has(slug)) return slug;
  let n = 2;
  while (used.has(`${slug}_${n}`)) n += 1;
  return `${slug}_${n}`;
}

function checkNodeId(doc: FlowDocument, id: string, oldId?: string): void {
  if (id === START || id === END) throw new ModelError(`'${id}' is reserved for the graph's ends`);
  if (!ID_PATTERN.test(id)) {
    throw new ModelError(`'${id}' is not a valid id: use letters, digits, '_' and '-', ` +
      "starting with a letter or '_' (at most 64)");
  }
  if (id !== oldId && doc.nodes.some((n) => n.id === id)) {
    throw new ModelError(`a node '${id}' exists already`);
  }
}

export function nodeIndex(doc: FlowDocument, id: string): number {
  const i = doc.nodes.findIndex((n) => n.id === id);
  if (i < 0) throw new ModelError(`no node '${id}'`);
  return i;
}

export function getNode(doc: FlowDocument, id: string): NodeSpec | undefined {
  return doc.nodes.find((n) => n.id === id);
}

function replaceNode(doc: FlowDocument, id: string, fn: (n: NodeSpec) => NodeSpec): FlowDocument {
  const i = nodeIndex(doc, id);
  const next = fn(doc.nodes[i]);
  if (next === doc.nodes[i]) return doc;
  const nodes = doc.nodes.slice();
  nodes[i] = next;
  return { ...doc, nodes };
}

// -- params from a JSON Schema ---------------------------------------------------------

/** Each top-level property's JSON Schema default (a required one without a default is
 * left for the user, and validation names it). */
export function defaultParams(schema: JsonSchema): Params {
  const out: Params = {};
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop && typeof prop === "object" && "default" in prop && prop.default !== null) {
      out[name] = structuredClone(prop.default);
    }
  }
  return out;
}

// -- nodes ----------------------------------------------------------------------------

export const NODE_W = 260;
export const NODE_H = 120;

/** Where a node added without a drop point goes: right of the rightmost node. */
export function nextPosition(doc: FlowDocument): Position {
  const pts = Object.entries(doc.layout.nodes).filter(([k]) => k !== START && k !== END)
    .map(([, p]) => p);
  if (!pts.length) return { x: NODE_W, y: NODE_H };
  return { x: Math.max(...pts.map((p) => p.x)) + NODE_W, y: Math.min(...pts.map((p) => p.y)) };
}

/** `p`, or the nearest spot below it (then right of it) where a new node does not cover
 * another: click-to-add never stacks nodes. */
export function freePosition(doc: FlowDocument, p: Position, w = NODE_W - 20, h = 100): Position {
  const taken = Object.values(doc.layout.nodes);
  const free = (q: Position) => !taken.some((t) => Math.abs(t.x - q.x) < w && Math.abs(t.y - q.y) < h);
  for (let col = 0; col < 8; col++) {
    for (let row = 0; row < 6; row++) {
      const q = { x: Math.round(p.x + col * (w + 30)), y: Math.round(p.y + row * (h + 10)) };
      if (free(q)) return q;
    }
  }
  return p;
}

/** A node of a catalogue entry with its default params, an id from the type's name
 * (`chat`, `chat_2`, ...) and a canvas position. */
export function addNode(
  doc: FlowDocument, nodeType: Pick<NodeTypeInfo, "type" | "params_schema">,
  opts: { position?: Position; id?: string; params?: Params } = {},
): [FlowDocument, string] {
  const base = opts.id ?? nodeType.type.split("@")[0].split(".").pop() ?? "node";
  const id = uniqueId(base, doc.nodes.map((n) => n.id));
  const node: NodeSpec = {
    id, type: nodeType.type,
    params: opts.params ?? defaultParams(nodeType.params_schema ?? {}),
  };
  const pos = opts.position ?? nextPosition(doc);
  return [{
    ...doc,
    nodes: [...doc.nodes, node],
    layout: { ...doc.layout, nodes: { ...doc.layout.nodes, [id]: { x: pos.x, y: pos.y } } },
  }, id];
}

/** Without the nodes (their edges and positions too) and the edges named. */
export function removeElements(
  doc: FlowDocument, nodeIds: Iterable<string>, edgeIds: Iterable<string> = [],
): FlowDocument {
  const gone = new Set([...nodeIds].filter((id) => id !== START && id !== END));
  const goneEdges = new Set(edgeIds);
  if (!gone.size && !goneEdges.size) return doc;
  const ids = edgeIds_(doc.edges);
  const edges = doc.edges.filter((e, i) =>
    !gone.has(e.source) && !gone.has(e.target) && !goneEdges.has(ids[i]));
  const nodes = doc.nodes.filter((n) => !gone.has(n.id));
  if (nodes.length === doc.nodes.length && edges.length === doc.edges.length) return doc;
  const layoutNodes = { ...doc.layout.nodes };
  for (const id of gone) delete layoutNodes[id];
  return { ...doc, nodes, edges, layout: { ...doc.layout, nodes: layoutNodes } };
}

/** The node under a new id: its edges and position follow (order kept). */
export function renameNode(doc: FlowDocument, oldId: string, newId: string): FlowDocument {
  if (newId === oldId) return doc;
  checkNodeId(doc, newId, oldId);
  const out = replaceNode(doc, oldId, (n) => ({ ...n, id: newId }));
  const edges = out.edges.map((e) => (e.source === oldId || e.target === oldId)
    ? { ...e, source: e.source === oldId ? newId : e.source,
        target: e.target === oldId ? newId : e.target }
    : e);
  const layoutNodes: Record<string, Position> = {};
  for (const [k, v] of Object.entries(out.layout.nodes)) layoutNodes[k === oldId ? newId : k] = v;
  return { ...out, edges, layout: { ...out.layout, nodes: layoutNodes } };
}

export function setLabel(doc: FlowDocument, id: string, label: string): FlowDocument {
  return replaceNode(doc, id, (n) => {
    const clean = label.trim() ? label : undefined;
    if ((n.label ?? undefined) === clean) return n;
    const { label: _old, ...rest } = n;
    return clean === undefined ? rest : { ...rest, label: clean };
  });
}

function stripUndefined(params: Params): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) if (v !== undefined) out[k] = v;
  return out;
}

/** The node's params replaced (undefined values dropped); the same document when equal. */
export function setParams(doc: FlowDocument, id: string, params: Params): FlowDocument {
  const clean = stripUndefined(params);
  return replaceNode(doc, id, (n) =>
    stableStringify(n.params) === stableStringify(clean) ? n : { ...n, params: clean });
}

/** One param set; `undefined` removes it (the type's default applies). */
export function setParam(doc: FlowDocument, id: string, name: string, value: unknown): FlowDocument {
  const node = doc.nodes[nodeIndex(doc, id)];
  return setParams(doc, id, { ...node.params, [name]: value });
}

/** Positions of nodes (START and END included), rounded to whole pixels. */
export function moveNodes(doc: FlowDocument, positions: Record<string, Position>): FlowDocument {
  let changed = false;
  const layoutNodes = { ...doc.layout.nodes };
  for (const [id, p] of Object.entries(positions)) {
    const q = { x: Math.round(p.x), y: Math.round(p.y) };
    const old = layoutNodes[id];
    if (old && old.x === q.x && old.y === q.y) continue;
    if (id !== START && id !== END && !doc.nodes.some((n) => n.id === id)) continue;
    layoutNodes[id] = q;
    changed = true;
  }
  return changed ? { ...doc, layout: { ...doc.layout, nodes: layoutNodes } } : doc;
}

// -- edges ----------------------------------------------------------------------------

function edgeKey(e: EdgeSpec): string {
  return `${e.source}->${e.target}${e.condition ? `:${e.condition}` : ""}`;
}

function edgeIds_(edges: EdgeSpec[]): string[] {
  const seen = new Map<string, number>();
  return edges.map((e) => {
    const key = edgeKey(e);
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    return `e:${key}${n > 1 ? `#${n}` : ""}`;
  });
}

/** The canvas id of each edge: its ends and condition (`#n` for repeats), so an id names
 * the same edge after others are added or removed. */
export function edgeIds(doc: FlowDocument): string[] {
  return edgeIds_(doc.edges);
}

export function edgeIndex(doc: FlowDocument, edgeId: string): number {
  const i = edgeIds_(doc.edges).indexOf(edgeId);
  if (i < 0) throw new ModelError(`no edge '${edgeId}'`);
  return i;
}

/** A new edge; refused for END as a source, START as a target, unknown ends, or an edge
 * that exists already. `condition` is the router branch that takes it. */
export function connect(
  doc: FlowDocument, source: string, target: string, condition?: string | null,
): FlowDocument {
  if (source === END) throw new ModelError("END cannot be an edge's source");
  if (target === START) throw new ModelError("START cannot be an edge's target");
  const ids = doc.nodes.map((n) => n.id);
  for (const [end, name] of [["source", source], ["target", target]] as const) {
    if (name !== START && name !== END && !ids.includes(name)) {
      throw new ModelError(`${end} '${name}' is not a node; nodes are: ${ids.join(", ")}`);
    }
  }
  const cond = condition || undefined;
  if (doc.edges.some((e) => e.source === source && e.target === target &&
      (e.condition || undefined) === cond)) {
    throw new ModelError(`the edge ${source} → ${target}${cond ? ` (${cond})` : ""} exists already`);
  }
  const edge: EdgeSpec = cond ? { source, target, condition: cond } : { source, target };
  return { ...doc, edges: [...doc.edges, edge] };
}

/** The edge moved to new ends (an end dragged to another node or handle), in place: it
 * keeps its position in the list, so problems and run traces that name edges by index
 * stay put. Refused like `connect`; returns the edge's new id too. */
export function reconnectEdge(
  doc: FlowDocument, edgeId: string, to: { source: string; target: string; condition?: string | null },
): [FlowDocument, string] {
  const i = edgeIndex(doc, edgeId);
  const old = doc.edges[i];
  const cond = to.condition || undefined;
  if (old.source === to.source && old.target === to.target && (old.condition || undefined) === cond) {
    return [doc, edgeId];
  }
  const others = { ...doc, edges: doc.edges.filter((_, j) => j !== i) };
  const checked = connect(others, to.source, to.target, cond); // the same refusals as a new edge
  const edges = doc.edges.slice();
  edges[i] = checked.edges[checked.edges.length - 1];
  return [{ ...doc, edges }, edgeIds_(edges)[i]];
}

export function disconnect(doc: FlowDocument, edgeId: string): FlowDocument {
  return removeElements(doc, [], [edgeId]);
}

/** The edge's router branch set (or cleared with null/""); returns the new edge id too. */
export function setEdgeCondition(
  doc: FlowDocument, edgeId: string, condition: string | null,
): [FlowDocument, string] {
  const i = edgeIndex(doc, edgeId);
  const old = doc.edges[i];
  const cond = condition || undefined;
  if ((old.condition || undefined) === cond) return [doc, edgeId];
  if (doc.edges.some((e, j) => j !== i && e.source === old.source && e.target === old.target &&
      (e.condition || undefined) === cond)) {
    throw new ModelError(`the edge ${old.source} → ${old.target}${cond ? ` (${cond})` : ""} exists already`);
  }
  const edges = doc.edges.slice();
  edges[i] = cond ? { source: old.source, target: old.target, condition: cond }
    : { source: old.source, target: old.target };
  const out = { ...doc, edges };
  return [out, edgeIds_(edges)[i]];
}

// -- state and flow settings ------------------------------------------------------------

export function declareState(doc: FlowDocument, name: string, field: StateField): FlowDocument {
  if (!ID_PATTERN.test(name)) {
    throw new ModelError(`'${name}' is not a valid state field name: use letters, digits, ` +
      "'_' and '-', starting with a letter or '_'");
  }
  const clean: StateField = {};
  for (const [k, v] of Object.entries(field)) {
    if (v !== undefined && v !== null && v !== "") (clean as Record<string, unknown>)[k] = v;
  }
  if (stableStringify(doc.state[name]) === stableStringify(clean)) return doc;
  return { ...doc, state: { ...doc.state, [name]: clean } };
}

export function removeState(doc: FlowDocument, name: string): FlowDocument {
  if (!(name in doc.state)) return doc;
  const state = { ...doc.state };
  delete state[name];
  return { ...doc, state };
}

export function renameState(doc: FlowDocument, oldName: string, newName: string): FlowDocument {
  if (oldName === newName) return doc;
  if (!(oldName in doc.state)) throw new ModelError(`no state field '${oldName}'`);
  if (newName in doc.state) throw new ModelError(`a state field '${newName}' exists already`);
  if (!ID_PATTERN.test(newName)) {
    throw new ModelError(`'${newName}' is not a valid state field name`);
  }
  const state: Record<string, StateField> = {};
  for (const [k, v] of Object.entries(doc.state)) state[k === oldName ? newName : k] = v;
  return { ...doc, state };
}

export interface FlowInfo {
  name?: string;
  description?: string;
  io?: { input?: string | null; output?: string | null };
  recursion_limit?: number;
}

export function setFlowInfo(doc: FlowDocument, info: FlowInfo): FlowDocument {
  let out = doc;
  if (info.name !== undefined && info.name !== doc.name) out = { ...out, name: info.name };
  if (info.description !== undefined && info.description !== (doc.description ?? "")) {
    out = { ...out, description: info.description };
  }
  if (info.io !== undefined) {
    const io: { input?: string; output?: string } = {};
    if (info.io.input) io.input = info.io.input;
    if (info.io.output) io.output = info.io.output;
    if (stableStringify(io) !== stableStringify(doc.io ?? {})) out = { ...out, io };
  }
  if (info.recursion_limit !== undefined && info.recursion_limit !== doc.recursion_limit) {
    out = { ...out, recursion_limit: info.recursion_limit };
  }
  return out;
}

/** The document under another id (Save as). */
export function withId(doc: FlowDocument, id: string): FlowDocument {
  if (!isValidId(id)) {
    throw new ModelError(`'${id}' is not a valid flow id: use letters, digits, '_' and '-', ` +
      "starting with a letter or '_' (at most 64)");
  }
  return id === doc.id ? doc : { ...doc, id };
}

// -- serialization ----------------------------------------------------------------------

/** JSON with object keys sorted (arrays keep their order): equal documents, equal text. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? "undefined";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined && v !== null) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** The document as a file: the server's key order where it has one, 2-space indent. */
export function toJson(doc: FlowDocument): string {
  const order = ["schema_version", "id", "name", "description", "state", "nodes", "edges", "io",
    "recursion_limit", "metadata", "layout", "prompts"];
  const out: Record<string, unknown> = {};
  for (const k of order) if ((doc as any)[k] !== undefined) out[k] = (doc as any)[k];
  for (const [k, v] of Object.entries(doc)) if (!(k in out) && v !== undefined) out[k] = v;
  return JSON.stringify(out, null, 2) + "\n";
}

/** Equality of what a save would write (null and absent keys are the same). */
export function sameContent(a: FlowDocument | null, b: FlowDocument | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return stableStringify(a) === stableStringify(b);
}
