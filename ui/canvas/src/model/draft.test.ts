import { describe, expect, it } from "vitest";
import { addNode, newDocument } from "./document";
import { clearDraft, forgetRecent, loadDraft, loadRecent, pushRecent, RECENT_LIMIT, saveDraft } from "./draft";
import { TYPES } from "./fixtures";

class MemoryStorage {
  items = new Map<string, string>();
  getItem(k: string) { return this.items.get(k) ?? null; }
  setItem(k: string, v: string) { this.items.set(k, v); }
  removeItem(k: string) { this.items.delete(k); }
}

const API = "http://127.0.0.1:8123";

describe("drafts", () => {
  it("round-trips unsaved work per server", () => {
    const s = new MemoryStorage();
    const [doc] = addNode(newDocument("mine", "我的流程"), TYPES["llm.chat@1"]);
    expect(loadDraft(s, API)).toBeNull();
    saveDraft(s, API, { doc, savedId: "mine", etag: "\"e1\"", base: newDocument("mine"), at: 5 });
    const back = loadDraft(s, `${API}/`)!;
    expect(back.doc).toEqual(doc);
    expect(back).toMatchObject({ savedId: "mine", etag: "\"e1\"", at: 5 });
    expect(loadDraft(s, "http://127.0.0.1:9999")).toBeNull();
    clearDraft(s, API);
    expect(loadDraft(s, API)).toBeNull();
  });

  it("ignores a broken or foreign draft", () => {
    const s = new MemoryStorage();
    s.setItem(`flowloom.canvas.draft:${API}`, "{not json");
    expect(loadDraft(s, API)).toBeNull();
    s.setItem(`flowloom.canvas.draft:${API}`, JSON.stringify({ v: 2, doc: {} }));
    expect(loadDraft(s, API)).toBeNull();
  });

  it("survives storage that throws", () => {
    const broken = { getItem() { throw new Error("denied"); }, setItem() { throw new Error("full"); }, removeItem() { throw new Error("x"); } };
    expect(saveDraft(broken, API, { doc: newDocument(), savedId: null, etag: null, base: null, at: 0 })).toBe(false);
    expect(loadDraft(broken, API)).toBeNull();
    expect(() => clearDraft(broken, API)).not.toThrow();
  });
});

describe("recent flows", () => {
  it("keeps the newest first, once each, at most RECENT_LIMIT", () => {
    const s = new MemoryStorage();
    for (let i = 0; i < RECENT_LIMIT + 3; i++) pushRecent(s, API, { id: `f${i}`, name: `F${i}` }, i);
    pushRecent(s, API, { id: "f5", name: "F5" }, 100);
    const list = loadRecent(s, API);
    expect(list).toHaveLength(RECENT_LIMIT);
    expect(list[0]).toEqual({ id: "f5", name: "F5", at: 100 });
    expect(list.filter((r) => r.id === "f5")).toHaveLength(1);
    expect(forgetRecent(s, API, "f5").map((r) => r.id)).not.toContain("f5");
  });
});
