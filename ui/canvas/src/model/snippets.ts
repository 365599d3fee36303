/** "Use it": how to call a saved flow from code, with the server's real URL and the
 * flow's id (curl, langgraph-sdk for Python, the JS SDK, the openai client). */

import { runInput } from "./runtrace";
import type { FlowDocument } from "./types";

export interface Snippet {
  id: "curl" | "python" | "js" | "openai";
  title: string;
  language: string;
  code: string;
}

function pyLiteral(value: unknown, indent = ""): string {
  if (value === null || value === undefined) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => pyLiteral(v, indent)).join(", ")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${JSON.stringify(k)}: ${pyLiteral(v, indent)}`);
  return `{${entries.join(", ")}}`;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function snippets(doc: FlowDocument, apiUrl: string, opts: { question?: string; keyed?: boolean } = {}): Snippet[] {
  const url = apiUrl.replace(/\/+$/, "");
  const id = doc.id;
  const question = opts.question ?? "Hello!";
  let input: Record<string, unknown>;
  try {
    input = runInput(doc, question);
  } catch {
    input = { input: question };
  }
  const keyHeader = opts.keyed ? ` \\\n  -H "x-api-key: $FLOWLOOM_API_KEY"` : "";
  const pyKey = opts.keyed ? `os.environ["FLOWLOOM_API_KEY"]` : "None";
  const jsKey = opts.keyed ? "process.env.FLOWLOOM_API_KEY" : "undefined";
  const body = JSON.stringify({ assistant_id: id, input });
  const out: Snippet[] = [
    {
      id: "curl", title: "curl", language: "bash",
      code: `curl -N ${url}/runs/stream${keyHeader} \\\n  -H "content-type: application/json" \\\n` +
        `  -d ${shellQuote(JSON.stringify({ ...JSON.parse(body), stream_mode: ["updates"] }))}\n`,
    },
    {
      id: "python", title: "Python (langgraph-sdk)", language: "python",
      code: `import asyncio${opts.keyed ? "\nimport os" : ""}\n\nfrom langgraph_sdk import get_client\n\n\n` +
        `async def main():\n    client = get_client(url=${JSON.stringify(url)}, api_key=${pyKey})\n` +
        `    thread = await client.threads.create()\n` +
        `    async for part in client.runs.stream(\n        thread["thread_id"], ${JSON.stringify(id)},\n` +
        `        input=${pyLiteral(input)},\n        stream_mode="updates",\n    ):\n` +
        `        print(part.event, part.data)\n\n\nasyncio.run(main())\n`,
    },
    {
      id: "js", title: "JavaScript (@langchain/langgraph-sdk)", language: "javascript",
      code: `import { Client } from "@langchain/langgraph-sdk";\n\n` +
        `const client = new Client({ apiUrl: ${JSON.stringify(url)}, apiKey: ${jsKey} });\n` +
        `const thread = await client.threads.create();\n` +
        `for await (const part of client.runs.stream(thread.thread_id, ${JSON.stringify(id)}, {\n` +
        `  input: ${JSON.stringify(input)},\n  streamMode: "updates",\n})) {\n` +
        `  console.log(part.event, part.data);\n}\n`,
    },
  ];
  out.push({
    id: "openai", title: "OpenAI client (Python)", language: "python",
    code: `${opts.keyed ? "import os\n\n" : ""}from openai import OpenAI\n\n` +
      `client = OpenAI(base_url=${JSON.stringify(`${url}/v1`)}, api_key=${opts.keyed ? `os.environ["FLOWLOOM_API_KEY"]` : `"-"`})\n` +
      `answer = client.chat.completions.create(\n    model=${JSON.stringify(id)},\n` +
      `    messages=[{"role": "user", "content": ${JSON.stringify(question)}}],\n` +
      `    user="thread-1",  # names the thread: the conversation continues\n)\n` +
      `print(answer.choices[0].message.content)\n`,
  });
  return out;
}
