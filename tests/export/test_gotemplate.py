"""The Go text/template renderer on the constructs Ollama templates use, with exact expected output."""

from __future__ import annotations

import pytest

from sftkit.export.gotemplate import GoTemplateError, render

MESSAGES = {"Messages": [{"Role": "system", "Content": "S"}, {"Role": "user", "Content": "U1"},
                         {"Role": "assistant", "Content": "A1"}, {"Role": "user", "Content": "U2"}], "System": ""}


def test_trim_markers_remove_whitespace_and_newlines_on_their_side_only():
    assert render("a \n {{- .X }} \n b", {"X": "x"}) == "ax \n b"
    assert render("a {{ .X -}} \n\t b", {"X": "x"}) == "a xb"
    assert render("{{- /* a comment */ -}}\n  text", {}) == "text"


def test_range_with_index_and_element_variables():
    template = "{{ range $i, $m := .Messages }}{{ $i }}:{{ $m.Role }}={{ .Content }};{{ end }}"
    assert render(template, MESSAGES) == "0:system=S;1:user=U1;2:assistant=A1;3:user=U2;"


def test_if_else_if_else_chain_and_comparisons():
    template = ('{{ range .Messages }}{{ if eq .Role "system" }}[S]{{ else if eq .Role "user" "tool" }}[U]'
                '{{ else }}[A]{{ end }}{{ end }}')
    assert render(template, MESSAGES) == "[S][U][A][U]"


def test_ollama_style_last_message_detection():
    # the idiom Ollama's own templates use to open the assistant turn after the last message only
    template = ("{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}"
                "<{{ .Role }}>{{ if and $last (ne .Role \"assistant\") }}<open>{{ end }}{{ end }}")
    assert render(template, MESSAGES) == "<system><user><assistant><user><open>"


def test_truth_of_empty_values_and_with_and_not():
    data = {"System": "", "Tools": [], "Name": "n"}
    assert render("{{ if .System }}yes{{ else }}no{{ end }}{{ if not .Tools }}!{{ end }}", data) == "no!"
    assert render("{{ with .Name }}<{{ . }}>{{ end }}{{ with .System }}never{{ end }}", data) == "<n>"
    assert render("{{ or .System .Name }}|{{ and .Name .System }}|", data) == "n||"


def test_variable_assignment_and_string_escapes():
    assert render('{{ $x := "a\\n" }}{{ $x = "b\\t" }}{{ $x }}', {}) == "b\t"
    with pytest.raises(GoTemplateError, match="cannot read"):
        render("{{ .Messages | len }}", MESSAGES)


@pytest.mark.parametrize("template, message", [
    ("{{ range .Messages }}x", "missing its {{ end }}"),
    ("{{ end }}", "unexpected"),
    ('{{ printf "%s" .System }}', "not supported"),
    ("{{ template \"x\" }}", "not supported"),
    ("{{ .Missing }}", "no field Missing"),
])
def test_unsupported_or_malformed_templates_raise(template, message):
    with pytest.raises(GoTemplateError, match=message):
        render(template, MESSAGES)
