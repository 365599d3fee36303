import { describe, expect, it } from "vitest";
import { reachableUrl } from "./api";

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
