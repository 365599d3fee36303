import { describe, expect, it } from "vitest";
import { addNode, newDocument } from "./document";
import {
  clearDraft, draftPlaces, forgetFlow, forgetRecent, loadDraft, loadRecent, pushRecent, RECENT_LIMIT, saveDraft,
  tabDraft, type DraftPlaces,
} from "./draft";
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

/** A browser: one localStorage, a sessionStorage per tab (kept by a reload). */
class Browser {
  local = new MemoryStorage();
  tabs = new Map<string, MemoryStorage>();
  tab(name: string): DraftPlaces {
    if (!this.tabs.has(name)) this.tabs.set(name, new MemoryStorage());
    const session = this.tabs.get(name)!;
    return draftPlaces({ sessionStorage: session, localStorage: this.local });
  }
}

describe("drafts per tab", () => {
  const edited = (id: string, label: string) => {
    const [doc] = addNode(newDocument(id, id), TYPES["llm.chat@1"]);
    return { ...doc, nodes: [{ ...doc.nodes[0], label }] };
  };

  it("keeps two tabs' drafts apart; a reload of a tab gets its own back", () => {
    const browser = new Browser();
    const one = browser.tab("one");
    const two = browser.tab("two");
    saveDraft(one.tab!, API, { doc: edited("a", "A's edit"), savedId: "a", etag: null, base: null, at: 1 });
    saveDraft(two.tab!, API, { doc: edited("b", "B's edit"), savedId: "b", etag: null, base: null, at: 2 });
    // reloading tab one (same session storage) offers tab one's draft, not the newer one of tab two
    expect(tabDraft(browser.tab("one"), API)?.doc.nodes[0].label).toBe("A's edit");
    expect(tabDraft(browser.tab("two"), API)?.doc.nodes[0].label).toBe("B's edit");
    expect(tabDraft(browser.tab("three"), API)).toBeNull();
    expect(loadDraft(browser.local, API)).toBeNull(); // nothing of either tab is the browser's
  });

  it("moves a draft an earlier version kept for the browser into the first tab that boots", () => {
    const browser = new Browser();
    saveDraft(browser.local, API, { doc: edited("old", "kept"), savedId: null, etag: null, base: null, at: 3 });
    expect(tabDraft(browser.tab("one"), API)?.doc.nodes[0].label).toBe("kept");
    expect(tabDraft(browser.tab("two"), API)).toBeNull();
    expect(tabDraft(browser.tab("one"), API)?.doc.nodes[0].label).toBe("kept"); // and after a reload
    expect(loadDraft(browser.local, API)).toBeNull();
  });

  it("forgets a deleted flow: its recent entry, and this tab's draft if it is that flow's", () => {
    const browser = new Browser();
    const one = browser.tab("one");
    const two = browser.tab("two");
    pushRecent(browser.local, API, { id: "a", name: "A" });
    pushRecent(browser.local, API, { id: "b", name: "B" });
    saveDraft(one.tab!, API, { doc: edited("a", "x"), savedId: "a", etag: null, base: null, at: 1 });
    saveDraft(two.tab!, API, { doc: edited("b", "y"), savedId: "b", etag: null, base: null, at: 1 });
    expect(forgetFlow(two, API, "a").map((r) => r.id)).toEqual(["b"]);
    expect(loadDraft(one.tab!, API)).not.toBeNull(); // tab two cannot see, nor drop, tab one's
    expect(loadDraft(two.tab!, API)).not.toBeNull();
    forgetFlow(one, API, "a");
    expect(loadDraft(one.tab!, API)).toBeNull();
  });

  it("works without storage", () => {
    const denied = { get sessionStorage(): MemoryStorage { throw new Error("denied"); },
      get localStorage(): MemoryStorage { throw new Error("denied"); } };
    const places = draftPlaces(denied);
    expect(places).toEqual({ tab: null, browser: null });
    expect(tabDraft(places, API)).toBeNull();
    expect(forgetFlow(places, API, "a")).toEqual([]);
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
