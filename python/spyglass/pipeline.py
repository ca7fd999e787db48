"""The compile pipeline of the running interpreter, stage by stage:
source -> tokens -> AST -> bytecode (per code object) -> .pyc (header and
marshal layout), every stage cross-referenced by source line.

    >>> from spyglass import pipeline
    >>> ex = pipeline.explain(open("mod.py", "rb").read(), "mod.py")
    >>> print(pipeline.to_text(ex))
    >>> open("mod.html", "w").write(pipeline.to_html(ex))

Tokens and the AST come from the interpreter's own `tokenize` and `ast`; the
bytecode, header and layout are read back from the `.pyc` bytes this
interpreter writes, by spyglass's reader (spyglass.pyc).
"""
from __future__ import annotations

import ast
import html
import io
import sys
import tokenize
from dataclasses import dataclass, field
from typing import Optional

from spyglass import pyc
from spyglass.pyc_cli import header_lines

__all__ = ["explain", "to_text", "to_html", "Explanation", "TokenRow", "AstRow", "CodeRows"]


@dataclass
class TokenRow:
    """One token: its `tokenize` kind, text, (line, column) start and end."""
    kind: str
    text: str
    start: tuple
    end: tuple


@dataclass
class AstRow:
    """One AST node, at `depth` in the tree: class name, a short detail and its position."""
    depth: int
    node: str
    detail: str
    lineno: Optional[int]
    col: Optional[int]
    end_lineno: Optional[int]
    end_col: Optional[int]


@dataclass
class CodeRows:
    """One code object (by dis order `index`) and its `pyc.Instruction`s."""
    index: int
    qualname: str
    firstlineno: int
    instructions: list


@dataclass
class Explanation:
    """Every stage of compiling one source: what `explain` returns, `to_text` and `to_html` render."""
    filename: str
    version: tuple
    source_lines: list
    tokens: list = field(default_factory=list)
    ast_rows: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    header: list = field(default_factory=list)
    layout: list = field(default_factory=list)
    pyc_size: int = 0


def _ast_rows(tree: ast.AST) -> list:
    rows = []

    def visit(node: ast.AST, depth: int) -> None:
        detail = []
        for name, value in ast.iter_fields(node):
            if isinstance(value, (str, int, float, complex, bytes, bool)) or value is None:
                if value is not None:
                    detail.append("%s=%r" % (name, value))
        rows.append(AstRow(depth, type(node).__name__, ", ".join(detail)[:120],
                           getattr(node, "lineno", None), getattr(node, "col_offset", None),
                           getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)))
        for child in ast.iter_child_nodes(node):
            visit(child, depth + 1)

    visit(tree, 0)
    return rows


def explain(source: bytes | str, filename: str = "<string>") -> Explanation:
    """Run every stage on `source` and collect what each one produced."""
    raw = source.encode("utf-8") if isinstance(source, str) else source
    text = raw.decode(tokenize.detect_encoding(io.BytesIO(raw).readline)[0])
    ex = Explanation(filename, sys.version_info[:2], text.splitlines())
    for tok in tokenize.tokenize(io.BytesIO(raw).readline):
        if tok.type == tokenize.ENCODING:
            continue
        ex.tokens.append(TokenRow(tokenize.tok_name[tok.type], tok.string, tok.start, tok.end))
    ex.ast_rows = _ast_rows(ast.parse(raw, filename))
    data = pyc.compile_source(raw, filename)
    f = pyc.load(data, layout=True, filename=filename + " (as this interpreter writes it)")
    ex.pyc_size = len(data)
    ex.header = header_lines(f)
    ex.layout = f.layout()
    for code in f.codes:
        if not code.repeated:
            ex.codes.append(CodeRows(code.index, code.qualname, code.co_firstlineno, code.instructions("dis")))
    return ex


def _ins_text(ins: pyc.Instruction) -> str:
    arg = "" if ins.arg is None else " %d" % ins.arg
    rep = " (%s)" % ins.argrepr if ins.argrepr else ""
    return "%s%s%s" % (ins.opname, arg, rep)


def to_text(ex: Explanation) -> str:
    """All stages as plain text, each row prefixed with its source line."""
    out = ["# %s compiled by CPython %d.%d" % (ex.filename, *ex.version), "", "## source"]
    out += ["%4d  %s" % (i + 1, line) for i, line in enumerate(ex.source_lines)]
    out += ["", "## 1. tokens (tokenize)"]
    for t in ex.tokens:
        out.append("L%-4d %-10s %-14r %d:%d-%d:%d" % (t.start[0], t.kind, t.text, *t.start, *t.end))
    out += ["", "## 2. abstract syntax tree (ast.parse)"]
    for r in ex.ast_rows:
        where = "L%-4s" % (r.lineno if r.lineno is not None else "")
        out.append("%s %s%s%s" % (where, "  " * r.depth, r.node, " " + r.detail if r.detail else ""))
    out += ["", "## 3. bytecode (compile, read back from the .pyc)"]
    for c in ex.codes:
        out.append("code object %s (line %d):" % (c.qualname, c.firstlineno))
        for ins in c.instructions:
            line = "L%-4s" % (ins.line if ins.line is not None else "")
            out.append("%s %6d %s%s" % (line, ins.offset, ">> " if ins.is_jump_target else "   ", _ins_text(ins)))
        out.append("")
    out += ["## 4. the .pyc file (%d bytes)" % ex.pyc_size] + ex.header
    out += ["", "## 5. marshal layout (offset, type code, reference, field, value)"]
    for e in ex.layout:
        ref = " ref#%d" % e.ref_index if e.ref_index is not None else ""
        if e.ref_target is not None:
            ref = " -> ref#%d" % e.ref_target
        out.append("%8d %s%r%s%s %s" % (e.offset, "  " * e.depth, e.type_code, ref,
                                        " %s =" % e.field if e.field else "", e.summary))
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,sans-serif;margin:0;display:flex;height:100vh}
#src{width:38%;overflow:auto;border-right:1px solid #ccc;padding:.5em}
#stages{flex:1;overflow:auto;padding:.5em}
pre,table{font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse} td{padding:0 .6em;white-space:pre;vertical-align:top}
.line{display:block;white-space:pre} .line:target,tr:target{background:#ffe58a}
.ln{color:#888;display:inline-block;width:3.5em;text-align:right;margin-right:.5em}
.links a{font-size:10px;margin-left:.3em;color:#06c}
h2{font-size:15px;border-bottom:1px solid #ddd} a{text-decoration:none}
.jt{color:#c00} .op{font-weight:600}
"""


def to_html(ex: Explanation) -> str:
    """One page: the source on the left (each line links to its tokens, AST
    nodes and instructions), the stages on the right (each row links back)."""
    e = html.escape
    by_line: dict = {}

    def note(line, kind, anchor):
        if line is not None:
            by_line.setdefault(line, {}).setdefault(kind, anchor)

    tok_rows = []
    for i, t in enumerate(ex.tokens):
        note(t.start[0], "tok", "tok%d" % i)
        tok_rows.append('<tr id="tok%d"><td><a href="#L%d">L%d</a></td><td>%s</td><td>%s</td><td>%d:%d-%d:%d</td></tr>'
                        % (i, t.start[0], t.start[0], e(t.kind), e(repr(t.text)), *t.start, *t.end))
    ast_rows = []
    for i, r in enumerate(ex.ast_rows):
        note(r.lineno, "ast", "ast%d" % i)
        where = '<a href="#L%d">L%d</a>' % (r.lineno, r.lineno) if r.lineno is not None else ""
        ast_rows.append('<tr id="ast%d"><td>%s</td><td>%s<span class="op">%s</span> %s</td></tr>'
                        % (i, where, "&nbsp;&nbsp;" * r.depth, e(r.node), e(r.detail)))
    code_html = []
    for c in ex.codes:
        rows = []
        for ins in c.instructions:
            anchor = "c%d-%d" % (c.index, ins.offset)
            note(ins.line, "bytecode", anchor)
            where = '<a href="#L%d">L%d</a>' % (ins.line, ins.line) if ins.line is not None else ""
            rows.append('<tr id="%s"><td>%s</td><td>%d</td><td class="jt">%s</td><td class="op">%s</td><td>%s</td></tr>'
                        % (anchor, where, ins.offset, ">>" if ins.is_jump_target else "", e(ins.opname),
                           e(("" if ins.arg is None else str(ins.arg)) + (" (%s)" % ins.argrepr if ins.argrepr else ""))))
        code_html.append('<h3 id="code%d">%s <a href="#L%d">(line %d)</a></h3><table>%s</table>'
                         % (c.index, e(c.qualname), c.firstlineno, c.firstlineno, "".join(rows)))
    layout_rows = []
    for le in ex.layout:
        ref = "ref#%d" % le.ref_index if le.ref_index is not None else ""
        if le.ref_target is not None:
            ref = "&rarr; ref#%d" % le.ref_target
        value = e(le.summary)
        if le.code_index is not None:
            value = '<a href="#code%d">%s</a>' % (le.code_index, value)
        layout_rows.append("<tr><td>%d</td><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
                           % (le.offset, "&nbsp;&nbsp;" * le.depth, e(repr(le.type_code)), ref, e(le.field or ""), value))
    src = []
    for n, line in enumerate(ex.source_lines, 1):
        links = "".join('<a href="#%s">%s</a>' % (a, k) for k, a in by_line.get(n, {}).items())
        src.append('<span class="line" id="L%d"><span class="ln">%d</span>%s<span class="links">%s</span></span>'
                   % (n, n, e(line) or " ", links))
    return """<!doctype html><html><head><meta charset="utf-8"><title>%(title)s</title><style>%(css)s</style></head>
<body><div id="src"><h2>%(title)s</h2><pre>%(src)s</pre></div><div id="stages">
<h2>1. tokens (tokenize)</h2><table>%(tok)s</table>
<h2>2. abstract syntax tree (ast.parse)</h2><table>%(ast)s</table>
<h2>3. bytecode, one table per code object</h2>%(code)s
<h2>4. the .pyc file (%(size)d bytes)</h2><pre>%(header)s</pre>
<h2>5. marshal layout</h2><table><tr><td>offset</td><td>type</td><td>reference</td><td>field</td><td>value</td></tr>%(layout)s</table>
</div></body></html>
""" % {"title": e("%s compiled by CPython %d.%d" % (ex.filename, *ex.version)), "css": CSS, "src": "".join(src),
       "tok": "".join(tok_rows), "ast": "".join(ast_rows), "code": "".join(code_html), "size": ex.pyc_size,
       "header": e("\n".join(ex.header)), "layout": "".join(layout_rows)}
