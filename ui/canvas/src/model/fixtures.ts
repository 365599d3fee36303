/** Test fixtures: the real node catalogue (the snapshot `GET /node-types` is checked
 * against in tests/snapshots) and example flows from flows/examples. */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { normalizeDocument } from "./document";
import type { FlowDocument, NodeTypeInfo } from "./types";

const repo = (path: string): string => fileURLToPath(new URL(`../../../../${path}`, import.meta.url));

export const CATALOGUE: NodeTypeInfo[] = JSON.parse(readFileSync(repo("tests/snapshots/node-types.json"), "utf8"));
export const TYPES: Record<string, NodeTypeInfo> = Object.fromEntries(CATALOGUE.map((t) => [t.type, t]));

export function example(id: string): FlowDocument {
  return normalizeDocument(JSON.parse(readFileSync(repo(`flows/examples/${id}.json`), "utf8")));
}
