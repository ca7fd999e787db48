//! Source instrumentation: parse with ruff, decide per node which events to
//! instrument, emit instrumented source text that CPython then compiles, and
//! map the positions of the compiled code back to the original source.

pub mod edits;
pub mod linetable;
pub mod lines;
pub mod nodes;
pub mod sites;
mod walk;

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::Mod;
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions, Parsed};
use ruff_text_size::Ranged;

pub use walk::{Candidate, Plan};

use edits::PositionMap;
use lines::LineIndex;
use nodes::NodeKey;
use sites::Site;

/// A parsed source, kept between collecting candidates and rewriting.
pub struct Source {
    pub text: String,
    parsed: Parsed<Mod>,
    /// Token ranges whose inner lines must never be re-indented.
    multiline: Vec<(u32, u32)>,
}

/// The first syntax error ruff found: CPython is asked for its own message.
pub struct SyntaxProblem {
    pub offset: u32,
    pub message: String,
}

pub fn parse(text: String, eval: bool) -> Result<Source, SyntaxProblem> {
    let mode = if eval { Mode::Expression } else { Mode::Module };
    let parsed = parse_unchecked(&text, ParseOptions::from(mode));
    if let Some(err) = parsed.errors().first() {
        return Err(SyntaxProblem { offset: err.location.start().to_u32(), message: err.error.to_string() });
    }
    // strings, and whole f-/t-strings, that span lines: their inner lines are text
    let mut multiline = Vec::new();
    let mut depth = 0usize;
    let mut outer_start = 0u32;
    for t in parsed.tokens().iter() {
        match t.kind() {
            TokenKind::FStringStart | TokenKind::TStringStart => {
                if depth == 0 {
                    outer_start = t.start().to_u32();
                }
                depth += 1;
            }
            TokenKind::FStringEnd | TokenKind::TStringEnd => {
                depth = depth.saturating_sub(1);
                if depth == 0 && text[outer_start as usize..t.end().to_usize()].contains('\n') {
                    multiline.push((outer_start, t.end().to_u32()));
                }
            }
            TokenKind::String if depth == 0 && text[t.range()].contains('\n') => {
                multiline.push((t.start().to_u32(), t.end().to_u32()));
            }
            _ => {}
        }
    }
    Ok(Source { text, parsed, multiline })
}

pub struct Rewritten {
    pub text: String,
    pub sites: Vec<Site>,
    pub nodes: Vec<NodeKey>,
    pub map: PositionMap,
}

impl Source {
    fn walk<'a>(&'a self, plan: &'a Plan) -> walk::Walker<'a> {
        let mut w = walk::Walker::new(&self.text, self.parsed.tokens(), plan);
        match self.parsed.syntax() {
            Mod::Module(m) => w.module(&m.body),
            Mod::Expression(e) => w.expression(&e.body),
        }
        w
    }

    /// The (event, node) pairs of predicated events that need a verdict.
    pub fn candidates(&self, plan: &Plan) -> Vec<Candidate> {
        debug_assert!(plan.collect);
        self.walk(plan).candidates
    }

    pub fn rewrite(&self, plan: &Plan) -> Rewritten {
        debug_assert!(!plan.collect);
        let w = self.walk(plan);
        let nodes = w.nodes.keys;
        let mut sites = w.sites;
        let applied = edits::apply(&self.text, w.b, &self.multiline);
        for site in sites.iter_mut() {
            if let Some((open, close)) = site.thunk_edits.take() {
                site.thunk = Some((applied.spans[open].1, applied.spans[close].0));
            }
        }
        Rewritten { text: applied.text, sites, nodes, map: PositionMap::new(applied.segments) }
    }
}

/// Maps code-object locations of the instrumented text back to the original.
pub struct Remapper<'a> {
    pub map: &'a PositionMap,
    pub out_lines: LineIndex,
    pub orig_lines: &'a LineIndex,
}

impl Remapper<'_> {
    /// The original location of an instrumented one; None for scaffolding.
    pub fn loc(&self, loc: linetable::Loc) -> Option<linetable::Loc> {
        let line_off = |l: i32| self.out_lines.line_start(l.max(1) as u32);
        match (loc.col, loc.end_col) {
            (Some(c), Some(ec)) => {
                let (s, s_ok) = self.map.start_located(self.out_lines.offset(loc.line.max(1) as u32, c));
                let (e, e_ok) = self.map.end_located(self.out_lines.offset(loc.end_line.max(1) as u32, ec));
                // scaffolding at the start: CPython gives a block's implicit
                // code (a `with`'s exit) the block's position
                if !s_ok {
                    return None;
                }
                let _ = e_ok;
                let (l1, c1) = self.orig_lines.line_col(s);
                let (l2, c2) = self.orig_lines.line_col(e.max(s));
                Some(linetable::Loc { line: l1 as i32, end_line: l2 as i32, col: Some(c1), end_col: Some(c2) })
            }
            _ => {
                let (s, ok) = self.map.start_located(line_off(loc.line));
                if !ok {
                    return None;
                }
                let l1 = self.orig_lines.line_col(s).0 as i32;
                let l2 = self.orig_lines.line_col(self.map.start(line_off(loc.end_line))).0 as i32;
                Some(linetable::Loc { line: l1, end_line: l2.max(l1), col: None, end_col: None })
            }
        }
    }

    /// The original line of an instrumented line: where its first
    /// non-blank character comes from.
    pub fn line(&self, out_text: &str, line: i32) -> i32 {
        let start = self.out_lines.line_start(line.max(1) as u32) as usize;
        let rest = &out_text[start.min(out_text.len())..];
        let skip = rest.len() - rest.trim_start_matches([' ', '\t', '\x0c']).len();
        self.orig_lines.line_col(self.map.start((start + skip) as u32)).0 as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Ev, EVENTS};
    use std::collections::HashMap;

    fn plan(events: &[Ev]) -> Plan {
        let mut enabled = vec![false; EVENTS.len()];
        for e in events {
            enabled[*e as usize] = true;
        }
        Plan { enabled, predicated: vec![false; EVENTS.len()], decisions: HashMap::new(), collect: false, version: (3, 11) }
    }

    fn rw(src: &str, events: &[Ev]) -> String {
        parse(src.to_string(), false).ok().unwrap().rewrite(&plan(events)).text
    }

    #[test]
    fn nothing_enabled_changes_nothing() {
        let src = "x = a + b\nif x:\n    y = [1, 2]\n";
        assert_eq!(rw(src, &[]), src);
    }

    #[test]
    fn binop_and_names() {
        assert_eq!(rw("x = a + b\n", &[Ev::after_binop]), "x = _sg_e(0, a + b)\n");
        assert_eq!(rw("x = (a) + b\n", &[Ev::before_binop]), "x = _sg_c(0)((a) ,  b)\n");
        assert_eq!(
            rw("x = a + b\n", &[Ev::load_name, Ev::after_binop]),
            "x = _sg_e(2, _sg_e(0, a) + _sg_e(1, b))\n"
        );
    }

    #[test]
    fn statements_keep_their_lines_where_possible() {
        assert_eq!(rw("x = 1\ny = 2\n", &[Ev::after_stmt]), "x = 1; _sg_n(0)\ny = 2; _sg_n(1)\n");
        assert_eq!(rw("x = 1\n", &[Ev::before_stmt]), "if not _sg_s(0): x = 1\n");
    }

    #[test]
    fn compound_statements_move_into_a_block() {
        let out = rw("if a:\n    b = 1\n", &[Ev::before_stmt]);
        assert_eq!(out, "if not _sg_s(1):\n if a:\n     if not _sg_s(0): b = 1\n");
    }

    #[test]
    fn one_line_suites_become_blocks() {
        let out = rw("for x in y: a; b\n", &[Ev::after_for_loop_iter]);
        assert_eq!(out, "for x in y:\n with _sg_w(0):\n  a\n  b\n");
    }

    #[test]
    fn one_line_case_bodies_nest_under_their_case() {
        // the case line, not the match line, is the header of a case body
        let out = rw("match 1:\n    case 1: pass\n", &[Ev::before_stmt]);
        assert_eq!(out, "if not _sg_s(1):\n match 1:\n     case 1:\n      if not _sg_s(0): pass\n");
    }

    #[test]
    fn and_or_operands_remember_their_truth_only_where_a_test_would_jump() {
        // the test jumps on `a`: wrapped, the operator's value is tested again
        assert_eq!(rw("if a and b: pass\n", &[Ev::after_boolop]), "if _sg_e(0, _sg_p(a) and b): pass\n");
        assert_eq!(rw("if not (a or b): pass\n", &[Ev::after_unaryop]), "if _sg_e(0, not (_sg_p(a) or b)): pass\n");
        // nothing computes the value in between: CPython still jumps
        assert_eq!(rw("if a and b: pass\n", &[Ev::before_boolop]), "if ((a and b) if _sg_b(0) else _sg_o()): pass\n");
        // the value is kept, as plain CPython would keep it
        assert_eq!(rw("x = a and b\n", &[Ev::after_boolop]), "x = _sg_e(0, a and b)\n");
        assert_eq!(rw("if (y := a and b): pass\n", &[Ev::after_boolop]), "if (y := _sg_e(0, a and b)): pass\n");
    }

    #[test]
    fn slices_become_calls_only_when_wrapped() {
        assert_eq!(rw("x[1:2]\n", &[Ev::after_int]), "x[_sg_e(0, 1):_sg_e(1, 2)]\n");
        assert_eq!(rw("x[::2]\n", &[Ev::after_subscript_slice]), "x[_sg_e(0, _sg_slice(None, None, 2))]\n");
        assert_eq!(rw("x[a:b, c] = 1\n", &[Ev::before_subscript_store]), "_sg_x(0, x, (_sg_slice(a, b), c))[_sg_l()] = 1\n");
    }

    #[test]
    fn generators_and_tuples_get_parentheses_as_arguments() {
        assert_eq!(rw("f(x for x in y)\n", &[Ev::after_argument]), "f(_sg_e(0, (x for x in y)))\n");
        assert_eq!(rw("return_ = 1, 2\n", &[Ev::after_assign_rhs]), "return_ = _sg_e(0, (1, 2))\n");
        assert_eq!(rw("x = yield\n", &[Ev::after_assign_rhs]), "x = _sg_e(0, (yield))\n");
    }
}
