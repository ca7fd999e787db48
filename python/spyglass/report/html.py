"""A single self-contained HTML page that steps through a recording one
instruction at a time: the source with the current line highlighted, the
bytecode listing with the current instruction, and the value stack drawn as
boxes. Keys: right/left (or j/k) step, PageUp/PageDown step by 10,
Home/End; a slider jumps anywhere; ``#step=N`` in the URL opens step N."""
from __future__ import annotations

import html
import json

from spyglass.opcodes import Recording


def _steps(rec: Recording, max_steps: int) -> tuple[list, list]:
    """[[code, offset, depth, stack, call_depth, notes, notes after], ...]
    and the notes after the last step."""
    steps: list[list] = []
    notes: list[str] = []
    for ev in rec.events():
        if len(steps) >= max_steps:
            notes.append(f"the page shows the first {max_steps} instructions")
            break
        kind = ev["kind"]
        if kind == "enter":
            notes.append(f"{ev['how']} {rec.codes[ev['code']]['qualname']}")
        elif kind == "exit":
            name = rec.codes[ev["code"]]["qualname"] if ev["code"] is not None else "?"
            value = f" -> {ev['value']}" if ev.get("value") is not None else ""
            note = f"{ev['how']} from {name}{value}"
            if steps and not notes:
                steps[-1][6].append(note)
            else:
                notes.append(note)
        elif kind == "instr":
            steps.append([ev["code"], ev["offset"], ev["depth"], ev["stack"], ev["call_depth"], notes, []])
            notes = []
        elif kind == "truncated":
            notes.append("recording truncated")
    return steps, notes


def to_html(rec: Recording, title: str = "spyglass trace", max_steps: int = 200_000) -> str:
    """The page for `rec`, with at most `max_steps` instructions (a page with
    millions of steps would not load)."""
    steps, trailing = _steps(rec, max_steps)
    used = sorted({s[0] for s in steps})
    codes = {}
    files = {}
    for cid in used:
        c = rec.codes[cid]
        codes[cid] = dict(qualname=c["qualname"], filename=c["filename"], firstlineno=c["firstlineno"],
                          instructions=[[r[0], r[1], r[2], r[3], r[4]] for r in c["instructions"]])
        if c["filename"] not in files:
            files[c["filename"]] = rec.files.get(c["filename"])
    data = dict(python=rec.python, steps=[s[:5] + [s[5] + s[6]] for s in steps], codes=codes,
                files=files, trailing=trailing)
    payload = json.dumps(data).replace("</", "<\\/")
    return _PAGE.replace("@@TITLE@@", html.escape(title)).replace("@@DATA@@", payload)


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>@@TITLE@@</title>
<style>
body{font:13px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:0;background:#fafafa;color:#222}
header{padding:8px 12px;background:#263238;color:#eceff1;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
header input[type=range]{flex:1;min-width:200px}
button{font:inherit}
main{display:grid;grid-template-columns:1.2fr 1fr 16em;gap:8px;padding:8px;height:calc(100vh - 110px)}
section{background:#fff;border:1px solid #ddd;border-radius:4px;overflow:auto;padding:4px 0}
h2{font-size:12px;margin:0 8px 4px;color:#607d8b;text-transform:uppercase}
.ln{white-space:pre;padding:0 8px}.ln.cur{background:#fff59d}
.ln .no{color:#999;display:inline-block;width:4em;text-align:right;margin-right:1em}
.ins{white-space:pre;padding:0 8px}.ins.cur{background:#bbdefb;font-weight:bold}
#stackbox{display:flex;flex-direction:column-reverse;gap:3px;padding:4px 8px}
.box{border:1px solid #90a4ae;border-radius:3px;padding:2px 6px;background:#eceff1;word-break:break-all}
.box.null{color:#999;font-style:italic}.box.top{border-color:#1e88e5;background:#e3f2fd}
#info{padding:4px 12px;background:#eceff1;border-bottom:1px solid #ddd;white-space:pre-wrap}
.note{color:#2e7d32}
</style></head>
<body>
<header><b>spyglass trace</b>
<button id="prev" title="previous (Left, k)">&#9664;</button>
<input id="slider" type="range" min="0" value="0">
<button id="next" title="next (Right, j)">&#9654;</button>
<span id="step-label"></span></header>
<div id="info"><span id="current-instr"></span>  <span id="frame-label"></span> <span id="notes" class="note"></span></div>
<main>
<section><h2 id="src-title">source</h2><div id="source"></div></section>
<section><h2 id="code-title">bytecode</h2><div id="bytecode"></div></section>
<section><h2>stack (top first)</h2><div id="stackbox"></div></section>
</main>
<script type="application/json" id="data">@@DATA@@</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const N = D.steps.length;
const $ = id => document.getElementById(id);
let cur = -1, shownCode = null;
function esc(s){return String(s).replace(/[&<>]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;"}[c]));}
function renderCode(cid){
  const c = D.codes[cid];
  $("code-title").textContent = "bytecode: " + c.qualname;
  $("bytecode").innerHTML = c.instructions.map(r =>
    `<div class="ins" data-off="${r[0]}">${String(r[0]).padStart(5)} ${esc(r[1].padEnd(22))} ${r[2]===null?"    ":String(r[2]).padStart(4)} ${r[3]?esc("("+r[3]+")"):""}</div>`).join("");
  const src = D.files[c.filename];
  $("src-title").textContent = "source: " + c.filename;
  if (src === null || src === undefined){ $("source").innerHTML = '<div class="ln">(source not available)</div>'; }
  else {
    const lines = src.split("\n");
    $("source").innerHTML = lines.map((l, i) => `<div class="ln" data-line="${i+1}"><span class="no">${i+1}</span>${esc(l)}</div>`).join("");
  }
  shownCode = cid;
}
function show(i){
  if (N === 0) { $("step-label").textContent = "no instructions recorded"; return; }
  i = Math.max(0, Math.min(N - 1, i));
  cur = i;
  const [cid, off, depth, stack, callDepth, notes] = D.steps[i];
  const c = D.codes[cid];
  if (shownCode !== cid) renderCode(cid);
  const row = c.instructions.find(r => r[0] === off) || [off, "?", null, "", null];
  $("slider").value = i;
  $("step-label").textContent = `step ${i + 1} / ${N}`;
  $("current-instr").textContent = `${off} ${row[1]}${row[2]===null?"":" "+row[2]}${row[3]?" ("+row[3]+")":""}`;
  $("frame-label").textContent = `in ${c.qualname} (call depth ${callDepth}, line ${row[4]})`;
  $("notes").textContent = notes.join("; ");
  for (const el of document.querySelectorAll(".ins.cur, .ln.cur")) el.classList.remove("cur");
  const ins = document.querySelector(`.ins[data-off="${off}"]`);
  if (ins) { ins.classList.add("cur"); ins.scrollIntoView({block: "nearest"}); }
  const ln = row[4] === null ? null : document.querySelector(`.ln[data-line="${row[4]}"]`);
  if (ln) { ln.classList.add("cur"); ln.scrollIntoView({block: "nearest"}); }
  const box = $("stackbox");
  box.innerHTML = "";
  if (stack === null) {
    box.innerHTML = `<div class="box">depth ${depth} (values not recorded)</div>`;
  } else {
    if (depth > stack.length) box.insertAdjacentHTML("beforeend", `<div class="box null">… ${depth - stack.length} more below</div>`);
    stack.forEach((v, k) => {
      const cls = "box" + (v === "NULL" ? " null" : "") + (k === stack.length - 1 ? " top" : "");
      box.insertAdjacentHTML("beforeend", `<div class="${cls}">${esc(v)}</div>`);
    });
    if (depth === 0) box.innerHTML = '<div class="box null">(empty)</div>';
  }
  history.replaceState(null, "", "#step=" + (i + 1));
}
$("slider").max = Math.max(0, N - 1);
$("slider").addEventListener("input", e => show(+e.target.value));
$("prev").addEventListener("click", () => show(cur - 1));
$("next").addEventListener("click", () => show(cur + 1));
document.addEventListener("keydown", e => {
  const k = e.key;
  if (k === "ArrowRight" || k === "j" || k === "n") show(cur + 1);
  else if (k === "ArrowLeft" || k === "k" || k === "p") show(cur - 1);
  else if (k === "PageDown") show(cur + 10);
  else if (k === "PageUp") show(cur - 10);
  else if (k === "Home") show(0);
  else if (k === "End") show(N - 1);
  else return;
  e.preventDefault();
});
const m = /step=(\d+)/.exec(location.hash);
show(m ? +m[1] - 1 : 0);
</script>
</body></html>
"""
