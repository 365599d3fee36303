import { describe, expect, it } from "vitest";
import { formEdit, formSchema, keyParams, paramRoles } from "./schema";
import { example, TYPES } from "./fixtures";

describe("params schema", () => {
  it("finds pickers from annotations and usual names", () => {
    const roles = paramRoles(TYPES["retriever.search@1"].params_schema);
    expect(roles.kb).toEqual({ choices: "knowledge_bases" });
    expect(roles.output).toEqual({ state: "write" });
    const chat = paramRoles(TYPES["llm.chat@1"].params_schema);
    expect(chat.model).toEqual({ choices: "models" });
    expect(chat.prompt_ref).toEqual({ choices: "prompts" });
    expect(chat.context).toEqual({ state: "read" });
    expect(chat.system).toBeUndefined();
  });

  it("guesses state params by name for a server that does not annotate them", () => {
    const roles = paramRoles({ properties: {
      output: { type: "string", default: "answer" },
      field: { type: "string" },
      history_field: { anyOf: [{ type: "string" }, { type: "null" }] },
      model: { type: "string" },
      embed_model: { type: "string" },
      count: { type: "integer" },
      system: { type: "string" },
    } });
    expect(roles).toEqual({ output: { state: "write" }, field: { state: "read" },
      history_field: { state: "read" }, model: { choices: "models" },
      embed_model: { choices: "embedding_models" } });
  });

  it("trusts x-flowloom-state where the server sends it", () => {
    const roles = paramRoles({ properties: {
      output: { type: "string", "x-flowloom-state": "read" },
      target: { type: "string", "x-flowloom-state": "write" },
      field: { type: "string" },
    } });
    expect(roles).toEqual({ output: { state: "read" }, target: { state: "write" } });
  });

  it("builds a form: nullable unions flattened, free-form as JSON, long text as text areas", () => {
    const form = formSchema(TYPES["llm.chat@1"].params_schema);
    expect(form.schema.properties.system_prompt.type).toBe("string");
    expect(form.schema.properties.system_prompt.anyOf).toBeUndefined();
    expect(form.uiSchema.system["ui:widget"]).toBe("textarea");
    expect(form.uiSchema.model["ui:widget"]).toBe("choice");
    expect(form.uiSchema.prompt_ref["ui:options"].choices).toBe("prompts");
    expect(form.uiSchema.output["ui:widget"]).toBe("stateField");
    const search = formSchema(TYPES["retriever.search@1"].params_schema);
    expect(search.uiSchema.filters["ui:field"]).toBe("json");
    expect(search.uiSchema["ui:order"][0]).toBe("kb"); // required first
    const router = formSchema(TYPES["router.condition@1"].params_schema);
    expect(router.uiSchema.routes["ui:options"].orderable).toBe(true);
  });

  it("shows the key params on a node card", () => {
    const doc = example("rag_chat");
    expect(keyParams(doc.nodes[0], TYPES[doc.nodes[0].type])[0]).toEqual(["kb", "demo"]);
    const answer = keyParams(doc.nodes[1], TYPES[doc.nodes[1].type]);
    expect(answer[0]).toEqual(["model", "local"]);
    expect(answer.length).toBeLessThanOrEqual(3);
    expect(answer.every(([, v]) => v.length <= 32)).toBe(true);
  });
});

describe("form edits", () => {
  const schema = TYPES["llm.chat@1"].params_schema;

  it("keep only what changed: defaults the form fills in stay out", () => {
    const old = { model: "local", max_tokens: 64 };
    const filled = { model: "local", max_tokens: 64, temperature: 0.2, system: "", system_prompt: undefined };
    expect(formEdit(old, filled, schema)).toEqual(old);
    expect(formEdit(old, { ...filled, temperature: 0.7 }, schema)).toEqual({ ...old, temperature: 0.7 });
    expect(formEdit(old, { ...filled, max_tokens: undefined }, schema)).toEqual({ model: "local" });
    expect(formEdit(old, { ...filled, model: "other" }, schema).model).toBe("other");
  });
});
