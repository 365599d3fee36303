/** Validator problems pinned to what they name: a node (and the param inside it), an
 * edge, or the flow as a whole; and the fixes the editor offers for them. */

import { edgeIds } from "./document";
import type { FlowDocument, Problem, StateType } from "./types";

export type Location =
  | { kind: "node"; nodeId: string; param?: string; path?: (string | number)[] }
  | { kind: "edge"; edgeId: string }
  | { kind: "flow" };

const NODE_PATH = /^nodes\[(\d+)\](?:\.params((?:\.[A-Za-z0-9_]+|\[\d+\])*))?/;
const EDGE_PATH = /^edges\[(\d+)\]/;
const LAYOUT_PATH = /^layout\.nodes\.(.+)$/;

/** `.routes[0].label` as `["routes", 0, "label"]`. */
export function splitPath(rest: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of rest.matchAll(/\.([A-Za-z0-9_]+)|\[(\d+)\]/g)) {
    out.push(m[1] !== undefined ? m[1] : Number(m[2]));
  }
  return out;
}

/** What a problem's JSON path (`nodes[2].params.temperature`, `edges[1].target`) names. */
export function locate(path: string, doc: FlowDocument): Location {
  let m = NODE_PATH.exec(path ?? "");
  if (m) {
    const node = doc.nodes[Number(m[1])];
    if (node) {
      const parts = m[2] ? splitPath(m[2]) : [];
      return { kind: "node", nodeId: node.id,
        param: typeof parts[0] === "string" ? parts[0] : undefined, path: parts };
    }
    return { kind: "flow" };
  }
  m = EDGE_PATH.exec(path ?? "");
  if (m) {
    const ids = edgeIds(doc);
    const i = Number(m[1]);
    return i < ids.length ? { kind: "edge", edgeId: ids[i] } : { kind: "flow" };
  }
  m = LAYOUT_PATH.exec(path ?? "");
  if (m && doc.nodes.some((n) => n.id === m![1])) return { kind: "node", nodeId: m[1] };
  return { kind: "flow" };
}

export interface Pinned {
  nodes: Record<string, Problem[]>;
  edges: Record<string, Problem[]>;
  flow: Problem[];
  count: number;
}

export const NO_PROBLEMS: Pinned = { nodes: {}, edges: {}, flow: [], count: 0 };

/** Problems grouped by what they name. Groups equal to `prev`'s are `prev`'s own arrays,
 * so a node whose problems did not change is not drawn again. */
export function pinProblems(problems: Problem[], doc: FlowDocument, prev?: Pinned): Pinned {
  if (!problems.length) return NO_PROBLEMS;
  const out: Pinned = { nodes: {}, edges: {}, flow: [], count: problems.length };
  for (const p of problems) {
    const where = locate(p.path, doc);
    if (where.kind === "node") (out.nodes[where.nodeId] ??= []).push(p);
    else if (where.kind === "edge") (out.edges[where.edgeId] ??= []).push(p);
    else out.flow.push(p);
  }
  if (prev) {
    for (const [k, v] of Object.entries(out.nodes)) {
      if (prev.nodes[k] && JSON.stringify(prev.nodes[k]) === JSON.stringify(v)) out.nodes[k] = prev.nodes[k];
    }
    for (const [k, v] of Object.entries(out.edges)) {
      if (prev.edges[k] && JSON.stringify(prev.edges[k]) === JSON.stringify(v)) out.edges[k] = prev.edges[k];
    }
  }
  return out;
}

/** A node's problems as react-jsonschema-form's error schema (`{routes: {0: {label:
 * {__errors: [...]}}}}`), so each shows under the field it names. */
export function errorSchema(problems: Problem[] | undefined, doc: FlowDocument): Record<string, any> {
  const out: Record<string, any> = {};
  for (const p of problems ?? []) {
    const where = locate(p.path, doc);
    if (where.kind !== "node" || !where.path?.length) continue;
    let cur = out;
    for (const part of where.path) cur = (cur[String(part)] ??= {});
    (cur.__errors ??= []).push(p.choices?.length
      ? `${p.message} (choices: ${p.choices.slice(0, 6).join(", ")})` : p.message);
  }
  return out;
}

export interface DeclareFix {
  field: string;
  type: StateType;
}

const WRITES = /writes state field '([^']+)', which the flow does not declare/;

/** Known types of fields flowloom's node types write, for a server that does not yet
 * send `fix.declare` with the problem. */
const GUESSED_TYPES: Record<string, StateType> = {
  messages: "messages", documents: "array", route: "string", route_decision: "object",
  approval: "object", ranking: "object", recommendation: "object", history: "array",
  sql_result: "object", causal: "object", agent_steps: "array",
};

/** The type of a state field flowloom's node types usually write under this name. */
export function guessedType(field: string): StateType | undefined {
  return GUESSED_TYPES[field];
}

/** The "declare this state field" fix of a problem: the server's `fix.declare`, or for
 * an older server, read from a "writes state field 'x'" problem. */
export function declareFix(p: Problem): DeclareFix | null {
  const declare = p.fix?.declare;
  if (declare?.field) return { field: declare.field, type: declare.type ?? "any" };
  if (p.code === "undeclared_state_field" || p.code === "unknown_state_field") {
    const m = WRITES.exec(p.message);
    if (m) return { field: m[1], type: GUESSED_TYPES[m[1]] ?? "any" };
  }
  return null;
}
