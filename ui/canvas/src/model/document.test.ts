import { describe, expect, it } from "vitest";
import {
  addNode, connect, declareState, defaultParams, disconnect, edgeIds, freePosition, moveNodes, newDocument,
  normalizeDocument, reconnectEdge, removeElements, removeState, renameNode, renameState, sameContent, setEdgeCondition,
  setFlowInfo, setLabel, setParam, setParams, stableStringify, toJson, uniqueId, withId,
} from "./document";
import { example, TYPES } from "./fixtures";
import { ModelError } from "./types";

const chat = TYPES["llm.chat@1"];
const search = TYPES["retriever.search@1"];
const router = TYPES["router.condition@1"];

describe("ids", () => {
  it("makes unique, valid ids", () => {
    expect(uniqueId("chat", [])).toBe("chat");
    expect(uniqueId("chat", ["chat", "chat_2"])).toBe("chat_3");
    expect(uniqueId("9 lives!", [])).toBe("n_9_lives");
    expect(uniqueId("START", [])).toBe("START_2");
    expect(uniqueId("问答", [])).toBe("node");
  });
});

describe("nodes", () => {
  it("adds a node with the type's defaults, a unique id and a position", () => {
    let [doc, id] = addNode(newDocument(), chat, { position: { x: 10, y: 20 } });
    expect(id).toBe("chat");
    expect(doc.nodes[0]).toEqual({ id: "chat", type: "llm.chat@1", params: defaultParams(chat.params_schema) });
    expect(doc.nodes[0].params.model).toBe("local");
    expect(doc.nodes[0].params).not.toHaveProperty("system_prompt"); // null defaults are left out
    expect(doc.layout.nodes.chat).toEqual({ x: 10, y: 20 });
    [doc, id] = addNode(doc, chat);
    expect(id).toBe("chat_2");
    expect(doc.layout.nodes.chat_2.x).toBeGreaterThan(10);
  });

  it("finds a free spot for a clicked-in node", () => {
    let [doc] = addNode(newDocument(), chat, { position: { x: 0, y: 0 } });
    expect(freePosition(doc, { x: 500, y: 0 })).toEqual({ x: 500, y: 0 });
    const below = freePosition(doc, { x: 10, y: 10 });
    expect(below).toEqual({ x: 10, y: 120 });
    [doc] = addNode(doc, chat, { position: below });
    expect(freePosition(doc, { x: 10, y: 10 })).toEqual({ x: 10, y: 230 });
  });

  it("shares what did not change", () => {
    const [a] = addNode(newDocument(), chat);
    const [b] = addNode(a, search);
    const c = setParam(b, "search", "kb", "demo");
    expect(c.nodes[0]).toBe(b.nodes[0]);
    expect(c.nodes[1]).not.toBe(b.nodes[1]);
    expect(c.edges).toBe(b.edges);
    expect(c.state).toBe(b.state);
    expect(setParam(c, "search", "kb", "demo")).toBe(c); // no change, same document
  });

  it("removes nodes with their edges and positions, never START or END", () => {
    let [doc] = addNode(newDocument(), chat);
    doc = connect(connect(doc, "START", "chat"), "chat", "END");
    const out = removeElements(doc, ["chat", "START"]);
    expect(out.nodes).toEqual([]);
    expect(out.edges).toEqual([]);
    expect(out.layout.nodes).not.toHaveProperty("chat");
    expect(removeElements(doc, ["END"])).toBe(doc);
  });

  it("renames a node: edges and layout follow", () => {
    let [doc] = addNode(newDocument(), chat);
    doc = connect(connect(doc, "START", "chat"), "chat", "END");
    const out = renameNode(doc, "chat", "answer");
    expect(out.nodes[0].id).toBe("answer");
    expect(out.edges).toEqual([{ source: "START", target: "answer" }, { source: "answer", target: "END" }]);
    expect(Object.keys(out.layout.nodes)).toEqual(["answer"]);
    expect(() => renameNode(doc, "chat", "END")).toThrow(ModelError);
    expect(() => renameNode(doc, "chat", "has space")).toThrow(/not a valid id/);
    const [two] = addNode(doc, search);
    expect(() => renameNode(two, "search", "chat")).toThrow(/exists already/);
  });

  it("labels accept any text, CJK included; empty removes the label", () => {
    const [doc] = addNode(newDocument(), chat);
    const labelled = setLabel(doc, "chat", "回答问题");
    expect(labelled.nodes[0].label).toBe("回答问题");
    expect(setLabel(labelled, "chat", "  ").nodes[0]).not.toHaveProperty("label");
  });

  it("sets and removes params", () => {
    const [doc] = addNode(newDocument(), chat);
    expect(setParam(doc, "chat", "temperature", 0.7).nodes[0].params.temperature).toBe(0.7);
    expect(setParam(doc, "chat", "temperature", undefined).nodes[0].params).not.toHaveProperty("temperature");
    expect(setParams(doc, "chat", { model: "x", gone: undefined }).nodes[0].params).toEqual({ model: "x" });
    expect(() => setParam(doc, "nope", "a", 1)).toThrow(/no node 'nope'/);
  });

  it("moves nodes, START and END included, to whole pixels", () => {
    const [doc] = addNode(newDocument(), chat, { position: { x: 0, y: 0 } });
    const out = moveNodes(doc, { chat: { x: 10.4, y: 20.6 }, START: { x: -100, y: 0 }, ghost: { x: 1, y: 1 } });
    expect(out.layout.nodes).toEqual({ chat: { x: 10, y: 21 }, START: { x: -100, y: 0 } });
    expect(moveNodes(out, { chat: { x: 10, y: 21 } })).toBe(out);
  });
});

describe("edges", () => {
  it("connects, refusing impossible or repeated edges", () => {
    const [doc] = addNode(newDocument(), chat);
    const one = connect(doc, "START", "chat");
    expect(one.edges).toEqual([{ source: "START", target: "chat" }]);
    expect(() => connect(one, "START", "chat")).toThrow(/exists already/);
    expect(() => connect(one, "END", "chat")).toThrow(/END cannot be an edge's source/);
    expect(() => connect(one, "chat", "START")).toThrow(/START cannot/);
    expect(() => connect(one, "chat", "nowhere")).toThrow(/target 'nowhere' is not a node; nodes are: chat/);
  });

  it("keeps a router's branch as the edge's condition", () => {
    let [doc] = addNode(newDocument(), router, { params: { routes: [{ label: "a", value: "x" }] } });
    [doc] = addNode(doc, chat);
    doc = connect(doc, "condition", "chat", "a");
    doc = connect(doc, "condition", "END", "default");
    expect(doc.edges[0]).toEqual({ source: "condition", target: "chat", condition: "a" });
    expect(edgeIds(doc)).toEqual(["e:condition->chat:a", "e:condition->END:default"]);
    const [moved, id] = setEdgeCondition(doc, "e:condition->chat:a", "b");
    expect(id).toBe("e:condition->chat:b");
    expect(moved.edges[0].condition).toBe("b");
    expect(setEdgeCondition(moved, id, null)[0].edges[0]).toEqual({ source: "condition", target: "chat" });
  });

  it("reconnects an edge in place, keeping its condition as asked", () => {
    let [doc] = addNode(newDocument(), router, { params: { routes: [{ label: "a", value: "x" }] } });
    [doc] = addNode(doc, chat);
    [doc] = addNode(doc, search);
    doc = connect(connect(connect(doc, "START", "condition"), "condition", "chat", "a"), "chat", "END");
    const [moved, id] = reconnectEdge(doc, "e:condition->chat:a", { source: "condition", target: "search", condition: "a" });
    expect(id).toBe("e:condition->search:a");
    expect(moved.edges[1]).toEqual({ source: "condition", target: "search", condition: "a" });
    expect(moved.edges.map((e) => e.target)).toEqual(["condition", "search", "END"]); // same place
    expect(moved.edges[0]).toBe(doc.edges[0]);
    expect(moved.nodes).toBe(doc.nodes);
    const [plain, plainId] = reconnectEdge(moved, id, { source: "search", target: "END" });
    expect(plain.edges[1]).toEqual({ source: "search", target: "END" });
    expect(plainId).toBe("e:search->END");
    expect(reconnectEdge(doc, "e:chat->END", { source: "chat", target: "END" })[0]).toBe(doc);
  });

  it("refuses a reconnection as it refuses a new edge", () => {
    let [doc] = addNode(newDocument(), chat);
    [doc] = addNode(doc, search);
    doc = connect(connect(doc, "START", "chat"), "START", "search");
    expect(() => reconnectEdge(doc, "e:START->chat", { source: "START", target: "search" })).toThrow(/exists already/);
    expect(() => reconnectEdge(doc, "e:START->chat", { source: "END", target: "chat" })).toThrow(/END cannot/);
    expect(() => reconnectEdge(doc, "e:START->chat", { source: "chat", target: "START" })).toThrow(/START cannot/);
    expect(() => reconnectEdge(doc, "e:START->chat", { source: "START", target: "gone" })).toThrow(/not a node/);
    expect(() => reconnectEdge(doc, "e:nope->x", { source: "START", target: "chat" })).toThrow(/no edge/);
    // moving an edge onto the ends it has is no change, not a duplicate of itself
    expect(reconnectEdge(doc, "e:START->search", { source: "START", target: "search" })[0]).toBe(doc);
  });

  it("disconnects by edge id, repeats numbered", () => {
    const doc = normalizeDocument({ id: "f", name: "f", nodes: [{ id: "a", type: "state.set@1" }],
      edges: [{ source: "START", target: "a" }, { source: "START", target: "a" }, { source: "a", target: "END" }] });
    expect(edgeIds(doc)).toEqual(["e:START->a", "e:START->a#2", "e:a->END"]);
    expect(disconnect(doc, "e:START->a#2").edges).toHaveLength(2);
  });
});

describe("state and settings", () => {
  it("declares, renames and removes state fields", () => {
    let doc = declareState(newDocument(), "documents", { type: "array", reducer: null, description: "" });
    expect(doc.state.documents).toEqual({ type: "array" });
    expect(declareState(doc, "documents", { type: "array" })).toBe(doc);
    doc = renameState(doc, "documents", "docs");
    expect(Object.keys(doc.state)).toEqual(["messages", "docs"]);
    expect(() => renameState(doc, "docs", "messages")).toThrow(/exists already/);
    expect(() => declareState(doc, "bad name", {})).toThrow(ModelError);
    expect(removeState(doc, "docs").state).not.toHaveProperty("docs");
  });

  it("sets name, description, io; withId checks the id", () => {
    const doc = setFlowInfo(newDocument(), { name: "问答流程", description: "d", io: { input: "q", output: "" } });
    expect(doc.name).toBe("问答流程");
    expect(doc.io).toEqual({ input: "q" });
    expect(withId(doc, "qa").id).toBe("qa");
    expect(() => withId(doc, "no way")).toThrow(/not a valid flow id/);
  });
});

describe("serialization", () => {
  it("compares content regardless of key order and nulls", () => {
    const a = example("rag_chat");
    const b = JSON.parse(JSON.stringify(a));
    b.nodes[0] = { label: b.nodes[0].label, params: b.nodes[0].params, type: b.nodes[0].type, id: b.nodes[0].id, extra: null };
    expect(sameContent(a, b)).toBe(true);
    expect(sameContent(a, setParam(a, "retrieve", "top_k", 4))).toBe(false);
    expect(stableStringify({ b: 1, a: [2, { d: 1, c: 2 }] })).toBe('{"a":[2,{"c":2,"d":1}],"b":1}');
  });

  it("exports in the server's key order and reads it back", () => {
    const doc = example("triage");
    const text = toJson(doc);
    expect(Object.keys(JSON.parse(text)).slice(0, 5)).toEqual(["schema_version", "id", "name", "description", "state"]);
    expect(sameContent(normalizeDocument(JSON.parse(text)), doc)).toBe(true);
  });

  it("normalizes partial documents and refuses broken ones", () => {
    const doc = normalizeDocument({ id: "x", nodes: [{ id: "a", type: "state.set@1" }] });
    expect(doc.nodes[0].params).toEqual({});
    expect(doc.edges).toEqual([]);
    expect(doc.layout.nodes).toEqual({});
    expect(() => normalizeDocument([])).toThrow(/JSON object/);
    expect(() => normalizeDocument({ nodes: [{ type: "x" }] })).toThrow(/nodes\[0\] needs a string id/);
  });
});
