//! What the instrumented code calls: one *site* per emitted call, each
//! firing one or more events on nodes of the module's node table.

use crate::events::Ev;

/// Index into a module's node table.
pub type NodeId = u32;

/// How a site is called from the instrumented code, which decides what the
/// dispatcher returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `_sg_e(k, value)`: returns the (possibly replaced) value.
    Value,
    /// `((expr) if _sg_b(k) else _sg_o())`: true to evaluate in place.
    Before,
    /// `_sg_c(k)(operands...)`: returns the operator callable.
    Operator,
    /// `if not _sg_s(k): stmt`: true when the statement was skipped.
    Statement,
    /// `_sg_n(k)` or `_sg_n(k, value)`, or `(_sg_n(k) or (expr))`: returns None.
    Notify,
    /// `_sg_x(k, obj, key)[_sg_l()]`: returns the object, keeps the key.
    Subscript,
    /// `except _sg_t(k):` for a bare `except:`: returns BaseException.
    HandlerType,
}

impl Form {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<Form> {
        use Form::*;
        [Value, Before, Operator, Statement, Notify, Subscript, HandlerType].get(c as usize).copied()
    }
}

/// A keyword argument handlers receive, known when the code is rewritten.
#[derive(Clone, Debug, PartialEq)]
pub enum KwVal {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    /// A node of the table; handlers get its id.
    Node(NodeId),
}

#[derive(Clone, Debug)]
pub struct SiteEvent {
    pub ev: Ev,
    pub node: NodeId,
    pub kwargs: Vec<(&'static str, KwVal)>,
}

/// The operator of an Operator site, as the index into the dispatcher's
/// table of operator callables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Bin(u8),
    Unary(u8),
    /// The comparison operators of a (possibly chained) comparison.
    Compare(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Site {
    pub form: Form,
    pub events: Vec<SiteEvent>,
    pub op: Option<Op>,
    /// For a Statement site, the site of the same statement's after_stmt
    /// events, which must still fire when a handler skips the statement.
    pub after: Option<u32>,
    /// For a Before site, the edited text of the expression (for forcing a
    /// thunk), as a range of the instrumented text; filled in after the edits
    /// are applied.
    pub thunk: Option<(u32, u32)>,
    /// Index of the edit whose text ends right before the expression and of
    /// the one that starts right after it (Before sites).
    pub(crate) thunk_edits: Option<(usize, usize)>,
}

impl Site {
    pub fn new(form: Form) -> Site {
        Site { form, events: Vec::new(), op: None, after: None, thunk: None, thunk_edits: None }
    }
}
