import { describe, expect, it } from "vitest";
import { example } from "./fixtures";
import { answerText, applyTimeline, durationMs, endTrace, feedTrace, outputField, runInput, startTrace, type RunTrace } from "./runtrace";
import { SseParser, type SseEvent } from "./sse";

describe("SSE parser", () => {
  it("parses events split anywhere, CRLF or LF, skipping heartbeats", () => {
    const text = 'event: metadata\r\ndata: {"run_id":"r1","attempt":1}\r\n\r\n: heartbeat\r\n\r\n' +
      'event: updates\r\ndata: {"a":{"x":1}}\r\n\r\nevent: messages\ndata: [{"content":"你好"},{}]\n\n';
    for (const size of [1, 3, 7, text.length]) {
      const p = new SseParser();
      const events: SseEvent[] = [];
      for (let i = 0; i < text.length; i += size) events.push(...p.feed(text.slice(i, i + size)));
      events.push(...p.end());
      expect(events.map((e) => e.event)).toEqual(["metadata", "updates", "messages"]);
      expect(events[0].data).toEqual({ run_id: "r1", attempt: 1 });
      expect((events[2].data as any)[0].content).toBe("你好");
    }
  });

  it("keeps ids and joins multi-line data; non-JSON stays text", () => {
    const p = new SseParser();
    const [e] = p.feed("id: 7\nevent: x\ndata: a\ndata: b\n\n");
    expect(e).toEqual({ event: "x", data: "a\nb", id: "7" });
    expect(p.end()).toEqual([]);
  });
});

const feedAll = (events: [string, unknown, number][], opts = {}): RunTrace =>
  events.reduce((t, [event, data, at]) => feedTrace(t, { event, data }, at, opts), startTrace(0));

describe("run trace", () => {
  it("lights a node while it runs, then keeps its output and duration", () => {
    let t = feedAll([
      ["metadata", { run_id: "r1" }, 1],
      ["tasks", { id: "t1", name: "retrieve", input: {}, triggers: [] }, 10],
    ]);
    expect(t.runId).toBe("r1");
    expect(t.nodes.retrieve.status).toBe("running");
    t = feedTrace(t, { event: "updates", data: { retrieve: { documents: [{ n: 1 }] } } }, 130);
    t = feedTrace(t, { event: "tasks", data: { id: "t1", name: "retrieve", error: null, result: [["documents", [{ n: 1 }]]], interrupts: [] } }, 131);
    expect(t.nodes.retrieve.status).toBe("done");
    expect(t.nodes.retrieve.output).toEqual({ documents: [{ n: 1 }] });
    expect(durationMs(t.nodes.retrieve)).toBe(121);
    expect(t.order).toEqual(["retrieve"]);
  });

  it("streams tokens into the answer, then takes the output field's final text", () => {
    const opts = { outputField: "messages" };
    let t = feedAll([
      ["tasks", { id: "t2", name: "answer", input: {} }, 0],
      ["messages", [{ type: "AIMessageChunk", id: "m1", content: "Hel" }, { langgraph_node: "answer" }], 1],
      ["messages", [{ type: "AIMessageChunk", id: "m1", content: "lo" }, { langgraph_node: "answer" }], 2],
    ], opts);
    expect(answerText(t)).toBe("Hello");
    t = feedTrace(t, { event: "updates", data: { answer: { messages: [{ type: "ai", content: "Hello\n\nSources: [1]" }] } } }, 3, opts);
    expect(answerText(t)).toBe("Hello\n\nSources: [1]");
    t = endTrace(t, 4);
    expect(t.status).toBe("done");
  });

  it("leaves a router's classification out of the answer", () => {
    const t = feedAll([
      ["messages", [{ type: "AIMessageChunk", id: "c", content: "billing" }, { langgraph_node: "classify" }], 1],
      ["updates", { classify: { route: "billing" } }, 2],
    ], { outputField: "messages", quietNodes: new Set(["classify"]) });
    expect(answerText(t)).toBe("");
    expect(t.nodes.classify.output).toEqual({ route: "billing" });
  });

  it("marks the failing node and the run on an error event", () => {
    const t = feedAll([
      ["tasks", { id: "t", name: "answer", input: {} }, 0],
      ["error", { error: "ValueError", message: "the model exploded" }, 5],
    ]);
    expect(t.status).toBe("error");
    expect(t.nodes.answer).toMatchObject({ status: "error", error: "ValueError: the model exploded" });
    expect(endTrace(t, 6).status).toBe("error");
  });

  it("shows what a paused run waits for", () => {
    let t = feedAll([
      ["tasks", { id: "t", name: "review", input: {} }, 0],
      ["tasks", { id: "t", name: "review", error: null, result: [], interrupts: [{ value: {}, id: "i1" }] }, 1],
      ["updates", { __interrupt__: [{ value: { node: "review", message: "OK?" }, id: "i1" }] }, 1],
    ]);
    expect(t.nodes.review.status).toBe("waiting");
    expect(t.interrupts).toEqual([{ id: "i1", value: { node: "review", message: "OK?" } }]);
    t = endTrace(t, 2);
    expect(t.status).toBe("interrupted");
  });

  it("a stopped run closes its running nodes", () => {
    const t = endTrace(feedAll([["tasks", { id: "t", name: "slow", input: {} }, 0]]), 9, true);
    expect(t.status).toBe("cancelled");
    expect(t.nodes.slow).toMatchObject({ status: "error", error: "stopped" });
  });

  it("counts a node that runs again", () => {
    const t = feedAll([
      ["tasks", { id: "a", name: "loop", input: {} }, 0],
      ["updates", { loop: { n: 1 } }, 1],
      ["tasks", { id: "b", name: "loop", input: {} }, 2],
    ]);
    expect(t.nodes.loop).toMatchObject({ count: 2, status: "running", output: { n: 1 } });
  });
});

describe("server timings", () => {
  it("replace arrival times with the server's, per node's last run", () => {
    let t = feedAll([
      ["tasks", { id: "a", name: "answer", input: {} }, 0],
      ["updates", { answer: { x: 1 } }, 1],
    ]);
    expect(durationMs(t.nodes.answer)).toBe(1);
    t = applyTimeline(t, [
      { node: "answer", depth: 0, duration_ms: 10 }, { node: "answer", depth: 0, duration_ms: 42.5 },
      { node: "inner", depth: 1, duration_ms: 3 }, { node: "ghost", depth: 0, duration_ms: 9 },
    ]);
    expect(durationMs(t.nodes.answer)).toBe(42.5);
    expect(t.nodes).not.toHaveProperty("ghost");
    expect(applyTimeline(t, [])).toBe(t);
  });
});

describe("run input", () => {
  it("sends a user message to a chat flow, text to an io.input flow", () => {
    expect(runInput(example("chat"), "你好")).toEqual({ messages: [{ role: "user", content: "你好" }] });
    const doc = { ...example("chat"), state: { question: { type: "string" as const } }, io: { input: "question" } };
    expect(runInput(doc, "q")).toEqual({ question: "q" });
    expect(() => runInput({ ...doc, state: {}, io: {} }, "q")).toThrow(/no input field/);
    expect(outputField(example("chat"))).toBe("messages");
  });
});
