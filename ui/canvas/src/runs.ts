/** Runs of the saved flow from the run panel, streamed over the LangGraph API: the
 * trace of each node, tokens into the answer, Stop, and resuming an approval. */

import type { Api } from "./api";
import { answerText, applyTimeline, endTrace, feedTrace, outputField, runInput, startTrace } from "./model/runtrace";
import type { FlowDocument } from "./model/types";
import { message, toast, useEditor } from "./store";

const get = useEditor.getState;
const set = useEditor.setState;

let runAbort: AbortController | null = null;

/** Run button: the document must be saved first (asked, never silently). */
export function requestRun(text: string): void {
  const { doc, dirty, savedId, runBusy } = get();
  if (!doc || runBusy) return;
  if (dirty || savedId === null) {
    set({ dialog: { kind: "saveBeforeRun", text } });
    return;
  }
  void startRun(text);
}

function quietNodes(doc: FlowDocument): Set<string> {
  const types = get().types;
  return new Set(doc.nodes.filter((n) => types[n.type]?.router).map((n) => n.id));
}

export async function startRun(text: string, command?: Record<string, unknown>): Promise<void> {
  const { api, doc, savedId } = get();
  if (!api || !doc || !savedId) return;
  set({ runBusy: true, tab: "run" });
  const opts = { outputField: outputField(doc), quietNodes: quietNodes(doc) };
  const resuming = command !== undefined;
  let input: Record<string, unknown> | undefined;
  try {
    if (!resuming) input = runInput(doc, text);
  } catch (e) {
    toast(message(e), "error");
    set({ runBusy: false });
    return;
  }
  const abort = new AbortController();
  runAbort = abort;
  try {
    let threadId = get().threadId;
    if (!threadId) {
      threadId = await api.createThread(savedId);
      set({ threadId });
    }
    set((s) => (resuming && s.run
      ? { run: { ...s.run, status: "running", endedAt: undefined, interrupts: [] } }
      : {
        run: startTrace(performance.now(), threadId!),
        runText: text,
        transcript: s.run && s.runText
          ? [...s.transcript, { role: "user", text: s.runText }, { role: "assistant", text: answerText(s.run) }]
          : s.transcript,
      }));
    const body: Record<string, unknown> = {
      assistant_id: savedId, stream_mode: ["updates", "messages-tuple", "tasks"],
      on_disconnect: "cancel",
    };
    if (resuming) body.command = command;
    else body.input = input;
    await api.stream(threadId, body, (ev) => {
      set((s) => (s.run ? { run: feedTrace(s.run, ev, performance.now(), opts) } : {}));
    }, abort.signal);
    set((s) => (s.run ? { run: endTrace(s.run, performance.now(), abort.signal.aborted) } : {}));
    void fetchTimings(api, get().run?.runId);
  } catch (e) {
    const stopped = (e as Error).name === "AbortError";
    set((s) => ({ run: s.run ? endTrace(stopped ? s.run : { ...s.run, status: "error",
      errors: [...s.run.errors, message(e)] }, performance.now(), stopped)
      : s.run }));
    if (!stopped) toast(`The run failed: ${message(e)}`, "error", 7000);
  } finally {
    if (runAbort === abort) runAbort = null;
    set({ runBusy: false });
  }
}

/** The server's per-node durations, once the run has ended (best effort). */
async function fetchTimings(api: Api, runId: string | undefined): Promise<void> {
  if (!runId) return;
  try {
    const spans = await api.runNodes(runId);
    set((s) => (s.run && s.run.runId === runId ? { run: applyTimeline(s.run, spans) } : {}));
  } catch {
    // arrival times stay
  }
}

/** Stop: the server cancels the run; the stream then ends (cut here if it does not). */
export async function stopRun(): Promise<void> {
  const { api, run } = get();
  const abort = runAbort;
  if (!abort) return;
  if (api && run?.runId && run.threadId) {
    try {
      await api.cancel(run.threadId, run.runId);
    } catch {
      // finished meanwhile, or the server is gone: cut the stream below
    }
  }
  window.setTimeout(() => abort.abort(), api && run?.runId ? 1500 : 0);
  set((s) => (s.run ? { run: endTrace(s.run, performance.now(), true) } : {}));
}

export function resume(decision: Record<string, unknown>): void {
  void startRun("", { resume: decision });
}

export function newThread(): void {
  set({ threadId: null, transcript: [], run: null, runText: "" });
}
