//! A whole `.pyc` file: header, object arena, code-object tree.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::header::Header;
use crate::marshal::{self, CodeLayout, LayoutEntry};
use crate::object::{code_points, fast_kind, Code, Locals, ObjId, Object, PyStr, StrKind};

#[derive(Debug)]
pub struct Pyc {
    pub data: Vec<u8>,
    /// None when read from raw marshal data with an explicit version
    pub header: Option<Header>,
    /// (3, minor) of the interpreter that wrote the file
    pub version: (u8, u8),
    pub objects: Vec<Object>,
    pub root: ObjId,
    /// offset where the marshalled data ends; the rest is ignored trailing data
    pub end: usize,
    pub layout: Option<Vec<LayoutEntry>>,
    /// size of the marshal reference table
    pub refs: usize,
}

/// A code object of the file's tree, with its place in it.
#[derive(Debug, Clone)]
pub struct CodeNode {
    pub id: ObjId,
    /// index of the parent in the list returned by [`Pyc::code_objects`]
    pub parent: Option<usize>,
    pub depth: usize,
    /// `co_qualname` (3.11+), else the name path rebuilt from the nesting
    pub qualname: String,
    /// true when this code object was already listed (shared through a reference)
    pub repeated: bool,
}

impl Pyc {
    /// Parse a `.pyc` file: header, then the marshalled code object.
    pub fn parse(data: Vec<u8>) -> Result<Pyc> {
        Self::parse_impl(data, false)
    }

    /// Like [`Pyc::parse`], also recording where every object sits.
    pub fn parse_with_layout(data: Vec<u8>) -> Result<Pyc> {
        Self::parse_impl(data, true)
    }

    fn parse_impl(data: Vec<u8>, layout: bool) -> Result<Pyc> {
        let header = Header::parse(&data)?;
        let (major, minor) = (header.info.major, header.info.minor);
        if major != 3 {
            return Err(Error::new(
                0,
                format!(
                    "{} .pyc file (magic {}): only CPython 3 files can be read",
                    header.info.label, header.info.magic
                ),
            ));
        }
        let m = marshal::read(&data, header.len, CodeLayout::for_minor(minor), layout)?;
        Ok(Pyc {
            header: Some(header),
            version: (3, minor),
            objects: m.objects,
            root: m.root,
            end: m.end,
            layout: m.layout,
            refs: m.refs,
            data,
        })
    }

    /// Parse raw marshal data (no header) written by CPython 3.`minor`.
    pub fn from_marshal(data: Vec<u8>, minor: u8, layout: bool) -> Result<Pyc> {
        let m = marshal::read(&data, 0, CodeLayout::for_minor(minor), layout)?;
        Ok(Pyc {
            header: None,
            version: (3, minor),
            objects: m.objects,
            root: m.root,
            end: m.end,
            layout: m.layout,
            refs: m.refs,
            data,
        })
    }

    pub fn minor(&self) -> u8 {
        self.version.1
    }

    pub fn obj(&self, id: ObjId) -> &Object {
        &self.objects[id.0 as usize]
    }

    pub fn code(&self, id: ObjId) -> Option<&Code> {
        match self.obj(id) {
            Object::Code(c) => Some(c),
            _ => None,
        }
    }

    /// Bytes of a bytes object (empty for anything else).
    pub fn bytes(&self, id: ObjId) -> &[u8] {
        match self.obj(id) {
            Object::Bytes(s) => &self.data[s.range()],
            _ => &[],
        }
    }

    pub fn str_raw(&self, s: &PyStr) -> &[u8] {
        &self.data[s.span.range()]
    }

    /// Text of a str object; lone surrogates become `\udXXX` escapes.
    pub fn text(&self, id: ObjId) -> Cow<'_, str> {
        match self.obj(id) {
            Object::Str(s) => self.str_text(s),
            _ => Cow::Borrowed(""),
        }
    }

    pub fn str_text<'a>(&'a self, s: &PyStr) -> Cow<'a, str> {
        let raw = self.str_raw(s);
        match s.kind {
            // validated as UTF-8 without surrogates when read; the fallback is never taken
            StrKind::Utf8 => match std::str::from_utf8(raw) {
                Ok(t) => Cow::Borrowed(t),
                Err(_) => Cow::Owned(String::from_utf8_lossy(raw).into_owned()),
            },
            _ => {
                let mut out = String::with_capacity(raw.len());
                for cp in code_points(raw, s.kind) {
                    match char::from_u32(cp) {
                        Some(c) => out.push(c),
                        None => out.push_str(&format!("\\u{cp:04x}")),
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    pub fn items(&self, id: ObjId) -> &[ObjId] {
        match self.obj(id) {
            Object::Tuple(t) | Object::List(t) | Object::Set(t) | Object::FrozenSet(t) => t,
            _ => &[],
        }
    }

    /// Names of a tuple of str.
    pub fn names(&self, id: ObjId) -> Vec<Cow<'_, str>> {
        self.items(id).iter().map(|&i| self.text(i)).collect()
    }

    /// `co_varnames`, `co_cellvars`, `co_freevars` of any version (3.11+
    /// derives them from the localsplus kinds, as CPython does).
    pub fn varnames(&self, code: &Code) -> Vec<ObjId> {
        self.locals_of_kind(code, fast_kind::LOCAL, |l| l.0)
    }

    pub fn cellvars(&self, code: &Code) -> Vec<ObjId> {
        self.locals_of_kind(code, fast_kind::CELL, |l| l.2)
    }

    pub fn freevars(&self, code: &Code) -> Vec<ObjId> {
        self.locals_of_kind(code, fast_kind::FREE, |l| l.1)
    }

    fn locals_of_kind(
        &self,
        code: &Code,
        kind: u8,
        classic: fn((ObjId, ObjId, ObjId)) -> ObjId,
    ) -> Vec<ObjId> {
        match &code.locals {
            Locals::Classic {
                varnames,
                freevars,
                cellvars,
            } => self
                .items(classic((*varnames, *freevars, *cellvars)))
                .to_vec(),
            Locals::Plus { names, kinds } => {
                let kinds = self.bytes(*kinds);
                self.items(*names)
                    .iter()
                    .zip(kinds)
                    .filter(|(_, k)| *k & kind != 0)
                    .map(|(n, _)| *n)
                    .collect()
            }
        }
    }

    /// The names `dis` resolves local and free-variable arguments with:
    /// (haslocal names, hasfree names). 3.11+: both are `co_localsplusnames`
    /// (`_varname_from_oparg`); before: `co_varnames` and cellvars + freevars.
    pub fn oparg_names(&self, code: &Code) -> (Vec<ObjId>, Vec<ObjId>) {
        match &code.locals {
            Locals::Plus { names, .. } => {
                let all = self.items(*names).to_vec();
                (all.clone(), all)
            }
            Locals::Classic {
                varnames,
                freevars,
                cellvars,
            } => {
                let mut cells = self.items(*cellvars).to_vec();
                cells.extend_from_slice(self.items(*freevars));
                (self.items(*varnames).to_vec(), cells)
            }
        }
    }

    /// Every code object, depth first in `co_consts` order (the order `dis`
    /// disassembles them in). A code object reached twice through marshal
    /// references is listed again with `repeated` set and not descended into,
    /// which keeps hostile files with shared subtrees linear.
    pub fn code_objects(&self) -> Vec<CodeNode> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if self.code(self.root).is_some() {
            self.walk(self.root, None, 0, &mut out, &mut seen);
        }
        out
    }

    fn walk(
        &self,
        id: ObjId,
        parent: Option<usize>,
        depth: usize,
        out: &mut Vec<CodeNode>,
        seen: &mut std::collections::HashSet<ObjId>,
    ) {
        // iterative over consts, recursive over nesting (bounded by marshal's depth limit)
        let code = self.code(id).expect("a code object");
        let qualname = match code.qualname {
            Some(q) => self.text(q).into_owned(),
            None => self.rebuilt_qualname(code, parent.map(|p| &out[p])),
        };
        let repeated = !seen.insert(id);
        out.push(CodeNode {
            id,
            parent,
            depth,
            qualname,
            repeated,
        });
        if repeated {
            return;
        }
        let me = out.len() - 1;
        for &c in self.items(code.consts) {
            if self.code(c).is_some() {
                self.walk(c, Some(me), depth + 1, out, seen);
            }
        }
    }

    /// A qualified name for versions whose code objects have none (< 3.11):
    /// the compiler's rule, from the nesting: a function's children get
    /// `<locals>`, a class body's do not.
    fn rebuilt_qualname(&self, code: &Code, parent: Option<&CodeNode>) -> String {
        let name = self.text(code.name);
        match parent {
            None => name.into_owned(),
            Some(p) if p.parent.is_none() => name.into_owned(),
            Some(p) => {
                let pc = self.code(p.id).expect("a code object");
                const CO_OPTIMIZED: u32 = 1;
                if pc.flags & CO_OPTIMIZED != 0 {
                    format!("{}.<locals>.{}", p.qualname, name)
                } else {
                    format!("{}.{}", p.qualname, name)
                }
            }
        }
    }
}
