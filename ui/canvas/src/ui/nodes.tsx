/** Node cards on the canvas. Memoized: a card redraws when its own spec, branches,
 * problems or run status change, never because another node did. */

import { Handle, Position, useUpdateNodeInternals, type NodeProps } from "@xyflow/react";
import { memo, useEffect, useRef } from "react";
import { BRANCH_PREFIX, IN_HANDLE, OUT_HANDLE, type StepNode, type TerminalNode } from "../model/canvas";
import { durationMs } from "../model/runtrace";
import { useEditor } from "../store";

export const CATEGORY_COLORS: Record<string, string> = {
  models: "#6d5efc", agents: "#e0559b", retrieval: "#0f9d8a", tools: "#e08a1e",
  routing: "#3b82f6", state: "#64748b",
};

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function RunBadge({ id }: { id: string }) {
  const run = useEditor((s) => s.run?.nodes[id]);
  if (!run) return null;
  const label = run.status === "running" ? "running" : run.status === "waiting" ? "waiting"
    : run.status === "error" ? "error" : fmtMs(durationMs(run));
  return <span className={`fl-run-badge run-${run.status}`} title={run.error ?? ""}>{label}{run.count > 1 ? ` ×${run.count}` : ""}</span>;
}

function StepNodeView({ id, data, selected }: NodeProps<StepNode>) {
  const problems = useEditor((s) => s.validation.pinned.nodes[id]);
  const status = useEditor((s) => s.run?.nodes[id]?.status);
  const update = useUpdateNodeInternals();
  const { spec, info, routes, keyParams } = data;
  const routesKey = routes?.join("\u0001") ?? "";
  const measuredKey = useRef(routesKey);
  useEffect(() => {
    // React Flow measures handles on mount; re-measure only when the branches change
    if (measuredKey.current !== routesKey) {
      measuredKey.current = routesKey;
      update(id);
    }
  }, [routesKey, id, update]);
  const color = CATEGORY_COLORS[info?.category ?? ""] ?? "#94a3b8";
  const cls = ["fl-node", selected ? "selected" : "", problems ? "has-problems" : "",
    status ? `run-${status}` : "", info ? "" : "unknown-type"].join(" ");
  return (
    <div className={cls} style={{ ["--cat" as string]: color }}>
      <Handle type="target" position={Position.Left} id={IN_HANDLE} className="fl-handle" />
      <div className="fl-node-head">
        <span className="fl-cat-dot" />
        <span className="fl-node-title" title={spec.label ?? spec.id}>{spec.label || spec.id}</span>
        {problems && <span className="fl-node-warn" title={problems.map((p) => p.message).join("\n")}>⚠ {problems.length}</span>}
        <RunBadge id={id} />
      </div>
      <div className="fl-node-type">{spec.type}{spec.label ? <span className="fl-node-id"> · {spec.id}</span> : null}</div>
      {keyParams.length > 0 && (
        <div className="fl-node-params">
          {keyParams.map(([k, v]) => (
            <div key={k} className="fl-node-param"><span className="k">{k}</span><span className="v">{v}</span></div>
          ))}
        </div>
      )}
      {routes ? (
        <div className="fl-branches">
          {routes.map((r) => (
            <div key={r} className="fl-branch">
              <span className="fl-branch-label">{r}</span>
              <Handle type="source" position={Position.Right} id={`${BRANCH_PREFIX}${r}`} className="fl-handle fl-branch-handle" />
            </div>
          ))}
          {/* an edge without a branch still draws (and shows its problem) */}
          <Handle type="source" position={Position.Right} id={OUT_HANDLE} className="fl-handle fl-hidden-handle" isConnectable={false} />
        </div>
      ) : (
        <Handle type="source" position={Position.Right} id={OUT_HANDLE} className="fl-handle" />
      )}
    </div>
  );
}

function TerminalNodeView({ data, selected }: NodeProps<TerminalNode>) {
  const start = data.end === "START";
  return (
    <div className={`fl-terminal ${start ? "start" : "end"}${selected ? " selected" : ""}`}>
      {!start && <Handle type="target" position={Position.Left} id={IN_HANDLE} className="fl-handle" />}
      <span>{start ? "▶ START" : "END ■"}</span>
      {start && <Handle type="source" position={Position.Right} id={OUT_HANDLE} className="fl-handle" />}
    </div>
  );
}

export const nodeTypes = { step: memo(StepNodeView), terminal: memo(TerminalNodeView) };
