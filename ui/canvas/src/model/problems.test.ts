import { describe, expect, it } from "vitest";
import { declareFix, errorSchema, locate, NO_PROBLEMS, pinProblems } from "./problems";
import { example } from "./fixtures";

const doc = example("triage");

describe("problems pinned to what they name", () => {
  it("locates nodes, params, edges, layout and the flow", () => {
    expect(locate("nodes[1].params.routes[0].label", doc)).toEqual({
      kind: "node", nodeId: doc.nodes[1].id, param: "routes", path: ["routes", 0, "label"] });
    expect(locate("nodes[0].type", doc)).toMatchObject({ kind: "node", nodeId: doc.nodes[0].id, param: undefined });
    expect(locate("edges[0].target", doc).kind).toBe("edge");
    expect(locate(`layout.nodes.${doc.nodes[0].id}`, doc)).toEqual({ kind: "node", nodeId: doc.nodes[0].id });
    expect(locate("nodes[99].id", doc)).toEqual({ kind: "flow" });
    expect(locate("io.input", doc)).toEqual({ kind: "flow" });
  });

  it("groups problems and reuses unchanged groups", () => {
    const problems = [
      { path: "nodes[0].params.model", message: "unknown model" },
      { path: "edges[1].target", message: "not a node" },
      { path: "", message: "no path to END" },
    ];
    const pinned = pinProblems(problems, doc);
    expect(pinned.count).toBe(3);
    expect(pinned.nodes[doc.nodes[0].id]).toHaveLength(1);
    expect(Object.keys(pinned.edges)).toHaveLength(1);
    expect(pinned.flow[0].message).toBe("no path to END");
    const again = pinProblems(problems.map((p) => ({ ...p })), doc, pinned);
    expect(again.nodes[doc.nodes[0].id]).toBe(pinned.nodes[doc.nodes[0].id]);
    expect(pinProblems([], doc)).toBe(NO_PROBLEMS);
  });

  it("turns a node's problems into the form's error schema", () => {
    const es = errorSchema([
      { path: "nodes[1].params.routes[0].label", message: "bad label" },
      { path: "nodes[1].params.model", message: "unknown", choices: ["local", "local-embed"] },
    ], doc);
    expect(es).toEqual({ routes: { 0: { label: { __errors: ["bad label"] } } },
      model: { __errors: ["unknown (choices: local, local-embed)"] } });
  });

  it("offers to declare the field a node writes", () => {
    expect(declareFix({ path: "nodes[0].params.output", message: "x", code: "undeclared_state_field",
      fix: { declare: { field: "documents", type: "array" } } })).toEqual({ field: "documents", type: "array" });
    // an older server: read from the message
    expect(declareFix({ path: "nodes[0].params.output", code: "unknown_state_field",
      message: "writes state field 'documents', which the flow does not declare" }))
      .toEqual({ field: "documents", type: "array" });
    expect(declareFix({ path: "nodes[0].params.field", code: "unknown_state_field",
      message: "reads state field 'q', which the flow does not declare" })).toBeNull();
  });
});
