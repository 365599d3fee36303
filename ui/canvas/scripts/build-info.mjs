// Writes dist/build-info.json: a hash of everything the bundle is built from, so a test
// (tests/ui/test_canvas_frontend.py) fails when the source changed without a rebuild.
// The same file list and hash are computed in Python by that test: keep them in step.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const FILES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function sourceFiles() {
  const src = walk(join(root, "src")).filter((p) => !p.endsWith(".test.ts"));
  return [...FILES.map((f) => join(root, f)), ...src]
    .map((p) => relative(root, p).split(sep).join("/"))
    .sort();
}

export function sourceHash() {
  const h = createHash("sha256");
  for (const rel of sourceFiles()) {
    const bytes = Buffer.from(readFileSync(join(root, rel), "utf8").replace(/\r\n/g, "\n"), "utf8");
    h.update(`${rel}\n${bytes.length}\n`);
    h.update(bytes);
  }
  return h.digest("hex");
}

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const info = { source_sha256: sourceHash(), files: sourceFiles().length, version: pkg.version };
writeFileSync(join(root, "dist", "build-info.json"), JSON.stringify(info, null, 2) + "\n");
console.log(`dist/build-info.json: ${info.source_sha256.slice(0, 12)} over ${info.files} files`);
