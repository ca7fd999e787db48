//! Binary form of a module table (sites, nodes, position map) for the
//! on-disk cache of instrumented code. Loading never trusts the bytes:
//! anything out of shape gives None and the caller re-instruments.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::events::Ev;
use crate::rewrite::edits::PositionMap;
use crate::rewrite::nodes::NodeKey;
use crate::rewrite::sites::{Form, KwVal, Op, Site, SiteEvent};

const MAGIC: &[u8; 4] = b"SGT1";

/// Class and keyword names are `&'static str` in tables; names read back are
/// interned once each (a small, bounded set).
fn intern(s: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(&known) = set.get(s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        self.u32(v.unwrap_or(u32::MAX));
    }
}

struct R<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn opt_u32(&mut self) -> Option<Option<u32>> {
        let v = self.u32()?;
        Some((v != u32::MAX).then_some(v))
    }
    /// A count of items each at least `min` bytes long, checked against what
    /// is left, so a hostile count cannot make us allocate.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(min)? <= self.b.len() - self.i).then_some(n)
    }
}

pub fn dump(sites: &[Site], nodes: &[NodeKey], map: &PositionMap) -> Vec<u8> {
    let mut w = W(MAGIC.to_vec());
    w.u32(nodes.len() as u32);
    for n in nodes {
        w.str(n.class);
        match n.pos {
            None => w.u8(0),
            Some((a, b, c, d)) => {
                w.u8(1);
                for v in [a, b, c, d] {
                    w.u32(v);
                }
            }
        }
    }
    w.u32(sites.len() as u32);
    for s in sites {
        w.u8(s.form.code());
        match &s.op {
            None => w.u8(0),
            Some(Op::Bin(c)) => {
                w.u8(1);
                w.u8(*c);
            }
            Some(Op::Unary(c)) => {
                w.u8(2);
                w.u8(*c);
            }
            Some(Op::Compare(cs)) => {
                w.u8(3);
                w.u32(cs.len() as u32);
                for c in cs {
                    w.u8(*c);
                }
            }
        }
        w.opt_u32(s.after);
        w.opt_u32(s.thunk.map(|t| t.0));
        w.opt_u32(s.thunk.map(|t| t.1));
        w.u32(s.events.len() as u32);
        for e in &s.events {
            w.u8(e.ev as u8);
            w.u32(e.node);
            w.u32(e.kwargs.len() as u32);
            for (name, v) in &e.kwargs {
                w.str(name);
                match v {
                    KwVal::None => w.u8(0),
                    KwVal::Bool(b) => {
                        w.u8(1);
                        w.u8(*b as u8);
                    }
                    KwVal::Int(i) => {
                        w.u8(2);
                        w.i64(*i);
                    }
                    KwVal::Str(s) => {
                        w.u8(3);
                        w.str(s);
                    }
                    KwVal::Node(n) => {
                        w.u8(4);
                        w.u32(*n);
                    }
                }
            }
        }
    }
    let m = map.to_bytes();
    w.u32(m.len() as u32);
    w.0.extend_from_slice(&m);
    w.0
}

pub fn load(data: &[u8]) -> Option<(Vec<Site>, Vec<NodeKey>, PositionMap)> {
    let mut r = R { b: data, i: 0 };
    if r.take(4)? != MAGIC {
        return None;
    }
    let n = r.count(5)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let class = intern(r.str()?);
        let pos = match r.u8()? {
            0 => None,
            1 => Some((r.u32()?, r.u32()?, r.u32()?, r.u32()?)),
            _ => return None,
        };
        nodes.push(NodeKey { class, pos });
    }
    let n = r.count(18)?;
    let mut sites = Vec::with_capacity(n);
    for _ in 0..n {
        let mut site = Site::new(Form::from_code(r.u8()?)?);
        site.op = match r.u8()? {
            0 => None,
            1 => Some(Op::Bin(r.u8()?)),
            2 => Some(Op::Unary(r.u8()?)),
            3 => {
                let k = r.count(1)?;
                Some(Op::Compare((0..k).map(|_| r.u8()).collect::<Option<Vec<u8>>>()?))
            }
            _ => return None,
        };
        site.after = r.opt_u32()?;
        let (a, b) = (r.opt_u32()?, r.opt_u32()?);
        site.thunk = a.zip(b);
        let k = r.count(9)?;
        for _ in 0..k {
            let ev = Ev::from_index(r.u8()? as usize)?;
            let node = r.u32()?;
            if node as usize >= nodes.len() {
                return None;
            }
            let nk = r.count(5)?;
            let mut kwargs = Vec::with_capacity(nk);
            for _ in 0..nk {
                let name = intern(r.str()?);
                let v = match r.u8()? {
                    0 => KwVal::None,
                    1 => KwVal::Bool(r.u8()? != 0),
                    2 => KwVal::Int(r.i64()?),
                    3 => KwVal::Str(r.str()?.to_string()),
                    4 => {
                        let id = r.u32()?;
                        if id as usize >= nodes.len() {
                            return None;
                        }
                        KwVal::Node(id)
                    }
                    _ => return None,
                };
                kwargs.push((name, v));
            }
            site.events.push(SiteEvent { ev, node, kwargs });
        }
        sites.push(site);
    }
    let m = r.count(1)?;
    let map = PositionMap::from_bytes(r.take(m)?)?;
    (r.i == data.len()).then_some((sites, nodes, map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::edits::Segment;

    #[test]
    fn round_trip_and_reject_garbage() {
        let nodes = vec![NodeKey { class: "Name", pos: Some((1, 0, 1, 1)) }, NodeKey { class: "Module", pos: None }];
        let mut s = Site::new(Form::Operator);
        s.op = Some(Op::Compare(vec![2, 3]));
        s.thunk = Some((4, 9));
        s.events.push(SiteEvent {
            ev: Ev::list_elt,
            node: 0,
            kwargs: vec![("index", KwVal::Int(-3)), ("container_node_id", KwVal::Node(1)), ("key", KwVal::Str("k".into()))],
        });
        let map = PositionMap::new(vec![Segment { out: 0, orig: 0, len: 3, copied: true, located: true }]);
        let bytes = dump(&[s], &nodes, &map);
        let (sites, nodes2, _) = load(&bytes).unwrap();
        assert_eq!(nodes2, nodes);
        assert_eq!(sites[0].op, Some(Op::Compare(vec![2, 3])));
        assert_eq!(sites[0].events[0].kwargs[0].1, KwVal::Int(-3));
        for cut in 0..bytes.len() {
            assert!(load(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        let mut bad = bytes.clone();
        bad[4] = 0xff; // absurd node count
        assert!(load(&bad).is_none());
    }
}
