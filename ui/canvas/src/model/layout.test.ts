import { describe, expect, it } from "vitest";
import { addNode, connect, newDocument } from "./document";
import { example, TYPES } from "./fixtures";
import { autoLayout, layoutPositions } from "./layout";

describe("auto layout", () => {
  it("puts nodes in layers from START to END, without overlaps", () => {
    const doc = example("triage");
    const pos = layoutPositions(doc);
    expect(pos.START.x).toBeLessThan(pos.classify.x);
    for (const id of ["technical", "billing", "general"]) {
      expect(pos[id].x).toBeGreaterThan(pos.classify.x);
      expect(pos.END.x).toBeGreaterThan(pos[id].x);
    }
    const ys = ["technical", "billing", "general"].map((id) => pos[id].y).sort((a, b) => a - b);
    expect(ys[1] - ys[0]).toBeGreaterThanOrEqual(60);
    const out = autoLayout(doc);
    expect(out.layout.nodes.classify).toEqual(pos.classify);
    expect(out.nodes).toBe(doc.nodes);
  });

  it("lays out 200 nodes quickly", () => {
    let doc = newDocument();
    let prev = "START";
    for (let i = 0; i < 200; i++) {
      let id: string;
      [doc, id] = addNode(doc, TYPES["state.set@1"]);
      doc = connect(doc, prev, id);
      prev = i % 10 === 9 ? "START" : id;
      if (i % 10 === 9) doc = connect(doc, id, "END");
    }
    const t0 = performance.now();
    const pos = layoutPositions(doc);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(Object.keys(pos)).toHaveLength(202);
  });
});
