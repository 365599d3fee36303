/** The editor's state and the actions on the document (one zustand store). Components
 * read slices with selectors, so a change redraws only what shows it. Saving is in
 * `saving.ts`, runs in `runs.ts`.
 *
 * Document identity: `savedId` is the id the document is saved under on the server (null
 * for a document never saved); every load sets it, and only a save changes it. */

import { create } from "zustand";
import { Api, type FlowSummary } from "./api";
import {
  addNode as addNodeTo, declareState, freePosition, normalizeDocument, removeElements, sameContent,
} from "./model/document";
import {
  clearDraft, draftPlaces, loadRecent, pushRecent, saveDraft, tabDraft, type Draft, type DraftPlaces, type RecentFlow,
} from "./model/draft";
import { amend, canRedo, canUndo, createHistory, push, redo as redoH, undo as undoH, type History } from "./model/history";
import { declareFix, guessedType, NO_PROBLEMS, pinProblems, type DeclareFix, type Pinned } from "./model/problems";
import type { RunTrace } from "./model/runtrace";
import { paramRoles, type ChoiceKind } from "./model/schema";
import {
  ModelError, type FlowDocument, type NodeAnalysis, type NodeTypeInfo, type Position, type Problem,
} from "./model/types";

export type Tab = "inspect" | "run" | "use";

export type Dialog =
  | { kind: "open" }
  | { kind: "saveAs"; thenRun?: string; error?: string }
  | { kind: "confirm"; title: string; message: string; confirm: string; onConfirm: () => void }
  | { kind: "saveBeforeRun"; text: string }
  | { kind: "conflict"; message: string }
  | { kind: "delete"; id: string; name: string; busy?: boolean; error?: string; fromOpen?: boolean };

export interface Toast {
  id: number;
  kind: "info" | "error" | "success";
  text: string;
}

export interface ChatTurn {
  role: "user" | "assistant";
  text: string;
}

export interface Validation {
  problems: Problem[];
  pinned: Pinned;
  analysis: Record<string, NodeAnalysis>;
  pending: boolean;
  checked: boolean;
  error: string | null;
}

export interface EditorState {
  api: Api | null;
  apiUrl: string;
  booted: boolean;
  catalogError: string | null;
  types: Record<string, NodeTypeInfo>;
  typeList: NodeTypeInfo[];
  choices: Record<ChoiceKind, string[]>;
  flows: FlowSummary[];
  flowsError: string | null;
  templates: Record<string, FlowDocument>;
  screen: "start" | "editor";
  history: History<FlowDocument> | null;
  doc: FlowDocument | null;
  savedId: string | null;
  etag: string | null;
  base: FlowDocument | null;
  dirty: boolean;
  saving: boolean;
  selection: { nodes: string[]; edges: string[] };
  validation: Validation;
  run: RunTrace | null;
  runBusy: boolean;
  threadId: string | null;
  /** Earlier exchanges of this conversation; the current run's are `runText` and `run`. */
  transcript: ChatTurn[];
  runText: string;
  tab: Tab;
  dialog: Dialog | null;
  toasts: Toast[];
  draftOffer: Draft | null;
  recent: RecentFlow[];
  /** Bumped to ask the canvas to fit the view (after open, import, layout). */
  fitRequest: number;
}

const EMPTY_VALIDATION: Validation = {
  problems: [], pinned: NO_PROBLEMS, analysis: {}, pending: false, checked: false, error: null,
};

export const useEditor = create<EditorState>()(() => ({
  api: null,
  apiUrl: "",
  booted: false,
  catalogError: null,
  types: {},
  typeList: [],
  choices: { models: [], embedding_models: [], knowledge_bases: [], prompts: [], flows: [] },
  flows: [],
  flowsError: null,
  templates: {},
  screen: "start",
  history: null,
  doc: null,
  savedId: null,
  etag: null,
  base: null,
  dirty: false,
  saving: false,
  selection: { nodes: [], edges: [] },
  validation: EMPTY_VALIDATION,
  run: null,
  runBusy: false,
  threadId: null,
  transcript: [],
  runText: "",
  tab: "inspect",
  dialog: null,
  toasts: [],
  draftOffer: null,
  recent: [],
  fitRequest: 0,
}));

const get = useEditor.getState;
const set = useEditor.setState;

// -- toasts -----------------------------------------------------------------------------

let toastSeq = 0;

export function toast(text: string, kind: Toast["kind"] = "info", ms = 4500): void {
  const id = ++toastSeq;
  set((s) => ({ toasts: [...s.toasts.slice(-3), { id, kind, text }] }));
  window.setTimeout(() => set((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) })), ms);
}

/** An error's text, for toasts and dialogs. */
export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// -- boot -------------------------------------------------------------------------------

let placesCache: DraftPlaces | null = null;

/** This tab's storage (drafts) and the browser's (the recent list). */
export function places(): DraftPlaces {
  placesCache ??= draftPlaces(window);
  return placesCache;
}

export async function boot(apiUrl: string, apiKey: string | null, flowId: string | null): Promise<void> {
  const api = new Api(apiUrl, apiKey);
  const { browser } = places();
  set({
    api, apiUrl: api.baseUrl, booted: true,
    draftOffer: tabDraft(places(), api.baseUrl),
    recent: browser ? loadRecent(browser, api.baseUrl) : [],
  });
  const catalogue = api.nodeTypes().then((list) => {
    set({ typeList: list, types: Object.fromEntries(list.map((t) => [t.type, t])), catalogError: null });
  }).catch((e) => set({ catalogError: message(e) }));
  void refreshFlows();
  void refreshChoices();
  await catalogue;
  const offer = get().draftOffer;
  if (flowId && !(offer && (offer.savedId === flowId) && !sameContent(offer.doc, offer.base))) {
    await openFlow(flowId);
  }
}

export async function refreshFlows(): Promise<void> {
  const api = get().api;
  if (!api) return;
  try {
    const flows = await api.flows();
    set((s) => ({ flows, flowsError: null, choices: { ...s.choices, flows: flows.map((f) => f.id) } }));
  } catch (e) {
    set({ flowsError: message(e) });
  }
}

let choicesAt = 0;

/** The server's model aliases, prompt versions and knowledge bases (at most every 5 s:
 * the inspector asks whenever a node is selected, and a knowledge base may have appeared). */
export async function refreshChoices(force = true): Promise<void> {
  const api = get().api;
  if (!api || (!force && Date.now() - choicesAt < 5000)) return;
  choicesAt = Date.now();
  const [models, prompts, kbs] = await Promise.allSettled([api.models(), api.prompts(), api.kbs()]);
  set((s) => {
    const choices = { ...s.choices };
    if (models.status === "fulfilled") {
      choices.models = models.value.filter((m) => m.mode !== "embedding").map((m) => m.alias);
      choices.embedding_models = models.value.filter((m) => m.mode === "embedding" || !m.mode).map((m) => m.alias);
    }
    if (prompts.status === "fulfilled") choices.prompts = prompts.value;
    if (kbs.status === "fulfilled") choices.knowledge_bases = kbs.value;
    return { choices };
  });
}

/** A template's document, for the gallery's preview (fetched once). */
export async function loadTemplate(id: string): Promise<void> {
  const api = get().api;
  if (!api || get().templates[id]) return;
  try {
    const { doc } = await api.flow(id);
    set((s) => ({ templates: { ...s.templates, [id]: normalizeDocument(doc) } }));
  } catch {
    // no preview: the card still opens the flow
  }
}

// -- documents --------------------------------------------------------------------------

export function isDirty(doc: FlowDocument | null, base: FlowDocument | null, savedId: string | null): boolean {
  if (!doc) return false;
  if (savedId === null) return true;
  return !sameContent(doc, base);
}

interface LoadOptions {
  savedId: string | null;
  etag: string | null;
  base: FlowDocument | null;
}

/** Make `doc` the document being edited, with a fresh history; the run panel is cleared. */
export function loadDocument(doc: FlowDocument, opts: LoadOptions): void {
  set((s) => ({
    screen: "editor", history: createHistory(doc), doc, savedId: opts.savedId, etag: opts.etag,
    base: opts.base, dirty: isDirty(doc, opts.base, opts.savedId),
    selection: { nodes: [], edges: [] }, validation: EMPTY_VALIDATION, run: null, runBusy: false,
    threadId: null, transcript: [], runText: "", dialog: null, tab: "inspect", fitRequest: s.fitRequest + 1,
  }));
  if (opts.savedId) rememberRecent(opts.savedId, doc.name);
  scheduleValidate(0);
  scheduleDraft();
}

export function rememberRecent(id: string, name: string): void {
  const { browser } = places();
  if (browser) set({ recent: pushRecent(browser, get().apiUrl, { id, name }) });
}

/** Run `action` now when nothing is unsaved, else after the user agrees to drop it (the
 * current document's changes, or the draft a reload offered back and that was not taken). */
export function guardUnsaved(action: () => void, what = "Continue"): void {
  const { dirty, doc, draftOffer } = get();
  const unsaved = dirty && !!doc && !(doc.nodes.length === 0 && get().savedId === null);
  if (!unsaved && !draftOffer) {
    action();
    return;
  }
  const message = unsaved
    ? `"${doc!.name}" has changes that are not saved. ${what} and drop them?`
    : `The unsaved work from ${new Date(draftOffer!.at).toLocaleString()} ("${draftOffer!.doc.name}") ` +
      `was not restored. ${what} and drop it?`;
  set({ dialog: { kind: "confirm", title: "Unsaved changes", message,
    confirm: `${what} without saving`,
    onConfirm: () => {
      if (!unsaved) discardDraft();
      action();
    } } });
}

export function showStart(): void {
  set({ screen: "start", dialog: null });
  void refreshFlows();
}

export function newBlank(): void {
  const doc = normalizeDocument({
    schema_version: 1, id: "untitled", name: "Untitled flow", description: "",
    state: { messages: { type: "messages", description: "The conversation so far." } },
    nodes: [], edges: [], io: {}, recursion_limit: 25, metadata: {}, layout: { nodes: {} },
  });
  loadDocument(doc, { savedId: null, etag: null, base: null });
}

/** A copy of a served flow to start from: not saved, so the first Save asks for an id. */
export async function openTemplate(id: string): Promise<void> {
  const api = get().api;
  if (!api) return;
  try {
    const { doc } = await api.flow(id);
    const copy = normalizeDocument({ ...doc, id: `${id}_copy`.slice(0, 64), name: `${doc.name} (copy)` });
    loadDocument(copy, { savedId: null, etag: null, base: null });
  } catch (e) {
    toast(`Could not open the template ${id}: ${message(e)}`, "error");
  }
}

/** Open a saved flow to edit it in place: Save writes back to this id. */
export async function openFlow(id: string): Promise<boolean> {
  const api = get().api;
  if (!api) return false;
  try {
    performance.mark("fl:open");
    const { doc, etag } = await api.flow(id);
    performance.mark("fl:open-fetched");
    const clean = normalizeDocument(doc);
    loadDocument(clean, { savedId: clean.id, etag, base: clean });
    performance.mark("fl:open-loaded");
    return true;
  } catch (e) {
    toast(`Could not open ${id}: ${message(e)}`, "error");
    return false;
  }
}

export function restoreDraft(): void {
  const d = get().draftOffer;
  if (!d) return;
  loadDocument(d.doc, { savedId: d.savedId, etag: d.etag, base: d.base });
  set({ draftOffer: null });
  toast("Your unsaved work is back.", "success");
}

export function discardDraft(): void {
  const { tab } = places();
  if (tab) clearDraft(tab, get().apiUrl);
  set({ draftOffer: null });
}

/** No document open any more (it was deleted): the start screen, nothing to undo, run or
 * keep as a draft. */
export function closeDocument(): void {
  window.clearTimeout(draftTimer);
  window.clearTimeout(validateTimer);
  validateAbort?.abort();
  pendingDeclare.clear();
  set({
    screen: "start", history: null, doc: null, savedId: null, etag: null, base: null, dirty: false,
    selection: { nodes: [], edges: [] }, validation: EMPTY_VALIDATION, run: null, threadId: null,
    transcript: [], runText: "", dialog: null, tab: "inspect",
  });
}

// -- edits ------------------------------------------------------------------------------

export interface EditOptions {
  /** Edits with the same key in quick succession are one undo step (typing). */
  key?: string;
}

/** Apply a pure edit to the document: a new undo step, validation and a draft follow. A
 * refused edit (ModelError) is shown, and changes nothing. */
export function edit(fn: (doc: FlowDocument) => FlowDocument, opts: EditOptions = {}): boolean {
  const { history, doc } = get();
  if (!history || !doc) return false;
  let next: FlowDocument;
  try {
    next = fn(doc);
  } catch (e) {
    if (e instanceof ModelError) {
      toast(e.message, "error");
      return false;
    }
    throw e;
  }
  if (next === doc) return true;
  const h = push(history, next, { key: opts.key ?? null });
  commit(h);
  return true;
}

function commit(h: History<FlowDocument>): void {
  set((s) => ({ history: h, doc: h.present, dirty: isDirty(h.present, s.base, s.savedId) }));
  scheduleValidate();
  scheduleDraft();
}

export function undo(): void {
  const h = get().history;
  if (h && canUndo(h)) commit(undoH(h));
}

export function redo(): void {
  const h = get().history;
  if (h && canRedo(h)) commit(redoH(h));
}

const pendingDeclare = new Set<string>();

/** A node of `type` at `position`; state fields it writes are declared when validation
 * names them. Returns the new node's id. */
export function addNode(type: string, position?: Position, opts: { avoidOverlap?: boolean } = {}): string | null {
  const info = get().types[type];
  if (!info) return null;
  let id: string | null = null;
  edit((doc) => {
    const at = position && opts.avoidOverlap ? freePosition(doc, position) : position;
    let [out, newId] = addNodeTo(doc, info, { position: at });
    id = newId;
    // fields it writes whose type is known are declared at once, in the same step
    for (const [name, role] of Object.entries(paramRoles(info.params_schema))) {
      const field = out.nodes[out.nodes.length - 1].params[name];
      const type = typeof field === "string" ? guessedType(field) : undefined;
      if (role.state === "write" && typeof field === "string" && type && !(field in out.state)) {
        out = declareState(out, field, { type });
      }
    }
    return out;
  });
  if (id) {
    pendingDeclare.add(id);
    set({ selection: { nodes: [id], edges: [] }, tab: "inspect" });
    scheduleValidate(0);
  }
  return id;
}

export function removeSelected(nodeIds: string[], edgeIds: string[]): void {
  edit((doc) => removeElements(doc, nodeIds, edgeIds));
  set({ selection: { nodes: [], edges: [] } });
}

export function declare(field: string, type: string): void {
  edit((doc) => declareState(doc, field, { type: type as any }));
}

export function select(nodes: string[], edges: string[]): void {
  const cur = get().selection;
  if (cur.nodes.join() === nodes.join() && cur.edges.join() === edges.join()) return;
  set({ selection: { nodes, edges } });
}

// -- validation -------------------------------------------------------------------------

let validateTimer: number | undefined;
let validateSeq = 0;
let validateAbort: AbortController | null = null;
export const VALIDATE_DEBOUNCE_MS = 250;

export function scheduleValidate(ms = VALIDATE_DEBOUNCE_MS): void {
  window.clearTimeout(validateTimer);
  set((s) => ({ validation: { ...s.validation, pending: true } }));
  validateTimer = window.setTimeout(() => void validateNow(), ms);
}

async function validateNow(): Promise<void> {
  const { api, doc } = get();
  if (!api || !doc) return;
  const seq = ++validateSeq;
  validateAbort?.abort();
  const abort = new AbortController();
  validateAbort = abort;
  try {
    const result = await api.validate(doc, abort.signal);
    if (seq !== validateSeq) return;
    const problems = result.problems ?? [];
    set((s) => ({ validation: {
      problems, pinned: pinProblems(problems, doc, s.validation.pinned),
      analysis: result.nodes ?? {}, pending: false, checked: true, error: null,
    } }));
    autoDeclare(doc, problems);
  } catch (e) {
    if ((e as Error).name === "AbortError" || seq !== validateSeq) return;
    set((s) => ({ validation: { ...s.validation, pending: false, error: message(e) } }));
  }
}

/** Declare the fields that nodes just added from the palette write (part of the same
 * undo step when nothing was edited since). A node whose params do not parse yet (a
 * required param unset) has its state fields unchecked: it stays pending until they do. */
function autoDeclare(validated: FlowDocument, problems: Problem[]): void {
  if (!pendingDeclare.size) return;
  const fixes: DeclareFix[] = [];
  for (const id of [...pendingDeclare]) {
    const index = validated.nodes.findIndex((n) => n.id === id);
    if (index < 0) {
      pendingDeclare.delete(id);
      continue;
    }
    const mine = problems.filter((p) => p.path.startsWith(`nodes[${index}]`));
    const found = mine.map(declareFix).filter((f): f is DeclareFix => f !== null);
    if (found.length) fixes.push(...found);
    if (found.length || !mine.some((p) => p.path.startsWith(`nodes[${index}].params`) && !declareFix(p))) {
      pendingDeclare.delete(id);
    }
  }
  if (!fixes.length) return;
  const { history } = get();
  if (!history) return;
  let next = history.present;
  for (const f of fixes) if (!(f.field in next.state)) next = declareState(next, f.field, { type: f.type });
  if (next === history.present) return;
  commit(history.present === validated ? amend(history, next) : push(history, next));
  toast(`Declared state field${fixes.length > 1 ? "s" : ""} ${fixes.map((f) => `${f.field} (${f.type})`).join(", ")}.`, "success");
}

// -- drafts -----------------------------------------------------------------------------

let draftTimer: number | undefined;

export function scheduleDraft(ms = 400): void {
  window.clearTimeout(draftTimer);
  draftTimer = window.setTimeout(flushDraft, ms);
}

export function flushDraft(): void {
  window.clearTimeout(draftTimer);
  const { doc, dirty, savedId, etag, base, apiUrl, draftOffer } = get();
  const { tab } = places();
  if (!tab || !apiUrl || !doc) return;
  if (dirty && (doc.nodes.length || savedId)) {
    saveDraft(tab, apiUrl, { doc, savedId, etag, base, at: Date.now() });
  } else if (!draftOffer) { // a draft offered back and not yet taken or dropped stays
    clearDraft(tab, apiUrl);
  }
}

// -- misc -------------------------------------------------------------------------------

export function setTab(tab: Tab): void {
  set({ tab });
}

export function closeDialog(): void {
  set({ dialog: null });
}

export function openDialog(dialog: Dialog): void {
  set({ dialog });
}

export function requestFit(): void {
  set((s) => ({ fitRequest: s.fitRequest + 1 }));
}

export function hasUnsavedWork(): boolean {
  const { dirty, doc, savedId } = get();
  return !!doc && dirty && (doc.nodes.length > 0 || savedId !== null);
}
