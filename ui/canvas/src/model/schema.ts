/** What the editor reads from a node type's Params JSON Schema: which params name state
 * fields or pick from the server's lists (models, prompts, knowledge bases, flows), the
 * schema and uiSchema the inspector's form is drawn from, and the params a node card
 * shows. */

import { stableStringify } from "./document";
import type { JsonSchema, NodeSpec, NodeTypeInfo, Params } from "./types";

export type ChoiceKind = "models" | "embedding_models" | "knowledge_bases" | "prompts" | "flows";
export type StateAccess = "read" | "write";

export interface ParamRole {
  choices?: ChoiceKind;
  state?: StateAccess;
}

const CHOICES = new Set<ChoiceKind>(["models", "embedding_models", "knowledge_bases", "prompts",
  "flows"]);

function annotation(prop: JsonSchema, key: string): unknown {
  if (!prop || typeof prop !== "object") return undefined;
  if (key in prop) return prop[key];
  for (const variant of [...(prop.anyOf ?? []), ...(prop.oneOf ?? []), ...(prop.allOf ?? [])]) {
    const found = annotation(variant, key);
    if (found !== undefined) return found;
  }
  return undefined;
}

function hasStateAnnotations(schema: JsonSchema): boolean {
  return JSON.stringify(schema ?? {}).includes("x-flowloom-state");
}

/** Each top-level param's role: the schema's `x-flowloom-choices` / `x-flowloom-state`
 * annotations; for a server that does not annotate state params yet, a guess from the
 * usual names (`output` writes; `field`, `context`, `*_field` read). */
export function paramRoles(schema: JsonSchema): Record<string, ParamRole> {
  const cached = schema && typeof schema === "object" ? rolesCache.get(schema) : undefined;
  if (cached) return cached;
  const out = computeRoles(schema);
  if (schema && typeof schema === "object") rolesCache.set(schema, out);
  return out;
}

const rolesCache = new WeakMap<JsonSchema, Record<string, ParamRole>>();

function computeRoles(schema: JsonSchema): Record<string, ParamRole> {
  const out: Record<string, ParamRole> = {};
  const annotated = hasStateAnnotations(schema);
  for (const [name, prop] of Object.entries<JsonSchema>(schema?.properties ?? {})) {
    const role: ParamRole = {};
    const choices = annotation(prop, "x-flowloom-choices");
    if (typeof choices === "string" && CHOICES.has(choices as ChoiceKind)) {
      role.choices = choices as ChoiceKind;
    }
    const state = annotation(prop, "x-flowloom-state");
    if (state === "read" || state === "write") role.state = state;
    if (!annotated && !role.state && baseType(prop) === "string") {
      if (name === "output") role.state = "write";
      else if (name === "field" || name === "context" || name.endsWith("_field")) role.state = "read";
    }
    if (!role.choices && baseType(prop) === "string") {
      if (name === "model") role.choices = "models";
      else if (name === "embed_model") role.choices = "embedding_models";
    }
    if (role.choices || role.state) out[name] = role;
  }
  return out;
}

function baseType(prop: JsonSchema): string | undefined {
  if (typeof prop?.type === "string") return prop.type;
  const variants = (prop?.anyOf ?? prop?.oneOf ?? []) as JsonSchema[];
  const types = variants.map((v) => v.type).filter((t) => t && t !== "null");
  return types.length === 1 ? types[0] : undefined;
}

/** `anyOf: [X, {type: null}]` (pydantic's `X | None`) as X: a form field, not a choice of
 * "Option 1 / Option 2". */
function flattenNullable(prop: JsonSchema): JsonSchema {
  const variants = prop.anyOf as JsonSchema[] | undefined;
  if (!Array.isArray(variants)) return prop;
  const real = variants.filter((v) => v.type !== "null");
  if (real.length !== 1 || real.length === variants.length) return prop;
  const { anyOf: _drop, default: dflt, ...rest } = prop;
  const out: JsonSchema = { ...real[0], ...rest };
  if (dflt !== null && dflt !== undefined) out.default = dflt;
  return out;
}

function isFreeForm(prop: JsonSchema): boolean {
  if (prop.anyOf || prop.oneOf) return true;
  if (prop.type === "object" && !prop.properties) return true;
  if (prop.type === "object" && prop.additionalProperties) return true;
  if (prop.type === "array" && prop.items && (prop.items.anyOf || prop.items.oneOf)) return true;
  if (!prop.type && !prop.$ref && !prop.enum && !prop.const) return true; // `Any`
  return false;
}

const LONG_TEXT = /template|prompt|instruction|message|system|question|reply/i;

function isLongText(name: string, prop: JsonSchema): boolean {
  if (prop.type !== "string" || prop.enum) return false;
  if (prop.maxLength !== undefined && prop.maxLength <= 64) return false;
  return LONG_TEXT.test(name) || LONG_TEXT.test(String(prop.description ?? ""));
}

export interface FormSchema {
  schema: JsonSchema;
  uiSchema: Record<string, any>;
  roles: Record<string, ParamRole>;
}

/** The form of a node type's params: nullable unions flattened, free-form values edited
 * as JSON, long texts as text areas, state/model/prompt/kb params as pickers (widgets
 * named in `uiSchema`, registered by the inspector). */
export function formSchema(schema: JsonSchema): FormSchema {
  const roles = paramRoles(schema);
  const properties: Record<string, JsonSchema> = {};
  const uiSchema: Record<string, any> = { "ui:submitButtonOptions": { norender: true } };
  const defs = schema.$defs ?? schema.definitions;
  const order: string[] = [];
  for (const [name, raw] of Object.entries<JsonSchema>(schema.properties ?? {})) {
    const prop = flattenNullable(raw);
    properties[name] = prop;
    order.push(name);
    const role = roles[name];
    if (role?.state) {
      uiSchema[name] = { "ui:widget": "stateField", "ui:options": { access: role.state } };
    } else if (role?.choices) {
      uiSchema[name] = { "ui:widget": "choice", "ui:options": { choices: role.choices } };
    } else if (isFreeForm(prop)) {
      uiSchema[name] = { "ui:field": "json" };
    } else if (isLongText(name, prop)) {
      uiSchema[name] = { "ui:widget": "textarea", "ui:options": { rows: 3 } };
    } else if (prop.type === "array" && (prop.items?.$ref || prop.items?.type === "object")) {
      uiSchema[name] = { "ui:options": { orderable: true }, items: itemUi(prop.items, defs) };
    }
  }
  const required = (schema.required ?? []) as string[];
  uiSchema["ui:order"] = [...order.filter((n) => required.includes(n)),
    ...order.filter((n) => !required.includes(n))];
  const out: JsonSchema = { ...schema, properties };
  delete out.title;
  delete out.description;
  return { schema: out, uiSchema, roles };
}

function itemUi(items: JsonSchema, defs: Record<string, JsonSchema> | undefined): Record<string, any> {
  const target = items.$ref && defs ? defs[String(items.$ref).split("/").pop() ?? ""] : items;
  const ui: Record<string, any> = { "ui:classNames": "fl-array-item" };
  for (const [name, raw] of Object.entries<JsonSchema>(target?.properties ?? {})) {
    const prop = flattenNullable(raw);
    if (isFreeForm(prop)) ui[name] = { "ui:field": "json" };
  }
  return ui;
}

/** The (flattened) schemas inside `$defs`, so the form's array items get form fields too. */
export function flattenDefs(schema: JsonSchema): JsonSchema {
  const defs = schema.$defs;
  if (!defs) return schema;
  const out: Record<string, JsonSchema> = {};
  for (const [k, def] of Object.entries<JsonSchema>(defs)) {
    const props: Record<string, JsonSchema> = {};
    for (const [n, p] of Object.entries<JsonSchema>(def.properties ?? {})) props[n] = flattenNullable(p);
    out[k] = { ...def, properties: props };
  }
  return { ...schema, $defs: out };
}

function short(value: unknown, max = 32): string {
  let text: string;
  if (typeof value === "string") text = value;
  else if (Array.isArray(value)) {
    text = value.map((v) => (v && typeof v === "object" && "label" in v ? String((v as any).label)
      : typeof v === "string" ? v : JSON.stringify(v))).join(", ");
  } else text = JSON.stringify(value);
  text = text.replace(/\s+/g, " ").trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Up to `max` params a node card shows: required ones and pickers first, then the ones
 * set away from their default; empty values are skipped. */
export function keyParams(node: NodeSpec, info: NodeTypeInfo | undefined, max = 3): [string, string][] {
  const props = (info?.params_schema?.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set<string>(info?.params_schema?.required ?? []);
  const roles = info ? paramRoles(info.params_schema) : {};
  const score = (name: string): number => {
    const prop = props[name] ?? {};
    const value = node.params[name];
    let s = 0;
    if (required.has(name)) s += 4;
    if (roles[name]?.choices) s += 3;
    if ("default" in prop && JSON.stringify(prop.default) !== JSON.stringify(value)) s += 2;
    if (roles[name]?.state) s -= 1;
    return s;
  };
  const names = Object.keys(node.params).filter((n) => {
    const v = node.params[n];
    return v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length) &&
      !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v as object).length) &&
      typeof v !== "boolean";
  });
  const order = Object.keys(props);
  names.sort((a, b) => score(b) - score(a) || order.indexOf(a) - order.indexOf(b));
  return names.slice(0, max).map((n) => [n, short(node.params[n])]);
}

/** The node's params after a form change: only the params whose value changed. A param
 * the form filled in with its schema default (or emptied) that the node did not have
 * stays out, so opening a form never edits the document and saved flows stay minimal. */
export function formEdit(old: Params, next: Params, schema: JsonSchema): Params {
  const props = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  const out: Params = { ...old };
  for (const k of new Set([...Object.keys(old), ...Object.keys(next)])) {
    const before = old[k];
    const after = next[k];
    if (stableStringify(before) === stableStringify(after)) continue;
    if (!(k in old)) {
      if (after === undefined || after === null) continue;
      if (stableStringify(after) === stableStringify(props[k]?.default)) continue;
    }
    if (after === undefined) delete out[k];
    else out[k] = after;
  }
  return out;
}
