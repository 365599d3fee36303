/** The inspector's own form widgets (react-jsonschema-form): pickers of the server's
 * model aliases, prompt versions, knowledge bases and flows; pickers of the flow's
 * declared state fields (with "new field…" for fields a node writes); and JSON editing
 * for free-form values. */

import type { FieldProps, RegistryWidgetsType, WidgetProps } from "@rjsf/utils";
import { useEffect, useState } from "react";
import { declareState } from "../model/document";
import type { ChoiceKind, StateAccess } from "../model/schema";
import { STATE_TYPES } from "../model/types";
import { edit, useEditor } from "../store";

const CHOICE_LABELS: Record<ChoiceKind, string> = {
  models: "model aliases", embedding_models: "embedding model aliases",
  knowledge_bases: "knowledge bases", prompts: "stored prompts", flows: "flows",
};

function nullable(props: WidgetProps): boolean {
  const t = props.schema.type;
  return !props.required || (Array.isArray(t) && t.includes("null"));
}

/** The empty choice: the type's default applies when the param is left out. */
function emptyLabel(props: WidgetProps): string {
  const d = props.schema.default;
  return d !== undefined && d !== null && d !== "" ? `— default (${String(d)}) —` : "— none —";
}

/** A select of the server's list for this param; free text while the list is empty. */
export function ChoiceWidget(props: WidgetProps) {
  const kind = props.options.choices as ChoiceKind;
  const options = useEditor((s) => s.choices[kind]);
  const value = props.value ?? "";
  if (!options?.length) {
    return (
      <input id={props.id} className="fl-input" value={value} disabled={props.disabled}
        placeholder={`no ${CHOICE_LABELS[kind]} on the server; type a name`}
        onChange={(e) => props.onChange(e.target.value === "" ? undefined : e.target.value)} />
    );
  }
  const known = options.includes(value) || value === "";
  return (
    <select id={props.id} className="fl-select" value={value} disabled={props.disabled}
      onChange={(e) => props.onChange(e.target.value === "" ? undefined : e.target.value)}>
      {(nullable(props) || value === "") && <option value="">{emptyLabel(props)}</option>}
      {!known && <option value={value}>{value} (not on this server)</option>}
      {options.map((o) => <option key={o} value={o}>{o}</option>)}
    </select>
  );
}

/** A select of the flow's declared state fields; for a field the node writes, "new
 * field…" declares one (name and type) and picks it. */
export function StateFieldWidget(props: WidgetProps) {
  const access = props.options.access as StateAccess;
  const state = useEditor((s) => s.doc?.state);
  const [adding, setAdding] = useState(false);
  const [name, setName] = useState("");
  const [type, setType] = useState("any");
  const fields = Object.entries(state ?? {});
  const value = props.value ?? "";
  const declared = value === "" || fields.some(([k]) => k === value);
  if (adding) {
    const add = () => {
      const field = name.trim();
      if (!field) return;
      if (edit((doc) => declareState(doc, field, { type: type as any }))) {
        props.onChange(field);
        setAdding(false);
        setName("");
      }
    };
    return (
      <div className="fl-inline">
        <input className="fl-input" autoFocus placeholder="field name" value={name}
          onChange={(e) => setName(e.target.value)}
          onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); add(); } if (e.key === "Escape") setAdding(false); }} />
        <select className="fl-select fl-narrow" value={type} onChange={(e) => setType(e.target.value)}>
          {STATE_TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
        <button type="button" className="fl-btn fl-small" onClick={add}>Add</button>
        <button type="button" className="fl-btn fl-small fl-ghost" onClick={() => setAdding(false)}>Cancel</button>
      </div>
    );
  }
  return (
    <select id={props.id} className={`fl-select${declared ? "" : " fl-invalid"}`} value={value} disabled={props.disabled}
      onChange={(e) => {
        if (e.target.value === "\u0000new") setAdding(true);
        else props.onChange(e.target.value === "" ? (props.required ? "" : undefined) : e.target.value);
      }}>
      {(nullable(props) || value === "") && <option value="">— none —</option>}
      {!declared && <option value={value}>{value} (not declared)</option>}
      {fields.map(([k, f]) => <option key={k} value={k}>{k}{f.type ? ` · ${f.type}` : ""}</option>)}
      {access === "write" && <option value={"\u0000new"}>+ new field…</option>}
    </select>
  );
}

/** Free-form values (objects of any keys, unions) as JSON text, applied once it parses. */
export function JsonField(props: FieldProps) {
  const text = (v: unknown) => (v === undefined ? "" : JSON.stringify(v, null, 2));
  const [draft, setDraft] = useState(text(props.formData));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setDraft((d) => {
      try {
        if (JSON.stringify(JSON.parse(d || "null")) === JSON.stringify(props.formData ?? null)) return d;
      } catch {
        // the user's unparsed text stays while they type
        return d;
      }
      return text(props.formData);
    });
  }, [props.formData]);
  const title = props.schema.title ?? props.name;
  return (
    <div className="form-group field fl-json">
      <label className="control-label" htmlFor={props.fieldPathId.$id}>{title}</label>
      {props.schema.description && <p className="field-description">{props.schema.description}</p>}
      <textarea id={props.fieldPathId.$id} className="fl-code" rows={Math.min(8, Math.max(2, draft.split("\n").length))}
        value={draft} spellCheck={false} placeholder="JSON, e.g. {}"
        onChange={(e) => {
          const t = e.target.value;
          setDraft(t);
          if (!t.trim()) {
            setError(null);
            props.onChange(undefined, props.fieldPathId.path);
            return;
          }
          try {
            const v = JSON.parse(t);
            setError(null);
            props.onChange(v, props.fieldPathId.path);
          } catch (err) {
            setError((err as Error).message);
          }
        }} />
      {error && <div className="fl-field-error">Not valid JSON yet: {error}</div>}
      {(props.rawErrors ?? []).map((e, i) => <div key={i} className="fl-field-error">{e}</div>)}
    </div>
  );
}

export const widgets: RegistryWidgetsType = {
  choice: ChoiceWidget,
  stateField: StateFieldWidget,
};

export const fields = { json: JsonField };
