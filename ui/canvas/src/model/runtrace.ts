/** A run as its stream tells it: each node's status, output (its state update), duration
 * and error, the answer's tokens as they arrive, and what a paused run waits for.
 * `feedTrace` folds one server-sent event into a new trace (pure). */

import type { SseEvent } from "./sse";
import type { FlowDocument } from "./types";

export type NodeStatus = "running" | "done" | "error" | "waiting";

export interface NodeRun {
  id: string;
  status: NodeStatus;
  startedAt: number;
  endedAt?: number;
  output?: unknown;
  hasOutput: boolean;
  error?: string;
  /** How many times the node ran in this run (loops run a node again). */
  count: number;
  taskId?: string;
  /** The server's measure of the node's last execution (after the run, from
   * `GET /observe/runs/{id}/nodes`), preferred over arrival times. */
  serverMs?: number;
}

export interface Pending {
  id?: string | null;
  value: unknown;
}

export type RunStatus = "running" | "done" | "error" | "cancelled" | "interrupted";

export interface RunTrace {
  status: RunStatus;
  runId?: string;
  threadId?: string;
  startedAt: number;
  endedAt?: number;
  nodes: Record<string, NodeRun>;
  order: string[];
  /** Streamed AI messages by message id, in arrival order, with the node that wrote them. */
  streams: { id: string; node?: string; text: string }[];
  /** The output field's final text, from the last update that wrote it. */
  finalAnswer?: string;
  interrupts: Pending[];
  errors: string[];
}

export interface TraceOptions {
  /** The state field the answer is read from (`messages` for a chat flow). */
  outputField?: string | null;
  /** Nodes whose streamed tokens are not the answer (routers classifying). */
  quietNodes?: ReadonlySet<string>;
}

export function startTrace(at: number, threadId?: string): RunTrace {
  return { status: "running", startedAt: at, threadId, nodes: {}, order: [], streams: [],
    interrupts: [], errors: [] };
}

/** The text of a message's `content` (a string, or a list of parts). */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => typeof p === "string" ? p
      : p && typeof p === "object" && typeof (p as any).text === "string" ? (p as any).text : "")
      .join("");
  }
  return "";
}

function isAi(msg: any): boolean {
  const t = String(msg?.type ?? msg?.role ?? "");
  return t === "ai" || t === "AIMessageChunk" || t === "assistant" || t === "AIMessage";
}

function answerFrom(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (let i = value.length - 1; i >= 0; i--) {
      if (isAi(value[i])) return contentText((value[i] as any).content);
    }
    return undefined;
  }
  if (value && typeof value === "object" && isAi(value)) return contentText((value as any).content);
  return undefined;
}

function pairsToObject(result: unknown): unknown {
  if (Array.isArray(result) && result.every((r) => Array.isArray(r) && r.length === 2 && typeof r[0] === "string")) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of result as [string, unknown][]) out[k] = v;
    return out;
  }
  return result;
}

function withNode(t: RunTrace, id: string, fn: (n: NodeRun | undefined) => NodeRun): RunTrace {
  const next = fn(t.nodes[id]);
  return { ...t, nodes: { ...t.nodes, [id]: next }, order: t.order.includes(id) ? t.order : [...t.order, id] };
}

export function feedTrace(t: RunTrace, ev: SseEvent, at: number, opts: TraceOptions = {}): RunTrace {
  const { event, data } = ev;
  if (event.includes("|")) return t; // a subgraph's event: its parent node covers it
  switch (event) {
    case "metadata":
      return data && typeof data === "object" && "run_id" in data
        ? { ...t, runId: String((data as any).run_id) } : t;
    case "tasks":
      return task(t, data as Record<string, any>, at);
    case "updates":
      return updates(t, data as Record<string, unknown>, at, opts);
    case "messages":
      return message(t, data, opts);
    case "error": {
      const d = data as Record<string, unknown> | null;
      const text = d && typeof d === "object"
        ? `${d.error ?? "Error"}: ${d.message ?? ""}` : String(data);
      let out: RunTrace = { ...t, status: "error", errors: [...t.errors, text] };
      for (const id of out.order) {
        if (out.nodes[id].status === "running") {
          out = withNode(out, id, (n) => ({ ...n!, status: "error", error: text, endedAt: at }));
        }
      }
      return out;
    }
    case "end":
      return endTrace(t, at);
    default:
      return t;
  }
}

function task(t: RunTrace, d: Record<string, any>, at: number): RunTrace {
  if (!d || typeof d !== "object") return t;
  const name = String(d.name ?? "");
  if (!name || name.startsWith("__")) return t;
  const isResult = "result" in d || "error" in d || "interrupts" in d;
  if (!isResult) {
    return withNode(t, name, (n) => ({
      id: name, status: "running", startedAt: at, hasOutput: false, count: (n?.count ?? 0) + 1,
      taskId: d.id ? String(d.id) : undefined,
      // a node that runs again keeps its last output until the new one arrives
      output: n?.output, error: undefined, endedAt: undefined,
    }));
  }
  return withNode(t, name, (n) => {
    const base: NodeRun = n ?? { id: name, status: "running", startedAt: at, hasOutput: false, count: 1 };
    if (Array.isArray(d.interrupts) && d.interrupts.length) return { ...base, status: "waiting" };
    if (d.error) return { ...base, status: "error", error: String(d.error), endedAt: at };
    const out: NodeRun = { ...base, status: "done", endedAt: at };
    if (!base.hasOutput || base.status === "running") {
      const result = pairsToObject(d.result);
      if (result !== undefined && result !== null) {
        out.output = result;
        out.hasOutput = true;
      }
    }
    return out;
  });
}

function updates(t: RunTrace, d: Record<string, unknown>, at: number, opts: TraceOptions): RunTrace {
  if (!d || typeof d !== "object") return t;
  let out = t;
  for (const [name, update] of Object.entries(d)) {
    if (name === "__interrupt__") {
      const list = Array.isArray(update) ? update : [update];
      out = { ...out, interrupts: list.map((i: any) => ({ id: i?.id ?? null, value: i?.value ?? i })) };
      for (const p of out.interrupts) {
        const node = (p.value as any)?.node;
        if (typeof node === "string") {
          out = withNode(out, node, (n) => ({ ...(n ?? { id: node, startedAt: at, hasOutput: false, count: 1 }),
            status: "waiting" }));
        }
      }
      continue;
    }
    if (name.startsWith("__")) continue;
    out = withNode(out, name, (n) => ({
      ...(n ?? { id: name, startedAt: at, count: 1 }),
      status: n?.status === "error" ? "error" : "done",
      output: update, hasOutput: true, endedAt: n?.endedAt && n.status !== "running" ? n.endedAt : at,
    } as NodeRun));
    if (opts.outputField && update && typeof update === "object" && opts.outputField in update &&
        !opts.quietNodes?.has(name)) {
      const answer = answerFrom((update as Record<string, unknown>)[opts.outputField]);
      if (answer !== undefined) out = { ...out, finalAnswer: answer };
    }
  }
  return out;
}

function message(t: RunTrace, data: unknown, opts: TraceOptions): RunTrace {
  if (!Array.isArray(data) || !data.length) return t;
  const [msg, meta] = data as [any, any];
  if (!msg || typeof msg !== "object" || !isAi(msg)) return t;
  const node = meta && typeof meta === "object" ? meta.langgraph_node : undefined;
  if (node && opts.quietNodes?.has(node)) return t;
  const text = contentText(msg.content);
  const id = String(msg.id ?? `${node ?? "?"}-${t.streams.length}`);
  const chunk = String(msg.type ?? "").endsWith("Chunk");
  const i = t.streams.findIndex((s) => s.id === id);
  const streams = t.streams.slice();
  if (i < 0) streams.push({ id, node, text });
  else streams[i] = { ...streams[i], text: chunk ? streams[i].text + text : text };
  return { ...t, streams };
}

/** The answer to show: the output field's final text once a node wrote it, else the text
 * streaming now. */
export function answerText(t: RunTrace): string {
  if (t.finalAnswer !== undefined) return t.finalAnswer;
  for (let i = t.streams.length - 1; i >= 0; i--) if (t.streams[i].text) return t.streams[i].text;
  return "";
}

/** The run ended (the stream closed): interrupted when it waits on a person, cancelled
 * when stopped; nodes still marked running are closed. */
export function endTrace(t: RunTrace, at: number, cancelled = false): RunTrace {
  if (t.endedAt !== undefined) return t;
  const status: RunStatus = t.status === "error" ? "error" : cancelled ? "cancelled"
    : t.interrupts.length ? "interrupted" : "done";
  const nodes = { ...t.nodes };
  for (const [id, n] of Object.entries(nodes)) {
    if (n.status === "running") {
      nodes[id] = cancelled ? { ...n, status: "error", error: "stopped", endedAt: at }
        : { ...n, status: "done", endedAt: at };
    }
  }
  return { ...t, status, endedAt: at, nodes };
}

export function durationMs(n: NodeRun): number | undefined {
  if (n.serverMs !== undefined) return n.serverMs;
  return n.endedAt === undefined ? undefined : Math.max(0, n.endedAt - n.startedAt);
}

export interface NodeSpan {
  node: string;
  depth?: number;
  duration_ms?: number | null;
}

/** The server's per-node timings (its run timeline) folded into the trace: each node
 * gets the duration of its last top-level execution. */
export function applyTimeline(t: RunTrace, spans: NodeSpan[]): RunTrace {
  const last: Record<string, number> = {};
  for (const s of spans) {
    if ((s.depth ?? 0) === 0 && typeof s.duration_ms === "number" && t.nodes[s.node]) last[s.node] = s.duration_ms;
  }
  if (!Object.keys(last).length) return t;
  const nodes = { ...t.nodes };
  for (const [id, ms] of Object.entries(last)) nodes[id] = { ...nodes[id], serverMs: ms };
  return { ...t, nodes };
}

/** The run's input for `text`: a user message when the flow's input field is a messages
 * field, else the text in that field (the flow's `io.input`, or its first text field). */
export function runInput(doc: FlowDocument, text: string): Record<string, unknown> {
  const state = doc.state ?? {};
  let field = doc.io?.input || ("messages" in state ? "messages" : null);
  if (!field) {
    field = Object.entries(state).find(([, v]) => v?.type === "string" || v?.type === "any" ||
      v?.type === undefined)?.[0] ?? null;
  }
  if (!field) throw new Error("the flow declares no input field: set io.input in the flow settings");
  if (state[field]?.type === "messages") return { [field]: [{ role: "user", content: text }] };
  return { [field]: text };
}

/** The state field a run's answer is read from. */
export function outputField(doc: FlowDocument): string | null {
  return doc.io?.output || ("messages" in (doc.state ?? {}) ? "messages" : null);
}
