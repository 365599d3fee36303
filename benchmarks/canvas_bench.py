"""The Builder canvas's speed in a real browser (issue 20): time from a user action to the
DOM change it causes, the time a 200-node flow takes to open, and the frame rate while a
node of that flow is dragged; Streamlit reruns are counted all along (there should be none).

    FLOWLOOM_HOME=/tmp/flbench .venv/bin/python benchmarks/canvas_bench.py [--rounds 20]

It starts `flowloom up --no-model-service --no-demo-kb` (no run is timed, so no model is
needed) and drives the Builder page in Debian's headless Chromium (1600x1000) with
Playwright. Latencies are measured inside the canvas's iframe: from the input event's
timestamp (click, pointer release, input) to the MutationObserver callback that sees the
change, so Playwright's own round trips are not counted. The drag moves the node once per
animation frame with mouse events dispatched in the page (what React Flow listens to), so
the frame rate is the canvas's own, not the rate a remote driver can send moves at. The
machine's load average is printed with the figures: on a busy 2-core machine every figure
here is worse.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ui.canvas_kit import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    RerunCounter,
    big_flow,
    drag_handle,
    open_builder,
)
from tests.ui.launch import flowloom_up  # noqa: E402

# In the canvas frame: remember the last input event's timestamp; `__flWatch(cond)` arms
# a MutationObserver that records when `cond()` first holds; `__flDone()` waits for it and
# answers the latency in ms.
WATCH_JS = """() => {
  if (window.__flWatch) return;
  window.__flInputAt = null;
  for (const type of ["click", "pointerup", "mouseup", "input", "keydown"]) {
    window.addEventListener(type, (e) => { window.__flInputAt = e.timeStamp; }, true);
  }
  window.__flWatch = (cond) => {
    window.__flChangedAt = null;
    const test = new Function("return (" + cond + ")();");
    const obs = new MutationObserver(() => {
      if (window.__flChangedAt === null && test()) {
        window.__flChangedAt = performance.now();
        obs.disconnect();
      }
    });
    obs.observe(document.body, { childList: true, subtree: true, characterData: true,
                                 attributes: true });
    window.__flObs = obs;
  };
  window.__flDone = () => new Promise((resolve, reject) => {
    const started = performance.now();
    const poll = () => {
      if (window.__flChangedAt !== null) resolve(window.__flChangedAt - window.__flInputAt);
      else if (performance.now() - started > 15000) {
        window.__flObs.disconnect();
        reject("timeout");
      }
      else setTimeout(poll, 5);
    };
    poll();
  });
}"""

DRAG_JS = """async () => {
  const node = document.querySelector('.react-flow__node[data-id="c10_n5"]');
  const r = node.getBoundingClientRect();
  const x0 = r.left + 40, y0 = r.top + 15;
  let x = x0, y = y0;
  const at = (x, y) => ({ bubbles: true, cancelable: true, clientX: x, clientY: y,
                          view: window, button: 0, buttons: 1 });
  node.dispatchEvent(new MouseEvent("mousedown", at(x, y)));
  const times = [], transforms = [];
  await new Promise((resolve) => {
    let i = 0;
    const tick = (t) => {
      times.push(t);
      transforms.push(node.style.transform);
      x = x0 + 120 * Math.sin(i / 10); y = y0 + 40 * Math.sin(i / 7);
      window.dispatchEvent(new MouseEvent("mousemove", at(x, y)));
      if (++i < 120) requestAnimationFrame(tick); else resolve();
    };
    requestAnimationFrame(tick);
  });
  window.dispatchEvent(new MouseEvent("mouseup", at(x, y)));
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  let changed = 0;
  for (let i = 1; i < transforms.length; i++) if (transforms[i] !== transforms[i - 1]) changed++;
  return { frames: times.length, span: times[times.length - 1] - times[0], changed,
           p50: gaps[Math.floor(gaps.length / 2)], p95: gaps[Math.floor(gaps.length * 0.95)] };
}"""

NODES = "document.querySelectorAll('.react-flow__node').length"
EDGES = "document.querySelectorAll('.react-flow__edge').length"


def timed(frame: Any, cond: str, action: Any) -> float:
    frame.evaluate(f"() => window.__flWatch({cond!r})")
    action()
    return float(frame.evaluate("() => window.__flDone()"))


def open_flow(canvas: Any, flow_id: str) -> None:
    """Open a flow from the Open dialog, dropping unsaved work when asked."""
    canvas.get_by_test_id("btn-open").click()
    canvas.get_by_test_id(f"open-{flow_id}").click()
    confirm = canvas.get_by_test_id("confirm-ok")
    try:
        confirm.wait_for(timeout=500)
    except Exception:  # nothing unsaved: no question
        return
    confirm.click()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pairs_flow(flow_id: str, n: int) -> dict[str, Any]:
    """`n` pairs of nodes in two columns, each node on its own path from START to END; the
    connect timings draw an edge across each pair."""
    nodes, edges, layout = [], [], {}
    for i in range(n):
        for col, prefix in ((0, "a"), (1, "b")):
            node_id = f"{prefix}{i}"
            nodes.append({"id": node_id, "type": "state.set@1",
                          "params": {"values": {"note": str(i)}}})
            layout[node_id] = {"x": 80.0 + 420 * col, "y": 40.0 + 120 * i}
            edges += [{"source": "START", "target": node_id}, {"source": node_id, "target": "END"}]
    return {"id": flow_id, "name": "pairs", "state": {"note": {"type": "string"}},
            "nodes": nodes, "edges": edges,
            "layout": {"nodes": {**layout, "START": {"x": -300.0, "y": 400.0},
                                 "END": {"x": 900.0, "y": 400.0}}}}


def run(rounds: int, home: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with flowloom_up(home, "--no-model-service", "--no-demo-kb") as up, sync_playwright() as pw:
        api = up.api
        for doc in (big_flow("bench_big", 200), pairs_flow("bench_pairs", 8),
                    big_flow("bench_small", 4, chains=2)):
            httpx.put(f"{api}/flows/{doc['id']}", json=doc, timeout=120).raise_for_status()
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        reruns = RerunCounter().attach(page)
        canvas, frame = open_builder(page, up.ui)
        page.wait_for_timeout(1500)
        frame.evaluate(WATCH_JS)
        mark = reruns.mark()

        # add a node (click in the palette) -> the node is on the canvas
        canvas.get_by_test_id("new-blank").click()
        adds = []
        for _ in range(rounds):
            n = frame.evaluate(f"() => {NODES}")
            item = canvas.get_by_test_id("palette-llm.chat@1")
            adds.append(timed(frame, f"() => {NODES} > {n}", item.click))
        # undo -> the last node added is gone
        undos = []
        for _ in range(min(rounds, 10)):
            n = frame.evaluate(f"() => {NODES}")
            undos.append(timed(frame, f"() => {NODES} < {n}",
                               canvas.get_by_test_id("btn-undo").click))
        # set a param (the max tokens field) -> the node card shows the value
        canvas.locator('.react-flow__node[data-id="chat"]').click()
        field = canvas.locator("#p_chat_max_tokens")
        sets = []
        for i in range(rounds):
            value = str(100 + i)
            cond = ("() => [...document.querySelectorAll("
                    "'.react-flow__node[data-id=\"chat\"] .fl-node-param')].some(p => "
                    "p.querySelector('.k').textContent === 'max_tokens' && "
                    f"p.querySelector('.v').textContent === '{value}')")
            sets.append(timed(frame, cond, lambda v=value: field.fill(v)))  # type: ignore[misc]
        # connect two nodes by dragging between handles -> the edge is drawn
        open_flow(canvas, "bench_pairs")
        frame.wait_for_function(f"() => {NODES} === 18")
        page.wait_for_timeout(500)
        connects = []
        for i in range(8):
            e = frame.evaluate(f"() => {EDGES}")
            connects.append(timed(frame, f"() => {EDGES} > {e}",
                                  lambda i=i: drag_handle(page, canvas, f"a{i}", f"b{i}")))

        # a 200-node flow opens: click -> every node and edge drawn
        opens = []
        for _ in range(5):
            open_flow(canvas, "bench_small")
            frame.wait_for_function(f"() => {NODES} === 6")
            canvas.get_by_test_id("btn-open").click()
            cond = f"() => {NODES} === 202 && {EDGES} === 220"
            opens.append(timed(frame, cond, canvas.get_by_test_id("open-bench_big").click))
        page.wait_for_timeout(800)

        # drag a node of the 200-node flow: one pointer move per animation frame (mouse
        # events dispatched in the page, so the rate is the canvas's, not the driver's)
        drags = [frame.evaluate(DRAG_JS) for _ in range(3)]
        results["drag"] = {
            "fps": statistics.median(1000 * (d["frames"] - 1) / d["span"] for d in drags),
            "moved": statistics.median(d["changed"] / (d["frames"] - 1) for d in drags),
            "p50_frame_ms": statistics.median(d["p50"] for d in drags),
            "p95_frame_ms": statistics.median(d["p95"] for d in drags)}
        results["reruns"] = reruns.since(mark)
        results.update(add=adds, set=sets, undo=undos, connect=connects, open=opens)
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flcanvas-"))
    load = os.getloadavg()[0]
    r = run(args.rounds, home)
    print("| action -> DOM change | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for key, label in (("add", "add a node (palette click)"), ("connect", "connect (drag handles)"),
                       ("set", "set a param (form input)"), ("undo", "undo"),
                       ("open", "open a 200-node flow")):
        v = r[key]
        print(f"| {label} | {len(v)} | {statistics.median(v):.1f} | {pct(v, 0.95):.1f} "
              f"| {max(v):.1f} |")
    d = r["drag"]
    print(f"\ndrag a node of the 200-node flow (one move per frame, median of 3 drags): "
          f"{d['fps']:.1f} frames/s, frame time p50 {d['p50_frame_ms']:.1f} ms / p95 "
          f"{d['p95_frame_ms']:.1f} ms, the node moved in {100 * d['moved']:.0f}% of frames")
    print(f"Streamlit reruns during all of it: {r['reruns']}")
    print(f"load average at the start: {load:.2f} (1 min), {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
