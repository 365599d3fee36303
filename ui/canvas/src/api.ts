/** The canvas's client of the flowloom API server, called from the browser (the server
 * allows loopback origins). Every refusal is an `ApiError` with the server's words. */

import { SseParser, type SseEvent } from "./model/sse";
import type { FlowDocument, NodeTypeInfo, Problem, ValidateResult } from "./model/types";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public problems: Problem[] = [],
    public body: any = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface FlowSummary {
  id: string;
  name: string;
  description?: string;
  source?: string;
  etag?: string;
  updated_at?: string | null;
  editable?: boolean;
  template?: boolean;
  node_count?: number;
}

export interface Loaded {
  doc: FlowDocument;
  etag: string | null;
}

export interface ModelAlias {
  alias: string;
  mode?: string | null;
}

function detail(body: any, fallback: string): string {
  const d = body && typeof body === "object" ? (body.message ?? body.detail ?? body.error) : body;
  if (Array.isArray(d)) return d.map((x) => (x && typeof x === "object" ? x.msg ?? JSON.stringify(x) : String(x))).join("; ");
  if (d && typeof d === "object") return d.message ?? JSON.stringify(d);
  return d ? String(d) : fallback;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "0.0.0.0", "[::1]", "[::]", "::1", "::"]);

/** The API server's URL as this browser reaches it: the UI hands over the address it uses
 * itself (loopback, on the server's machine), so a page opened from another machine
 * (`http://server:8501`) calls `http://server:8123` instead of its own loopback. */
export function reachableUrl(apiUrl: string, pageHost: string): string {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    return apiUrl;
  }
  if (LOOPBACK.has(url.hostname) && pageHost && !LOOPBACK.has(pageHost)) {
    url.hostname = pageHost;
  }
  return url.toString().replace(/\/+$/, "");
}

export class Api {
  constructor(public baseUrl: string, private apiKey: string | null = null) {
    this.baseUrl = reachableUrl(baseUrl, typeof window === "undefined" ? "" : window.location.hostname)
      .replace(/\/+$/, "");
  }

  get keyed(): boolean {
    return !!this.apiKey;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    if (this.apiKey) h["x-api-key"] = this.apiKey;
    return h;
  }

  async request(method: string, path: string, opts: { json?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers = this.headers(opts.headers);
    let body: string | undefined;
    if (opts.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { method, headers, body, signal: opts.signal, cache: "no-store" });
    } catch (e) {
      if ((e as Error).name === "AbortError") throw e;
      throw new ApiError(0, `the API server at ${this.baseUrl} did not answer (${(e as Error).message}); ` +
        "is it running, and does it allow this page's origin?");
    }
    if (!res.ok) {
      let parsed: any = null;
      const text = await res.text();
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text.slice(0, 300);
      }
      throw new ApiError(res.status, detail(parsed, res.statusText || `HTTP ${res.status}`),
        Array.isArray(parsed?.problems) ? parsed.problems : [], parsed);
    }
    return res;
  }

  async json<T>(method: string, path: string, json?: unknown): Promise<T> {
    const res = await this.request(method, path, { json });
    const text = await res.text();
    return (text.trim() ? JSON.parse(text) : null) as T;
  }

  nodeTypes(): Promise<NodeTypeInfo[]> {
    return this.json("GET", "/node-types");
  }

  flows(): Promise<FlowSummary[]> {
    return this.json("GET", "/flows");
  }

  async flow(id: string): Promise<Loaded> {
    const res = await this.request("GET", `/flows/${encodeURIComponent(id)}`);
    return { doc: await res.json(), etag: res.headers.get("etag") };
  }

  /** PUT the document under its own id. `etag`: only if the server's copy is still that
   * one (412 otherwise); `create`: only if no flow has this id yet (412 otherwise). */
  async save(doc: FlowDocument, opts: { etag?: string | null; create?: boolean } = {}): Promise<{ etag: string | null; notes: string[] }> {
    const headers: Record<string, string> = {};
    if (opts.create) headers["if-none-match"] = "*";
    else if (opts.etag) headers["if-match"] = opts.etag;
    const res = await this.request("PUT", `/flows/${encodeURIComponent(doc.id)}`, { json: doc, headers });
    const body = await res.json().catch(() => ({}));
    return { etag: body?.etag ?? res.headers.get("etag"), notes: body?.notes ?? [] };
  }

  /** Delete a flow saved through the API: 403 for a key without the admin role, 400 for a
   * flow read from a file, 404 when it is gone already. */
  async deleteFlow(id: string): Promise<void> {
    await this.request("DELETE", `/flows/${encodeURIComponent(id)}`);
  }

  validate(doc: unknown, signal?: AbortSignal): Promise<ValidateResult> {
    return this.request("POST", "/flows/validate", { json: doc, signal }).then((r) => r.json());
  }

  async exportText(id: string): Promise<string> {
    const res = await this.request("GET", `/flows/${encodeURIComponent(id)}/export`);
    return res.text();
  }

  async models(): Promise<ModelAlias[]> {
    const body = await this.json<{ models?: ModelAlias[] }>("GET", "/models");
    return body?.models ?? [];
  }

  async prompts(): Promise<string[]> {
    const list = await this.json<{ name: string; versions: number[] }[]>("GET", "/prompts");
    const out: string[] = [];
    for (const p of list ?? []) {
      out.push(`${p.name}@latest`);
      for (const v of [...(p.versions ?? [])].reverse()) out.push(`${p.name}@${v}`);
    }
    return out;
  }

  async kbs(): Promise<string[]> {
    const body = await this.json<{ kbs?: ({ name: string } | string)[] }>("GET", "/kbs");
    return (body?.kbs ?? []).map((k) => (typeof k === "string" ? k : k.name));
  }

  async createThread(flowId: string): Promise<string> {
    const t = await this.json<{ thread_id: string }>("POST", "/threads", { metadata: { graph_id: flowId, source: "builder" } });
    return t.thread_id;
  }

  async runNodes(runId: string): Promise<{ node: string; depth?: number; duration_ms?: number | null }[]> {
    const body = await this.json<{ nodes?: { node: string; depth?: number; duration_ms?: number | null }[] }>(
      "GET", `/observe/runs/${encodeURIComponent(runId)}/nodes`);
    return body?.nodes ?? [];
  }

  async cancel(threadId: string, runId: string): Promise<void> {
    await this.request("POST", `/threads/${threadId}/runs/${runId}/cancel?wait=0&action=interrupt`);
  }

  /** A run streamed over SSE: `onEvent` gets each event as it arrives; resolves when the
   * stream ends (rejects with AbortError when `signal` aborts). */
  async stream(threadId: string, body: Record<string, unknown>, onEvent: (e: SseEvent) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.request("POST", `/threads/${threadId}/runs/stream`, { json: body, signal,
      headers: { accept: "text/event-stream" } });
    if (!res.body) throw new ApiError(0, "the server sent no stream");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const ev of parser.feed(value)) onEvent(ev);
    }
    for (const ev of parser.end()) onEvent(ev);
  }
}
