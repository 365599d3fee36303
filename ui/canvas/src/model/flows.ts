/** The server's flows as the Builder lists them (`GET /flows`): which are examples, which
 * can be deleted, and what a refused deletion tells the user. */

export interface FlowListing {
  id: string;
  name?: string;
  source?: string;
  editable?: boolean;
  template?: boolean;
}

/** An example or template: a flow the server read from a file. */
export function isTemplate(f: FlowListing): boolean {
  return f.template ?? (f.source ?? "").startsWith("file:");
}

export type Deletable = { ok: true } | { ok: false; why: string };

/** Whether the Builder may offer to delete the flow: only one saved through the API (the
 * server refuses the others). A flow not listed (yet) is offered: the server decides. */
export function deletable(f: FlowListing | undefined): Deletable {
  if (!f) return { ok: true };
  if (f.editable ?? !isTemplate(f)) return { ok: true };
  const file = (f.source ?? "").startsWith("file:") ? f.source!.slice(5).split(/[\\/]/).pop() : "";
  return { ok: false, why: `${isTemplate(f) ? "An example" : "A flow"} from a file on the server` +
    `${file ? ` (${file})` : ""}: it cannot be deleted here, only the flows saved from the Builder or the API can.` };
}

/** A refusal as the API client reports it (`ApiError`). */
export interface Refusal {
  status: number;
  message: string;
  body?: unknown;
}

/** What the user reads when the server refused to delete flow `id`. */
export function deleteRefused(id: string, e: Refusal): string {
  const body = e.body && typeof e.body === "object" ? e.body as Record<string, unknown> : {};
  if (e.status === 403) {
    const role = typeof body.needed_role === "string" ? body.needed_role : "admin";
    return `Not deleted: this Builder's API key may not delete flows (that needs the ${role} role). ` +
      `Ask an admin to delete '${id}', or give the UI an ${role} key.`;
  }
  if (e.status === 401) return `Not deleted: the API server wants a valid key (${e.message}).`;
  return `Not deleted: ${e.message}`;
}
