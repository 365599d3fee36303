/** A router node's branch labels: the handles its conditional edges leave from. */

import type { NodeAnalysis, NodeSpec, NodeTypeInfo } from "./types";

/** Labels the server's validation reported for the node (exact), else a guess from the
 * params (`routes[].label` and `default`) and the known fixed-branch routers. Null for a
 * node that is not a router. */
export function branchLabels(
  node: NodeSpec, info: NodeTypeInfo | undefined, analysis?: NodeAnalysis,
): string[] | null {
  if (analysis && Array.isArray(analysis.routes)) return analysis.routes;
  if (!info?.router) return null;
  if (info.name === "human.approve") return ["approved", "rejected"];
  if (info.name === "router.adaptive") return ["fast", "slow"];
  const labels: string[] = [];
  const routes = node.params.routes;
  if (Array.isArray(routes)) {
    for (const r of routes) {
      const label = r && typeof r === "object" ? (r as Record<string, unknown>).label : undefined;
      if (typeof label === "string" && label && !labels.includes(label)) labels.push(label);
    }
  }
  const dflt = node.params.default ??
    info.params_schema?.properties?.default?.default;
  if (typeof dflt === "string" && dflt && !labels.includes(dflt)) labels.push(dflt);
  return labels;
}

/** The first branch of `labels` that no edge from `source` takes yet. */
export function freeBranch(labels: string[] | null, used: Iterable<string | null | undefined>): string | null {
  if (!labels) return null;
  const taken = new Set(used);
  return labels.find((l) => !taken.has(l)) ?? null;
}
