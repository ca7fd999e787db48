//! The walk over ruff's syntax tree that decides, node by node, which events
//! to instrument and records the edits that do it.
//!
//! Rules every edit keeps (see docs/architecture.md):
//! - user code stays where it is: no expression moves into a lambda or a new
//!   scope, nothing is evaluated twice or out of order, short-circuits stay;
//! - `match` patterns, annotations, type parameters, t-strings, `=` f-string
//!   fields, docstrings and `from __future__` imports are never touched;
//! - the emitted calls are builtins named `_sg_*`, looked up like any global.

use std::collections::HashMap;

use ruff_python_ast::token::{Token, TokenKind, Tokens};
use ruff_python_ast::{
    self as ast, CmpOp, ElifElseClause, Expr, ExprContext, InterpolatedStringElement, Number,
    Operator, Stmt, UnaryOp,
};
use ruff_text_size::Ranged;

use super::edits::{newline, text, Builder, Side};
use super::lines::LineIndex;
use super::nodes::{NodeKey, NodeTable};
use super::sites::{Form, KwVal, NodeId, Op, Site, SiteEvent};
use crate::events::{Ev, Kind, EVENTS};

/// Which events to instrument, and for events whose handlers have `when`
/// predicates, the verdict per node.
pub struct Plan {
    pub enabled: Vec<bool>,
    pub predicated: Vec<bool>,
    /// (event, node address) -> instrument?  Only for predicated events.
    pub decisions: HashMap<(u8, usize), bool>,
    /// Collect the (event, node) pairs that need a verdict instead of emitting.
    pub collect: bool,
    /// The CPython version the code is for.
    pub version: (u8, u8),
}

pub struct Candidate {
    pub ev: Ev,
    pub addr: usize,
    pub key: NodeKey,
}

/// A node an event can be about.
#[derive(Clone, Copy)]
enum N<'a> {
    Expr(&'a Expr),
    Stmt(&'a Stmt),
    /// An `elif` clause: CPython's nested If, which ends where the chain ends.
    Elif(&'a ElifElseClause, u32),
    Handler(&'a ast::ExceptHandlerExceptHandler),
    Module,
}

impl N<'_> {
    fn addr(&self) -> usize {
        match *self {
            N::Expr(e) => e as *const Expr as usize,
            N::Stmt(s) => s as *const Stmt as usize,
            N::Elif(c, _) => c as *const ElifElseClause as usize,
            N::Handler(h) => h as *const ast::ExceptHandlerExceptHandler as usize,
            N::Module => 1,
        }
    }
}

/// An event to fire around an expression, with its shape.
#[derive(Clone)]
struct W {
    ev: Ev,
    node: NodeId,
    kwargs: Vec<(&'static str, KwVal)>,
}

#[derive(Clone, Copy, Default)]
struct Cx {
    /// The expression is the callee of a call.
    call_func: bool,
    /// The expression is inside an attribute/subscript/call chain whose
    /// outermost node is this one.
    chain_top: Option<NodeId>,
    /// How the expression's value is used by a test.
    truth: Truth,
}

/// Where CPython only tests a value's truth (`if`, `while`, `assert`,
/// conditional-expression tests, comprehension `if`s, match guards, and
/// through `not`, `and`/`or` operands and conditional branches under them),
/// it compiles `and`/`or` into jumps that test each operand once. A value
/// wrapper in between makes that a value computation whose result is
/// tested again, so a falsy operand's `__bool__` would run twice: such
/// operands go through `_sg_p`, which remembers their truth.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Truth {
    /// The value is used as a value.
    #[default]
    Value,
    /// Only the truth is used, and the instrumented code still jumps on it.
    Jumps,
    /// Only the truth is used, but some wrapper above computes the value.
    Computed,
}

impl Truth {
    /// The truth context of a part whose value becomes this expression's
    /// value, given whether a value-computing wrapper sits in between.
    fn through(self, computed: bool) -> Truth {
        match self {
            Truth::Value => Truth::Value,
            _ if computed => Truth::Computed,
            t => t,
        }
    }
}

fn truth_cx(t: Truth) -> Cx {
    Cx { truth: t, ..Cx::default() }
}

/// Does one of these wrappers compute the value it wraps (`_sg_e`)?
fn computes(ws: &[(Kind, W)]) -> bool {
    ws.iter().any(|(k, _)| *k == Kind::After)
}

/// `computes` for events of the context, not yet given their kinds.
fn computes_value(outer: &[W]) -> bool {
    outer.iter().any(|w| w.ev.info().kind == Kind::After)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Module,
    Function,
    Class,
    For,
    While,
    Plain,
}

pub struct Walker<'a> {
    src: &'a str,
    tokens: &'a Tokens,
    pub lines: LineIndex,
    plan: &'a Plan,
    pub candidates: Vec<Candidate>,
    pub nodes: NodeTable,
    pub sites: Vec<Site>,
    pub b: Builder,
    /// Nodes CPython places differently than ruff: a generator expression
    /// that is a call's only argument spans the call's parentheses; on 3.11 a
    /// bare tuple in an f-string field spans its braces.
    genexp_span: HashMap<usize, (u32, u32)>,
    /// Any statement-level event that can add lines is on.
    stmt_events: bool,
}

fn r(x: &impl Ranged) -> (u32, u32) {
    let t = x.range();
    (t.start().to_u32(), t.end().to_u32())
}

impl<'a> Walker<'a> {
    pub fn new(src: &'a str, tokens: &'a Tokens, plan: &'a Plan) -> Walker<'a> {
        let on = |e: Ev| plan.enabled[e as usize];
        let stmt_events = [
            Ev::before_stmt,
            Ev::after_stmt,
            Ev::after_module_stmt,
            Ev::init_module,
            Ev::exit_module,
            Ev::before_for_loop_body,
            Ev::after_for_loop_iter,
            Ev::before_while_loop_body,
            Ev::after_while_loop_iter,
            Ev::before_function_body,
            Ev::after_function_execution,
        ]
        .into_iter()
        .any(on);
        Walker {
            src,
            tokens,
            lines: LineIndex::new(src),
            plan,
            candidates: Vec::new(),
            nodes: NodeTable::default(),
            sites: Vec::new(),
            b: Builder::default(),
            genexp_span: HashMap::new(),
            stmt_events,
        }
    }

    // ---------------------------------------------------------------- nodes

    fn pos(&self, start: u32, end: u32) -> Option<(u32, u32, u32, u32)> {
        let (l1, c1) = self.lines.line_col(start);
        let (l2, c2) = self.lines.line_col(end);
        Some((l1, c1, l2, c2))
    }

    fn key(&self, n: N) -> NodeKey {
        match n {
            N::Module => NodeKey { class: "Module", pos: None },
            N::Expr(e) => {
                let (mut s, mut t) = r(e);
                if let Some(&(a, b)) = self.genexp_span.get(&n.addr()) {
                    (s, t) = (a, b);
                }
                NodeKey { class: expr_class(e), pos: self.pos(s, t) }
            }
            N::Stmt(st) => {
                let (mut s, mut t) = r(st);
                if is_compound(st) {
                    t = self.block_end(t);
                }
                let decorated = match st {
                    Stmt::FunctionDef(f) => f.decorator_list.last().map(|d| r(d).1),
                    Stmt::ClassDef(c) => c.decorator_list.last().map(|d| r(d).1),
                    _ => None,
                };
                if let Some(after) = decorated {
                    // CPython starts a decorated definition at `def`/`async`/`class`
                    if let Some(tok) = self.tokens_from(after).iter().find(|t| {
                        matches!(t.kind(), TokenKind::Def | TokenKind::Async | TokenKind::Class)
                    }) {
                        s = tok.start().to_u32();
                    }
                }
                NodeKey { class: stmt_class(st), pos: self.pos(s, t) }
            }
            N::Elif(c, chain_end) => NodeKey { class: "If", pos: self.pos(r(c).0, self.block_end(chain_end)) },
            N::Handler(h) => {
                let (s, t) = r(h);
                NodeKey { class: "ExceptHandler", pos: self.pos(s, self.block_end(t)) }
            }
        }
    }

    /// CPython ends a block after a `;` that ends its last line.
    fn block_end(&self, end: u32) -> u32 {
        match self.tokens_from(end).first() {
            Some(t) if t.kind() == TokenKind::Semi => t.end().to_u32(),
            _ => end,
        }
    }

    fn node(&mut self, n: N) -> NodeId {
        let key = self.key(n);
        self.nodes.id(n.addr(), || key)
    }

    /// Should `ev` be instrumented on `n`?
    fn want(&mut self, ev: Ev, n: N) -> bool {
        let i = ev as usize;
        if !self.plan.enabled[i] {
            return false;
        }
        if self.plan.predicated[i] {
            if self.plan.collect {
                let key = self.key(n);
                self.candidates.push(Candidate { ev, addr: n.addr(), key });
                return true;
            }
            return self.plan.decisions.get(&(i as u8, n.addr())).copied().unwrap_or(false);
        }
        true
    }

    fn ev(&mut self, ev: Ev, n: N, kwargs: Vec<(&'static str, KwVal)>) -> Option<W> {
        if self.want(ev, n) {
            Some(W { ev, node: self.node(n), kwargs })
        } else {
            None
        }
    }

    fn site(&mut self, form: Form, events: Vec<W>) -> u32 {
        let mut site = Site::new(form);
        site.events = events
            .into_iter()
            .map(|w| SiteEvent { ev: w.ev, node: w.node, kwargs: w.kwargs })
            .collect();
        self.sites.push(site);
        self.sites.len() as u32 - 1
    }

    // --------------------------------------------------------------- tokens

    fn tokens_from(&self, offset: u32) -> &[Token] {
        let i = self.tokens.partition_point(|t| t.start().to_u32() < offset);
        &self.tokens[i..]
    }

    fn first_token(&self, from: u32, to: u32, pred: impl Fn(TokenKind) -> bool) -> Option<Token> {
        self.tokens_from(from)
            .iter()
            .take_while(|t| t.end().to_u32() <= to)
            .find(|t| pred(t.kind()))
            .copied()
    }

    /// The `:` that ends the header a body belongs to.
    fn colon_before(&self, offset: u32) -> Option<Token> {
        let i = self.tokens.partition_point(|t| t.start().to_u32() < offset);
        self.tokens[..i]
            .iter()
            .rev()
            .find(|t| {
                !matches!(
                    t.kind(),
                    TokenKind::Newline
                        | TokenKind::NonLogicalNewline
                        | TokenKind::Comment
                        | TokenKind::Indent
                        | TokenKind::Dedent
                )
            })
            .filter(|t| t.kind() == TokenKind::Colon)
            .copied()
    }

    fn line_of(&self, offset: u32) -> u32 {
        self.lines.line_col(offset).0
    }

    /// The whitespace before `offset` on its line, if only whitespace.
    fn indent_at(&self, offset: u32) -> Option<String> {
        let start = self.lines.line_start(self.line_of(offset));
        let prefix = &self.src[start as usize..offset as usize];
        prefix.chars().all(|c| c == ' ' || c == '\t' || c == '\x0c').then(|| prefix.to_string())
    }

    // ---------------------------------------------------------- expressions

    /// Emits `ws` (innermost first) around `e`. `raw` says `e` itself is
    /// still bare text that may need parentheses to be an argument.
    fn wrap(&mut self, e: &Expr, ws: Vec<(Kind, W)>, mut raw: bool) {
        let (start, end) = r(e);
        let mut i = 0;
        while i < ws.len() {
            let kind = ws[i].0;
            let mut j = i;
            while j < ws.len() && ws[j].0 == kind {
                j += 1;
            }
            let mut group: Vec<W> = ws[i..j].iter().map(|(_, w)| w.clone()).collect();
            match kind {
                Kind::After => {
                    let k = self.site(Form::Value, group);
                    let parens = raw && needs_parens_as_arg(e);
                    self.b.wrap(
                        start,
                        end,
                        vec![text(format!("_sg_e({k}, {}", if parens { "(" } else { "" }))],
                        vec![text(if parens { "))" } else { ")" })],
                    );
                }
                Kind::Before => {
                    // outer wrappers fire first
                    group.reverse();
                    let k = self.site(Form::Before, group);
                    let (o, c) = self.b.wrap(
                        start,
                        end,
                        vec![text("((")],
                        vec![text(format!(") if _sg_b({k}) else _sg_o())"))],
                    );
                    self.sites[k as usize].thunk_edits = Some((o, c));
                }
                Kind::Notify => {
                    group.reverse();
                    let k = self.site(Form::Notify, group);
                    self.b.wrap(start, end, vec![text(format!("(_sg_n({k}) or ("))], vec![text("))")]);
                }
                _ => unreachable!("not an expression wrapper"),
            }
            raw = false;
            i = j;
        }
    }

    fn kinded(ws: Vec<W>) -> Vec<(Kind, W)> {
        ws.into_iter().map(|w| (w.ev.info().kind, w)).collect()
    }

    fn opt(w: Option<W>) -> Vec<W> {
        w.into_iter().collect()
    }

    /// Visits `e`, emitting its own events and then `outer` (events of the
    /// context, innermost first) around it.
    fn expr(&mut self, e: &'a Expr, outer: Vec<W>, cx: Cx) {
        let mut own: Vec<(Kind, W)> = Vec::new();
        let mut raw = true;
        match e {
            Expr::Name(n) => {
                if n.ctx == ExprContext::Load {
                    own.extend(Self::kinded(Self::opt(self.ev(Ev::load_name, N::Expr(e), vec![]))));
                }
            }
            Expr::NumberLiteral(nl) => {
                let ev = match nl.value {
                    Number::Int(_) => Ev::after_int,
                    Number::Float(_) => Ev::after_float,
                    Number::Complex { .. } => Ev::after_complex,
                };
                own.extend(Self::kinded(Self::opt(self.ev(ev, N::Expr(e), vec![]))));
            }
            Expr::StringLiteral(_) => own.extend(Self::kinded(Self::opt(self.ev(Ev::after_string, N::Expr(e), vec![])))),
            Expr::BytesLiteral(_) => own.extend(Self::kinded(Self::opt(self.ev(Ev::after_bytes, N::Expr(e), vec![])))),
            Expr::BooleanLiteral(_) => own.extend(Self::kinded(Self::opt(self.ev(Ev::after_bool, N::Expr(e), vec![])))),
            Expr::NoneLiteral(_) => own.extend(Self::kinded(Self::opt(self.ev(Ev::after_none, N::Expr(e), vec![])))),
            Expr::EllipsisLiteral(_) => own.extend(Self::kinded(Self::opt(self.ev(Ev::ellipsis, N::Expr(e), vec![])))),
            Expr::FString(f) => {
                for part in f.value.iter() {
                    if let ast::FStringPart::FString(fs) = part {
                        self.interpolations(&fs.elements);
                    }
                }
                own.extend(self.before_after(e, Ev::before_fstring, Ev::after_fstring, vec![]));
            }
            Expr::TString(_) => {
                // an Interpolation keeps its expression's source text: leave it all alone
            }
            Expr::BinOp(bo) => {
                let lw = self.operand_events(&bo.left, Ev::before_left_binop_arg, Ev::after_left_binop_arg, vec![]);
                self.expr(&bo.left, lw, Cx::default());
                let rw = self.operand_events(&bo.right, Ev::before_right_binop_arg, Ev::after_right_binop_arg, vec![]);
                self.expr(&bo.right, rw, Cx::default());
                if let Some(w) = self.ev(Ev::before_binop, N::Expr(e), vec![]) {
                    let (s, t) = r(e);
                    let op_tok = self.first_token(r(&*bo.left).1, r(&*bo.right).0, is_binop_token);
                    if let Some(op_tok) = op_tok {
                        let k = self.site(Form::Operator, vec![w]);
                        self.sites[k as usize].op = Some(Op::Bin(binop_code(bo.op)));
                        let rank = self.b.next_rank();
                        self.b.insert(s, Side::Open, rank, vec![text(format!("_sg_c({k})("))]);
                        let (os, oe) = r(&op_tok);
                        self.b.replace_ranked(os, oe, rank, vec![text(", ")]);
                        self.b.insert(t, Side::Close, rank, vec![text(")")]);
                        raw = false;
                    }
                }
                own.extend(Self::kinded(Self::opt(self.ev(Ev::after_binop, N::Expr(e), vec![]))));
            }
            Expr::UnaryOp(u) => {
                let before = self.ev(Ev::before_unaryop, N::Expr(e), vec![]);
                let after = self.ev(Ev::after_unaryop, N::Expr(e), vec![]);
                let ow = self.operand_events(&u.operand, Ev::before_unaryop_arg, Ev::after_unaryop_arg, vec![]);
                let truth = match u.op {
                    // `not x` in a test jumps on x; computed, it tests x's value
                    UnaryOp::Not => cx.truth.through(
                        before.is_some() || after.is_some() || computes_value(&outer),
                    ),
                    _ => Truth::Value,
                };
                self.expr(&u.operand, ow, truth_cx(truth));
                if let Some(w) = before {
                    let (s, t) = r(e);
                    if let Some(op_tok) = self.tokens_from(s).first().copied() {
                        let k = self.site(Form::Operator, vec![w]);
                        self.sites[k as usize].op = Some(Op::Unary(unary_code(u.op)));
                        let rank = self.b.next_rank();
                        let (os, oe) = r(&op_tok);
                        self.b.replace_ranked(os, oe, rank, vec![text(format!("_sg_c({k})("))]);
                        self.b.insert(t, Side::Close, rank, vec![text(")")]);
                        raw = false;
                    }
                }
                own.extend(Self::kinded(Self::opt(after)));
            }
            Expr::BoolOp(bo) => {
                let mine = self.before_after(e, Ev::before_boolop, Ev::after_boolop, vec![]);
                let truth = cx.truth.through(computes(&mine) || computes_value(&outer));
                let n = bo.values.len();
                for (i, v) in bo.values.iter().enumerate() {
                    let kw = vec![("is_last", KwVal::Bool(i + 1 == n))];
                    let ws = self.operand_events(v, Ev::before_boolop_arg, Ev::after_boolop_arg, kw);
                    self.expr(v, ws, truth_cx(truth));
                    if truth == Truth::Computed && i + 1 < n {
                        let (vs, ve) = r(v);
                        let p = needs_parens_as_arg(v);
                        self.b.wrap(vs, ve, vec![text(if p { "_sg_p((" } else { "_sg_p(" })], vec![text(if p { "))" } else { ")" })]);
                    }
                }
                own.extend(mine);
            }
            Expr::Compare(c) => {
                let lw = Self::opt(self.ev(Ev::left_compare_arg, N::Expr(&c.left), vec![]));
                self.expr(&c.left, lw, Cx::default());
                for comp in c.comparators.iter() {
                    let cw = Self::opt(self.ev(Ev::compare_arg, N::Expr(comp), vec![]));
                    self.expr(comp, cw, Cx::default());
                }
                if let Some(w) = self.ev(Ev::before_compare, N::Expr(e), vec![]) {
                    let codes: Vec<u8> = c.ops.iter().map(|o| cmp_code(*o)).collect();
                    if c.ops.len() == 1 {
                        let (s, t) = r(e);
                        let from = r(&*c.left).1;
                        let to = r(&c.comparators[0]).0;
                        let toks: Vec<Token> = self
                            .tokens_from(from)
                            .iter()
                            .take_while(|t| t.end().to_u32() <= to)
                            .filter(|t| is_cmp_token(t.kind()))
                            .copied()
                            .collect();
                        if let (Some(first), Some(last)) = (toks.first(), toks.last()) {
                            let k = self.site(Form::Operator, vec![w]);
                            self.sites[k as usize].op = Some(Op::Compare(codes));
                            let rank = self.b.next_rank();
                            self.b.insert(s, Side::Open, rank, vec![text(format!("_sg_c({k})("))]);
                            let (os, oe) = (first.start().to_u32(), last.end().to_u32());
                            self.b.replace_ranked(os, oe, rank, vec![text(", ")]);
                            self.b.insert(t, Side::Close, rank, vec![text(")")]);
                            raw = false;
                        }
                    } else {
                        // a chain short-circuits: observe only
                        let k = self.site(Form::Notify, vec![w]);
                        self.sites[k as usize].op = Some(Op::Compare(codes));
                        let (s, t) = r(e);
                        self.b.wrap(s, t, vec![text(format!("(_sg_n({k}) or ("))], vec![text("))")]);
                        raw = false;
                    }
                }
                own.extend(Self::kinded(Self::opt(self.ev(Ev::after_compare, N::Expr(e), vec![]))));
            }
            Expr::Call(c) => {
                let is_top = cx.chain_top.is_none();
                let top = match cx.chain_top {
                    Some(t) => t,
                    None => self.node(N::Expr(e)),
                };
                let call_id = KwVal::Node(self.node(N::Expr(e)));
                let fw = Self::opt(self.ev(Ev::before_call, N::Expr(e), vec![("call_node_id", call_id.clone())]));
                self.expr(&c.func, fw, Cx { call_func: true, chain_top: Some(top), truth: Truth::Value });
                let args = &c.arguments;
                let sole_genexp = args.args.len() == 1
                    && args.keywords.is_empty()
                    && matches!(&args.args[0], Expr::Generator(g) if !g.parenthesized);
                if sole_genexp {
                    let g = &args.args[0];
                    self.genexp_span.insert(g as *const Expr as usize, r(args));
                }
                let nargs = args.args.len();
                let nkw = args.keywords.len();
                for (i, a) in args.args.iter().enumerate() {
                    let (value, starred) = match a {
                        Expr::Starred(s) => (&*s.value, true),
                        other => (other, false),
                    };
                    let kw = vec![
                        ("is_starred", KwVal::Bool(starred)),
                        ("is_kwstarred", KwVal::Bool(false)),
                        ("key", KwVal::None),
                        ("is_last", KwVal::Bool(nkw == 0 && i + 1 == nargs)),
                    ];
                    let ws = self.operand_events(value, Ev::before_argument, Ev::after_argument, kw);
                    self.expr(value, ws, Cx::default());
                }
                for (i, k) in args.keywords.iter().enumerate() {
                    let kw = vec![
                        ("is_starred", KwVal::Bool(false)),
                        ("is_kwstarred", KwVal::Bool(k.arg.is_none())),
                        ("key", k.arg.as_ref().map_or(KwVal::None, |a| KwVal::Str(a.id.to_string()))),
                        ("is_last", KwVal::Bool(i + 1 == nkw)),
                    ];
                    let ws = self.operand_events(&k.value, Ev::before_argument, Ev::after_argument, kw);
                    self.expr(&k.value, ws, Cx::default());
                }
                own.extend(Self::kinded(Self::opt(self.ev(Ev::after_call, N::Expr(e), vec![("call_node_id", call_id)]))));
                if is_top {
                    own.extend(self.complex_symbol(e, true));
                }
            }
            Expr::Attribute(a) => {
                let is_top = cx.chain_top.is_none();
                let top = match cx.chain_top {
                    Some(t) => t,
                    None => self.node(N::Expr(e)),
                };
                let before = match a.ctx {
                    ExprContext::Store => Ev::before_attribute_store,
                    ExprContext::Del => Ev::before_attribute_del,
                    _ => Ev::before_attribute_load,
                };
                let mut kw = vec![
                    ("attr_or_subscript", KwVal::Str(a.attr.id.to_string())),
                    ("call_context", KwVal::Bool(cx.call_func)),
                    ("top_level_node_id", KwVal::Node(top)),
                ];
                if let Expr::Name(n) = &*a.value {
                    kw.push(("obj_name", KwVal::Str(n.id.to_string())));
                }
                let vw = Self::opt(self.ev(before, N::Expr(e), kw));
                self.expr(&a.value, vw, Cx { call_func: false, chain_top: Some(top), truth: Truth::Value });
                if a.ctx == ExprContext::Load {
                    own.extend(Self::kinded(Self::opt(self.ev(
                        Ev::after_attribute_load,
                        N::Expr(e),
                        vec![("call_context", KwVal::Bool(cx.call_func))],
                    ))));
                    if is_top {
                        own.extend(self.complex_symbol(e, false));
                    }
                }
            }
            Expr::Subscript(s) => {
                let is_top = cx.chain_top.is_none();
                let top = match cx.chain_top {
                    Some(t) => t,
                    None => self.node(N::Expr(e)),
                };
                let before = match s.ctx {
                    ExprContext::Store => Ev::before_subscript_store,
                    ExprContext::Del => Ev::before_subscript_del,
                    _ => Ev::before_subscript_load,
                };
                let mut kw = vec![
                    ("call_context", KwVal::Bool(cx.call_func)),
                    ("top_level_node_id", KwVal::Node(top)),
                ];
                if let Expr::Name(n) = &*s.value {
                    kw.push(("obj_name", KwVal::Str(n.id.to_string())));
                }
                kw.push((
                    "subscript_name",
                    match &*s.slice {
                        Expr::Name(n) => KwVal::Str(n.id.to_string()),
                        _ => KwVal::None,
                    },
                ));
                let xform = self.ev(before, N::Expr(e), kw);
                self.expr(&s.value, vec![], Cx { call_func: false, chain_top: Some(top), truth: Truth::Value });
                let mut sw = Vec::new();
                sw.extend(self.ev(Ev::before_subscript_slice, N::Expr(e), vec![]));
                sw.extend(self.ev(Ev::after_subscript_slice, N::Expr(e), vec![]));
                let convert = xform.is_some() || !sw.is_empty();
                self.subscript_key(&s.slice, sw, convert);
                if let Some(w) = xform {
                    let (st, en) = r(e);
                    let value_end = r(&*s.value).1;
                    let lsqb = self.first_token(value_end, en, |k| k == TokenKind::Lsqb);
                    let rsqb = self.tokens_from(en.saturating_sub(1)).first().copied().filter(|t| t.kind() == TokenKind::Rsqb);
                    if let (Some(lsqb), Some(rsqb)) = (lsqb, rsqb) {
                        let k = self.site(Form::Subscript, vec![w]);
                        let rank = self.b.next_rank();
                        self.b.insert(st, Side::Open, rank, vec![text(format!("_sg_x({k}, "))]);
                        let (ls, le) = r(&lsqb);
                        self.b.replace_ranked(ls, le, rank, vec![text(", ")]);
                        let (rs, re) = r(&rsqb);
                        self.b.replace_ranked(rs, re, rank, vec![text(")[_sg_l()]")]);
                    }
                }
                if s.ctx == ExprContext::Load {
                    own.extend(Self::kinded(Self::opt(self.ev(
                        Ev::after_subscript_load,
                        N::Expr(e),
                        vec![("call_context", KwVal::Bool(cx.call_func))],
                    ))));
                    if is_top {
                        own.extend(self.complex_symbol(e, false));
                    }
                }
            }
            Expr::List(l) => {
                let load = l.ctx == ExprContext::Load;
                self.elements(e, &l.elts, load.then_some(Ev::list_elt));
                if load {
                    own.extend(self.before_after(e, Ev::before_list_literal, Ev::after_list_literal, vec![]));
                }
            }
            Expr::Tuple(t) => {
                let load = t.ctx == ExprContext::Load;
                self.elements(e, &t.elts, load.then_some(Ev::tuple_elt));
                if load {
                    own.extend(self.before_after(e, Ev::before_tuple_literal, Ev::after_tuple_literal, vec![]));
                }
            }
            Expr::Set(s) => {
                self.elements(e, &s.elts, Some(Ev::set_elt));
                own.extend(self.before_after(e, Ev::before_set_literal, Ev::after_set_literal, vec![]));
            }
            Expr::Dict(d) => {
                let dict_id = KwVal::Node(self.node(N::Expr(e)));
                for item in d.items.iter() {
                    match &item.key {
                        Some(key) => {
                            let vid = KwVal::Node(self.node(N::Expr(&item.value)));
                            let kw = Self::opt(self.ev(
                                Ev::dict_key,
                                N::Expr(key),
                                vec![("value_node_id", vid), ("dict_node_id", dict_id.clone())],
                            ));
                            self.expr(key, kw, Cx::default());
                            let kid = KwVal::Node(self.node(N::Expr(key)));
                            let vw = Self::opt(self.ev(
                                Ev::dict_value,
                                N::Expr(&item.value),
                                vec![("key_node_id", kid), ("dict_node_id", dict_id.clone())],
                            ));
                            self.expr(&item.value, vw, Cx::default());
                        }
                        None => {
                            let vw = Self::opt(self.ev(
                                Ev::dict_value,
                                N::Expr(&item.value),
                                vec![("key_node_id", KwVal::None), ("dict_node_id", dict_id.clone())],
                            ));
                            self.expr(&item.value, vw, Cx::default());
                        }
                    }
                }
                own.extend(self.before_after(e, Ev::before_dict_literal, Ev::after_dict_literal, vec![]));
            }
            Expr::ListComp(c) => {
                self.generators(&c.generators);
                let w = Self::opt(self.ev(Ev::after_comprehension_elt, N::Expr(&c.elt), vec![]));
                self.expr(&c.elt, w, Cx::default());
            }
            Expr::SetComp(c) => {
                self.generators(&c.generators);
                let w = Self::opt(self.ev(Ev::after_comprehension_elt, N::Expr(&c.elt), vec![]));
                self.expr(&c.elt, w, Cx::default());
            }
            Expr::Generator(c) => {
                self.generators(&c.generators);
                let w = Self::opt(self.ev(Ev::after_comprehension_elt, N::Expr(&c.elt), vec![]));
                self.expr(&c.elt, w, Cx::default());
            }
            Expr::DictComp(c) => {
                self.generators(&c.generators);
                if let Some(key) = &c.key {
                    let w = Self::opt(self.ev(Ev::after_dict_comprehension_key, N::Expr(key), vec![]));
                    self.expr(key, w, Cx::default());
                }
                let w = Self::opt(self.ev(Ev::after_dict_comprehension_value, N::Expr(&c.value), vec![]));
                self.expr(&c.value, w, Cx::default());
            }
            Expr::Lambda(l) => {
                if let Some(p) = &l.parameters {
                    self.defaults(p);
                }
                let mut bw = Vec::new();
                bw.extend(self.ev(Ev::before_lambda_body, N::Expr(e), vec![]));
                bw.extend(self.ev(Ev::after_lambda_body, N::Expr(e), vec![]));
                self.expr(&l.body, bw, Cx::default());
                own.extend(self.before_after(e, Ev::before_lambda, Ev::after_lambda, vec![]));
            }
            Expr::If(i) => {
                self.expr(&i.test, vec![], truth_cx(Truth::Jumps));
                let branches = truth_cx(cx.truth.through(computes_value(&outer)));
                self.expr(&i.body, vec![], branches);
                self.expr(&i.orelse, vec![], branches);
            }
            Expr::Named(n) => self.expr(&n.value, vec![], Cx::default()),
            Expr::Await(a) => self.expr(&a.value, vec![], Cx::default()),
            Expr::Yield(y) => {
                if let Some(v) = &y.value {
                    self.expr(v, vec![], Cx::default());
                }
            }
            Expr::YieldFrom(y) => self.expr(&y.value, vec![], Cx::default()),
            Expr::Starred(s) => self.expr(&s.value, vec![], Cx::default()),
            Expr::Slice(s) => {
                // a bare slice outside a subscript key cannot happen; visit parts
                for part in [&s.lower, &s.upper, &s.step].into_iter().flatten() {
                    self.expr(part, vec![], Cx::default());
                }
            }
            Expr::IpyEscapeCommand(_) => {}
        }
        let mut all = own;
        all.extend(Self::kinded(outer));
        if !all.is_empty() {
            self.wrap(e, all, raw);
        }
    }

    fn before_after(&mut self, e: &Expr, before: Ev, after: Ev, kw: Vec<(&'static str, KwVal)>) -> Vec<(Kind, W)> {
        let mut v = Vec::new();
        v.extend(self.ev(before, N::Expr(e), kw.clone()));
        v.extend(self.ev(after, N::Expr(e), kw));
        Self::kinded(v)
    }

    fn operand_events(&mut self, e: &Expr, before: Ev, after: Ev, kw: Vec<(&'static str, KwVal)>) -> Vec<W> {
        let mut v = Vec::new();
        v.extend(self.ev(before, N::Expr(e), kw.clone()));
        v.extend(self.ev(after, N::Expr(e), kw));
        v
    }

    fn complex_symbol(&mut self, e: &Expr, call: bool) -> Vec<(Kind, W)> {
        let kw = vec![("call_context", KwVal::Bool(call))];
        self.before_after(e, Ev::before_load_complex_symbol, Ev::after_load_complex_symbol, kw)
    }

    fn elements(&mut self, container: &Expr, elts: &'a [Expr], ev: Option<Ev>) {
        let cid = ev.map(|_| KwVal::Node(self.node(N::Expr(container))));
        let mut saw_starred = false;
        for (i, elt) in elts.iter().enumerate() {
            if let Expr::Starred(s) = elt {
                saw_starred = true;
                self.expr(&s.value, vec![], Cx::default());
                continue;
            }
            let ws = match (ev, &cid) {
                (Some(ev), Some(cid)) => {
                    let index = if saw_starred { KwVal::None } else { KwVal::Int(i as i64) };
                    Self::opt(self.ev(ev, N::Expr(elt), vec![("index", index), ("container_node_id", cid.clone())]))
                }
                _ => vec![],
            };
            self.expr(elt, ws, Cx::default());
        }
    }

    fn generators(&mut self, gens: &'a [ast::Comprehension]) {
        for g in gens {
            self.expr(&g.iter, vec![], Cx::default());
            self.expr(&g.target, vec![], Cx::default());
            for cond in &g.ifs {
                let w = Self::opt(self.ev(Ev::after_comprehension_if, N::Expr(cond), vec![]));
                self.expr(cond, w, truth_cx(Truth::Jumps));
            }
        }
    }

    fn interpolations(&mut self, elements: &'a ast::InterpolatedStringElements) {
        for el in elements.iter() {
            if let InterpolatedStringElement::Interpolation(i) = el {
                if i.debug_text.is_some() {
                    // `{x=}` prints its own source text: leave it alone
                    continue;
                }
                if let (true, Expr::Tuple(t)) = (self.plan.version < (3, 12), &*i.expression) {
                    if !t.parenthesized {
                        // 3.11 parses the field as `(expr)` put where `{`..terminator are
                        let end = r(t).1;
                        let after = self.src[end as usize..].len() - self.src[end as usize..].trim_start().len();
                        self.genexp_span.insert(&*i.expression as *const Expr as usize, (r(i).0, end + after as u32 + 1));
                    }
                }
                self.expr(&i.expression, vec![], Cx::default());
                if let Some(spec) = &i.format_spec {
                    self.interpolations(&spec.elements);
                }
            }
        }
    }

    fn defaults(&mut self, p: &'a ast::Parameters) {
        for pw in p.posonlyargs.iter().chain(p.args.iter()).chain(p.kwonlyargs.iter()) {
            if let Some(d) = &pw.default {
                self.expr(d, vec![], Cx::default());
            }
        }
    }

    /// The key of a subscript. When `convert`, it is turned into an ordinary
    /// expression (`a:b` becomes `_sg_slice(a, b)`, a bare tuple gets
    /// parentheses) so that it can be wrapped or passed along.
    fn subscript_key(&mut self, key: &'a Expr, ws: Vec<W>, convert: bool) {
        match key {
            Expr::Slice(sl) => {
                for part in [&sl.lower, &sl.upper, &sl.step].into_iter().flatten() {
                    self.expr(part, vec![], Cx::default());
                }
                if convert {
                    self.convert_slice(sl);
                    if !ws.is_empty() {
                        self.wrap(key, Self::kinded(ws), false);
                    }
                }
            }
            Expr::Tuple(t) => {
                for elt in &t.elts {
                    self.subscript_key(elt, vec![], convert);
                }
                if convert {
                    let (s, en) = r(key);
                    if !t.parenthesized {
                        let single_no_comma = t.elts.len() == 1 && !self.src[..en as usize].trim_end().ends_with(',');
                        self.b.wrap(s, en, vec![text("(")], vec![text(if single_no_comma { ",)" } else { ")" })]);
                    }
                    if !ws.is_empty() {
                        self.wrap(key, Self::kinded(ws), false);
                    }
                }
            }
            _ => self.expr(key, ws, Cx::default()),
        }
    }

    fn convert_slice(&mut self, sl: &ast::ExprSlice) {
        let (s, e) = r(sl);
        let rank = self.b.next_rank();
        let none = |present: bool| if present { "" } else { "None" };
        self.b.insert(s, Side::Open, rank, vec![text(format!("_sg_slice({}", none(sl.lower.is_some())))]);
        let after_lower = sl.lower.as_ref().map_or(s, |x| r(&**x).1);
        let colon1 = self.first_token(after_lower, e, |k| k == TokenKind::Colon);
        if let Some(c1) = colon1 {
            let (cs, ce) = r(&c1);
            self.b.replace_ranked(cs, ce, rank, vec![text(format!(", {}", none(sl.upper.is_some())))]);
            let after_upper = sl.upper.as_ref().map_or(ce, |x| r(&**x).1);
            if let Some(c2) = self.first_token(after_upper, e, |k| k == TokenKind::Colon) {
                let (cs, ce) = r(&c2);
                self.b.replace_ranked(cs, ce, rank, vec![text(format!(", {}", none(sl.step.is_some())))]);
            }
        }
        self.b.insert(e, Side::Close, rank, vec![text(")")]);
    }

    /// Visits a store/del target.
    fn target(&mut self, t: &'a Expr) {
        self.expr(t, vec![], Cx::default());
    }

    // ----------------------------------------------------------- statements

    pub fn module(&mut self, body: &'a [Stmt]) {
        self.body(body, BodyKind::Module, None, None);
    }

    /// Visits an expression-mode source (`eval`).
    pub fn expression(&mut self, e: &'a Expr) {
        self.expr(e, vec![], Cx::default());
    }

    /// `owner`: the node of the function or loop whose body this is.
    fn body(&mut self, body: &'a [Stmt], kind: BodyKind, header_indent: Option<&str>, owner: Option<N<'a>>) {
        if body.is_empty() {
            return;
        }
        let mut first = 0;
        if matches!(kind, BodyKind::Module | BodyKind::Function | BodyKind::Class) && is_docstring(&body[0]) {
            first = 1;
        }
        if kind == BodyKind::Module {
            while first < body.len() && is_future_import(&body[first]) {
                first += 1;
            }
        }

        // Where statements of this body start. A suite on its header's line
        // (`if x: a; b`) becomes a block when statement-level edits are on.
        let s0 = r(&body[0]).0;
        let mut indent = self.indent_at(s0);
        if indent.is_none() {
            if let (true, Some(h)) = (self.stmt_events, header_indent) {
                if let Some(colon) = self.colon_before(s0) {
                    let deeper = format!("{h} ");
                    let colon_end = colon.end().to_u32();
                    if colon_end < s0 {
                        self.b.replace(colon_end, s0, vec![]);
                    }
                    // before anything else that opens at the first statement
                    self.b.insert(s0, Side::Open, u32::MAX, vec![newline(&deeper)]);
                    indent = Some(deeper);
                }
            }
        }
        let indent = indent.unwrap_or_default();

        // one statement per line
        if self.stmt_events {
            for pair in body.windows(2) {
                let (a_end, b_start) = (r(&pair[0]).1, r(&pair[1]).0);
                if self.line_of(a_end) == self.line_of(b_start) {
                    self.b.replace(a_end, b_start, vec![newline(&indent)]);
                }
            }
        }

        let mut pending_after = None;
        let mut first_before = None;
        for (i, s) in body.iter().enumerate() {
            if i < first {
                continue;
            }
            let (before, after) = self.stmt(s, &indent, kind == BodyKind::Module);
            if i == first {
                first_before = before;
            }
            if let (Some(b), Some(a)) = (before, pending_after) {
                self.merge_into(b, a);
            }
            pending_after = after;
        }

        if first >= body.len() {
            if kind == BodyKind::Module {
                self.module_events(None, None, &indent, None);
            }
            return;
        }
        let (start, end) = (r(&body[first]).0, r(&body[body.len() - 1]).1);
        match kind {
            BodyKind::Module => self.module_events(Some(start), Some(end), &indent, first_before),
            BodyKind::Function => {
                let n = owner.expect("function body has an owner");
                self.body_events(start, end, &indent, n, Ev::before_function_body, Ev::after_function_execution);
            }
            BodyKind::For => {
                let n = owner.expect("loop body has an owner");
                self.body_events(start, end, &indent, n, Ev::before_for_loop_body, Ev::after_for_loop_iter);
            }
            BodyKind::While => {
                let n = owner.expect("loop body has an owner");
                self.body_events(start, end, &indent, n, Ev::before_while_loop_body, Ev::after_while_loop_iter);
            }
            BodyKind::Class => {
                // CPython 3.13+ stores the class's first line in the class body
                // itself; lines added above the class would shift it
                // (unless the class declares the name global or nonlocal: then
                // CPython stores nothing)
                let declared = body.iter().any(|s| match s {
                    Stmt::Global(g) => g.names.iter().any(|n| n.id.as_str() == "__firstlineno__"),
                    Stmt::Nonlocal(g) => g.names.iter().any(|n| n.id.as_str() == "__firstlineno__"),
                    _ => false,
                });
                if let (true, Some(N::Stmt(class))) = (self.stmt_events && !declared && self.plan.version >= (3, 13), owner) {
                    let line = self.line_of(r(class).0);
                    self.b.open_quiet(start, vec![text(format!("__firstlineno__ = {line}")), newline(&indent)]);
                }
            }
            BodyKind::Plain => {}
        }
    }

    fn module_events(&mut self, start: Option<u32>, end: Option<u32>, indent: &str, first_before: Option<u32>) {
        let src_end = self.src.len() as u32;
        if let Some(w) = self.ev(Ev::init_module, N::Module, vec![]) {
            if let Some(b) = first_before {
                // fires in the first statement's before_stmt call
                self.sites[b as usize].events.insert(0, SiteEvent { ev: w.ev, node: w.node, kwargs: w.kwargs });
                return self.exit_module(end, indent);
            }
            let k = self.site(Form::Notify, vec![w]);
            match start {
                Some(s) => {
                    self.b.open_quiet(s, vec![text(format!("_sg_n({k})")), newline(indent)]);
                }
                None => {
                    self.b.close_quiet(src_end, vec![newline(""), text(format!("_sg_n({k})")), newline("")]);
                }
            }
        }
        self.exit_module(end, indent);
    }

    fn exit_module(&mut self, end: Option<u32>, indent: &str) {
        if let Some(w) = self.ev(Ev::exit_module, N::Module, vec![]) {
            let k = self.site(Form::Notify, vec![w]);
            let at = end.unwrap_or(self.src.len() as u32);
            self.b.close_quiet(at, vec![newline(indent), text(format!("_sg_n({k})"))]);
        }
    }

    /// Start-of-body notification, and an end-of-body one through a `with`
    /// block: like `finally` it runs however the body ends, and unlike
    /// `finally` it leaves the frame's last instruction (f_lineno after an
    /// exception) where the exception was raised.
    fn body_events(&mut self, start: u32, end: u32, indent: &str, n: N<'a>, before: Ev, after: Ev) {
        if let Some(w) = self.ev(after, n, vec![]) {
            let k = self.site(Form::Notify, vec![w]);
            let rank = self.b.next_rank();
            self.b.region(start, end, rank);
            self.b.insert_quiet(start, Side::Open, rank, vec![text(format!("with _sg_w({k}):")), newline(indent), text(" ")]);
        }
        if let Some(w) = self.ev(before, n, vec![]) {
            let k = self.site(Form::Notify, vec![w]);
            self.b.open_quiet(start, vec![text(format!("_sg_n({k})")), newline(indent)]);
        }
    }

    /// Visits a statement; returns its before_stmt site and, if its after
    /// events got a call of their own, that site and the call's edit.
    fn stmt(&mut self, s: &'a Stmt, indent: &str, module_level: bool) -> (Option<u32>, Option<(u32, usize)>) {
        let (start, end) = r(s);
        let compound = is_compound(s);
        let mut value_stmt_after: Option<(u32, u32, Vec<W>)> = None;

        match s {
            Stmt::Expr(x) => {
                let w = Self::opt(self.ev(Ev::after_expr_stmt, N::Stmt(s), vec![]));
                self.expr(&x.value, w, Cx::default());
                if module_level {
                    let mut afters = Vec::new();
                    afters.extend(self.ev(Ev::after_stmt, N::Stmt(s), vec![]));
                    afters.extend(self.ev(Ev::after_module_stmt, N::Stmt(s), vec![]));
                    if !afters.is_empty() {
                        let (vs, ve) = r(&*x.value);
                        value_stmt_after = Some((vs, ve, afters));
                    }
                }
            }
            Stmt::Assign(a) => {
                for t in &a.targets {
                    self.target(t);
                }
                let ws = self.operand_events(&a.value, Ev::before_assign_rhs, Ev::after_assign_rhs, vec![]);
                self.expr(&a.value, ws, Cx::default());
            }
            Stmt::AugAssign(a) => {
                self.target(&a.target);
                let ws = self.operand_events(&a.value, Ev::before_augassign_rhs, Ev::after_augassign_rhs, vec![]);
                self.expr(&a.value, ws, Cx::default());
            }
            Stmt::AnnAssign(a) => {
                self.target(&a.target);
                if let Some(v) = &a.value {
                    let ws = self.operand_events(v, Ev::before_assign_rhs, Ev::after_assign_rhs, vec![]);
                    self.expr(v, ws, Cx::default());
                }
            }
            Stmt::Return(rt) => {
                if let Some(v) = &rt.value {
                    let ws = self.operand_events(v, Ev::before_return, Ev::after_return, vec![]);
                    self.expr(v, ws, Cx::default());
                }
            }
            Stmt::Delete(d) => {
                for t in &d.targets {
                    self.target(t);
                }
            }
            Stmt::Raise(rs) => {
                if let Some(x) = &rs.exc {
                    self.expr(x, vec![], Cx::default());
                }
                if let Some(x) = &rs.cause {
                    self.expr(x, vec![], Cx::default());
                }
            }
            Stmt::Assert(a) => {
                self.expr(&a.test, vec![], truth_cx(Truth::Jumps));
                if let Some(m) = &a.msg {
                    self.expr(m, vec![], Cx::default());
                }
            }
            Stmt::If(i) => {
                let w = Self::opt(self.ev(Ev::after_if_test, N::Stmt(s), vec![]));
                self.expr(&i.test, w, truth_cx(Truth::Jumps));
                self.body(&i.body, BodyKind::Plain, Some(indent), None);
                self.elif_chain(s, i, indent);
            }
            Stmt::For(f) => {
                self.target(&f.target);
                let ws = self.operand_events(&f.iter, Ev::before_for_iter, Ev::after_for_iter, vec![]);
                self.expr(&f.iter, ws, Cx::default());
                self.body(&f.body, BodyKind::For, Some(indent), Some(N::Stmt(s)));
                self.body(&f.orelse, BodyKind::Plain, Some(indent), None);
            }
            Stmt::While(w) => {
                let ws = Self::opt(self.ev(Ev::after_while_test, N::Stmt(s), vec![]));
                self.expr(&w.test, ws, truth_cx(Truth::Jumps));
                self.body(&w.body, BodyKind::While, Some(indent), Some(N::Stmt(s)));
                self.body(&w.orelse, BodyKind::Plain, Some(indent), None);
            }
            Stmt::With(w) => {
                for item in &w.items {
                    self.expr(&item.context_expr, vec![], Cx::default());
                    if let Some(v) = &item.optional_vars {
                        self.target(v);
                    }
                }
                self.body(&w.body, BodyKind::Plain, Some(indent), None);
            }
            Stmt::Match(m) => {
                self.expr(&m.subject, vec![], Cx::default());
                for case in &m.cases {
                    if let Some(g) = &case.guard {
                        self.expr(g, vec![], truth_cx(Truth::Jumps));
                    }
                    // a case is a header of its own, one level deeper than `match`
                    let case_indent = self.indent_at(r(case).0).unwrap_or_else(|| format!("{indent} "));
                    self.body(&case.body, BodyKind::Plain, Some(&case_indent), None);
                }
            }
            Stmt::Try(t) => {
                self.body(&t.body, BodyKind::Plain, Some(indent), None);
                for h in &t.handlers {
                    let ast::ExceptHandler::ExceptHandler(h) = h;
                    match &h.type_ {
                        Some(ty) => {
                            let w = Self::opt(self.ev(Ev::exception_handler_type, N::Expr(ty), vec![]));
                            self.expr(ty, w, Cx::default());
                        }
                        None => {
                            if let Some(w) = self.ev(Ev::exception_handler_type, N::Handler(h), vec![]) {
                                let (hs, he) = r(h);
                                if let Some(kw) = self.first_token(hs, he, |k| k == TokenKind::Except) {
                                    let k = self.site(Form::HandlerType, vec![w]);
                                    self.b.close(kw.end().to_u32(), vec![text(format!(" _sg_t({k})"))]);
                                }
                            }
                        }
                    }
                    self.body(&h.body, BodyKind::Plain, Some(indent), None);
                }
                self.body(&t.orelse, BodyKind::Plain, Some(indent), None);
                self.body(&t.finalbody, BodyKind::Plain, Some(indent), None);
            }
            Stmt::FunctionDef(f) => {
                let fid = KwVal::Node(self.node(N::Stmt(s)));
                for (i, d) in f.decorator_list.iter().enumerate() {
                    let w = Self::opt(self.ev(
                        Ev::decorator,
                        N::Expr(&d.expression),
                        vec![("func_node_id", fid.clone()), ("decorator_idx", KwVal::Int(i as i64))],
                    ));
                    self.expr(&d.expression, w, Cx::default());
                }
                self.defaults(&f.parameters);
                self.body(&f.body, BodyKind::Function, Some(indent), Some(N::Stmt(s)));
            }
            Stmt::ClassDef(c) => {
                for d in &c.decorator_list {
                    self.expr(&d.expression, vec![], Cx::default());
                }
                if let Some(args) = &c.arguments {
                    for a in args.args.iter() {
                        self.expr(a, vec![], Cx::default());
                    }
                    for k in args.keywords.iter() {
                        self.expr(&k.value, vec![], Cx::default());
                    }
                }
                self.body(&c.body, BodyKind::Class, Some(indent), Some(N::Stmt(s)));
            }
            Stmt::TypeAlias(_)
            | Stmt::Import(_)
            | Stmt::ImportFrom(_)
            | Stmt::Global(_)
            | Stmt::Nonlocal(_)
            | Stmt::Pass(_)
            | Stmt::Break(_)
            | Stmt::Continue(_)
            | Stmt::IpyEscapeCommand(_) => {}
        }

        if matches!(s, Stmt::Global(_) | Stmt::Nonlocal(_)) {
            return (None, None);
        }

        // the value of a module-level expression statement goes to the after events
        let mut after_site = None;
        if let Some((vs, ve, afters)) = value_stmt_after {
            let k = self.site(Form::Notify, afters);
            self.b.wrap(vs, ve, vec![text(format!("_sg_n({k}, "))], vec![text(")")]);
            after_site = Some(k);
        }

        let before = self.ev(Ev::before_stmt, N::Stmt(s), vec![]);
        let before_site = before.map(|w| {
            let k = self.site(Form::Statement, vec![w]);
            if compound {
                let rank = self.b.next_rank();
                self.b.region(start, end, rank);
                self.b.insert(start, Side::Open, rank, vec![text(format!("if not _sg_s({k}):")), newline(indent), text(" ")]);
            } else {
                self.b.open(start, vec![text(format!("if not _sg_s({k}): "))]);
            }
            k
        });

        let mut after_call = None;
        if after_site.is_none() && !is_jump(s) {
            let mut afters = Vec::new();
            afters.extend(self.ev(Ev::after_stmt, N::Stmt(s), vec![]));
            if module_level {
                afters.extend(self.ev(Ev::after_module_stmt, N::Stmt(s), vec![]));
            }
            if !afters.is_empty() {
                let k = self.site(Form::Notify, afters);
                let edit = if compound {
                    self.b.close_quiet(end, vec![newline(indent), text(format!("_sg_n({k})"))])
                } else {
                    // located at the statement's start: its line, and what a
                    // `finally` re-raising after it reports as the frame's line
                    let i = self.b.close(end, vec![text(format!("; _sg_n({k})"))]);
                    self.b.edits[i].anchor = start;
                    i
                };
                after_site = Some(k);
                after_call = Some((k, edit));
            }
        }
        if let Some(b) = before_site {
            self.sites[b as usize].after = after_site;
        }
        (before_site, after_call)
    }

    /// The after events of one statement fire in the same call as the
    /// before events of the next: nothing runs between them, and the next
    /// statement is reached only when the previous one completed.
    fn merge_into(&mut self, before_site: u32, after: (u32, usize)) {
        let (site, edit) = after;
        let events = std::mem::take(&mut self.sites[site as usize].events);
        self.sites[before_site as usize].events.splice(0..0, events);
        self.b.edits[edit].pieces.clear();
    }

    /// `elif`/`else` clauses. An `elif` is CPython's nested If: before_stmt
    /// fires as its test is reached; its after_stmt fires when the nested If
    /// completes, i.e. at the end of each later branch (and of an implicit
    /// `else` if there is none).
    fn elif_chain(&mut self, s: &'a Stmt, i: &'a ast::StmtIf, indent: &str) {
        let chain_end = r(s).1;
        let mut pending_afters: Vec<W> = Vec::new();
        let mut has_else = false;
        for clause in &i.elif_else_clauses {
            match &clause.test {
                Some(test) => {
                    let n = N::Elif(clause, chain_end);
                    let mut ws = Vec::new();
                    ws.extend(self.ev(Ev::after_if_test, n, vec![]));
                    ws.extend(self.ev(Ev::before_stmt, n, vec![]));
                    // before_stmt is a statement event: here it is observe-only
                    let ws: Vec<(Kind, W)> = ws
                        .into_iter()
                        .map(|w| (if w.ev == Ev::before_stmt { Kind::Notify } else { Kind::After }, w))
                        .collect();
                    self.expr_with_kinded(test, ws, Truth::Jumps);
                    if let Some(w) = self.ev(Ev::after_stmt, n, vec![]) {
                        pending_afters.insert(0, w);
                    }
                }
                None => has_else = true,
            }
            self.body(&clause.body, BodyKind::Plain, Some(indent), None);
            if !pending_afters.is_empty() {
                if let Some(last) = clause.body.last() {
                    let body_indent = self.indent_at(r(&clause.body[0]).0).unwrap_or_else(|| format!("{indent} "));
                    if is_jump(last) {
                        continue;
                    }
                    let k = self.site(Form::Notify, pending_afters.clone());
                    self.b.close_quiet(r(last).1, vec![newline(&body_indent), text(format!("_sg_n({k})"))]);
                }
            }
        }
        if !has_else && !pending_afters.is_empty() {
            let k = self.site(Form::Notify, pending_afters);
            self.b.close_quiet(chain_end, vec![newline(indent), text("else:"), newline(indent), text(format!(" _sg_n({k})"))]);
        }
    }

    fn expr_with_kinded(&mut self, e: &'a Expr, ws: Vec<(Kind, W)>, truth: Truth) {
        // visit the expression itself, then put the kinded wrappers around it
        self.expr(e, vec![], truth_cx(truth.through(computes(&ws))));
        if !ws.is_empty() {
            self.wrap(e, ws, true);
        }
    }
}

// ------------------------------------------------------------------ helpers

fn is_docstring(s: &Stmt) -> bool {
    matches!(s, Stmt::Expr(x) if matches!(&*x.value, Expr::StringLiteral(_)))
}

fn is_future_import(s: &Stmt) -> bool {
    matches!(s, Stmt::ImportFrom(i) if i.level == 0 && i.module.as_ref().is_some_and(|m| m.id.as_str() == "__future__"))
}

fn is_compound(s: &Stmt) -> bool {
    matches!(
        s,
        Stmt::If(_) | Stmt::For(_) | Stmt::While(_) | Stmt::With(_) | Stmt::Match(_) | Stmt::Try(_) | Stmt::FunctionDef(_) | Stmt::ClassDef(_)
    )
}

fn is_jump(s: &Stmt) -> bool {
    matches!(s, Stmt::Return(_) | Stmt::Raise(_) | Stmt::Break(_) | Stmt::Continue(_))
}

fn needs_parens_as_arg(e: &Expr) -> bool {
    match e {
        Expr::Tuple(t) => !t.parenthesized,
        Expr::Generator(g) => !g.parenthesized,
        Expr::Yield(_) | Expr::YieldFrom(_) | Expr::Named(_) => true,
        _ => false,
    }
}

fn is_binop_token(k: TokenKind) -> bool {
    use TokenKind::*;
    matches!(
        k,
        Plus | Minus | Star | Slash | DoubleSlash | Percent | DoubleStar | LeftShift | RightShift | Vbar | CircumFlex | Amper | At
    )
}

fn is_cmp_token(k: TokenKind) -> bool {
    use TokenKind::*;
    matches!(k, EqEqual | NotEqual | Less | LessEqual | Greater | GreaterEqual | Is | Not | In)
}

/// Index into the dispatcher's binary operator table (python/spyglass/_ops.py order).
pub fn binop_code(op: Operator) -> u8 {
    use Operator::*;
    match op {
        Add => 0,
        Sub => 1,
        Mult => 2,
        MatMult => 3,
        Div => 4,
        Mod => 5,
        Pow => 6,
        LShift => 7,
        RShift => 8,
        BitOr => 9,
        BitXor => 10,
        BitAnd => 11,
        FloorDiv => 12,
    }
}

pub fn unary_code(op: UnaryOp) -> u8 {
    match op {
        UnaryOp::Invert => 0,
        UnaryOp::Not => 1,
        UnaryOp::UAdd => 2,
        UnaryOp::USub => 3,
    }
}

pub fn cmp_code(op: CmpOp) -> u8 {
    use CmpOp::*;
    match op {
        Eq => 0,
        NotEq => 1,
        Lt => 2,
        LtE => 3,
        Gt => 4,
        GtE => 5,
        Is => 6,
        IsNot => 7,
        In => 8,
        NotIn => 9,
    }
}

fn expr_class(e: &Expr) -> &'static str {
    match e {
        Expr::BoolOp(_) => "BoolOp",
        Expr::Named(_) => "NamedExpr",
        Expr::BinOp(_) => "BinOp",
        Expr::UnaryOp(_) => "UnaryOp",
        Expr::Lambda(_) => "Lambda",
        Expr::If(_) => "IfExp",
        Expr::Dict(_) => "Dict",
        Expr::Set(_) => "Set",
        Expr::ListComp(_) => "ListComp",
        Expr::SetComp(_) => "SetComp",
        Expr::DictComp(_) => "DictComp",
        Expr::Generator(_) => "GeneratorExp",
        Expr::Await(_) => "Await",
        Expr::Yield(_) => "Yield",
        Expr::YieldFrom(_) => "YieldFrom",
        Expr::Compare(_) => "Compare",
        Expr::Call(_) => "Call",
        Expr::FString(_) => "JoinedStr",
        Expr::TString(_) => "TemplateStr",
        Expr::StringLiteral(_)
        | Expr::BytesLiteral(_)
        | Expr::NumberLiteral(_)
        | Expr::BooleanLiteral(_)
        | Expr::NoneLiteral(_)
        | Expr::EllipsisLiteral(_) => "Constant",
        Expr::Attribute(_) => "Attribute",
        Expr::Subscript(_) => "Subscript",
        Expr::Starred(_) => "Starred",
        Expr::Name(_) => "Name",
        Expr::List(_) => "List",
        Expr::Tuple(_) => "Tuple",
        Expr::Slice(_) => "Slice",
        Expr::IpyEscapeCommand(_) => "IpyEscapeCommand",
    }
}

fn stmt_class(s: &Stmt) -> &'static str {
    match s {
        Stmt::FunctionDef(f) if f.is_async => "AsyncFunctionDef",
        Stmt::FunctionDef(_) => "FunctionDef",
        Stmt::ClassDef(_) => "ClassDef",
        Stmt::Return(_) => "Return",
        Stmt::Delete(_) => "Delete",
        Stmt::TypeAlias(_) => "TypeAlias",
        Stmt::Assign(_) => "Assign",
        Stmt::AugAssign(_) => "AugAssign",
        Stmt::AnnAssign(_) => "AnnAssign",
        Stmt::For(f) if f.is_async => "AsyncFor",
        Stmt::For(_) => "For",
        Stmt::While(_) => "While",
        Stmt::If(_) => "If",
        Stmt::With(w) if w.is_async => "AsyncWith",
        Stmt::With(_) => "With",
        Stmt::Match(_) => "Match",
        Stmt::Raise(_) => "Raise",
        Stmt::Try(t) if t.is_star => "TryStar",
        Stmt::Try(_) => "Try",
        Stmt::Assert(_) => "Assert",
        Stmt::Import(_) => "Import",
        Stmt::ImportFrom(_) => "ImportFrom",
        Stmt::Global(_) => "Global",
        Stmt::Nonlocal(_) => "Nonlocal",
        Stmt::Expr(_) => "Expr",
        Stmt::Pass(_) => "Pass",
        Stmt::Break(_) => "Break",
        Stmt::Continue(_) => "Continue",
        Stmt::IpyEscapeCommand(_) => "IpyEscapeCommand",
    }
}

// the decision map stores event indexes in a u8
const _: () = assert!(EVENTS.len() < 256);
