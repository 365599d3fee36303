/** The flow document as the server stores it (flows/format.py), and the catalogue
 * entries of `GET /node-types`. Plain data: every edit is a pure function in
 * `document.ts` that returns a new document sharing what did not change. */

export const START = "START";
export const END = "END";
export const SCHEMA_VERSION = 1;
export const ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

export type StateType =
  | "string" | "number" | "integer" | "boolean" | "object" | "array" | "messages" | "any";
export const STATE_TYPES: StateType[] = [
  "string", "number", "integer", "boolean", "object", "array", "messages", "any",
];
export type Reducer = "replace" | "add_messages" | "append" | "add" | "merge";
export const REDUCERS: Reducer[] = ["replace", "add_messages", "append", "add", "merge"];

export interface StateField {
  type?: StateType;
  reducer?: Reducer | null;
  default?: unknown;
  description?: string | null;
}

export type Params = Record<string, unknown>;

export interface NodeSpec {
  id: string;
  type: string;
  params: Params;
  label?: string | null;
}

export interface EdgeSpec {
  source: string;
  target: string;
  condition?: string | null;
}

export interface Position {
  x: number;
  y: number;
}

export interface FlowDocument {
  schema_version?: number;
  id: string;
  name: string;
  description?: string;
  state: Record<string, StateField>;
  nodes: NodeSpec[];
  edges: EdgeSpec[];
  io?: { input?: string | null; output?: string | null };
  recursion_limit?: number;
  metadata?: Record<string, unknown>;
  layout: { nodes: Record<string, Position>; viewport?: Record<string, number> | null };
  prompts?: Record<string, { text: string; notes?: string }>;
}

/** A JSON Schema, as pydantic writes it (loosely typed on purpose). */
export type JsonSchema = Record<string, any>;

export interface NodeTypeInfo {
  type: string; // "llm.chat@1"
  name: string;
  version: number;
  category: string;
  description: string;
  router: boolean;
  params_schema: JsonSchema;
}

/** One validator problem (flows/errors.py `Problem.to_dict`). */
export interface Problem {
  path: string;
  message: string;
  choices?: string[];
  code?: string;
  fix?: { declare?: { field: string; type?: StateType } } | null;
}

/** What `POST /flows/validate` learned about one node (when the server sends it). */
export interface NodeAnalysis {
  routes?: string[] | null;
  reads?: string[];
  writes?: { field: string; type?: StateType | null }[];
}

export interface ValidateResult {
  ok: boolean;
  problems: Problem[];
  notes?: string[];
  document?: FlowDocument;
  nodes?: Record<string, NodeAnalysis>;
}

/** Refused edits (a bad id, a duplicate edge); the message says what and why. */
export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelError";
  }
}
