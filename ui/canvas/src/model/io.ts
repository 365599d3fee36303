/** Import and export of flow files. An import goes through the server's validation,
 * which migrates older schema versions: the editor takes the migrated document. */

import { normalizeDocument, toJson } from "./document";
import { ModelError, type FlowDocument, type ValidateResult } from "./types";

/** The file's JSON, or a ModelError that says where it is broken. */
export function parseFlowText(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelError(`the file is not valid JSON: ${(e as Error).message}`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new ModelError("a flow file must hold one JSON object");
  }
  return value as Record<string, unknown>;
}

export interface Imported {
  doc: FlowDocument;
  notes: string[];
  result: ValidateResult;
}

/** The document of a flow file, migrated by `validate` (`POST /flows/validate`) to the
 * current schema version; its problems come back with it, for the editor to show. */
export async function importFlow(
  text: string, validate: (doc: unknown) => Promise<ValidateResult>,
): Promise<Imported> {
  const raw = parseFlowText(text);
  const result = await validate(raw);
  const migrated = result.document ?? raw;
  if (!result.document && result.problems.some((p) => p.code === "not_a_flow")) {
    throw new ModelError(result.problems.map((p) => p.message).join("; "));
  }
  return { doc: normalizeDocument(migrated), notes: result.notes ?? [], result };
}

/** The export file's name and text. */
export function exportFile(doc: FlowDocument, serverText?: string): { name: string; text: string } {
  return { name: `${doc.id}.json`, text: serverText ?? toJson(doc) };
}
