/** The run panel beside the canvas: a chat-style input, the answer streaming in, each
 * node's status, output (its state update), duration and error as the run goes, Stop,
 * and Approve / Reject when the run waits on a person. Results stay until the next run. */

import { memo, useEffect, useRef, useState } from "react";
import { answerText, durationMs, type NodeRun, type Pending } from "../model/runtrace";
import { newThread, requestRun, resume, stopRun } from "../runs";
import { useEditor } from "../store";

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

const OUTPUT_LIMIT = 4000;

function Output({ id, value }: { id: string; value: unknown }) {
  const [all, setAll] = useState(false);
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2) ?? "null";
  const shown = all || text.length <= OUTPUT_LIMIT ? text : `${text.slice(0, OUTPUT_LIMIT)}…`;
  return (
    <>
      <pre className="fl-output" data-testid={`node-output-${id}`}>{shown}</pre>
      {text.length > OUTPUT_LIMIT && (
        <button type="button" className="fl-link" onClick={() => setAll(!all)}>{all ? "show less" : `show all (${text.length} chars)`}</button>
      )}
    </>
  );
}

const NodeRow = memo(function NodeRow({ n, label }: { n: NodeRun; label: string }) {
  const [open, setOpen] = useState(true);
  const status = n.status === "running" ? "running…" : n.status === "waiting" ? "waiting for approval"
    : n.status === "error" ? `error${n.error ? `: ${n.error}` : ""}` : "done";
  return (
    <li className={`fl-trace-row run-${n.status}`}>
      <div className="fl-trace-head" onClick={() => setOpen(!open)}>
        <span className={`fl-status-dot run-${n.status}`} />
        <span className="fl-trace-name">{label}</span>
        <span className="fl-trace-status" data-testid={`node-status-${n.id}`}>{status}</span>
        <span className="fl-trace-time">{fmtMs(durationMs(n))}{n.count > 1 ? ` · ran ${n.count}×` : ""}</span>
      </div>
      {open && n.hasOutput && <Output id={n.id} value={n.output} />}
    </li>
  );
});

function Approval({ p }: { p: Pending }) {
  const v = (p.value && typeof p.value === "object" ? p.value : { message: String(p.value) }) as Record<string, any>;
  const [comment, setComment] = useState("");
  const [args, setArgs] = useState(v.args ? JSON.stringify(v.args, null, 2) : "");
  const [argsError, setArgsError] = useState<string | null>(null);
  const busy = useEditor((s) => s.runBusy);
  const decide = (approved: boolean) => {
    const decision: Record<string, unknown> = { approved, comment };
    if (v.kind === "tool_approval" && args.trim()) {
      try {
        decision.args = JSON.parse(args);
      } catch (e) {
        setArgsError((e as Error).message);
        return;
      }
    }
    resume(decision);
  };
  return (
    <div className="fl-approval" data-testid="approval">
      <div className="fl-approval-title">
        {v.kind === "tool_approval" ? `Approve the call of ${v.tool ?? "a tool"}?` : `Approval needed${v.node ? ` at ${v.node}` : ""}`}
      </div>
      {v.message && <p>{String(v.message)}</p>}
      {v.values && Object.keys(v.values).length > 0 && <pre className="fl-output">{JSON.stringify(v.values, null, 2)}</pre>}
      {v.error && <div className="fl-error-box">{String(v.error)}</div>}
      {v.kind === "tool_approval" && (
        <label className="fl-label">Arguments (edit before approving)
          <textarea className="fl-code" rows={4} value={args} onChange={(e) => { setArgs(e.target.value); setArgsError(null); }} />
          {argsError && <span className="fl-field-error">{argsError}</span>}
        </label>
      )}
      <input className="fl-input" placeholder="Comment (optional)" value={comment} data-testid="approval-comment"
        onChange={(e) => setComment(e.target.value)} />
      <div className="fl-row">
        <button type="button" className="fl-btn fl-primary" data-testid="btn-approve" disabled={busy} onClick={() => decide(true)}>Approve</button>
        <button type="button" className="fl-btn fl-danger" data-testid="btn-reject" disabled={busy} onClick={() => decide(false)}>Reject</button>
      </div>
    </div>
  );
}

export function RunPanel() {
  const run = useEditor((s) => s.run);
  const busy = useEditor((s) => s.runBusy);
  const transcript = useEditor((s) => s.transcript);
  const runText = useEditor((s) => s.runText);
  const doc = useEditor((s) => s.doc);
  const savedId = useEditor((s) => s.savedId);
  const dirty = useEditor((s) => s.dirty);
  const [text, setText] = useState("");
  const bottom = useRef<HTMLDivElement>(null);
  const answer = run ? answerText(run) : "";
  useEffect(() => { bottom.current?.scrollIntoView({ block: "nearest" }); }, [answer, transcript.length]);
  const labels = Object.fromEntries((doc?.nodes ?? []).map((n) => [n.id, n.label ? `${n.label} (${n.id})` : n.id]));
  const submit = () => {
    if (!text.trim() || busy) return;
    requestRun(text);
    setText("");
  };
  return (
    <div className="fl-run">
      <div className="fl-run-top">
        <span className="fl-muted">{savedId ? <>Runs <code>{savedId}</code> on the server{dirty ? " (unsaved changes: Run asks to save them)" : ""}</> : "Save the flow to run it."}</span>
        <button type="button" className="fl-link" onClick={newThread} disabled={busy}>New conversation</button>
      </div>
      <div className="fl-chat">
        {transcript.map((t, i) => <div key={i} className={`fl-bubble ${t.role}`}>{t.text}</div>)}
        {run && runText && <div className="fl-bubble user">{runText}</div>}
        {run && (
          <div className={`fl-bubble assistant${run.status === "running" ? " streaming" : ""}`} data-testid="run-answer">
            {answer || (run.status === "running" ? <span className="fl-muted">{runningLabel(run.order.map((id) => run.nodes[id]), labels)}</span>
              : run.status === "interrupted" ? <span className="fl-muted">Waiting for approval…</span> : <span className="fl-muted">(no answer)</span>)}
          </div>
        )}
        {run?.errors.map((e, i) => <div key={i} className="fl-error-box">{e}</div>)}
        {run?.status === "cancelled" && <div className="fl-muted">Stopped.</div>}
        {run?.status === "interrupted" && !busy && run.interrupts.map((p, i) => <Approval key={p.id ?? i} p={p} />)}
        <div ref={bottom} />
      </div>
      <div className="fl-run-input">
        <textarea className="fl-input" rows={2} placeholder={doc && "messages" in doc.state ? "Ask the flow something… (Enter to run)" : "Input for the flow… (Enter to run)"}
          value={text} data-testid="run-input" onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              submit();
            }
          }} />
        <div className="fl-run-buttons">
          <button type="button" className="fl-btn fl-primary" data-testid="btn-run" disabled={busy || !text.trim()} onClick={submit}>▶ Run</button>
          <button type="button" className="fl-btn fl-danger" data-testid="btn-stop" disabled={!busy} onClick={() => void stopRun()}>■ Stop</button>
        </div>
      </div>
      {run && run.order.length > 0 && (
        <div className="fl-trace">
          <div className="fl-panel-title">Nodes{run.endedAt !== undefined ? ` · ${fmtMs(run.endedAt - run.startedAt)} in all` : ""}</div>
          <ul>{run.order.map((id) => <NodeRow key={id} n={run.nodes[id]} label={labels[id] ?? id} />)}</ul>
        </div>
      )}
    </div>
  );
}

function runningLabel(nodes: NodeRun[], labels: Record<string, string>): string {
  const running = nodes.filter((n) => n.status === "running").map((n) => labels[n.id] ?? n.id);
  return running.length ? `Running ${running.join(", ")}…` : "Starting…";
}
