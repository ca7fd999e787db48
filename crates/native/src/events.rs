//! THE event table: one row per source-level event.
//!
//! Python builds `spyglass.TraceEvent` from `EVENTS` (same names, values and
//! order as Pyccolo 0.0.96's `TraceEvent`), `docs/events.md` is generated from
//! it (`scripts/gen_events_doc.py`), and the rewriter refers to events by the
//! `Ev` variants generated here. Nothing else lists events.

/// How an event is delivered; decides the shape of the emitted code and what
/// a handler's return value means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Fires after an expression is evaluated; `ret` is its value and a
    /// returned value replaces it.
    After,
    /// Fires before an expression is evaluated; `ret` is a thunk. Returning a
    /// different callable (or a plain value) replaces the expression, which
    /// then is not evaluated in place.
    Before,
    /// Fires before an operator's operands are evaluated; `ret` is the
    /// operator as a callable of the operands, and a returned callable is
    /// called with the operands instead.
    Operator,
    /// Fires before a statement; returning `Pass` skips the statement,
    /// returning source text or an `ast` node runs that instead.
    Statement,
    /// Fires at a point of control flow (a statement finished, a loop body
    /// starts, a module ends...); the return value is ignored.
    Notify,
    /// Fires from the import hook.
    Import,
    /// A `sys.settrace` event, delivered to handlers of tracers that register one.
    Sys,
    /// Kept for Pyccolo compatibility; spyglass implements the behaviour
    /// directly and never emits it.
    Internal,
    /// Registering a handler for it registers one for another event, restricted
    /// to certain nodes.
    Alias,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::After => "after",
            Kind::Before => "before",
            Kind::Operator => "operator",
            Kind::Statement => "statement",
            Kind::Notify => "notify",
            Kind::Import => "import",
            Kind::Sys => "sys",
            Kind::Internal => "internal",
            Kind::Alias => "alias",
        }
    }
}

/// One row of the table.
pub struct EventInfo {
    pub name: &'static str,
    /// Pyccolo's `TraceEvent` value (a string).
    pub value: &'static str,
    pub group: &'static str,
    pub kind: Kind,
    /// The `ast` node class that `register_handler(ast.X)` maps to this event.
    pub ast_class: Option<&'static str>,
    /// When it fires, and what `node` is.
    pub fires: &'static str,
    /// What `ret` is.
    pub ret: &'static str,
    /// Keyword arguments passed to handlers, comma separated.
    pub kwargs: &'static str,
}

macro_rules! events {
    ($( $var:ident = $value:literal, $group:literal, $kind:ident, $ast:expr, $fires:literal, $ret:literal, $kwargs:literal; )*) => {
        /// Every event, in table order; `Ev as usize` indexes `EVENTS`.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Ev { $( $var, )* }

        pub static EVENTS: &[EventInfo] = &[
            $( EventInfo {
                name: stringify!($var),
                value: $value,
                group: $group,
                kind: Kind::$kind,
                ast_class: $ast,
                fires: $fires,
                ret: $ret,
                kwargs: $kwargs,
            }, )*
        ];
    };
}

events! {
    before_import = "before_import", "module", Import, None,
        "The import hook is about to load a module whose file some active tracer instruments or filters for. node: None.",
        "the path of the module's source file; a returned path is loaded instead", "qualified_module_name";
    init_module = "init_module", "module", Notify, Some("Module"),
        "An instrumented module starts running, after its docstring and `from __future__` imports. node: the Module.",
        "None", "";
    exit_module = "exit_module", "module", Notify, None,
        "An instrumented module's last top-level statement finished (not on an exception). node: the Module.",
        "None", "";
    after_import = "after_import", "module", Import, None,
        "The import hook finished executing a module. node: None.",
        "None", "module";

    before_stmt = "before_stmt", "statement", Statement, None,
        "Before every statement (not docstrings, `from __future__` imports, `global`, `nonlocal`). node: the statement.",
        "None", "";
    after_stmt = "after_stmt", "statement", Notify, Some("stmt"),
        "After a statement completes normally (not after `return`, `raise`, `break`, `continue`). node: the statement.",
        "for a module-level expression statement, its value; otherwise None", "";
    after_module_stmt = "after_module_stmt", "statement", Notify, None,
        "After each top-level statement of a module. node: the statement.",
        "for an expression statement, its value; otherwise None", "";
    after_expr_stmt = "after_expr_stmt", "statement", After, None,
        "After the value of an expression statement is computed. node: the Expr statement.",
        "the expression's value", "";
    _load_saved_expr_stmt_ret = "_load_saved_expr_stmt_ret", "internal", Internal, None,
        "Never emitted: spyglass passes the value to after_module_stmt directly.",
        "-", "";

    load_name = "load_name", "name", After, Some("Name"),
        "After a name is read (Load context, outside annotations). node: the Name.",
        "the value bound to the name", "";

    after_bool = "after_bool", "literal", After, None,
        "After a `True`/`False` literal. node: the Constant.", "the literal's value", "";
    after_bytes = "after_bytes", "literal", After, None,
        "After a bytes literal. node: the Constant.", "the literal's value", "";
    after_complex = "after_complex", "literal", After, None,
        "After an imaginary literal. node: the Constant.", "the literal's value", "";
    after_float = "after_float", "literal", After, None,
        "After a float literal. node: the Constant.", "the literal's value", "";
    after_int = "after_int", "literal", After, None,
        "After an int literal. node: the Constant.", "the literal's value", "";
    after_none = "after_none", "literal", After, None,
        "After a `None` literal. node: the Constant.", "None", "";
    after_string = "after_string", "literal", After, None,
        "After a string literal (not docstrings, not the literal parts of f-strings). node: the Constant.",
        "the literal's value", "";

    before_fstring = "before_fstring", "f-string", Before, None,
        "Before an f-string is formatted. node: the JoinedStr.", "a thunk", "";
    after_fstring = "after_fstring", "f-string", After, None,
        "After an f-string is formatted. node: the JoinedStr.", "the formatted string", "";

    before_for_loop_body = "before_for_loop_body", "loop", Notify, None,
        "At the start of each iteration of a `for` loop's body. node: the For.", "None", "";
    after_for_loop_iter = "after_for_loop_iter", "loop", Notify, None,
        "At the end of each iteration of a `for` loop's body, however it ends (`continue`, `break`, `return`, an exception). node: the For.",
        "None", "";
    before_while_loop_body = "before_while_loop_body", "loop", Notify, None,
        "At the start of each iteration of a `while` loop's body. node: the While.", "None", "";
    after_while_loop_iter = "after_while_loop_iter", "loop", Notify, None,
        "At the end of each iteration of a `while` loop's body, however it ends. node: the While.", "None", "";

    before_for_iter = "before_for_iter", "loop", Before, None,
        "Before the iterable of a `for` statement is evaluated. node: the iterable expression.", "a thunk", "";
    after_for_iter = "after_for_iter", "loop", After, None,
        "After the iterable of a `for` statement is evaluated. node: the iterable expression.", "the iterable", "";

    before_attribute_load = "before_attribute_load", "attribute", After, None,
        "After the object of `obj.attr` (Load) is evaluated, before the attribute is read. node: the Attribute.",
        "the object; a returned object is used instead", "attr_or_subscript, call_context, top_level_node_id, obj_name";
    before_attribute_store = "before_attribute_store", "attribute", After, None,
        "After the object of an `obj.attr = ...` target is evaluated. node: the Attribute.",
        "the object; a returned object is assigned to instead", "attr_or_subscript, call_context, top_level_node_id, obj_name";
    before_attribute_del = "before_attribute_del", "attribute", After, None,
        "After the object of a `del obj.attr` target is evaluated. node: the Attribute.",
        "the object; a returned object is used instead", "attr_or_subscript, call_context, top_level_node_id, obj_name";
    after_attribute_load = "after_attribute_load", "attribute", After, Some("Attribute"),
        "After `obj.attr` is read. node: the Attribute.", "the attribute's value", "call_context";
    before_subscript_load = "before_subscript_load", "subscript", After, None,
        "After the object and the key of `obj[key]` (Load) are evaluated, before the item is read. node: the Subscript.",
        "the object; a returned object is subscripted instead", "attr_or_subscript, call_context, top_level_node_id, obj_name, subscript_name";
    before_subscript_store = "before_subscript_store", "subscript", After, None,
        "After the object and key of an `obj[key] = ...` target are evaluated. node: the Subscript.",
        "the object; a returned object is assigned to instead", "attr_or_subscript, call_context, top_level_node_id, obj_name, subscript_name";
    before_subscript_del = "before_subscript_del", "subscript", After, None,
        "After the object and key of a `del obj[key]` target are evaluated. node: the Subscript.",
        "the object; a returned object is used instead", "attr_or_subscript, call_context, top_level_node_id, obj_name, subscript_name";
    after_subscript_load = "after_subscript_load", "subscript", After, Some("Subscript"),
        "After `obj[key]` is read. node: the Subscript.", "the item", "call_context";

    before_subscript_slice = "before_subscript_slice", "subscript", Before, None,
        "Before the key of a subscript is evaluated (a slice `a:b` is evaluated as `slice(a, b)`). node: the Subscript.",
        "a thunk", "";
    after_subscript_slice = "after_subscript_slice", "subscript", After, None,
        "After the key of a subscript is evaluated. node: the Subscript.", "the key", "";
    _load_saved_slice = "_load_saved_slice", "internal", Internal, None,
        "Never emitted: spyglass reuses the evaluated key itself.", "-", "";

    before_load_complex_symbol = "before_load_complex_symbol", "attribute", Before, None,
        "Before the outermost node of an attribute/subscript/call chain (Load) is evaluated. node: that node.",
        "a thunk", "call_context";
    after_load_complex_symbol = "after_load_complex_symbol", "attribute", After, None,
        "After the outermost node of an attribute/subscript/call chain is evaluated. node: that node.",
        "its value", "call_context";

    after_if_test = "after_if_test", "control", After, None,
        "After the test of an `if`/`elif` is evaluated. node: the If.", "the test's value", "";
    after_while_test = "after_while_test", "control", After, None,
        "After each evaluation of a `while` test. node: the While.", "the test's value", "";

    before_lambda = "before_lambda", "lambda", Before, None,
        "Before a lambda expression creates its function. node: the Lambda.", "a thunk", "";
    after_lambda = "after_lambda", "lambda", After, None,
        "After a lambda expression creates its function. node: the Lambda.", "the function", "";

    decorator = "decorator", "function", After, None,
        "After a decorator expression is evaluated, before it is applied. node: the decorator expression.",
        "the decorator", "func_node_id, decorator_idx";
    before_call = "before_call", "call", After, None,
        "After the callee of a call is evaluated, before the arguments. node: the Call.",
        "the callee; a returned callable is called instead", "call_node_id";
    after_call = "after_call", "call", After, Some("Call"),
        "After a call returns. node: the Call.", "the call's result", "call_node_id";
    before_argument = "before_argument", "call", Before, None,
        "Before an argument of a call is evaluated (for `*x`/`**x`, the `x`). node: the argument expression.",
        "a thunk", "is_starred, is_kwstarred, key, is_last";
    after_argument = "after_argument", "call", After, Some("arg"),
        "After an argument of a call is evaluated. node: the argument expression.",
        "the argument's value", "is_starred, is_kwstarred, key, is_last";
    before_return = "before_return", "function", Before, None,
        "Before the value of a `return` is evaluated. node: the value expression.", "a thunk", "";
    after_return = "after_return", "function", After, Some("Return"),
        "After the value of a `return` is evaluated. node: the value expression.", "the returned value", "";

    before_dict_literal = "before_dict_literal", "container", Before, None,
        "Before a dict display is built. node: the Dict.", "a thunk", "";
    after_dict_literal = "after_dict_literal", "container", After, Some("Dict"),
        "After a dict display is built. node: the Dict.", "the dict", "";
    before_list_literal = "before_list_literal", "container", Before, None,
        "Before a list display (Load) is built. node: the List.", "a thunk", "";
    after_list_literal = "after_list_literal", "container", After, Some("List"),
        "After a list display is built. node: the List.", "the list", "";
    before_set_literal = "before_set_literal", "container", Before, None,
        "Before a set display is built. node: the Set.", "a thunk", "";
    after_set_literal = "after_set_literal", "container", After, Some("Set"),
        "After a set display is built. node: the Set.", "the set", "";
    before_tuple_literal = "before_tuple_literal", "container", Before, None,
        "Before a tuple display (Load) is built. node: the Tuple.", "a thunk", "";
    after_tuple_literal = "after_tuple_literal", "container", After, Some("Tuple"),
        "After a tuple display is built. node: the Tuple.", "the tuple", "";

    dict_key = "dict_key", "container", After, None,
        "After a key of a dict display is evaluated. node: the key expression.",
        "the key", "value_node_id, dict_node_id";
    dict_value = "dict_value", "container", After, None,
        "After a value of a dict display (or the mapping of `**m`) is evaluated. node: the value expression.",
        "the value", "key_node_id, dict_node_id";
    list_elt = "list_elt", "container", After, None,
        "After an element of a list display is evaluated (not `*x`). node: the element.",
        "the element", "index, container_node_id";
    set_elt = "set_elt", "container", After, None,
        "After an element of a set display is evaluated (not `*x`). node: the element.",
        "the element", "index, container_node_id";
    tuple_elt = "tuple_elt", "container", After, None,
        "After an element of a tuple display (Load) is evaluated (not `*x`). node: the element.",
        "the element", "index, container_node_id";

    before_assign_rhs = "before_assign_rhs", "assignment", Before, None,
        "Before the right-hand side of `=` or an annotated assignment is evaluated. node: the value expression.",
        "a thunk", "";
    after_assign_rhs = "after_assign_rhs", "assignment", After, Some("Assign"),
        "After the right-hand side of `=` or an annotated assignment is evaluated, before it is stored. node: the value expression.",
        "the value", "";
    before_augassign_rhs = "before_augassign_rhs", "assignment", Before, None,
        "Before the right-hand side of an augmented assignment is evaluated. node: the value expression.",
        "a thunk", "";
    after_augassign_rhs = "after_augassign_rhs", "assignment", After, None,
        "After the right-hand side of an augmented assignment is evaluated. node: the value expression.",
        "the value", "";

    before_assert = "before_assert", "statement", Alias, None,
        "Registers a before_stmt handler that fires only on `assert` statements.", "see before_stmt", "";
    after_assert = "after_assert", "statement", Alias, None,
        "Registers an after_stmt handler that fires only on `assert` statements.", "see after_stmt", "";

    before_function_body = "before_function_body", "function", Notify, None,
        "When a function's body starts, after its docstring. node: the FunctionDef/AsyncFunctionDef.", "None", "";
    after_function_execution = "after_function_execution", "function", Notify, None,
        "When a function's body finishes, however it ends (return, exception, generator closed). node: the function definition.",
        "None", "";

    before_lambda_body = "before_lambda_body", "lambda", Notify, None,
        "When a lambda is called, before its body is evaluated. node: the Lambda.", "None", "";
    after_lambda_body = "after_lambda_body", "lambda", After, None,
        "When a lambda is called, after its body is evaluated. node: the Lambda.", "the body's value", "";

    before_left_binop_arg = "before_left_binop_arg", "operator", Before, None,
        "Before the left operand of a binary operation is evaluated. node: the operand.", "a thunk", "";
    after_left_binop_arg = "after_left_binop_arg", "operator", After, None,
        "After the left operand of a binary operation is evaluated. node: the operand.", "the operand", "";
    before_right_binop_arg = "before_right_binop_arg", "operator", Before, None,
        "Before the right operand of a binary operation is evaluated. node: the operand.", "a thunk", "";
    after_right_binop_arg = "after_right_binop_arg", "operator", After, None,
        "After the right operand of a binary operation is evaluated. node: the operand.", "the operand", "";
    before_binop = "before_binop", "operator", Operator, None,
        "Before the operands of a binary operation are evaluated. node: the BinOp.",
        "the operator as a function of the two operands", "";
    after_binop = "after_binop", "operator", After, Some("BinOp"),
        "After a binary operation. node: the BinOp.", "the result", "";

    before_unaryop_arg = "before_unaryop_arg", "operator", Before, None,
        "Before the operand of a unary operation is evaluated. node: the operand.", "a thunk", "";
    after_unaryop_arg = "after_unaryop_arg", "operator", After, None,
        "After the operand of a unary operation is evaluated. node: the operand.", "the operand", "";
    before_unaryop = "before_unaryop", "operator", Operator, None,
        "Before the operand of a unary operation is evaluated. node: the UnaryOp.",
        "the operator as a function of the operand", "";
    after_unaryop = "after_unaryop", "operator", After, Some("UnaryOp"),
        "After a unary operation. node: the UnaryOp.", "the result", "";

    before_boolop_arg = "before_boolop_arg", "operator", Before, None,
        "Before an operand of `and`/`or` is evaluated (only the operands short-circuiting reaches). node: the operand.",
        "a thunk", "is_last";
    after_boolop_arg = "after_boolop_arg", "operator", After, None,
        "After an operand of `and`/`or` is evaluated. node: the operand.", "the operand", "is_last";
    before_boolop = "before_boolop", "operator", Before, None,
        "Before an `and`/`or` expression is evaluated. node: the BoolOp.", "a thunk", "";
    after_boolop = "after_boolop", "operator", After, None,
        "After an `and`/`or` expression is evaluated. node: the BoolOp.", "the result", "";

    left_compare_arg = "left_compare_arg", "comparison", After, None,
        "After the leftmost operand of a comparison is evaluated. node: the operand.", "the operand", "";
    compare_arg = "compare_arg", "comparison", After, None,
        "After each further operand of a comparison is evaluated (only those short-circuiting reaches). node: the operand.",
        "the operand", "";
    before_compare = "before_compare", "comparison", Operator, None,
        "Before the operands of a comparison are evaluated. node: the Compare.",
        "the comparison as a function of all operands (a chain `a < b < c` is observe-only: its operands are evaluated lazily)", "";
    after_compare = "after_compare", "comparison", After, Some("Compare"),
        "After a comparison. node: the Compare.", "the result", "";

    after_comprehension_if = "after_comprehension_if", "comprehension", After, None,
        "After each evaluation of a comprehension's `if` condition. node: the condition.", "its value", "";
    after_comprehension_elt = "after_comprehension_elt", "comprehension", After, None,
        "After each element of a list/set/generator comprehension is computed. node: the element expression.",
        "the element", "";
    after_dict_comprehension_key = "after_dict_comprehension_key", "comprehension", After, None,
        "After each key of a dict comprehension is computed. node: the key expression.", "the key", "";
    after_dict_comprehension_value = "after_dict_comprehension_value", "comprehension", After, None,
        "After each value of a dict comprehension is computed. node: the value expression.", "the value", "";

    exception_handler_type = "exception_handler_type", "exception", After, None,
        "After the type of an `except` clause is evaluated (a bare `except:` gives BaseException). node: the type expression, or the ExceptHandler for a bare `except:`.",
        "the exception type(s)", "";

    ellipsis = "ellipsis", "literal", After, None,
        "After a `...` literal. node: the Constant.", "Ellipsis", "";

    line = "line", "sys", Sys, None,
        "sys.settrace 'line' in files the tracer instruments. node: None.", "None", "";
    call = "call", "sys", Sys, None,
        "sys.settrace 'call' in files the tracer instruments. node: None.", "None", "";
    return_ = "return", "sys", Sys, None,
        "sys.settrace 'return' in files the tracer instruments. node: None.", "the value being returned", "";
    exception = "exception", "sys", Sys, None,
        "sys.settrace 'exception' in files the tracer instruments. node: None.",
        "the (type, value, traceback) triple", "";
    opcode = "opcode", "sys", Sys, None,
        "sys.settrace 'opcode' in files the tracer instruments. node: None.", "None", "";

    c_call = "c_call", "sys", Sys, None,
        "sys.setprofile 'c_call' in files the tracer instruments. node: None.", "the C function", "";
    c_return = "c_return", "sys", Sys, None,
        "sys.setprofile 'c_return' in files the tracer instruments. node: None.", "the C function", "";
    c_exception = "c_exception", "sys", Sys, None,
        "sys.setprofile 'c_exception' in files the tracer instruments. node: None.", "the C function", "";
}

impl Ev {
    pub fn info(self) -> &'static EventInfo {
        &EVENTS[self as usize]
    }

    pub fn from_index(i: usize) -> Option<Ev> {
        if i < EVENTS.len() {
            // SAFETY: `Ev` is `repr(u8)` with variants numbered 0..EVENTS.len()
            // in table order (the macro generates both from the same list), and
            // `i` was just checked to be in that range.
            Some(unsafe { std::mem::transmute::<u8, Ev>(i as u8) })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_pyccolos_104_events_in_order() {
        assert_eq!(EVENTS.len(), 104);
        assert_eq!(EVENTS[0].name, "before_import");
        assert_eq!(EVENTS[103].name, "c_exception");
        assert_eq!(Ev::return_.info().value, "return");
        for (i, e) in EVENTS.iter().enumerate() {
            assert_eq!(Ev::from_index(i).unwrap() as usize, i);
            // every value is the name, but for `return_`, as in Pyccolo
            if e.name != "return_" {
                assert_eq!(e.name, e.value);
            }
        }
        assert!(Ev::from_index(104).is_none());
    }
}
