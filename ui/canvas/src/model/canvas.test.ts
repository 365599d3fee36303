import { describe, expect, it } from "vitest";
import { conditionOf, positions, reconnection, toCanvasEdges, toCanvasNodes, type StepNode } from "./canvas";
import { addNode, connect, moveNodes, newDocument, setLabel, setParam } from "./document";
import { example, TYPES } from "./fixtures";

describe("document to canvas", () => {
  it("draws START, END and every node with its type, label and key params", () => {
    const doc = example("rag_chat");
    const nodes = toCanvasNodes(doc, { types: TYPES });
    expect(nodes.map((n) => n.id)).toEqual(["START", "END", "retrieve", "answer"]);
    const retrieve = nodes[2] as StepNode;
    expect(retrieve.type).toBe("step");
    expect(retrieve.position).toEqual({ x: 240, y: 120 });
    expect(retrieve.data.info?.type).toBe("retriever.search@1");
    expect(retrieve.data.keyParams[0]).toEqual(["kb", "demo"]);
    expect(retrieve.data.routes).toBeNull();
    expect(nodes[0].position.x).toBeLessThan(240);
    expect(nodes[1].position.x).toBeGreaterThan(480);
  });

  it("reuses unchanged node objects: an edit redraws one node", () => {
    const doc = example("triage");
    const first = toCanvasNodes(doc, { types: TYPES });
    const edited = setParam(doc, doc.nodes[1].id, "max_tokens", 99);
    const second = toCanvasNodes(edited, { types: TYPES }, first);
    const changed = second.filter((n, i) => n !== first[i]).map((n) => n.id);
    expect(changed).toEqual([doc.nodes[1].id]);
    const moved = toCanvasNodes(moveNodes(edited, { [doc.nodes[0].id]: { x: 1, y: 2 } }), { types: TYPES }, second);
    expect(moved.filter((n, i) => n !== second[i]).map((n) => n.id)).toEqual([doc.nodes[0].id]);
  });

  it("keeps selection across redraws", () => {
    const [doc] = addNode(newDocument(), TYPES["llm.chat@1"]);
    const first = toCanvasNodes(doc, { types: TYPES });
    first[2] = { ...first[2], selected: true } as StepNode;
    const next = toCanvasNodes(setLabel(doc, "chat", "Answer"), { types: TYPES }, first);
    expect(next[2].selected).toBe(true);
    expect((next[2] as StepNode).data.spec.label).toBe("Answer");
  });

  it("gives a router one branch per route, and its edges the branch handle", () => {
    const doc = example("triage");
    const router = doc.nodes.find((n) => n.type === "router.condition@1")!;
    const node = toCanvasNodes(doc, { types: TYPES }).find((n) => n.id === router.id) as StepNode;
    const labels = (router.params.routes as { label: string }[]).map((r) => r.label);
    expect(node.data.routes).toEqual([...labels, router.params.default ?? "default"]);
    const nodes0 = toCanvasNodes(doc, { types: TYPES });
    const routes = (id: string) => (nodes0.find((n) => n.id === id) as StepNode | undefined)?.data.routes ?? null;
    const edges = toCanvasEdges(doc, [], routes);
    const branch = edges.find((e) => e.source === router.id && e.data?.condition)!;
    expect(branch.sourceHandle).toBe(`branch:${branch.data!.condition}`);
    expect(branch.label).toBe(branch.data!.condition);
    expect(conditionOf(branch.sourceHandle)).toBe(branch.data!.condition);
    expect(conditionOf("out")).toBeNull();
  });

  it("uses the server's branch labels when validation sent them", () => {
    const doc = example("triage");
    const router = doc.nodes.find((n) => n.type === "router.condition@1")!;
    const nodes = toCanvasNodes(doc, { types: TYPES, analysis: { [router.id]: { routes: ["x", "y"] } } });
    expect((nodes.find((n) => n.id === router.id) as StepNode).data.routes).toEqual(["x", "y"]);
  });

  it("reuses edges, and places nodes without a layout entry", () => {
    let [doc] = addNode(newDocument(), TYPES["llm.chat@1"]);
    doc = connect(connect(doc, "START", "chat"), "chat", "END");
    const e1 = toCanvasEdges(doc);
    expect(e1.map((e) => [e.source, e.target])).toEqual([["START", "chat"], ["chat", "END"]]);
    const e2 = toCanvasEdges(connect(doc, "START", "END"), e1);
    expect(e2[0]).toBe(e1[0]);
    expect(e2[1]).toBe(e1[1]);
    const bare = { ...doc, layout: { nodes: {} } };
    expect(positions(bare).chat).toBeDefined();
  });
});

describe("reconnecting an edge", () => {
  const branch = { source: "route", sourceHandle: "branch:billing", condition: "billing" };

  it("keeps a router branch's condition while the edge leaves the same branch", () => {
    expect(reconnection(branch, { source: "route", sourceHandle: "branch:billing", target: "other" }))
      .toEqual({ source: "route", target: "other", condition: "billing" });
    // dropped on the router's body (no handle): still its edge, still its branch
    expect(reconnection(branch, { source: "route", sourceHandle: null, target: "other" }).condition).toBe("billing");
    // an edge whose branch the router lacks leaves the plain handle: its condition stays
    expect(reconnection({ source: "route", sourceHandle: "out", condition: "gone" },
      { source: "route", sourceHandle: "out", target: "END" }).condition).toBe("gone");
  });

  it("takes the branch it is moved to, or none on a plain node", () => {
    expect(reconnection(branch, { source: "route", sourceHandle: "branch:technical", target: "x" }).condition)
      .toBe("technical");
    expect(reconnection(branch, { source: "chat", sourceHandle: "out", target: "x" }))
      .toEqual({ source: "chat", target: "x", condition: null });
    expect(reconnection(branch, { source: "route2", sourceHandle: "branch:billing", target: "x" }).condition)
      .toBe("billing");
    expect(reconnection({ source: "a", sourceHandle: "out" }, { source: "b", sourceHandle: null, target: "c" }))
      .toEqual({ source: "b", target: "c", condition: null });
  });
});
