/** Streamlit's component protocol (v1), by hand: tell Streamlit the component is ready,
 * take the Python arguments from `streamlit:render`, set the iframe's height.
 *
 * The canvas never sends a value back (`streamlit:setComponentValue`): each value makes
 * Streamlit rerun the page's whole script, and editing, saving and running must not. */

export interface RenderArgs {
  api_url?: string;
  api_key?: string | null;
  flow_id?: string | null;
  height?: number;
}

type Listener = (args: RenderArgs, theme: Record<string, unknown> | null) => void;

const listeners = new Set<Listener>();
let lastArgs: RenderArgs | null = null;
let lastTheme: Record<string, unknown> | null = null;
let started = false;

function send(type: string, extra: Record<string, unknown> = {}): void {
  if (window.parent === window) return;
  window.parent.postMessage({ isStreamlitMessage: true, type, ...extra }, "*");
}

function onMessage(event: MessageEvent): void {
  const data = event.data;
  if (!data || data.type !== "streamlit:render") return;
  lastArgs = (data.args ?? {}) as RenderArgs;
  lastTheme = data.theme ?? null;
  for (const l of listeners) l(lastArgs, lastTheme);
}

/** Start listening and announce the component; `listener` gets every render's args. */
export function onRender(listener: Listener): () => void {
  listeners.add(listener);
  if (!started) {
    started = true;
    window.addEventListener("message", onMessage);
    send("streamlit:componentReady", { apiVersion: 1 });
  } else if (lastArgs) {
    listener(lastArgs, lastTheme);
  }
  return () => listeners.delete(listener);
}

export function setFrameHeight(height: number): void {
  send("streamlit:setFrameHeight", { height: Math.round(height) });
}

/** Whether the page runs inside Streamlit's iframe (false in `vite dev`). */
export function inStreamlit(): boolean {
  return window.parent !== window;
}
