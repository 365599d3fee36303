"""Hostile flow documents and templates: each is refused with a path-named problem or a
TemplateError that names the limit, in bounded work, and never crashes the checker.

Includes a property-based fuzz (hypothesis) of the loader and validator over mutated
real flows: no crash, no hang, every refusal a FlowError whose problems have paths."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowloom.flows.errors import FlowError, FlowLoadError
from flowloom.flows.limits import MAX_DEPTH
from flowloom.flows.loader import check_flow, examples_dir
from flowloom.flows.registry import default_registry
from flowloom.flows.templates import MAX_CHARS, MAX_STEPS, Template, TemplateError
from flowloom.flows.validate import MAX_CHOICES

EXAMPLES = [json.loads(p.read_text()) for p in sorted(examples_dir().glob("*.json"))]
REGISTRY = default_registry()

BOMBS = {
    '{{ "A" * 200000000 }}': "repetition",
    '{{ [1, 2] * 1000000000 }}': "repetition",
    '{{ "%999999999d" % 1 }}': "format width",
    '{{ "{:>999999999}".format(1) }}': "format width",
    '{{ "a" | center(999999999) }}': "argument larger",
    '{{ "a".ljust(999999999) }}': "wider than",
    '{{ 2 ** 100000 }}': "exponent",
    '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}':
        "operations",
    ('{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s | length }}'
     '{% endif %}{% endmacro %}{{ f("ab", 60) }}'): "argument",
    '{{ text | replace("", "' + "x" * 1000 + '") }}': "replace",
}


@pytest.mark.parametrize("source", list(BOMBS))
def test_template_bombs_are_checked_for_free_and_refused_when_rendered(source):
    template = Template(source)  # parsing and checking evaluate nothing
    with pytest.raises(TemplateError) as refused:
        template.render({"text": "y" * 5000})
    assert BOMBS[source] in str(refused.value)


def test_the_output_and_a_render_are_bounded():
    with pytest.raises(TemplateError, match="output is longer"):
        Template("{% for i in range(100000) %}{{ text }}{% endfor %}").render(
            {"text": "z" * 100})
    assert MAX_STEPS >= 100_000 and MAX_CHARS >= 1_000_000  # room for real prompts


def test_ordinary_templates_still_render():
    source = ('{{ q | upper }} {{ "x" * 3 }} {% for i in range(3) %}{{ i }}{% endfor %} '
              '{{ "%5.2f" | format(3.14159) }} {{ "{}-{}".format(1, 2) }} {{ n * 2 + 1 }} '
              '{{ "a,b" | replace(",", ";") }} {{ items | join(", ") }} {{ last_message }}')
    out = Template(source).render({"q": "hi", "n": 20, "items": ["a", "b"],
                                   "messages": [{"role": "user", "content": "你好"}]})
    assert out == "HI xxx 012  3.14 1-2 41 a;b a, b 你好"


def _chat(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(next(d for d in EXAMPLES if d["id"] == "chat"))
    doc.update(changes)
    return doc


@pytest.mark.parametrize("key", ["x[", "[", "a]b[", "list[str]"])
def test_odd_param_keys_are_unknown_fields_not_crashes(key):
    doc = _chat()
    doc["nodes"][0]["params"][key] = 1
    _, problems = check_flow(doc, REGISTRY)
    assert [p.path for p in problems] == [f"nodes[0].params.{key}"]
    assert problems[0].message == f"unknown field {key!r}"


@pytest.mark.parametrize("flow_id", ["../../x", "ok\n", "", "9lives", "x" * 65])
def test_flow_ids_must_be_names(flow_id):
    _, problems = check_flow(_chat(id=flow_id), REGISTRY)
    assert [p.path for p in problems] == ["id"], problems


def test_a_nul_anywhere_is_refused_before_validation():
    with pytest.raises(FlowLoadError, match=r"^id: contains a NUL"):
        check_flow(_chat(id="a\x00b"), REGISTRY)


def test_deep_or_unstorable_documents_are_refused_by_path(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"nodes": [], "metadata": ' + "[" * 3000 + "]" * 3000 + "}")
    with pytest.raises(FlowLoadError, match=f"deeper than {MAX_DEPTH}"):
        check_flow(deep, REGISTRY)
    for value, why in (("a\x00b", "NUL"), ("a\ud800b", "unpaired surrogate")):
        with pytest.raises(FlowLoadError, match=why) as refused:
            check_flow(_chat(description=value), REGISTRY)
        assert "description" in str(refused.value)


def _broken_chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "state.set@1", "params": {"values": {"x": i}}}
             for i in range(n)]
    edges = [{"source": "START", "target": "n0"}] + [
        {"source": f"n{i}", "target": f"missing{i}"} for i in range(n)]
    return {"schema_version": 1, "id": "big", "name": "Big", "nodes": nodes, "edges": edges,
            "state": {"x": {"type": "integer"}}}


def test_problems_of_a_large_flow_stay_small():
    """2,000 edges to nowhere: each problem lists at most MAX_CHOICES valid names, so the
    answer grows with the flow, not with its square (it was 34 MB for 2,000 nodes)."""
    _, problems = check_flow(_broken_chain(2000), REGISTRY)
    assert len(problems) >= 2000
    assert max(len(p.choices) for p in problems) <= MAX_CHOICES
    size = len(json.dumps([p.to_dict() for p in problems]))
    assert size < 400 * len(problems)
    first = next(p for p in problems if p.path == "edges[1].target")
    assert first.message == "'missing0' is not a node" and "END" in first.choices


# -- fuzz -------------------------------------------------------------------------------

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["START", "END", "{{ x }}", "{% for %}", "[", "@1",
                                           "llm.chat@1", "messages", "\x00", "\ud800"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                          max_size=3))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


@st.composite
def mutated_flows(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["set", "delete", "rename"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(path[-1])
        else:
            parent[path[-1]] = draw(_VALUES)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_flows())
def test_mutated_real_flows_never_crash_the_checker(doc):
    try:
        loaded, problems = check_flow(doc, REGISTRY)
    except FlowError as exc:  # a refusal: it says what and where
        assert str(exc)
        return
    assert (loaded is None) == bool(problems)
    for problem in problems:
        assert isinstance(problem.path, str) and problem.message
        json.dumps(problem.to_dict())  # every refusal can be sent as JSON
