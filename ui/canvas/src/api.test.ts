import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError, reachableUrl } from "./api";

describe("reachableUrl", () => {
  it("keeps the URL for a page opened on the server's own machine", () => {
    expect(reachableUrl("http://127.0.0.1:8123", "127.0.0.1")).toBe("http://127.0.0.1:8123");
    expect(reachableUrl("http://127.0.0.1:8123", "localhost")).toBe("http://127.0.0.1:8123");
  });
  it("points a page opened from another machine at the server's host", () => {
    expect(reachableUrl("http://127.0.0.1:8123", "studio.lan")).toBe("http://studio.lan:8123");
    expect(reachableUrl("http://0.0.0.0:8123/", "10.0.0.5")).toBe("http://10.0.0.5:8123");
  });
  it("leaves a real address alone", () => {
    expect(reachableUrl("https://api.example.com", "studio.lan")).toBe("https://api.example.com");
    expect(reachableUrl("not a url", "x")).toBe("not a url");
  });
});

describe("deleteFlow", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends DELETE with the key, and a refusal comes back with the server's words", async () => {
    const calls: [string, RequestInit][] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push([url, init]);
      return url.endsWith("/mine")
        ? new Response(null, { status: 204 })
        : new Response(JSON.stringify({ detail: "the key's role may not do this", needed_role: "admin" }),
          { status: 403, headers: { "content-type": "application/json" } });
    });
    const api = new Api("http://127.0.0.1:8123", "fl_k_s");
    await api.deleteFlow("mine");
    expect(calls[0][0]).toBe("http://127.0.0.1:8123/flows/mine");
    expect(calls[0][1].method).toBe("DELETE");
    expect((calls[0][1].headers as Record<string, string>)["x-api-key"]).toBe("fl_k_s");
    const refused = await api.deleteFlow("the other/one").catch((e) => e);
    expect(calls[1][0]).toBe("http://127.0.0.1:8123/flows/the%20other%2Fone");
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 403, message: "the key's role may not do this",
      body: { needed_role: "admin" } });
  });
});
