/** An incremental parser of server-sent events (the run streams of the LangGraph API):
 * feed it text as it arrives, take the complete events. */

export interface SseEvent {
  event: string;
  data: unknown;
  id?: string;
}

export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined;

  /** The events completed by `chunk` (a partial line waits for the next chunk). */
  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) break;
      // a lone \r at the end may be the first half of \r\n: wait for more
      if (m[0] === "\r" && m.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const done = this.line(line);
      if (done) out.push(done);
    }
    return out;
  }

  /** The last event when the stream ends without a blank line after it. */
  end(): SseEvent[] {
    const out = this.feed("\n");
    const last = this.line("");
    return last ? [...out, last] : out;
  }

  private line(line: string): SseEvent | null {
    if (line === "") {
      if (!this.data.length && !this.event) return null;
      const text = this.data.join("\n");
      let data: unknown = text;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: the text as it came
      }
      const ev: SseEvent = { event: this.event || "message", data };
      if (this.id !== undefined) ev.id = this.id;
      this.event = "";
      this.data = [];
      return ev;
    }
    if (line.startsWith(":")) return null; // a comment (heartbeat)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    return null;
  }
}
