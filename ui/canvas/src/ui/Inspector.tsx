/** The inspector: the selected node's form (drawn from its type's Params JSON Schema by
 * react-jsonschema-form), its label and id; a selected edge's branch; with nothing
 * selected, the flow's settings and state fields. */

import Form from "@rjsf/core";
import type { IChangeEvent } from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import { memo, useEffect, useMemo, useRef, useState } from "react";
import {
  declareState, edgeIds, getNode, removeElements, removeState, renameNode, renameState,
  setEdgeCondition, setFlowInfo, setLabel, setParams,
} from "../model/document";
import { declareFix, errorSchema } from "../model/problems";
import { branchLabels } from "../model/routes";
import { flattenDefs, formEdit, formSchema } from "../model/schema";
import { REDUCERS, STATE_TYPES, type Problem, type StateField } from "../model/types";
import { declare, edit, refreshChoices, select, useEditor } from "../store";
import { fields, widgets } from "./widgets";

const templates = {
  ButtonTemplates: {
    AddButton: ({ onClick, disabled }: { onClick?: (e: any) => void; disabled?: boolean }) => (
      <button type="button" className="fl-btn fl-small" onClick={onClick} disabled={disabled}>+ Add</button>
    ),
  },
};

export function Inspector() {
  const selection = useEditor((s) => s.selection);
  if (selection.nodes.length === 1 && !selection.edges.length && selection.nodes[0] !== "START" && selection.nodes[0] !== "END") {
    return <NodeInspector key={selection.nodes[0]} id={selection.nodes[0]} />;
  }
  if (selection.edges.length === 1 && !selection.nodes.length) return <EdgeInspector id={selection.edges[0]} />;
  if (selection.nodes.length + selection.edges.length > 1) {
    const n = selection.nodes.filter((id) => id !== "START" && id !== "END").length;
    return (
      <div className="fl-inspector">
        <h3>{n} node{n === 1 ? "" : "s"}, {selection.edges.length} edge{selection.edges.length === 1 ? "" : "s"} selected</h3>
        <p className="fl-muted">Drag any of them to move them together; Delete removes them.</p>
        <button type="button" className="fl-btn fl-danger" onClick={() => {
          edit((d) => removeElements(d, selection.nodes, selection.edges));
          select([], []);
        }}>Delete selection</button>
      </div>
    );
  }
  return <FlowSettings />;
}

function ProblemLine({ p }: { p: Problem }) {
  const fix = declareFix(p);
  return (
    <li className="fl-problem">
      <code>{p.path || "/"}</code> {p.message}
      {p.choices?.length ? <span className="fl-muted"> (choices: {p.choices.slice(0, 8).join(", ")})</span> : null}
      {fix && (
        <button type="button" className="fl-btn fl-small" data-testid={`declare-${fix.field}`}
          onClick={() => declare(fix.field, fix.type)}>Declare {fix.field} ({fix.type})</button>
      )}
    </li>
  );
}

const NodeInspector = memo(function NodeInspector({ id }: { id: string }) {
  const node = useEditor((s) => (s.doc ? getNode(s.doc, id) : undefined));
  const info = useEditor((s) => (node ? s.types[node.type] : undefined));
  const problems = useEditor((s) => s.validation.pinned.nodes[id]);
  const doc = useEditor((s) => s.doc);
  const form = useMemo(() => info ? formSchema(flattenDefs(info.params_schema)) : null, [info]);
  const errors = useMemo(() => (doc && problems ? errorSchema(problems, doc) : undefined), [problems, doc]);
  const [idDraft, setIdDraft] = useState(id);
  const touched = useRef(false);
  useEffect(() => { setIdDraft(id); }, [id]);
  useEffect(() => { void refreshChoices(false); }, [id]);
  if (!node) return <FlowSettings />;
  const touch = () => { touched.current = true; };
  const rename = () => {
    const next = idDraft.trim();
    if (next === id) return;
    if (edit((d) => renameNode(d, id, next))) select([next], []);
    else setIdDraft(id);
  };
  const onChange = (e: IChangeEvent, fieldId?: string) => {
    // the form may report its computed defaults on its own: only a person's input edits
    if (!touched.current || !info) return;
    edit((d) => setParams(d, id, formEdit(getNode(d, id)?.params ?? {},
      (e.formData ?? {}) as Record<string, unknown>, info.params_schema)),
    { key: `${id}.params.${fieldId ?? ""}` });
  };
  const outsideForm = (problems ?? []).filter((p) => !/^nodes\[\d+\]\.params\./.test(p.path) || declareFix(p));
  return (
    <div className="fl-inspector">
      <div className="fl-inspector-head">
        <div className="fl-type-chip">{node.type}</div>
        {info && <p className="fl-muted fl-desc">{info.description}</p>}
        {!info && <div className="fl-error-box">This server has no node type {node.type}.</div>}
      </div>
      <label className="fl-label">Label
        <input className="fl-input" value={node.label ?? ""} placeholder={node.id} data-testid="node-label"
          onChange={(e) => edit((d) => setLabel(d, id, e.target.value), { key: `${id}.label` })} />
      </label>
      <label className="fl-label">Id <span className="fl-muted">(letters, digits, _ and -; edges follow a rename)</span>
        <input className="fl-input" value={idDraft} data-testid="node-id"
          onChange={(e) => setIdDraft(e.target.value)} onBlur={rename}
          onKeyDown={(e) => { if (e.key === "Enter") rename(); if (e.key === "Escape") setIdDraft(id); }} />
      </label>
      {outsideForm.length > 0 && (
        <ul className="fl-problem-list">{outsideForm.map((p, i) => <ProblemLine key={i} p={p} />)}</ul>
      )}
      {form && (
        <div onInputCapture={touch} onChangeCapture={touch} onClickCapture={touch} onKeyDownCapture={touch}>
        <Form
          className="fl-form"
          schema={form.schema}
          uiSchema={form.uiSchema}
          formData={node.params}
          validator={validator}
          widgets={widgets}
          fields={fields}
          templates={templates}
          extraErrors={errors}
          onChange={onChange}
          showErrorList={false}
          noHtml5Validate
          liveValidate={false}
          idPrefix={`p_${id}`}
        >
          <></>
        </Form>
        </div>
      )}
    </div>
  );
});

function EdgeInspector({ id }: { id: string }) {
  const doc = useEditor((s) => s.doc);
  const types = useEditor((s) => s.types);
  const analysis = useEditor((s) => s.validation.analysis);
  const problems = useEditor((s) => s.validation.pinned.edges[id]);
  if (!doc) return null;
  const index = edgeIds(doc).indexOf(id);
  if (index < 0) return <FlowSettings />;
  const edge = doc.edges[index];
  const source = getNode(doc, edge.source);
  const labels = source ? branchLabels(source, types[source.type], analysis[source.id]) : null;
  return (
    <div className="fl-inspector">
      <h3>Edge</h3>
      <p><code>{edge.source}</code> → <code>{edge.target}</code></p>
      {labels && (
        <label className="fl-label">Branch (the router's label that takes this edge)
          <select className="fl-select" value={edge.condition ?? ""} onChange={(e) => {
            let newId = id;
            if (edit((d) => { const [out, nid] = setEdgeCondition(d, id, e.target.value || null); newId = nid; return out; })) {
              select([], [newId]);
            }
          }}>
            <option value="">— none —</option>
            {edge.condition && !labels.includes(edge.condition) && <option value={edge.condition}>{edge.condition} (not a branch)</option>}
            {labels.map((l) => <option key={l} value={l}>{l}</option>)}
          </select>
        </label>
      )}
      {problems && <ul className="fl-problem-list">{problems.map((p, i) => <ProblemLine key={i} p={p} />)}</ul>}
      <button type="button" className="fl-btn fl-danger" onClick={() => {
        edit((d) => removeElements(d, [], [id]));
        select([], []);
      }}>Delete edge</button>
    </div>
  );
}

function StateRow({ name, field }: { name: string; field: StateField }) {
  const [draft, setDraft] = useState(name);
  useEffect(() => { setDraft(name); }, [name]);
  const commitName = () => {
    if (draft.trim() && draft.trim() !== name) {
      if (!edit((d) => renameState(d, name, draft.trim()))) setDraft(name);
    } else setDraft(name);
  };
  return (
    <tr>
      <td><input className="fl-input" value={draft} onChange={(e) => setDraft(e.target.value)} onBlur={commitName}
        onKeyDown={(e) => { if (e.key === "Enter") commitName(); }} aria-label={`state field ${name}`} /></td>
      <td>
        <select className="fl-select" value={field.type ?? "any"} aria-label={`type of ${name}`}
          onChange={(e) => edit((d) => declareState(d, name, { ...field, type: e.target.value as any }))}>
          {STATE_TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
      </td>
      <td>
        <select className="fl-select" value={field.reducer ?? ""} aria-label={`reducer of ${name}`}
          onChange={(e) => edit((d) => declareState(d, name, { ...field, reducer: (e.target.value || null) as any }))}>
          <option value="">default</option>
          {REDUCERS.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
      </td>
      <td><button type="button" className="fl-icon-btn" title={`Remove ${name}`}
        onClick={() => edit((d) => removeState(d, name))}>✕</button></td>
    </tr>
  );
}

function FlowSettings() {
  const doc = useEditor((s) => s.doc);
  const [newField, setNewField] = useState("");
  const [newType, setNewType] = useState("string");
  if (!doc) return null;
  const fieldsList = Object.keys(doc.state);
  const addField = () => {
    if (newField.trim() && edit((d) => declareState(d, newField.trim(), { type: newType as any }))) setNewField("");
  };
  return (
    <div className="fl-inspector">
      <h3>Flow settings</h3>
      <p className="fl-muted">Select a node or an edge to edit it.</p>
      <label className="fl-label">Name
        <input className="fl-input" value={doc.name} data-testid="flow-name"
          onChange={(e) => edit((d) => setFlowInfo(d, { name: e.target.value }), { key: "flow.name" })} />
      </label>
      <label className="fl-label">Description
        <textarea className="fl-input" rows={2} value={doc.description ?? ""}
          onChange={(e) => edit((d) => setFlowInfo(d, { description: e.target.value }), { key: "flow.description" })} />
      </label>
      <div className="fl-row2">
        <label className="fl-label">Input field
          <select className="fl-select" value={doc.io?.input ?? ""}
            onChange={(e) => edit((d) => setFlowInfo(d, { io: { ...d.io, input: e.target.value || null } }))}>
            <option value="">{"messages" in doc.state ? "messages (default)" : "— none —"}</option>
            {fieldsList.map((f) => <option key={f} value={f}>{f}</option>)}
          </select>
        </label>
        <label className="fl-label">Output field
          <select className="fl-select" value={doc.io?.output ?? ""}
            onChange={(e) => edit((d) => setFlowInfo(d, { io: { ...d.io, output: e.target.value || null } }))}>
            <option value="">{"messages" in doc.state ? "messages (default)" : "— none —"}</option>
            {fieldsList.map((f) => <option key={f} value={f}>{f}</option>)}
          </select>
        </label>
      </div>
      <h4>State fields</h4>
      <table className="fl-state-table">
        <thead><tr><th>Field</th><th>Type</th><th>Reducer</th><th /></tr></thead>
        <tbody>
          {Object.entries(doc.state).map(([name, field]) => <StateRow key={name} name={name} field={field} />)}
          <tr>
            <td><input className="fl-input" placeholder="new field" value={newField} data-testid="new-state-field"
              onChange={(e) => setNewField(e.target.value)} onKeyDown={(e) => { if (e.key === "Enter") addField(); }} /></td>
            <td><select className="fl-select" value={newType} onChange={(e) => setNewType(e.target.value)}>
              {STATE_TYPES.map((t) => <option key={t} value={t}>{t}</option>)}</select></td>
            <td colSpan={2}><button type="button" className="fl-btn fl-small" onClick={addField}>Add</button></td>
          </tr>
        </tbody>
      </table>
      <label className="fl-label">Recursion limit
        <input className="fl-input fl-narrow" type="number" min={1} max={10000} value={doc.recursion_limit ?? 25}
          onChange={(e) => { const n = Number(e.target.value); if (n >= 1) edit((d) => setFlowInfo(d, { recursion_limit: n }), { key: "flow.recursion" }); }} />
      </label>
    </div>
  );
}
