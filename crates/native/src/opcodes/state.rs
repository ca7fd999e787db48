//! The per-trace state shared by both backends: which code objects are
//! traced, which frames are live inside the trace (and at what call depth),
//! and where events go (a Python callback or the recorder).
//!
//! While a trace is active its state lives in a thread-local, so the
//! interpreter callbacks of any other thread find nothing and return at once.
use super::layout::{self, IFrame, Slot};
use super::recorder::{self, Rec, Writer};
use super::stack::{self, ReprMode};
use pyo3::prelude::*;
use pyo3::ffi;
use std::cell::RefCell;
use std::collections::HashMap;

/// What the trace knows about one code object.
#[allow(dead_code)] // `code` keeps the object alive; `flags` is read by the 3.11 backend
pub struct CodeInfo {
    pub code: Py<PyAny>,
    pub id: u32,
    pub nlocalsplus: usize,
    pub stacksize: usize,
    /// Stack depth before each instruction, indexed by offset / 2, from the
    /// static analysis (-1 where unknown). Required on 3.12/3.13; on 3.11 and
    /// 3.14 it is optional and, when given, checked against the interpreter.
    pub depths: Vec<i32>,
    /// The `Instr` object for each instruction (callback mode).
    pub instrs: Vec<Option<Py<PyAny>>>,
    /// Per instruction: bit 0 = the instruction yields.
    pub flags: Vec<u8>,
    /// A root code is traced wherever it runs inside the trace; other codes
    /// only when reached by following calls within the depth limit.
    pub root: bool,
}

/// The code objects a trace knows, by address: `None` for those it never
/// traces. A prepared entry is boxed and never replaced or removed.
pub type CodeMap = HashMap<usize, Option<Box<CodeInfo>>, PtrHash>;

pub struct FrameEntry {
    pub iframe: *mut IFrame,
    pub code: usize,
    pub depth: u32,
    /// The call depth of the nearest root frame at or below this one:
    /// `follow` goes at most `max_depth` calls above it.
    pub root_depth: u32,
    pub serial: u64,
    pub traced: bool,
}

/// The code objects handed to a trace as roots (`on_new_code`), shared by
/// the trace's Python object (`RootSet`) and the native state of each of its
/// sessions. A lock of its own, never held while Python code runs (nor
/// across anything that could release the GIL), so a root can be added at
/// any moment: from inside code creation while an event is being delivered
/// on this thread, or from another thread that creates code objects.
pub type Roots = std::sync::Arc<std::sync::Mutex<HashMap<usize, Py<PyAny>, PtrHash>>>;

/// Locks the roots (a poisoned lock only means a panic elsewhere: the map
/// itself is always consistent).
pub fn lock_roots(r: &Roots) -> std::sync::MutexGuard<'_, HashMap<usize, Py<PyAny>, PtrHash>> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

pub enum Sink {
    Callback(Py<PyAny>),
    Record { writer: Option<Writer>, reprs: ReprMode, max_repr: usize, max_values: usize },
}

pub struct TraceState {
    pub sink: Sink,
    pub prepare: Py<PyAny>,
    pub null: Py<PyAny>,
    pub follow: bool,
    pub max_depth: u32,
    pub boundary: *mut IFrame,
    pub codes: CodeMap,
    /// References to the codes registered as never traced (`None` in
    /// `codes`), so that their addresses are not reused while the state lives.
    pub rejected: Vec<Py<PyAny>>,
    /// Codes to trace wherever they run, prepared when they first run.
    pub roots: Option<Roots>,
    /// The last code looked up by `code_info` (boxed entries never move).
    pub last_code: std::cell::Cell<(usize, *const CodeInfo)>,
    pub frames: Vec<FrameEntry>,
    pub error: Option<PyErr>,
    pub stopped: bool,
    pub next_serial: u64,
    pub current: u64,
    pub instructions: u64,
    /// (code id, offset, analysis depth, interpreter depth) where they differ.
    pub mismatches: Vec<(u32, u32, i32, i64)>,
    pub checked: u64,
    /// Rendering values may leave an asynchronous exception set (full reprs).
    pub may_raise: bool,
    /// The sys.monitoring tool id object this trace's callbacks are bound to
    /// (compared by address; `tool_ref` keeps it alive). NULL on 3.11.
    pub tool: *mut ffi::PyObject,
    pub tool_ref: Option<Py<PyAny>>,
    /// 3.11: the object the C trace function is installed with while this
    /// trace is active (see `tracefunc::Reinstall`); None on 3.12+.
    pub trace_obj: Option<Py<PyAny>>,
    /// The recorder writes control flow only (3.12+, no values): jumps,
    /// branches, exceptions, frame starts and ends, and where each caller
    /// stands when a callee starts. The reader rebuilds every instruction.
    pub flow: bool,
}

/// Hashes pointer-sized keys (code object addresses) with one multiply.
/// The high half of the product is folded into the low half: the table
/// indexes buckets by the low bits, and those of a product only depend on
/// the low bits of the address, which alignment makes nearly constant (a
/// root set of 20,000 code objects was ~20x slower to fill without it).
#[derive(Default, Clone, Copy)]
pub struct PtrHash;

pub struct PtrHasher(u64);

impl std::hash::BuildHasher for PtrHash {
    type Hasher = PtrHasher;
    fn build_hasher(&self) -> PtrHasher {
        PtrHasher(0)
    }
}

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, v: usize) {
        let h = (v as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

/// The active trace of each thread, keyed by the thread state. Only touched
/// with the GIL held (free-threaded builds are refused), which serialises
/// all access. Looking a thread up by its `PyThreadState` reuses the
/// interpreter's own thread-local read instead of a second one of ours.
pub struct Active {
    slots: std::cell::UnsafeCell<Vec<(usize, &'static RefCell<Option<Box<TraceState>>>)>>,
    last: std::cell::Cell<(usize, Option<&'static RefCell<Option<Box<TraceState>>>>)>,
}

// SAFETY: every access happens with the GIL held (see `with`), so there is
// never concurrent access from two threads.
unsafe impl Sync for Active {}

pub static ACTIVE: Active = Active {
    slots: std::cell::UnsafeCell::new(Vec::new()),
    last: std::cell::Cell::new((0, None)),
};

impl Active {
    /// Runs `f` with this thread's slot. The GIL must be held.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&RefCell<Option<Box<TraceState>>>) -> R) -> R {
        // SAFETY: the caller holds the GIL (all callers are Python calls or
        // interpreter callbacks), so this thread state is live.
        let ts = unsafe { ffi::PyThreadState_Get() };
        self.with_ts(ts, f)
    }

    /// As [`Active::with`], for a caller that already has the thread state
    /// (`PyThreadState_Get()` of the current thread, GIL held). Always
    /// inlined: it is on the per-instruction path.
    #[inline(always)]
    pub fn with_ts<R>(&self, ts: *mut ffi::PyThreadState, f: impl FnOnce(&RefCell<Option<Box<TraceState>>>) -> R) -> R {
        // whatever `f` does to a state, the hot event context no longer holds
        HOT.disarm();
        // SAFETY: the GIL is held (see the callers), so no other thread
        // touches the registry concurrently.
        let ts = ts as usize;
        let (last_ts, last) = self.last.get();
        if let Some(cell) = last.filter(|_| last_ts == ts) {
            return f(cell);
        }
        // SAFETY: as above; the Vec is only mutated here, and the cell
        // references it holds are 'static (leaked, one per thread state).
        let slots = unsafe { &mut *self.slots.get() };
        let cell = match slots.iter().find(|(k, _)| *k == ts) {
            Some((_, c)) => *c,
            None => {
                let c: &'static RefCell<Option<Box<TraceState>>> = Box::leak(Box::new(RefCell::new(None)));
                slots.push((ts, c));
                c
            }
        };
        self.last.set((ts, Some(cell)));
        f(cell)
    }
}

/// The context of the last snapshot event, kept for the next event in the
/// same frame, the common case: the event is then delivered without looking
/// at the trace state at all. Armed by [`snapshot_fast`]; disarmed by every
/// access to a state (`Active::with_ts`), so while it is armed no state has
/// changed since: the pointers in it are live (freeing or moving what they
/// point to takes such an access) and the event would take the same path.
pub struct Hot(std::cell::UnsafeCell<HotEvent>);

#[derive(Clone, Copy)]
pub struct HotEvent {
    /// Whose event it was, 0 when disarmed: the thread state on 3.12+, the
    /// trace function's object on 3.11 (one per active trace, and a trace
    /// function is set per thread).
    key: usize,
    tool: *mut ffi::PyObject,
    iframe: *mut IFrame,
    code: usize,
    info: *const CodeInfo,
    callback: *mut ffi::PyObject,
    null: *mut ffi::PyObject,
    instructions: *mut u64,
}

// SAFETY: only touched with the GIL held (free-threaded builds are refused).
unsafe impl Sync for Hot {}

pub static HOT: Hot = Hot(std::cell::UnsafeCell::new(HotEvent {
    key: 0,
    tool: std::ptr::null_mut(),
    iframe: std::ptr::null_mut(),
    code: 0,
    info: std::ptr::null(),
    callback: std::ptr::null_mut(),
    null: std::ptr::null_mut(),
    instructions: std::ptr::null_mut(),
}));

impl Hot {
    #[inline(always)]
    fn disarm(&self) {
        // SAFETY: the GIL is held (see `Hot`); no reference into the cell
        // outlives a call.
        unsafe { (*self.0.get()).key = 0 };
    }

    #[inline(always)]
    fn arm(&self, ev: HotEvent) {
        // SAFETY: as in `disarm`.
        unsafe { *self.0.get() = ev };
    }

    #[inline(always)]
    fn get(&self) -> HotEvent {
        // SAFETY: as in `disarm`.
        unsafe { *self.0.get() }
    }
}

/// An instruction event in the frame of the last snapshot event, with no
/// state access since (see [`Hot`]): the snapshot to deliver, or None (the
/// caller takes the general path). `key` says whose event it is (see
/// [`HotEvent`]); `tool` is the event's tool id object (NULL on 3.11).
///
/// # Safety
/// The GIL is held; `key` is as in [`HotEvent`]; `iframe` is this thread's current
/// frame (or NULL), stopped before the instruction at byte `offset` of
/// `code`, at an event where the backend's depth source is valid.
#[inline(always)]
pub unsafe fn hot_snapshot(
    key: usize,
    tool: *mut ffi::PyObject,
    iframe: *mut IFrame,
    code: usize,
    offset: usize,
) -> Option<Deliver> {
    let h = HOT.get();
    if h.key != key || h.code != code || h.tool != tool || iframe != h.iframe || iframe.is_null() {
        return None;
    }
    // SAFETY: the GIL is held and `iframe` is this thread's current frame;
    // the hot pointers are live while it is armed (see `Hot`).
    unsafe {
        if layout::iframe_code(iframe) as usize != code {
            return None;
        }
        let info = &*h.info;
        // no allocation: a garbage collection could run a finalizer that
        // ends the trace, and the hot pointers are read after the fill
        let list = fill::<false>(iframe, info, offset, h.null)?;
        *h.instructions += 1;
        Some(call_of(h.callback, list, (*iframe).frame_obj, instr_at(info, offset)))
    }
}

/// The snapshot list of `iframe`, stopped before `offset` in `info`'s code,
/// when its depth has one source (the interpreter's or the analysis's) and
/// is in range, and the frame object exists. None otherwise, with no
/// exception set: the general path then handles the event. Without `ALLOC`
/// only the spare list is used, and no Python code runs.
///
/// # Safety
/// As [`instruction`].
#[inline(always)]
unsafe fn fill<const ALLOC: bool>(iframe: *mut IFrame, info: &CodeInfo, offset: usize, null: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    // SAFETY: forwarded; the backend guarantees the saved depth is valid here.
    let saved = unsafe { layout::saved_depth(iframe, info.nlocalsplus) };
    let depth = match (saved, info.depths.get(offset / 2)) {
        (Some(d), None) => d,
        (None, Some(&a)) => a as isize,
        _ => return None,
    };
    // SAFETY: `iframe` is live (see above).
    if depth < 0 || depth as usize > info.stacksize || unsafe { (*iframe).frame_obj }.is_null() {
        return None;
    }
    // SAFETY: forwarded: depth is the live depth of this frame.
    let list = unsafe {
        if ALLOC {
            stack::snapshot_spare(iframe, info.nlocalsplus, depth as usize, null)
        } else {
            stack::snapshot_in_spare(iframe, info.nlocalsplus, depth as usize, null)
        }
    };
    if list.is_null() {
        // the general path repeats the attempt and reports any error
        // SAFETY: the GIL is held.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    Some(list)
}

/// The `Instr` object of the instruction at `offset` (NULL if none).
#[inline(always)]
fn instr_at(info: &CodeInfo, offset: usize) -> *mut ffi::PyObject {
    info.instrs.get(offset / 2).and_then(|i| i.as_ref()).map_or(std::ptr::null_mut(), |i| i.as_ptr())
}

/// Where a frame stands with respect to the trace.
pub enum Lookup {
    /// The frame is in `frames` at this index.
    Known(usize),
    /// A code we have not prepared yet, a root or one reached by following
    /// calls, at this call depth: Python must prepare it (filter, analysis)
    /// before it can be traced.
    NeedPrepare { depth: u32, root_depth: u32, root: bool },
    Ignore,
}

/// Where the walk down from a frame's caller ended.
enum Walk {
    /// At this entry of `frames`, that many Python frames below.
    Ancestor(usize, u32),
    /// At the trace's boundary (or the bottom of the stack when the trace
    /// has no boundary) without meeting a known frame: the frame is inside
    /// the trace, but no traced frame called it.
    Boundary,
    /// At the bottom of the stack, the boundary never met: the frame is the
    /// boundary or below it, outside the trace (it started before the trace).
    Outside,
    /// Farther than the limit from any known frame.
    TooDeep,
}

#[allow(dead_code)] // `Throw` comes from sys.monitoring (3.12+) only
#[derive(Clone, Copy)]
pub enum EnterKind {
    Start = 0,
    Resume = 1,
    Throw = 2,
}

pub enum ExitKind {
    Return = 0,
    Yield = 1,
    Raise = 2,
    Open = 3,
}

impl TraceState {
    /// # Safety
    /// `iframe` must be a live frame of this thread.
    unsafe fn walk(&self, iframe: *mut IFrame, limit: u32) -> Walk {
        let mut d = 0u32;
        // SAFETY: the frame chain of a live frame on this thread is live.
        let mut p = unsafe { layout::iframe_previous(iframe) };
        while !p.is_null() {
            if p == self.boundary {
                return Walk::Boundary;
            }
            // SAFETY: as above.
            if unsafe { layout::iframe_is_python(p) } {
                d += 1;
                if let Some(i) = self.frames.iter().rposition(|e| e.iframe == p) {
                    return Walk::Ancestor(i, d);
                }
                if d > limit {
                    return Walk::TooDeep;
                }
            }
            // SAFETY: as above.
            p = unsafe { layout::iframe_previous(p) };
        }
        if self.boundary.is_null() { Walk::Boundary } else { Walk::Outside }
    }

    /// Whether `code` was handed to the trace as a root (`on_new_code`).
    fn in_roots(&self, code: usize) -> bool {
        self.roots.as_ref().is_some_and(|r| lock_roots(r).contains_key(&code))
    }

    /// Finds or places the frame. Frames found above it on our stack have
    /// left (by an exception we saw no event for) and are closed.
    ///
    /// # Safety
    /// `iframe` must be a live frame of this thread executing `code`.
    pub unsafe fn lookup(&mut self, iframe: *mut IFrame, code: usize, kind: EnterKind) -> Lookup {
        if let Some(i) = self.frames.iter().rposition(|e| e.iframe == iframe && e.code == code) {
            while self.frames.len() > i + 1 {
                self.exit_top(ExitKind::Raise, None);
            }
            return Lookup::Known(i);
        }
        // Some(root flag) for a prepared code, None for one never seen
        let known = match self.codes.get(&code) {
            Some(Some(info)) => Some(info.root),
            Some(None) => Some(false),
            None => None,
        };
        let root = known == Some(true) || self.in_roots(code);
        if !root && matches!(self.codes.get(&code), Some(None)) {
            return Lookup::Ignore;
        }
        let prepared = matches!(self.codes.get(&code), Some(Some(_)));
        // a root is traced at any distance; a followed call within max_depth
        let limit = if root { u32::MAX } else { self.max_depth };
        // SAFETY: forwarded.
        let (depth, root_depth) = match unsafe { self.walk(iframe, limit) } {
            Walk::Ancestor(i, d) => {
                // frames above the ancestor are no longer on the chain: they left
                while self.frames.len() > i + 1 {
                    self.exit_top(ExitKind::Raise, None);
                }
                let a = &self.frames[i];
                let depth = a.depth + d;
                (depth, if root { depth } else { a.root_depth })
            }
            Walk::Boundary if root => (0, 0),
            _ => return Lookup::Ignore,
        };
        let traced = root || (self.follow && depth.saturating_sub(root_depth) <= self.max_depth);
        if !prepared {
            return if traced { Lookup::NeedPrepare { depth, root_depth, root } } else { Lookup::Ignore };
        }
        // SAFETY: forwarded.
        Lookup::Known(unsafe { self.push(iframe, code, depth, root_depth, traced, kind) })
    }

    /// # Safety
    /// `iframe` must be a live frame of this thread executing `code`.
    pub unsafe fn push(&mut self, iframe: *mut IFrame, code: usize, depth: u32, root_depth: u32, traced: bool, kind: EnterKind) -> usize {
        self.next_serial += 1;
        let serial = self.next_serial;
        if traced {
            let parent = self.frames.iter().rposition(|e| e.traced);
            if let Some(p) = parent.filter(|_| self.flow) {
                // control flow: the caller's instruction in flight, before the callee's records
                // SAFETY: forwarded.
                if let Some(at) = unsafe { in_flight_caller(iframe, &self.frames[p]) } {
                    self.flow_reach(p, at);
                }
            }
            let parent = parent.map_or(0, |p| self.frames[p].serial);
            let id = self.codes.get(&code).and_then(|c| c.as_ref()).map_or(0, |c| c.id);
            if let Sink::Record { writer: Some(w), .. } = &mut self.sink {
                w.push(Rec::new(recorder::ENTER).u(serial).u(id.into()).u(parent).u(depth.into()).u(kind as u64));
            }
            self.current = serial;
        }
        self.frames.push(FrameEntry { iframe, code, depth, root_depth, serial, traced });
        self.frames.len() - 1
    }

    pub fn exit_top(&mut self, kind: ExitKind, value: Option<*mut ffi::PyObject>) {
        let Some(e) = self.frames.pop() else { return };
        if !e.traced {
            return;
        }
        if let Sink::Record { writer: Some(w), reprs, max_repr, .. } = &mut self.sink {
            let mut r = Rec::new(recorder::EXIT);
            r.u(e.serial).u(kind as u64);
            match value {
                Some(v) if *reprs != ReprMode::None && !v.is_null() => {
                    let mut s = String::new();
                    // SAFETY: `v` is the live return/yield value the
                    // interpreter passed to the event.
                    unsafe { stack::obj_repr(v, *reprs, *max_repr, 2, &mut s) };
                    r.u(1).s(&s);
                }
                _ => {
                    r.u(0);
                }
            }
            w.push(&r);
        }
    }

    /// A frame left (return, yield, exception).
    pub fn exit(&mut self, iframe: *mut IFrame, kind: ExitKind, value: Option<*mut ffi::PyObject>) {
        if let Some(i) = self.frames.iter().rposition(|e| e.iframe == iframe) {
            while self.frames.len() > i + 1 {
                self.exit_top(ExitKind::Raise, None);
            }
            self.exit_top(kind, value);
        }
    }

    #[inline]
    pub fn code_info(&self, code: usize) -> Option<&CodeInfo> {
        let (last, info) = self.last_code.get();
        if last == code {
            // SAFETY: the pointer was taken from a boxed entry of `codes`,
            // which is never removed nor replaced while the state lives
            // (register_code only inserts codes that are not present).
            return Some(unsafe { &*info });
        }
        let found = self.codes.get(&code).and_then(|c| c.as_deref());
        if let Some(info) = found {
            self.last_code.set((code, info as *const CodeInfo));
        }
        found
    }

    pub fn set_error(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(pyo3::exceptions::PyRuntimeError::new_err(msg));
        }
        self.stopped = true;
    }
}

/// The instruction (byte offset) in flight in `caller`, a frame of the
/// trace, if it is still on the chain of callers of `iframe` (entries of
/// `frames` that left without an event may be dead: only a frame found on
/// the live chain is read).
///
/// # Safety
/// `iframe` must be a live frame of this thread.
unsafe fn in_flight_caller(iframe: *mut IFrame, caller: &FrameEntry) -> Option<usize> {
    // SAFETY: the chain of callers of a live frame on this thread is live.
    unsafe {
        let mut p = layout::iframe_previous(iframe);
        while !p.is_null() {
            if p == caller.iframe {
                if layout::iframe_code(p) as usize != caller.code {
                    return None;
                }
                return layout::lasti(p);
            }
            p = layout::iframe_previous(p);
        }
        None
    }
}

/// A control-flow event of the recorder (byte offsets).
#[cfg_attr(not(Py_3_12), allow(dead_code))]
pub enum Flow {
    /// JUMP or BRANCH (how 0), BRANCH_LEFT (1), BRANCH_RIGHT (2).
    Jump { how: u8, from: usize, to: usize },
    Raise(usize),
    Reraise(usize),
    Handled(usize),
}

#[cfg_attr(not(Py_3_12), allow(dead_code))]
impl TraceState {
    /// The writer of a control-flow recording.
    fn flow_writer(&mut self) -> Option<&mut Writer> {
        match &mut self.sink {
            Sink::Record { writer: Some(w), .. } if self.flow => Some(w),
            _ => None,
        }
    }

    /// Where frame `frames[i]` starts or resumes: about to run `offset`, or
    /// (a throw into a generator, a frame adopted mid-call) in flight there.
    pub fn flow_begin(&mut self, i: usize, in_flight: bool, offset: usize) {
        let Some(e) = self.frames.get(i).filter(|e| e.traced) else { return };
        let serial = e.serial;
        if let Some(w) = self.flow_writer() {
            w.push(Rec::new(recorder::BEGIN).u(serial).u(in_flight.into()).u(offset as u64 / 2));
        }
    }

    /// Frame `frames[i]` ran up to the instruction at `offset` (it returns,
    /// yields or is left in flight there).
    pub fn flow_reach(&mut self, i: usize, offset: usize) {
        let Some(e) = self.frames.get(i).filter(|e| e.traced) else { return };
        let serial = e.serial;
        if let Some(w) = self.flow_writer() {
            w.push(Rec::new(recorder::REACH).u(serial).u(offset as u64 / 2));
        }
    }

    /// A jump, branch or exception event in the current frame.
    ///
    /// # Safety
    /// `iframe` must be the current frame of this thread, executing `code`.
    pub unsafe fn flow(&mut self, iframe: *mut IFrame, code: usize, ev: Flow) {
        // A raise is recorded at the instruction the frame is in: the
        // event's offset can name a cache entry, or (3.13, an exception out
        // of a callee) the code unit before the call. (Not for RERAISE: it
        // restores the frame's position to where the exception first rose.)
        let ev = match ev {
            // SAFETY: `iframe` is the live current frame (see above).
            Flow::Raise(at) => Flow::Raise(unsafe { layout::lasti(iframe) }.unwrap_or(at)),
            other => other,
        };
        let at = match ev {
            Flow::Jump { from, .. } => from,
            Flow::Raise(at) | Flow::Reraise(at) | Flow::Handled(at) => at,
        };
        let i = match self.frames.last() {
            Some(e) if e.iframe == iframe && e.code == code => self.frames.len() - 1,
            _ => {
                // only codes the trace prepared (local events are on for them;
                // raise events are global and come from every frame)
                if self.code_info(code).is_none() {
                    return;
                }
                let before = self.next_serial;
                // SAFETY: forwarded.
                match unsafe { self.lookup(iframe, code, EnterKind::Resume) } {
                    Lookup::Known(i) => {
                        if self.next_serial != before {
                            // running before it was traced: recorded from here on
                            self.flow_begin(i, false, at);
                        }
                        i
                    }
                    _ => return,
                }
            }
        };
        let e = &self.frames[i];
        if !e.traced {
            return;
        }
        let serial = e.serial;
        let current = &mut self.current;
        let Sink::Record { writer: Some(w), .. } = &mut self.sink else { return };
        if !self.flow || !w.room() {
            return;
        }
        w.events += 1;
        if *current != serial {
            *current = serial;
            w.byte(recorder::SWITCH);
            w.u(serial);
        }
        match ev {
            Flow::Jump { how, from, to } => {
                w.byte(recorder::JUMP);
                w.byte(how);
                w.u(from as u64 / 2);
                w.u(to as u64 / 2);
            }
            Flow::Raise(at) | Flow::Reraise(at) => {
                w.byte(recorder::RAISE);
                w.u(at as u64 / 2);
            }
            Flow::Handled(at) => {
                w.byte(recorder::HANDLED);
                w.u(at as u64 / 2);
            }
        }
        w.end();
    }
}

/// What to do after an instruction event was handled under the borrow.
pub enum Deliver {
    Nothing,
    /// Call `callback(stack, frame, instr)`. The list is a new reference.
    /// The callback and the instruction are borrowed from the trace state,
    /// whose release waits while a callback runs (see [`DELIVERING`]). The
    /// frame is borrowed from the running interpreter frame, which holds it
    /// until it finishes (it cannot finish while it waits for the event to
    /// return).
    Call { callback: *mut ffi::PyObject, args: [*mut ffi::PyObject; 3] },
    /// The frame runs a code that Python must prepare first (a root that
    /// was running when the trace started, 3.12+); then the event is
    /// handled again.
    #[cfg_attr(not(Py_3_12), allow(dead_code))]
    Prepare { depth: u32, root_depth: u32, root: bool },
}

/// The arguments of a callback call (see [`Deliver::Call`]): the callback
/// and the instruction (None where there is none) of a trace state.
///
/// # Safety
/// The GIL is held; `list` is a new reference and `frame` the current
/// frame's frame object; `cb` and `instr` are held by a live trace state.
#[inline(always)]
unsafe fn call_of(cb: *mut ffi::PyObject, list: *mut ffi::PyObject, frame: *mut ffi::PyObject, instr: *mut ffi::PyObject) -> Deliver {
    // SAFETY: as documented; None is immortal or a static object.
    let instr = if instr.is_null() { unsafe { ffi::Py_None() } } else { instr };
    Deliver::Call { callback: cb, args: [list, frame, instr] }
}

/// How many callbacks are running (on any thread: one may release the GIL),
/// and the parts of trace states dropped meanwhile. A callback and the
/// `Instr` object it was given are borrowed from their trace state (two
/// references fewer to take and release per event), so a state dropped
/// while a callback runs (the callback ended its own trace) keeps them
/// here until no callback runs.
pub struct Delivering {
    depth: std::cell::Cell<u32>,
    deferred: std::cell::UnsafeCell<Vec<(Sink, CodeMap)>>,
}

// SAFETY: only touched with the GIL held (free-threaded builds are refused).
unsafe impl Sync for Delivering {}

pub static DELIVERING: Delivering = Delivering {
    depth: std::cell::Cell::new(0),
    deferred: std::cell::UnsafeCell::new(Vec::new()),
};

impl Delivering {
    /// Releases what was deferred, once no callback runs.
    #[cold]
    #[inline(never)]
    fn release(&self) {
        loop {
            // SAFETY: the GIL is held; the Vec is taken out before anything
            // is dropped (a drop may run Python code that defers more).
            let parts = std::mem::take(unsafe { &mut *self.deferred.get() });
            if parts.is_empty() {
                return;
            }
            // inside pyo3's accounting of the GIL: otherwise dropping a
            // `Py` only queues its release for pyo3's next entry. That is
            // still what happens while the interpreter finalizes, where pyo3
            // refuses to attach (and `attach` would panic).
            let mut parts = Some(parts);
            let _ = Python::try_attach(|_| drop(parts.take()));
            drop(parts);
        }
    }

    #[inline(always)]
    fn has_deferred(&self) -> bool {
        // SAFETY: the GIL is held; a read of the length only.
        unsafe { !(*self.deferred.get()).is_empty() }
    }
}

impl Drop for TraceState {
    fn drop(&mut self) {
        if DELIVERING.depth.get() != 0 {
            let sink = std::mem::replace(
                &mut self.sink,
                Sink::Record { writer: None, reprs: ReprMode::None, max_repr: 0, max_values: 0 },
            );
            let codes = std::mem::take(&mut self.codes);
            // SAFETY: the GIL is held (a state is only dropped with it).
            unsafe { (*DELIVERING.deferred.get()).push((sink, codes)) };
        }
    }
}

/// The common case of an instruction event with a callback, taken before
/// the general path ([`instruction`]): the frame is the trace's innermost
/// one, its code the last one looked up, the depth has one source (no
/// check against the analysis), the frame object exists. Anything else,
/// None: the general path handles the event, with the same result. Arms
/// [`HOT`] for the next event in the same frame.
///
/// # Safety
/// As [`instruction`], for a trace that is not stopped; `key` says whose
/// event it is (see [`HotEvent`]: this thread's state, or on 3.11 the
/// state's `trace_obj`) and `tool` is the event's tool id object (NULL on 3.11).
#[inline(always)]
pub unsafe fn snapshot_fast(
    st: &mut TraceState,
    key: usize,
    tool: *mut ffi::PyObject,
    iframe: *mut IFrame,
    code: usize,
    offset: usize,
) -> Option<Deliver> {
    let e = st.frames.last()?;
    if e.iframe != iframe || e.code != code || !e.traced {
        return None;
    }
    let Sink::Callback(cb) = &st.sink else { return None };
    let (last, info) = st.last_code.get();
    if last != code {
        return None;
    }
    // SAFETY: see `code_info`: the entry is boxed and never removed.
    let info = unsafe { &*info };
    // SAFETY: forwarded.
    let list = unsafe { fill::<true>(iframe, info, offset, st.null.as_ptr())? };
    st.instructions += 1;
    let callback = cb.as_ptr();
    HOT.arm(HotEvent {
        key,
        tool,
        iframe,
        code,
        info,
        callback,
        null: st.null.as_ptr(),
        instructions: &mut st.instructions,
    });
    // SAFETY: the GIL is held; the frame object exists (see `fill`).
    Some(unsafe { call_of(callback, list, (*iframe).frame_obj, instr_at(info, offset)) })
}

/// The instruction event, shared by both backends.
///
/// # Safety
/// `iframe` must be the frame executing `code` on this thread (the current
/// one), stopped before the instruction at byte `offset`, at an event where
/// the backend's depth source is valid.
pub unsafe fn instruction(
    st: &mut TraceState,
    iframe: *mut IFrame,
    code: usize,
    offset: usize,
) -> Deliver {
    let entry = match st.frames.last() {
        Some(e) if e.iframe == iframe && e.code == code => st.frames.len() - 1,
        // SAFETY: forwarded.
        _ => match unsafe { st.lookup(iframe, code, EnterKind::Resume) } {
            Lookup::Known(i) => i,
            Lookup::NeedPrepare { depth, root_depth, root } => return Deliver::Prepare { depth, root_depth, root },
            Lookup::Ignore => return Deliver::Nothing,
        },
    };
    let (traced, serial) = (st.frames[entry].traced, st.frames[entry].serial);
    if !traced {
        return Deliver::Nothing;
    }
    let Some(info) = st.code_info(code) else { return Deliver::Nothing };
    let idx = offset / 2;
    let analysed = info.depths.get(idx).copied().unwrap_or(-1);
    let (nlocalsplus, stacksize, id) = (info.nlocalsplus, info.stacksize, info.id);
    let instr = instr_at(info, offset);
    // SAFETY: forwarded; the backend guarantees the saved depth is valid here.
    let saved = unsafe { layout::saved_depth(iframe, nlocalsplus) };
    let depth = match saved {
        Some(d) => {
            if analysed >= 0 {
                st.checked += 1;
                if i64::from(analysed) != d as i64 {
                    st.mismatches.push((id, offset as u32, analysed, d as i64));
                }
            }
            d
        }
        None => analysed as isize,
    };
    if depth < 0 || depth as usize > stacksize {
        let name = code_name(code);
        st.set_error(format!(
            "spyglass.opcodes: no valid stack depth for {name} at offset {offset} \
             (got {depth}, stack size {stacksize}); the trace was stopped without reading the stack"
        ));
        return Deliver::Nothing;
    }
    let depth = depth as usize;
    st.instructions += 1;
    match &mut st.sink {
        Sink::Callback(cb) => {
            // SAFETY: forwarded: depth is the live depth of this frame.
            let list = unsafe { stack::snapshot_spare(iframe, nlocalsplus, depth, st.null.as_ptr()) };
            if list.is_null() {
                // SAFETY: snapshot set an exception.
                let err = PyErr::take(unsafe { Python::assume_attached() });
                st.error = err;
                st.stopped = true;
                return Deliver::Nothing;
            }
            // SAFETY: the GIL is held; `iframe` is the current frame, so
            // its frame object is the one PyEval_GetFrame would return.
            let frame = unsafe {
                #[cfg(Py_3_12)]
                let f = layout::frame_object(iframe);
                #[cfg(not(Py_3_12))]
                let f = (*iframe).frame_obj;
                f
            };
            if frame.is_null() {
                // SAFETY: creating the frame object failed with an exception set.
                unsafe { ffi::Py_DECREF(list) };
                let err = PyErr::take(unsafe { Python::assume_attached() });
                st.error = err;
                st.stopped = true;
                return Deliver::Nothing;
            }
            // SAFETY: the GIL is held; `frame` is the current frame's own.
            unsafe { call_of(cb.as_ptr(), list, frame, instr) }
        }
        Sink::Record { writer: Some(w), reprs, max_repr, max_values } => {
            if !w.room() {
                return Deliver::Nothing;
            }
            w.events += 1;
            if st.current != serial {
                st.current = serial;
                w.byte(recorder::SWITCH);
                w.u(serial);
            }
            w.byte(recorder::INSTR);
            w.u((offset / 2) as u64);
            w.u(depth as u64);
            if *reprs == ReprMode::None {
                w.u(0);
            } else {
                let n = depth.min(*max_values);
                w.u(n as u64);
                let mut s = String::new();
                for i in depth - n..depth {
                    s.clear();
                    // SAFETY: forwarded: slot i is below the live depth.
                    unsafe {
                        let slot: Slot = layout::slot(iframe, nlocalsplus + i);
                        stack::slot_repr(slot, *reprs, *max_repr, &mut s);
                    }
                    w.s(&s);
                }
            }
            w.end();
            let _ = id;
            Deliver::Nothing
        }
        Sink::Record { writer: None, .. } => Deliver::Nothing,
    }
}

fn code_name(code: usize) -> String {
    // SAFETY: `code` is a live code object (held by CodeInfo); co_qualname's
    // getter is C code.
    unsafe {
        let q = ffi::PyObject_GetAttrString(code as *mut ffi::PyObject, c"co_qualname".as_ptr());
        if q.is_null() {
            ffi::PyErr_Clear();
            return "<code>".into();
        }
        let mut n = 0;
        let p = ffi::PyUnicode_AsUTF8AndSize(q, &mut n);
        let s = if p.is_null() {
            ffi::PyErr_Clear();
            "<code>".into()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned()
        };
        ffi::Py_DECREF(q);
        s
    }
}

/// `callback(*args)`. A Python function is called through its own
/// vectorcall slot: `PyObject_Vectorcall` would add a thread state lookup
/// and a result check that only matters for C callables (a Python function
/// returns NULL exactly when it raised). The spare slot before the
/// arguments lets a bound method prepend `self` without copying.
///
/// # Safety
/// The GIL must be held; the callback and the arguments are live.
#[inline(always)]
unsafe fn call3(callback: *mut ffi::PyObject, args: [*mut ffi::PyObject; 3]) -> *mut ffi::PyObject {
    let mut argv = [std::ptr::null_mut(), args[0], args[1], args[2]];
    let nargsf = 3 | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET;
    // SAFETY: `argv[1..]` holds the three arguments and `argv[0]` may be
    // overwritten by the callee (PY_VECTORCALL_ARGUMENTS_OFFSET). Function
    // objects support vectorcall (`tp_vectorcall_offset` names the slot of
    // the object that holds the function pointer, set for every function).
    unsafe {
        let argp = argv.as_mut_ptr().add(1);
        let tp = ffi::Py_TYPE(callback);
        if tp == &raw mut ffi::PyFunction_Type {
            let off = (*tp).tp_vectorcall_offset;
            if off > 0 {
                let slot = (callback as *const u8).offset(off) as *const Option<ffi::vectorcallfunc>;
                if let Some(f) = *slot {
                    return f(callback, argp, nargsf, std::ptr::null_mut());
                }
            }
        }
        ffi::PyObject_Vectorcall(callback, argp, nargsf, std::ptr::null_mut())
    }
}

/// Calls the user's callback outside any borrow of the state; on error the
/// trace stops and the exception is kept for `Trace` to re-raise.
/// Returns false when the callback raised (the exception is left set so that
/// it propagates in the traced frame).
///
/// # Safety
/// The GIL must be held; `d` holds the references documented at
/// [`Deliver::Call`], taken from a live state with no Python code run
/// since; the list's is released here.
#[inline(always)]
pub unsafe fn deliver(d: Deliver) -> bool {
    let Deliver::Call { callback, args } = d else { return true };
    // SAFETY: the GIL is held and the references are as documented: the
    // borrowed ones stay alive during the call (see `Delivering`).
    unsafe {
        let depth = &DELIVERING.depth;
        depth.set(depth.get() + 1);
        let r = call3(callback, args);
        depth.set(depth.get() - 1);
        if depth.get() == 0 && DELIVERING.has_deferred() {
            DELIVERING.release();
        }
        let list = args[0];
        // the result first: it may hold the list
        let failed = r.is_null();
        if !failed {
            ffi::Py_DECREF(r);
        }
        stack::recycle_spare(list);
        if failed {
            callback_failed();
            return false;
        }
        true
    }
}

/// The callback raised (the exception is set). Asynchronous exceptions
/// (KeyboardInterrupt from a signal handler that ran inside the callback,
/// SystemExit) and a RecursionError from calling the callback one frame
/// deeper are raised in the traced code, where they would have surfaced
/// without the trace; the trace goes on. Anything else stops the trace and
/// is kept for `Trace` to re-raise. The exception stays set.
///
/// # Safety
/// The GIL must be held.
#[cold]
#[inline(never)]
unsafe fn callback_failed() {
    // SAFETY: the GIL is held (see above).
    let py = unsafe { Python::assume_attached() };
    let err = PyErr::fetch(py);
    let value = err.value(py);
    let not_exception = !value.is_instance_of::<pyo3::exceptions::PyException>();
    let recursion = value.is_instance_of::<pyo3::exceptions::PyRecursionError>();
    if !(not_exception || recursion) {
        let keep = err.clone_ref(py);
        ACTIVE.with(|c| {
            if let Ok(mut g) = c.try_borrow_mut() {
                if let Some(st) = g.as_mut() {
                    if st.error.is_none() {
                        st.error = Some(keep);
                    }
                    st.stopped = true;
                }
            }
        });
    }
    err.restore(py);
}
