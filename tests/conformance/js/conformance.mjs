// Conformance checks of a flowloom server, driven by the LangGraph JS SDK.
//
//   node conformance.mjs http://127.0.0.1:PORT
//
// Prints one JSON line per check: {"name", "ok", "detail"}. Every check runs (a failing
// one does not stop the others) with its own time limit. The server serves the flows of
// ../flows: conf_steps (no model), conf_approve (human.approve), conf_echo (one call to the
// test's fake model; "slow N" is held N seconds). Used by ../test_js_sdk.py.

import { Client } from "@langchain/langgraph-sdk";

const url = process.argv[2];
if (!url) {
  console.error("usage: node conformance.mjs <server url>");
  process.exit(2);
}
const client = new Client({ apiUrl: url, callerOptions: { maxRetries: 0 } });
const CHECK_TIMEOUT_MS = 20000;
const RUN_TAG = `conf-${Date.now()}`; // marks this run's threads (metadata.conf)
const ctx = {}; // what checks share (assistant ids, threads, runs)

class CheckFailed extends Error {}

function assert(cond, message, got) {
  if (!cond) {
    throw new CheckFailed(got === undefined ? message : `${message}; got ${short(got)}`);
  }
}

function short(value, max = 600) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text && text.length > max ? `${text.slice(0, max)}...` : text;
}

function describe(error) {
  if (error instanceof CheckFailed) return error.message;
  const status = error?.status ?? error?.response?.status;
  const body = error?.body ?? error?.response?.body;
  const parts = [];
  if (status !== undefined) parts.push(`HTTP ${status}`);
  parts.push(`${error?.name ?? "Error"}: ${error?.message ?? String(error)}`);
  if (body !== undefined) parts.push(`body ${short(body, 400)}`);
  return parts.join("; ");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every part of a stream, until it ends (or `until(parts)` says stop). */
async function collect(stream, { until, ms = 15000 } = {}) {
  const parts = [];
  const reading = (async () => {
    for await (const part of stream) {
      parts.push(part);
      if (until && until(parts)) break;
    }
    return parts;
  })();
  return withTimeout(reading, ms, "stream");
}

const user = (text) => ({ messages: [{ role: "user", content: text }] });
const events = (parts) => parts.map((p) => p.event);
const lastMessage = (values) => values?.messages?.at(-1)?.content;

async function waitForStatus(threadId, runId, wanted, ms = 10000) {
  const deadline = Date.now() + ms;
  let run;
  while (Date.now() < deadline) {
    run = await client.runs.get(threadId, runId);
    if (wanted.includes(run.status)) return run;
    await sleep(50);
  }
  throw new CheckFailed(`run ${runId} never reached ${wanted.join("/")}; last status ${run?.status}`);
}

async function newThread(extra = {}) {
  return client.threads.create({ metadata: { conf: RUN_TAG, ...extra } });
}

// -- the checks ------------------------------------------------------------------------

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check("assistants.search", async () => {
  const found = await client.assistants.search({ limit: 100 });
  const system = found.filter((a) => a.metadata?.created_by === "system");
  const byGraph = Object.fromEntries(system.map((a) => [a.graph_id, a]));
  for (const graph of ["conf_steps", "conf_approve", "conf_echo"]) {
    assert(byGraph[graph], `no assistant for graph ${graph}`, found.map((a) => a.graph_id));
  }
  ctx.steps = byGraph.conf_steps.assistant_id;
  ctx.approve = byGraph.conf_approve.assistant_id;
  ctx.echo = byGraph.conf_echo.assistant_id;
  const one = await client.assistants.search({ graphId: "conf_steps", limit: 100 });
  assert(one.some((a) => a.assistant_id === ctx.steps)
    && one.every((a) => a.graph_id === "conf_steps"),
  "search({graphId}) should return only that graph's assistants", one);
  return `${found.length} assistants`;
});

check("assistants.get", async () => {
  const assistant = await client.assistants.get(ctx.steps);
  assert(assistant.assistant_id === ctx.steps && assistant.graph_id === "conf_steps",
    "wrong assistant", assistant);
  for (const key of ["config", "metadata", "version", "created_at", "updated_at", "name"]) {
    assert(key in assistant, `assistant lacks ${key}`, assistant);
  }
});

check("assistants.getGraph", async () => {
  const graph = await client.assistants.getGraph(ctx.steps);
  const ids = (graph.nodes ?? []).map((n) => n.id);
  for (const id of ["__start__", "first", "second", "__end__"]) {
    assert(ids.includes(id), `graph lacks node ${id}`, ids);
  }
  assert(Array.isArray(graph.edges) && graph.edges.length >= 3, "graph edges", graph.edges);
});

check("assistants.getSchemas", async () => {
  const schemas = await client.assistants.getSchemas(ctx.steps);
  assert(schemas.graph_id === "conf_steps", "graph_id", schemas.graph_id);
  assert(schemas.input_schema != null, "input_schema is null", schemas);
  const props = schemas.input_schema.properties ?? {};
  assert("topic" in props, "input_schema.properties lacks topic", schemas.input_schema);
  assert(schemas.state_schema != null && "steps" in (schemas.state_schema.properties ?? {}),
    "state_schema lacks steps", schemas.state_schema);
});

check("threads.create", async () => {
  const thread = await newThread({ purpose: "create" });
  assert(typeof thread.thread_id === "string", "no thread_id", thread);
  assert(thread.metadata?.conf === RUN_TAG && thread.metadata?.purpose === "create",
    "metadata not kept", thread.metadata);
  assert(thread.status === "idle", "a new thread should be idle", thread.status);
  ctx.created = thread;
});

check("threads.get", async () => {
  const thread = await client.threads.get(ctx.created.thread_id);
  assert(thread.thread_id === ctx.created.thread_id, "wrong thread", thread);
  assert(thread.metadata?.purpose === "create", "metadata", thread.metadata);
  for (const key of ["created_at", "updated_at", "status", "values"]) {
    assert(key in thread, `thread lacks ${key}`, thread);
  }
});

check("runs.wait", async () => {
  const thread = await newThread({ purpose: "wait" });
  ctx.waited = thread.thread_id;
  const values = await client.runs.wait(thread.thread_id, ctx.steps,
    { input: { topic: "alpha" } });
  assert(values.result === "done: alpha", "result", values);
  assert(JSON.stringify(values.steps) === JSON.stringify(["first", "second"]), "steps",
    values.steps);
  const again = await client.runs.wait(thread.thread_id, ctx.steps, { input: { topic: "beta" } });
  assert(again.result === "done: beta" && again.steps.length === 4,
    "a second run on the thread should continue its state", again);
});

check("threads.search.metadata", async () => {
  const found = await client.threads.search({ metadata: { conf: RUN_TAG, purpose: "create" } });
  assert(found.length === 1 && found[0].thread_id === ctx.created.thread_id,
    "metadata filter should find exactly the created thread", found.map((t) => t.metadata));
});

check("threads.search.assistant_id", async () => {
  const found = await client.threads.search({
    metadata: { conf: RUN_TAG, assistant_id: ctx.steps }, limit: 100,
  });
  const ids = found.map((t) => t.thread_id);
  assert(ids.includes(ctx.waited), "a thread run with conf_steps is not found by assistant_id",
    found.map((t) => t.metadata));
  assert(!ids.includes(ctx.created.thread_id), "a thread never run matched assistant_id", ids);
  const thread = await client.threads.get(ctx.waited);
  assert(thread.metadata?.assistant_id === ctx.steps,
    "runs should stamp assistant_id into the thread's metadata", thread.metadata);
});

check("threads.search.sort", async () => {
  const tag = `${RUN_TAG}-sort`;
  const made = [];
  for (let i = 0; i < 3; i += 1) {
    made.push((await client.threads.create({ metadata: { conf: tag, i } })).thread_id);
    await sleep(15);
  }
  const asc = (await client.threads.search({
    metadata: { conf: tag }, sortBy: "created_at", sortOrder: "asc",
  })).map((t) => t.thread_id);
  const desc = (await client.threads.search({
    metadata: { conf: tag }, sortBy: "created_at", sortOrder: "desc",
  })).map((t) => t.thread_id);
  assert(JSON.stringify(asc) === JSON.stringify(made), "asc should be creation order",
    { asc, made });
  assert(JSON.stringify(desc) === JSON.stringify([...made].reverse()),
    "desc should be reverse creation order", { desc, made });
});

check("threads.search.values", async () => {
  const thread = await newThread({ purpose: "values" });
  const topic = `values-${RUN_TAG}`;
  await client.runs.wait(thread.thread_id, ctx.steps, { input: { topic } });
  const found = await client.threads.search({ values: { topic }, limit: 100 });
  assert(found.length === 1 && found[0].thread_id === thread.thread_id,
    "values filter should find exactly that thread", found.map((t) => t.thread_id));
  const none = await client.threads.search({ values: { topic: `${topic}-none` } });
  assert(none.length === 0, "values filter matched a thread it should not", none);
});

check("threads.getState", async () => {
  const state = await client.threads.getState(ctx.waited);
  assert(state.values?.result === "done: beta", "values", state.values);
  assert(Array.isArray(state.next) && state.next.length === 0, "next should be []", state.next);
  assert(state.checkpoint?.checkpoint_id, "no checkpoint id", state.checkpoint);
  assert(Array.isArray(state.tasks), "tasks", state);
  ctx.head = state.checkpoint.checkpoint_id;
});

check("threads.updateState", async () => {
  const thread = await newThread({ purpose: "update" });
  await client.runs.wait(thread.thread_id, ctx.steps, { input: { topic: "before" } });
  const out = await client.threads.updateState(thread.thread_id, {
    values: { topic: "patched" }, asNode: "second",
  });
  assert(out?.checkpoint?.checkpoint_id, "updateState returns the new checkpoint", out);
  const state = await client.threads.getState(thread.thread_id);
  assert(state.values.topic === "patched", "value not written", state.values);
  assert(state.checkpoint.checkpoint_id === out.checkpoint.checkpoint_id,
    "the head should be the checkpoint updateState returned",
    { head: state.checkpoint, returned: out.checkpoint });
});

check("threads.getHistory", async () => {
  const history = await client.threads.getHistory(ctx.waited, { limit: 20 });
  assert(Array.isArray(history) && history.length >= 6,
    "two 2-node runs should leave at least 6 checkpoints", history?.length);
  assert(history[0].checkpoint.checkpoint_id === ctx.head, "history[0] should be the head",
    history[0].checkpoint);
  assert(history[0].values.steps?.length === 4
    && (history.at(-1).values.steps ?? []).length === 0,
  "history should run newest to oldest", history.map((s) => s.values.steps));
  const limited = await client.threads.getHistory(ctx.waited, { limit: 2 });
  assert(limited.length === 2, "limit", limited.length);
  return `${history.length} states`;
});

check("threads.copy", async () => {
  const copy = await client.threads.copy(ctx.waited);
  assert(copy.thread_id && copy.thread_id !== ctx.waited, "copy should be a new thread", copy);
  const [a, b] = await Promise.all([client.threads.getState(ctx.waited),
    client.threads.getState(copy.thread_id)]);
  assert(JSON.stringify(a.values) === JSON.stringify(b.values), "copied values differ",
    { original: a.values, copy: b.values });
  const more = await client.runs.wait(copy.thread_id, ctx.steps, { input: { topic: "gamma" } });
  const original = await client.threads.getState(ctx.waited);
  assert(more.steps.length === 6 && original.values.steps.length === 4,
    "runs on the copy should not touch the original",
    { copy: more.steps, original: original.values.steps });
});

check("runs.create+join", async () => {
  const thread = await newThread({ purpose: "join" });
  const run = await client.runs.create(thread.thread_id, ctx.steps, { input: { topic: "joined" } });
  assert(run.run_id && ["pending", "running", "success"].includes(run.status), "run", run);
  assert(run.thread_id === thread.thread_id && run.assistant_id === ctx.steps, "run ids", run);
  const values = await client.runs.join(thread.thread_id, run.run_id);
  assert(values?.result === "done: joined", "join should return the final values", values);
  const done = await client.runs.get(thread.thread_id, run.run_id);
  assert(done.status === "success", "status after join", done.status);
});

check("runs.stream.values", async () => {
  const thread = await newThread();
  const parts = await collect(client.runs.stream(thread.thread_id, ctx.steps, {
    input: { topic: "streamed" }, streamMode: "values",
  }));
  const kinds = events(parts);
  assert(kinds[0] === "metadata" && parts[0].data?.run_id, "metadata first", parts[0]);
  const values = parts.filter((p) => p.event === "values").map((p) => p.data);
  assert(values.length >= 3, "a values event per step (input, first, second)", kinds);
  assert(values.at(-1).result === "done: streamed", "last values", values.at(-1));
  assert(kinds.every((k) => k === "metadata" || k === "values"), "only values asked", kinds);
});

check("runs.stream.updates", async () => {
  const thread = await newThread();
  const parts = await collect(client.runs.stream(thread.thread_id, ctx.steps, {
    input: { topic: "updated" }, streamMode: "updates",
  }));
  const updates = parts.filter((p) => p.event === "updates").map((p) => p.data);
  const nodes = updates.flatMap((u) => Object.keys(u));
  assert(JSON.stringify(nodes) === JSON.stringify(["first", "second"]),
    "one update per node, keyed by node", updates);
  assert(updates[1].second.result === "done: updated", "second's update", updates[1]);
});

check("runs.stream.values+updates", async () => {
  const thread = await newThread();
  const parts = await collect(client.runs.stream(thread.thread_id, ctx.steps, {
    input: { topic: "both" }, streamMode: ["values", "updates"],
  }));
  const kinds = new Set(events(parts));
  assert(kinds.has("values") && kinds.has("updates"), "both modes", [...kinds]);
  assert([...kinds].every((k) => ["metadata", "values", "updates"].includes(k)),
    "only the modes asked", [...kinds]);
});

check("runs.stream.events", async () => {
  const thread = await newThread();
  const parts = await collect(client.runs.stream(thread.thread_id, ctx.steps, {
    input: { topic: "events" }, streamMode: "events",
  }));
  const evs = parts.filter((p) => p.event === "events").map((p) => p.data);
  assert(evs.length > 0, "no events", events(parts));
  const kinds = new Set(evs.map((e) => e.event));
  assert(kinds.has("on_chain_start") && kinds.has("on_chain_end"),
    "events should be astream_events items", [...kinds]);
  return `${evs.length} events`;
});

check("runs.list.select", async () => {
  const runs = await client.runs.list(ctx.waited, { select: ["run_id", "status"] });
  assert(runs.length === 2, "two runs on the thread", runs);
  for (const run of runs) {
    assert(JSON.stringify(Object.keys(run).sort()) === '["run_id","status"]',
      "select should keep only run_id and status", run);
  }
  const all = await client.runs.list(ctx.waited);
  assert(all.length === 2 && "assistant_id" in all[0], "without select: whole runs", all[0]);
});

check("interrupt.resume", async () => {
  const thread = await newThread({ purpose: "interrupt" });
  const paused = await client.runs.wait(thread.thread_id, ctx.approve,
    { input: user("refund order 7") });
  assert(paused.note === undefined, "nothing past the pause should run", paused);
  const t = await client.threads.get(thread.thread_id);
  assert(t.status === "interrupted", "thread status", t.status);
  const pending = Object.values(t.interrupts ?? {}).flat();
  assert(pending.length === 1, "thread.interrupts should hold the pending interrupt",
    t.interrupts);
  assert(String(pending[0].value?.message ?? "").includes("refund order 7"),
    "the interrupt's value", pending[0]);
  const state = await client.threads.getState(thread.thread_id);
  assert(JSON.stringify(state.next) === '["ask"]', "next", state.next);
  assert((state.tasks?.[0]?.interrupts ?? []).length === 1, "task interrupts", state.tasks);
  const done = await client.runs.wait(thread.thread_id, ctx.approve,
    { command: { resume: true } });
  assert(done.note === "approved branch" && done.approval === "approved",
    "resume should take the approved branch", done);
  const after = await client.threads.get(thread.thread_id);
  assert(after.status === "idle", "status after resume", after.status);
});

check("runs.interruptBefore", async () => {
  const thread = await newThread();
  const values = await client.runs.wait(thread.thread_id, ctx.steps, {
    input: { topic: "held" }, interruptBefore: ["second"],
  });
  assert(values.result === undefined, "second should not have run", values);
  const t = await client.threads.get(thread.thread_id);
  assert(t.status === "interrupted", "thread status", t.status);
  const state = await client.threads.getState(thread.thread_id);
  assert(JSON.stringify(state.next) === '["second"]', "next", state.next);
  const done = await client.runs.wait(thread.thread_id, ctx.steps, { input: null });
  assert(done.result === "done: held", "continuing should run second", done);
});

check("runs.cancel", async () => {
  const thread = await newThread();
  const run = await client.runs.create(thread.thread_id, ctx.echo, { input: user("slow 30") });
  await waitForStatus(thread.thread_id, run.run_id, ["running"]);
  const started = Date.now();
  await client.runs.cancel(thread.thread_id, run.run_id, true);
  const after = await waitForStatus(thread.thread_id, run.run_id,
    ["interrupted", "error", "success", "timeout"], 5000);
  assert(after.status === "interrupted", "a cancelled run should be interrupted", after.status);
  const t = await client.threads.get(thread.thread_id);
  assert(t.status !== "busy", "thread still busy after cancel", t.status);
  return `cancelled in ${Date.now() - started} ms`;
});

check("runs.cancelMany", async () => {
  const runs = [];
  for (let i = 0; i < 2; i += 1) {
    const thread = await newThread();
    const run = await client.runs.create(thread.thread_id, ctx.echo, { input: user("slow 30") });
    runs.push(run);
  }
  // a second run on the first thread waits behind the first one
  runs.push(await client.runs.create(runs[0].thread_id, ctx.echo,
    { input: user("slow 30"), multitaskStrategy: "enqueue" }));
  await waitForStatus(runs[0].thread_id, runs[0].run_id, ["running"]);
  await client.runs.cancelMany({ status: "all" });
  const deadline = Date.now() + 5000;
  let statuses;
  while (Date.now() < deadline) {
    statuses = await Promise.all(runs.map((r) => client.runs.get(r.thread_id, r.run_id)
      .then((x) => x.status)));
    if (statuses.every((s) => s !== "pending" && s !== "running")) break;
    await sleep(50);
  }
  assert(statuses.every((s) => s !== "pending" && s !== "running"),
    "cancelMany({status: 'all'}) left runs going", statuses);
  const busy = await client.threads.search({ status: "busy", limit: 100 });
  assert(busy.length === 0, "threads still busy", busy.map((t) => t.thread_id));
  return statuses.join(",");
});

check("runs.badInput422", async () => {
  const thread = await newThread();
  let error;
  try {
    await client.runs.wait(thread.thread_id, ctx.approve,
      { input: { messages: [{ role: "bogus", content: "x" }] } });
  } catch (e) {
    error = e;
  }
  assert(error !== undefined, "a bogus message role was accepted");
  assert(error.status === 422, `expected HTTP 422, got ${describe(error)}`);
  const found = await client.threads.search({ limit: 1 });
  assert(Array.isArray(found), "threads.search after the refusal", found);
  const t = await client.threads.get(thread.thread_id);
  assert(t.status === "idle", "the thread should stay idle", t.status);
});

check("runs.timeTravel", async () => {
  const thread = await newThread();
  await client.runs.wait(thread.thread_id, ctx.steps, { input: { topic: "one" } });
  await client.runs.wait(thread.thread_id, ctx.steps, { input: { topic: "two" } });
  const history = await client.threads.getHistory(thread.thread_id, { limit: 50 });
  const end1 = history.find((s) => s.next.length === 0 && s.values.steps?.length === 2);
  assert(end1, "no checkpoint at the end of the first run",
    history.map((s) => [s.next, s.values.steps]));
  const forked = await client.runs.wait(thread.thread_id, ctx.steps, {
    input: { topic: "three" }, checkpointId: end1.checkpoint.checkpoint_id,
  });
  assert(forked.result === "done: three" && forked.steps?.length === 4,
    "a run from the first run's checkpoint should fork from there (4 steps, not 6)", forked);
  const head = await client.threads.getState(thread.thread_id);
  assert(JSON.stringify(head.values) === JSON.stringify(forked),
    "the new head should hold the values runs.wait returned", { head: head.values, forked });
  assert(head.parent_checkpoint?.checkpoint_id !== undefined, "parent", head);
});

check("runs.joinStream", async () => {
  const thread = await newThread();
  const run = await client.runs.create(thread.thread_id, ctx.echo, {
    input: user("slow 1"), streamMode: ["values"],
  });
  const parts = await collect(client.runs.joinStream(thread.thread_id, run.run_id));
  const values = parts.filter((p) => p.event === "values").map((p) => p.data);
  assert(values.length > 0, "no values events", events(parts));
  assert(lastMessage(values.at(-1)) === "echo: slow 1", "last values", values.at(-1));
  const done = await client.runs.get(thread.thread_id, run.run_id);
  assert(done.status === "success", "the stream should end with the run", done.status);
});

check("threads.joinStream", async () => {
  const thread = await newThread();
  const controller = new AbortController();
  const stream = client.threads.joinStream(thread.thread_id, {
    streamMode: "run_modes", signal: controller.signal,
  });
  const first = stream.next(); // connects before the run starts
  first.catch(() => {}); // (awaited below; no unhandled rejection meanwhile)
  await sleep(200);
  await client.runs.create(thread.thread_id, ctx.echo, { input: user("slow 0.5") });
  const parts = [];
  const reading = (async () => {
    let item = await first;
    while (!item.done) {
      parts.push(item.value);
      if (item.value.event === "values" && lastMessage(item.value.data) === "echo: slow 0.5") {
        break;
      }
      item = await stream.next();
    }
  })();
  try {
    await withTimeout(reading, 8000, "threads.joinStream");
  } finally {
    controller.abort();
  }
  const values = parts.filter((p) => p.event === "values");
  assert(values.length > 0, "the thread's stream carried no values", events(parts));
});

check("runs.createBatch", async () => {
  const created = await client.runs.createBatch([
    { assistantId: ctx.steps, input: { topic: "batch 1" }, metadata: { batch: 1 } },
    { assistantId: ctx.steps, input: { topic: "batch 2" }, metadata: { batch: 2 },
      multitaskStrategy: "reject" },
  ]);
  assert(Array.isArray(created) && created.length === 2 && created.every((r) => r.run_id),
    "two runs", created);
  assert(created[0].metadata?.batch === 1 && created[1].multitask_strategy === "reject",
    "camelCase options are honoured", created);
  let bad = null;
  try {
    await client.runs.createBatch([{ assistantId: ctx.steps, input: {}, noSuchOption: 1 }]);
  } catch (err) {
    bad = err;
  }
  assert(bad && String(bad).includes("422"), "an unknown option is refused with a 422", String(bad));
});

check("assistants.setLatest", async () => {
  const made = await client.assistants.create({ graphId: "conf_steps", name: "v1" });
  const v2 = await client.assistants.update(made.assistant_id, { name: "v2" });
  assert(v2.version === 2, "update should make version 2", v2);
  const back = await client.assistants.setLatest(made.assistant_id, 1);
  assert(back.version === 1 && back.name === "v1", "setLatest(1) should return version 1", back);
  const now = await client.assistants.get(made.assistant_id);
  assert(now.version === 1 && now.name === "v1", "get after setLatest", now);
});

const NS = ["conf", RUN_TAG, "notes"];

check("store.putItem+getItem", async () => {
  await client.store.putItem(NS, "k1", { text: "hello", n: 1 });
  const item = await client.store.getItem(NS, "k1");
  assert(item && item.key === "k1" && item.value?.text === "hello", "item", item);
  assert(JSON.stringify(item.namespace) === JSON.stringify(NS), "namespace", item.namespace);
  await client.store.putItem(NS, "k1", { text: "hello again", n: 2 });
  const updated = await client.store.getItem(NS, "k1");
  assert(updated.value?.n === 2, "put should replace the value", updated);
});

check("store.searchItems", async () => {
  await client.store.putItem(NS, "k2", { text: "other", n: 5 });
  const found = await client.store.searchItems(["conf", RUN_TAG]);
  const keys = (found.items ?? []).map((i) => i.key).sort();
  assert(JSON.stringify(keys) === '["k1","k2"]', "search by prefix", found);
  const filtered = await client.store.searchItems(["conf", RUN_TAG], { filter: { n: 5 } });
  assert(filtered.items?.length === 1 && filtered.items[0].key === "k2", "filter", filtered);
});

check("store.listNamespaces", async () => {
  const listed = await client.store.listNamespaces({ prefix: ["conf", RUN_TAG] });
  const names = (listed.namespaces ?? []).map((n) => JSON.stringify(n));
  assert(names.includes(JSON.stringify(NS)), "listNamespaces", listed);
});

check("store.deleteItem", async () => {
  await client.store.deleteItem(NS, "k1");
  let item;
  try {
    item = await client.store.getItem(NS, "k1");
  } catch (e) {
    assert(e.status === 404, `getItem after delete: ${describe(e)}`);
    item = null;
  }
  assert(item == null, "the item is still there", item);
});

check("crons.create", async () => {
  const cron = await client.crons.create(ctx.steps, {
    schedule: "0 0 1 1 *", input: { topic: "cron" },
  });
  assert(cron.cron_id, "no cron_id", cron);
  ctx.cron = cron.cron_id;
});

check("crons.search", async () => {
  assert(ctx.cron, "crons.create made no cron");
  const found = await client.crons.search({ assistantId: ctx.steps });
  assert(found.some((c) => c.cron_id === ctx.cron), "the cron is not found", found);
});

check("crons.delete", async () => {
  assert(ctx.cron, "crons.create made no cron");
  await client.crons.delete(ctx.cron);
  const found = await client.crons.search({ assistantId: ctx.steps });
  assert(!found.some((c) => c.cron_id === ctx.cron), "the cron is still there", found);
});

// -- run them --------------------------------------------------------------------------

process.on("unhandledRejection", (error) => {
  process.stderr.write(`unhandled rejection: ${describe(error)}\n`);
});

const only = process.env.CONFORMANCE_ONLY?.split(",");
for (const { name, fn } of checks) {
  if (only && !only.includes(name)) continue;
  const started = Date.now();
  let row;
  try {
    const note = await withTimeout(fn(), CHECK_TIMEOUT_MS, name);
    row = { name, ok: true, detail: note ?? "" };
  } catch (error) {
    row = { name, ok: false, detail: describe(error) };
  }
  row.ms = Date.now() - started;
  process.stdout.write(`${JSON.stringify(row)}\n`);
}
try {
  await client.runs.cancelMany({ status: "all" }); // leave nothing running
} catch {
  // reported by runs.cancelMany
}
process.exit(0);
