import { describe, expect, it } from "vitest";
import { deletable, deleteRefused, isTemplate } from "./flows";

describe("deleting flows", () => {
  it("offers only flows saved through the API", () => {
    expect(deletable({ id: "mine", source: "api", editable: true, template: false })).toEqual({ ok: true });
    const example = deletable({ id: "rag_chat", source: "file:/srv/flows/examples/rag_chat.json",
      editable: false, template: true });
    expect(example.ok).toBe(false);
    expect(example.ok ? "" : example.why).toMatch(/^An example from a file on the server \(rag_chat\.json\): it cannot be deleted here/);
    // a server that sends no flags: the source tells
    expect(deletable({ id: "x", source: "file:x.json" }).ok).toBe(false);
    expect(deletable({ id: "x", source: "api" }).ok).toBe(true);
    expect(deletable(undefined).ok).toBe(true); // not listed yet: the server decides
    expect(isTemplate({ id: "x", source: "api", template: true })).toBe(true);
  });

  it("says why a deletion was refused, a user-role key clearly", () => {
    const forbidden = deleteRefused("mine", { status: 403, message: "the key's role may not do this",
      body: { detail: "the key's role may not do this", needed_role: "admin" } });
    expect(forbidden).toBe("Not deleted: this Builder's API key may not delete flows (that needs the admin role). " +
      "Ask an admin to delete 'mine', or give the UI an admin key.");
    expect(deleteRefused("ex", { status: 400, message: "flow 'ex' comes from ex.json; remove the file instead" }))
      .toBe("Not deleted: flow 'ex' comes from ex.json; remove the file instead");
    expect(deleteRefused("x", { status: 0, message: "the API server at http://h:1 did not answer" }))
      .toMatch(/^Not deleted: the API server .* did not answer/);
    expect(deleteRefused("x", { status: 401, message: "an API key is required" })).toMatch(/wants a valid key/);
  });
});
