import { describe, expect, it } from "vitest";
import { example } from "./fixtures";
import { exportFile, importFlow, parseFlowText } from "./io";
import type { ValidateResult } from "./types";

describe("import and export", () => {
  it("refuses text that is not a JSON object", () => {
    expect(() => parseFlowText("{")).toThrow(/not valid JSON/);
    expect(() => parseFlowText("[1]")).toThrow(/one JSON object/);
  });

  it("takes the server's migrated document", async () => {
    const old = { version: 0, id: "old", name: "Old", nodes: { a: { type: "state.set" } } };
    const migrated = example("chat");
    let sent: unknown;
    const validate = async (doc: unknown): Promise<ValidateResult> => {
      sent = doc;
      return { ok: true, problems: [], notes: ["migrated from schema version 0 to 1"], document: migrated };
    };
    const out = await importFlow(JSON.stringify(old), validate);
    expect(sent).toEqual(old);
    expect(out.doc.id).toBe("chat");
    expect(out.notes).toEqual(["migrated from schema version 0 to 1"]);
  });

  it("reports a file the server cannot read as a flow", async () => {
    const validate = async (): Promise<ValidateResult> => ({ ok: false,
      problems: [{ path: "", message: "schema_version 9 is newer than this flowloom understands", code: "not_a_flow" }] });
    await expect(importFlow('{"schema_version": 9}', validate)).rejects.toThrow(/newer/);
  });

  it("exports under the flow's id", () => {
    const doc = example("chat");
    expect(exportFile(doc).name).toBe("chat.json");
    expect(JSON.parse(exportFile(doc).text).id).toBe("chat");
    expect(exportFile(doc, "server text").text).toBe("server text");
  });
});
