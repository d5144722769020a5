"""A renderer for the part of Go's text/template that Ollama chat templates use, so an exported `TEMPLATE` can
be checked byte for byte against the model's Jinja chat template without Go or Ollama.

Supported: text with `{{ }}` actions and `{{-`/`-}}` whitespace trimming, comments, `if`/`else if`/`else`,
`range` (with `$i, $m :=` or `$m :=`, and `else`), `with`, `$x := ...` and `$x = ...`, fields (`.Role`,
`$.System`, `$m.Content`), string/number/bool literals, parentheses, and the functions eq, ne, lt, le, gt,
ge, and, or, not, len, index, slice. Anything else raises GoTemplateError rather than rendering something
Ollama would not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:\\.|[^"\\])*"|`[^`]*`)|(?P<num>-?\d+)|(?P<op>:=|=|,|\(|\))'
                    r'|(?P<var>\$\w*(?:\.\w+)*)|(?P<field>(?:\.\w+)+|\.)|(?P<ident>\w+))')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class GoTemplateError(ValueError):
    """The template uses something this renderer does not support, or is malformed."""


@dataclass
class _Node:
    kind: str  # text, out, if, range, with, set
    value: object = None
    body: list = field(default_factory=list)
    other: list = field(default_factory=list)  # the else branch
    names: tuple = ()


def _lex(source: str) -> list[tuple[str, str]]:
    """[(kind, text)]: text pieces (trimmed as the markers say) and action bodies."""
    pieces, at = [], 0
    for match in _ACTION.finditer(source):
        pieces.append(["text", source[at:match.start()]])
        if match.group(1) and pieces[-1][0] == "text":
            pieces[-1][1] = pieces[-1][1].rstrip(" \t\r\n")
        pieces.append(["action", match.group(2).strip(), bool(match.group(3))])
        at = match.end()
    pieces.append(["text", source[at:]])
    for k, piece in enumerate(pieces):
        if piece[0] == "action" and piece[2] and k + 1 < len(pieces):
            pieces[k + 1][1] = pieces[k + 1][1].lstrip(" \t\r\n")
    return [(p[0], p[1]) for p in pieces if p[0] == "action" or p[1]]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if not match or match.end() == at:
            raise GoTemplateError(f"cannot read {text[at:]!r} in {{{{ {text} }}}}")
        out.append(next((k, v) for k, v in match.groupdict().items() if v is not None))
        at = match.end()
    return out


def parse(source: str) -> list[_Node]:
    """The template as a node tree."""
    return _parse_block(_lex(source), 0, top=True)[0]


def _parse_block(pieces, at: int, top: bool = False):
    nodes = []
    while at < len(pieces):
        kind, text = pieces[at]
        at += 1
        if kind == "text":
            nodes.append(_Node("text", text))
            continue
        if text.startswith("/*"):
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("end", "else"):
            if top:
                raise GoTemplateError(f"unexpected {{{{ {text} }}}}")
            return nodes, at - 1
        if word in ("if", "range", "with"):
            node, at = _parse_control(pieces, at, word, text[len(word):].strip())
            nodes.append(node)
        elif word in ("define", "template", "block", "break", "continue"):
            raise GoTemplateError(f"{{{{ {word} }}}} is not supported by this renderer")
        else:
            tokens = _tokens(text)
            if len(tokens) > 2 and tokens[0][0] == "var" and tokens[1][1] in (":=", "="):
                nodes.append(_Node("set", tokens[2:], names=(tokens[0][1], tokens[1][1])))
            else:
                nodes.append(_Node("out", tokens))
    if not top:
        raise GoTemplateError("a block is missing its {{ end }}")
    return nodes, at


def _parse_control(pieces, at: int, word: str, head: str):
    tokens, names = _tokens(head), ()
    if word == "range" and ":=" in [v for _, v in tokens]:
        split = [v for _, v in tokens].index(":=")
        names = tuple(v for k, v in tokens[:split] if k == "var")
        tokens = tokens[split + 1:]
    node = _Node(word, tokens, names=names)
    node.body, at = _parse_block(pieces, at)
    text = pieces[at][1]
    if text.startswith("else"):
        rest = text[4:].strip()
        if rest.startswith("if ") and word == "if":
            chained, at = _parse_control(pieces, at + 1, "if", rest[3:])
            node.other = [chained]
            return node, at  # the chained if consumed the shared {{ end }}
        node.other, at = _parse_block(pieces, at + 1)
    return node, at + 1


def truthy(value) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    return not (value is None or value is False or value == 0 and not isinstance(value, bool) or
                (hasattr(value, "__len__") and len(value) == 0))


def _compare(op: str, a, b) -> bool:
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


class _Scope:
    def __init__(self, root: dict):
        self.root, self.frames = root, [{"$": root}]

    def lookup(self, name: str):
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise GoTemplateError(f"undefined variable {name}")

    def assign(self, name: str, value) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise GoTemplateError(f"assignment to undeclared variable {name}")


def _field(value, path: list[str]):
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise GoTemplateError(f"no field {name} in {type(value).__name__}")
        value = value[name]
    return value


def _operand(token, dot, scope: _Scope):
    kind, text = token
    if kind == "str":
        return text[1:-1] if text[0] == "`" else re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)),
                                                        text[1:-1])
    if kind == "num":
        return int(text)
    if kind == "field":
        return dot if text == "." else _field(dot, text[1:].split("."))
    if kind == "var":
        name, *path = text.split(".")
        return _field(scope.lookup(name), path)
    if kind == "ident" and text in ("true", "false", "nil"):
        return {"true": True, "false": False, "nil": None}[text]
    raise GoTemplateError(f"unexpected {text!r}")


def _pipeline(tokens, dot, scope: _Scope):
    args, at = [], 0
    while at < len(tokens):
        kind, text = tokens[at]
        if text == "(":
            depth, close = 1, at + 1
            while depth:
                if close >= len(tokens):
                    raise GoTemplateError("unbalanced parentheses")
                depth += {"(": 1, ")": -1}.get(tokens[close][1], 0) if tokens[close][0] == "op" else 0
                close += 1
            args.append(("value", _pipeline(tokens[at + 1:close - 1], dot, scope)))
            at = close
            continue
        args.append((kind, text) if kind == "ident" and text not in ("true", "false", "nil")
                    else ("value", _operand(tokens[at], dot, scope)))
        at += 1
    if not args:
        raise GoTemplateError("empty action")
    if args[0][0] != "ident":
        if len(args) > 1:
            raise GoTemplateError("a value cannot take arguments")
        return args[0][1]
    name, values = args[0][1], [v for _, v in args[1:]]
    if name in ("eq",):
        return any(values[0] == v for v in values[1:])
    if name in ("ne", "lt", "le", "gt", "ge"):
        return _compare(name, *values)
    if name == "and":
        return next((v for v in values if not truthy(v)), values[-1])
    if name == "or":
        return next((v for v in values if truthy(v)), values[-1])
    functions = {"not": lambda v: not truthy(v), "len": len, "index": lambda v, *keys: _index(v, keys),
                 "slice": lambda v, *bounds: v[slice(*bounds) if len(bounds) > 1 else slice(*bounds, None)]}
    if name not in functions:
        raise GoTemplateError(f"function {name!r} is not supported by this renderer")
    return functions[name](*values)


def _index(value, keys):
    for key in keys:
        value = value[key]
    return value


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<no value>" if value is None else str(value)


def _render(nodes, dot, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "out":
            out.append(_text(_pipeline(node.value, dot, scope)))
        elif node.kind == "set":
            value = _pipeline(node.value, dot, scope)
            name, op = node.names
            if op == ":=":
                scope.frames[-1][name] = value
            else:
                scope.assign(name, value)
        elif node.kind in ("if", "with"):
            value = _pipeline(node.value, dot, scope)
            scope.frames.append({})
            _render(node.body if truthy(value) else node.other, value if node.kind == "with" and truthy(value)
                    else dot, scope, out)
            scope.frames.pop()
        elif node.kind == "range":
            items = _pipeline(node.value, dot, scope)
            pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items or []))
            for key, item in pairs:
                frame = dict(zip(node.names[::-1], (item, key))) if node.names else {}
                scope.frames.append(frame)
                _render(node.body, item, scope, out)
                scope.frames.pop()
            if not pairs:
                _render(node.other, dot, scope, out)


def render(source: str, data: dict) -> str:
    """`source` executed on `data` (Ollama passes `Messages`: [{Role, Content}], `System`, `Tools`, ...)."""
    out: list[str] = []
    _render(parse(source), data, _Scope(data), out)
    return "".join(out)
