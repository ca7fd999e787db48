//! The node table: every node that an emitted site or a keyword argument
//! refers to, keyed the way CPython's `ast` would locate it, so that the real
//! `ast` node can be found later (lazily) by class and position.

use std::collections::HashMap;

use super::sites::NodeId;

/// CPython `ast` class name and (lineno, col_offset, end_lineno,
/// end_col_offset); `pos` is None for the Module.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeKey {
    pub class: &'static str,
    pub pos: Option<(u32, u32, u32, u32)>,
}

#[derive(Default)]
pub struct NodeTable {
    pub keys: Vec<NodeKey>,
    /// ruff node address -> id (addresses are stable while the parse lives)
    by_addr: HashMap<usize, NodeId>,
}

impl NodeTable {
    pub fn id(&mut self, addr: usize, key: impl FnOnce() -> NodeKey) -> NodeId {
        if let Some(&id) = self.by_addr.get(&addr) {
            return id;
        }
        let id = self.keys.len() as NodeId;
        self.keys.push(key());
        self.by_addr.insert(addr, id);
        id
    }
}
