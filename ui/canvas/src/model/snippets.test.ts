import { describe, expect, it } from "vitest";
import { example } from "./fixtures";
import { snippets } from "./snippets";

describe("use-it snippets", () => {
  it("name the real URL and flow id in every client", () => {
    const out = snippets(example("rag_chat"), "http://127.0.0.1:41234/");
    expect(out.map((s) => s.id)).toEqual(["curl", "python", "js", "openai"]);
    for (const s of out) {
      expect(s.code).toContain("http://127.0.0.1:41234");
      expect(s.code).toContain("rag_chat");
    }
    const curl = out[0].code;
    const body = JSON.parse(curl.slice(curl.indexOf("-d '") + 4, curl.lastIndexOf("'")));
    expect(body).toEqual({ assistant_id: "rag_chat", input: { messages: [{ role: "user", content: "Hello!" }] }, stream_mode: ["updates"] });
    expect(out[1].code).toContain('get_client(url="http://127.0.0.1:41234", api_key=None)');
    expect(out[2].code).toContain('import { Client } from "@langchain/langgraph-sdk"');
    expect(out[3].code).toContain('base_url="http://127.0.0.1:41234/v1"');
  });

  it("send the key from the environment when the server wants one; quote safely", () => {
    const out = snippets(example("chat"), "http://h:1", { keyed: true, question: "it's" });
    expect(out[0].code).toContain('x-api-key: $FLOWLOOM_API_KEY');
    expect(out[0].code).toContain(`it'\\''s`);
    expect(out[1].code).toContain('os.environ["FLOWLOOM_API_KEY"]');
  });
});
