import { describe, expect, it } from "vitest";
import { addNode, newDocument, setParam } from "./document";
import { TYPES } from "./fixtures";
import { amend, canRedo, canUndo, createHistory, push, redo, undo } from "./history";

describe("history over whole documents", () => {
  it("undoes and redoes every part of the document", () => {
    const d0 = newDocument();
    const [d1] = addNode(d0, TYPES["llm.chat@1"]);
    const d2 = setParam(d1, "chat", "temperature", 0.9);
    let h = push(push(createHistory(d0), d1, { at: 0 }), d2, { at: 10_000 });
    expect(canUndo(h)).toBe(true);
    h = undo(h);
    expect(h.present).toBe(d1);
    h = undo(h);
    expect(h.present).toBe(d0);
    expect(canUndo(h)).toBe(false);
    expect(undo(h)).toBe(h);
    h = redo(redo(h));
    expect(h.present).toBe(d2);
    expect(canRedo(h)).toBe(false);
  });

  it("a new edit clears redo", () => {
    let h = push(createHistory(1), 2);
    h = undo(h);
    h = push(h, 3);
    expect(h.future).toEqual([]);
    expect(h.past).toEqual([1]);
  });

  it("coalesces edits of the same key in quick succession", () => {
    let h = createHistory("");
    h = push(h, "a", { key: "chat.system", at: 0 });
    h = push(h, "ab", { key: "chat.system", at: 500 });
    h = push(h, "abc", { key: "chat.system", at: 900 });
    expect(h.past).toEqual([""]);
    h = push(h, "abcd", { key: "chat.system", at: 5000 }); // later: a step of its own
    h = push(h, "abcde", { key: "chat.prompt", at: 5100 }); // another field: its own step
    expect(h.past).toEqual(["", "abc", "abcd"]);
    expect(undo(h).present).toBe("abcd");
  });

  it("pushing the present is no step; amend replaces it without one", () => {
    const h = push(createHistory("a"), "b");
    expect(push(h, h.present)).toBe(h);
    const a = amend(h, "b+");
    expect(a.past).toEqual(["a"]);
    expect(undo(a).present).toBe("a");
  });

  it("keeps at most `limit` steps", () => {
    let h = createHistory(0);
    for (let i = 1; i <= 10; i++) h = push(h, i, { limit: 3 });
    expect(h.past).toEqual([7, 8, 9]);
  });
});
