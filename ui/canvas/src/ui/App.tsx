/** The Builder: toolbar, palette, canvas with its problems, and the side panel
 * (inspector, run, use it), inside Streamlit's component iframe. */

import { ReactFlowProvider } from "@xyflow/react";
import { useEffect, useRef, useState } from "react";
import { inStreamlit, onRender, setFrameHeight, type RenderArgs } from "../streamlit";
import { save } from "../saving";
import { boot, flushDraft, hasUnsavedWork, redo, setTab, undo, useEditor, type Tab } from "../store";
import { CanvasView } from "./CanvasView";
import { Dialogs } from "./Dialogs";
import { Inspector } from "./Inspector";
import { Palette } from "./Palette";
import { ProblemsPanel } from "./ProblemsPanel";
import { RunPanel } from "./RunPanel";
import { StartScreen } from "./StartScreen";
import { Toolbar } from "./Toolbar";
import { UseIt } from "./UseIt";

const MIN_HEIGHT = 620;

/** The height that fills the parent page's window below the iframe (same origin), else
 * the height Python asked for. */
function frameHeight(asked: number | undefined): number {
  try {
    const frame = window.frameElement as HTMLElement | null;
    const top = window.parent;
    if (frame && top) {
      const y = frame.getBoundingClientRect().top + top.scrollY;
      return Math.max(MIN_HEIGHT, Math.floor(top.innerHeight - y - 24));
    }
  } catch {
    // another origin: use the asked height
  }
  return Math.max(MIN_HEIGHT, asked ?? 860);
}

function isEditable(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

function useShortcuts(): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      if (!mod) return;
      const key = e.key.toLowerCase();
      if (key === "s") {
        e.preventDefault();
        void save();
        return;
      }
      if (isEditable(e.target)) return; // text fields keep their own undo
      if (key === "z" && !e.shiftKey) {
        e.preventDefault();
        undo();
      } else if ((key === "z" && e.shiftKey) || key === "y") {
        e.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
}

/** Leaving with unsaved work warns: a reload or closing the tab (beforeunload), and
 * Streamlit's own page links (the draft is kept either way). */
function useLeaveGuard(): void {
  useEffect(() => {
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      flushDraft();
      if (hasUnsavedWork()) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    let parentDoc: Document | null = null;
    const onParentClick = (e: MouseEvent) => {
      const link = (e.target as HTMLElement | null)?.closest?.("a[href]");
      if (!link || !hasUnsavedWork() || !link.closest('[data-testid="stSidebarNav"], [data-testid="stSidebar"], header')) return;
      flushDraft();
      if (!window.parent.confirm("The flow has unsaved changes (kept as a draft in this tab). Leave the Builder?")) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    try {
      if (window.parent !== window) {
        parentDoc = window.parent.document;
        parentDoc.addEventListener("click", onParentClick, true);
      }
    } catch {
      parentDoc = null;
    }
    return () => {
      window.removeEventListener("beforeunload", onBeforeUnload);
      parentDoc?.removeEventListener("click", onParentClick, true);
    };
  }, []);
}

function SidePanel() {
  const tab = useEditor((s) => s.tab);
  const busy = useEditor((s) => s.runBusy);
  const selected = useEditor((s) => s.selection.nodes.join() + "|" + s.selection.edges.join());
  const body = useRef<HTMLDivElement>(null);
  useEffect(() => { // another node's form starts at its top
    if (tab === "inspect" && body.current) body.current.scrollTop = 0;
  }, [selected, tab]);
  const tabs: [Tab, string][] = [["inspect", "Inspector"], ["run", busy ? "Run ●" : "Run"], ["use", "Use it"]];
  return (
    <aside className="fl-side">
      <div className="fl-tabs" role="tablist">
        {tabs.map(([t, label]) => (
          <button key={t} type="button" role="tab" aria-selected={tab === t} data-testid={`tab-${t}`}
            className={tab === t ? "on" : ""} onClick={() => setTab(t)}>{label}</button>
        ))}
      </div>
      <div className="fl-side-body" ref={body}>
        {tab === "inspect" && <Inspector />}
        {tab === "run" && <RunPanel />}
        {tab === "use" && <UseIt />}
      </div>
    </aside>
  );
}

function Toasts() {
  const toasts = useEditor((s) => s.toasts);
  return (
    <div className="fl-toasts" aria-live="polite">
      {toasts.map((t) => <div key={t.id} className={`fl-toast ${t.kind}`} data-testid="toast">{t.text}</div>)}
    </div>
  );
}

export function App() {
  const [height, setHeight] = useState<number>(() => (inStreamlit() ? frameHeight(undefined) : window.innerHeight));
  const screen = useEditor((s) => s.screen);
  const hasDoc = useEditor((s) => !!s.doc);
  const booted = useEditor((s) => s.booted);
  useShortcuts();
  useLeaveGuard();

  useEffect(() => {
    if (!inStreamlit()) {
      const q = new URLSearchParams(window.location.search);
      void boot(q.get("api_url") ?? "http://127.0.0.1:8123", q.get("api_key"), q.get("flow_id"));
      const onResize = () => setHeight(window.innerHeight);
      window.addEventListener("resize", onResize);
      return () => window.removeEventListener("resize", onResize);
    }
    let asked: number | undefined;
    const fit = () => {
      const h = frameHeight(asked);
      setHeight(h);
      setFrameHeight(h);
    };
    const stop = onRender((args: RenderArgs) => {
      asked = args.height;
      fit();
      if (!useEditor.getState().booted && args.api_url) {
        void boot(args.api_url, args.api_key ?? null, args.flow_id ?? null);
      }
    });
    let parentWin: Window | null = null;
    try {
      parentWin = window.parent;
      parentWin.addEventListener("resize", fit);
    } catch {
      parentWin = null;
    }
    return () => {
      stop();
      parentWin?.removeEventListener("resize", fit);
    };
  }, []);

  return (
    <div className="fl-app" style={{ height }}>
      <Toolbar />
      <div className="fl-main">
        {!booted ? <div className="fl-loading">Connecting to the API server…</div>
          : screen === "start" || !hasDoc ? <StartScreen />
            : (
              <ReactFlowProvider>
                <Palette />
                <div className="fl-center">
                  <CanvasView />
                  <ProblemsPanel />
                </div>
                <SidePanel />
              </ReactFlowProvider>
            )}
      </div>
      <Dialogs />
      <Toasts />
    </div>
  );
}
