//! A small pickle VM (protocols 2–5) for what `torch.save` emits. Nothing is imported or run:
//! a global stays a name, and calling it (`REDUCE`, `NEWOBJ`) records the call for the caller
//! to interpret ([`super::pt`] rebuilds tensors from it); only `collections.OrderedDict` is
//! built, as a dict. Objects live in an arena and are referred to by index, so memo sharing
//! matches Python and nothing recurses (hostile nesting cannot overflow the stack).

use std::collections::HashMap;

use super::zip::Cursor;
use crate::error::{Error, Result};

/// Index of an object in the arena of a [`Pickle`].
pub(crate) type Id = usize;

/// Limits that keep a hostile pickle from exhausting memory.
const MAX_OBJS: usize = 1 << 23;
const MAX_MARKS: usize = 1 << 20;

/// One unpickled object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64.
    BigInt,
    Float(f64),
    Str(String),
    Bytes(usize),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Dict or `OrderedDict`, items in insertion order.
    Dict(Vec<(Id, Id)>),
    Global(String, String),
    /// `callable(*args)`, not evaluated: (callable, args).
    Call(Id, Id),
    /// `persistent_load(pid)`, not evaluated: the pid.
    Persistent(Id),
}

/// The result of running a pickle: the object arena and the root object.
pub(crate) struct Pickle {
    objs: Vec<Obj>,
    /// The object the pickle returns.
    pub(crate) root: Id,
}

impl Pickle {
    /// The object `id` (`Obj::None` for an out-of-range id, which the VM never produces).
    pub(crate) fn get(&self, id: Id) -> &Obj {
        self.objs.get(id).unwrap_or(&Obj::None)
    }

    /// The string value of `id`, if it is a string.
    pub(crate) fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `id` if it is a non-negative integer.
    pub(crate) fn usize(&self, id: Id) -> Option<usize> {
        match self.get(id) {
            Obj::Int(v) => usize::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub(crate) fn items(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Obj::Tuple(items) | Obj::List(items) => Some(items),
            _ => None,
        }
    }

    /// `(module, name)` of a global.
    pub(crate) fn global(&self, id: Id) -> Option<(&str, &str)> {
        match self.get(id) {
            Obj::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }
}

fn bad(msg: String) -> Error {
    Error::Weights(format!("data.pkl: {msg}"))
}

/// Consecutive (key, value) pairs; an odd last item is dropped.
fn pairs(items: &[Id]) -> impl Iterator<Item = (Id, Id)> + '_ {
    items.chunks_exact(2).filter_map(|p| match *p {
        [k, v] => Some((k, v)),
        _ => None,
    })
}

struct Vm<'a> {
    c: Cursor<'a>,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

/// Runs the pickle program in `buf` and returns its result.
pub(crate) fn load(buf: &[u8]) -> Result<Pickle> {
    let c = Cursor::new(buf, 0, "data.pkl");
    let mut vm = Vm { c, objs: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    loop {
        let at = vm.c.pos();
        match vm.c.u8()? {
            b'.' => return Ok(Pickle { root: vm.pop()?, objs: vm.objs }),
            op => vm.step(op, at)?,
        }
    }
}

impl Vm<'_> {
    fn push(&mut self, o: Obj) -> Result<()> {
        if self.objs.len() >= MAX_OBJS {
            return Err(bad(format!("more than {MAX_OBJS} objects")));
        }
        self.objs.push(o);
        self.push_id(self.objs.len() - 1)
    }

    fn push_id(&mut self, id: Id) -> Result<()> {
        if self.stack.len() >= MAX_OBJS {
            return Err(bad(format!("stack deeper than {MAX_OBJS}")));
        }
        self.stack.push(id);
        Ok(())
    }

    /// The top of the stack above the innermost MARK.
    fn top(&self) -> Result<Id> {
        let fence = self.marks.last().copied().unwrap_or(0);
        let top = self.stack.last().copied().filter(|_| self.stack.len() > fence);
        top.ok_or_else(|| bad(format!("stack underflow at offset {}", self.c.pos())))
    }

    fn pop(&mut self) -> Result<Id> {
        let top = self.top()?;
        self.stack.pop();
        Ok(top)
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let mark = self.marks.pop();
        let mark = mark.ok_or_else(|| bad(format!("no MARK before offset {}", self.c.pos())))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn top_mut(&mut self) -> Result<&mut Obj> {
        let id = self.top()?;
        self.objs.get_mut(id).ok_or_else(|| bad("bad object id".into()))
    }

    /// A length prefix of 1, 4 (u32) or 8 bytes.
    fn len(&mut self, width: u8) -> Result<usize> {
        let n: u64 = match width { 1 => self.c.u8()?.into(), 4 => self.c.u32()?.into(), _ => self.c.u64()? };
        usize::try_from(n).map_err(|_| bad(format!("length {n} too large")))
    }

    fn line(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            match self.c.u8()? {
                b'\n' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b => out.push(b),
            }
        }
    }

    fn step(&mut self, op: u8, at: usize) -> Result<()> {
        match op {
            0x80 => {
                let proto = self.c.u8()?;
                if proto > 5 {
                    return Err(bad(format!("unsupported pickle protocol {proto}")));
                }
            }
            0x95 => drop(self.c.u64()?), // FRAME: framing is ignored
            b'(' => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(bad("too many nested MARKs".into()));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => drop(self.pop()?),      // POP
            b'1' => drop(self.pop_mark()?), // POP_MARK
            b'2' => self.push_id(self.top()?)?, // DUP
            b'}' => self.push(Obj::Dict(Vec::new()))?,
            b']' => self.push(Obj::List(Vec::new()))?,
            b')' => self.push(Obj::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items))?;
            }
            0x85..=0x87 => { // TUPLE1, TUPLE2, TUPLE3
                let mut items = Vec::new();
                for _ in 0..(op - 0x84) {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Obj::Tuple(items))?;
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Obj::List(items))?;
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Obj::Dict(pairs(&items).collect()))?;
            }
            b'a' | b'e' => { // APPEND, APPENDS (onto anything but a list: ignored)
                let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                if let Obj::List(list) = self.top_mut()? {
                    list.extend(items);
                }
            }
            b's' | b'u' => { // SETITEM, SETITEMS (onto anything but a dict: ignored)
                let items = if op == b's' {
                    let v = self.pop()?;
                    vec![self.pop()?, v]
                } else {
                    self.pop_mark()?
                };
                if let Obj::Dict(dict) = self.top_mut()? {
                    dict.extend(pairs(&items));
                }
            }
            b'q' | b'r' | 0x94 => { // BINPUT, LONG_BINPUT, MEMOIZE
                let key = match op {
                    b'q' => self.c.u8()?.into(),
                    b'r' => self.c.u32()?.into(),
                    _ => self.memo.len() as u64,
                };
                if self.memo.len() >= MAX_OBJS && !self.memo.contains_key(&key) {
                    return Err(bad(format!("more than {MAX_OBJS} memo entries")));
                }
                let top = self.top()?;
                self.memo.insert(key, top);
            }
            b'h' | b'j' => { // BINGET, LONG_BINGET
                let key: u64 = if op == b'h' { self.c.u8()?.into() } else { self.c.u32()?.into() };
                let id = self.memo.get(&key).copied();
                self.push_id(id.ok_or_else(|| bad(format!("memo key {key} not found at offset {at}")))?)?;
            }
            b'J' | b'K' | b'M' => { // BININT, BININT1, BININT2
                let v = match op {
                    b'J' => i32::from_le_bytes(self.c.array()?).into(),
                    b'K' => self.c.u8()?.into(),
                    _ => self.c.u16()?.into(),
                };
                self.push(Obj::Int(v))?;
            }
            0x8a | 0x8b => { // LONG1, LONG4: little-endian two's complement
                let n = self.len(if op == 0x8a { 1 } else { 4 })?;
                let bytes = self.c.take(n)?;
                let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0 };
                let mut le = [fill; 8];
                le.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
                self.push(if n <= 8 { Obj::Int(i64::from_le_bytes(le)) } else { Obj::BigInt })?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.c.array()?);
                self.push(Obj::Float(v))?;
            }
            0x88 => self.push(Obj::Bool(true))?,
            0x89 => self.push(Obj::Bool(false))?,
            b'N' => self.push(Obj::None)?,
            b'X' | 0x8c | 0x8d | b'T' | b'U' => { // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
                let n = self.len(match op { b'X' | b'T' => 4, 0x8d => 8, _ => 1 })?;
                let s = String::from_utf8_lossy(self.c.take(n)?).into_owned();
                self.push(Obj::Str(s))?;
            }
            b'B' | b'C' | 0x8e => { // BINBYTES, SHORT_BINBYTES, BINBYTES8
                let n = self.len(match op { b'B' => 4, b'C' => 1, _ => 8 })?;
                self.c.take(n)?;
                self.push(Obj::Bytes(n))?;
            }
            b'c' => {
                let (module, name) = (self.line()?, self.line()?);
                self.push(Obj::Global(module, name))?;
            }
            0x93 => { // STACK_GLOBAL
                let (name, module) = (self.pop()?, self.pop()?);
                let g = match (self.objs.get(module), self.objs.get(name)) {
                    (Some(Obj::Str(m)), Some(Obj::Str(n))) => Obj::Global(m.clone(), n.clone()),
                    _ => return Err(bad(format!("STACK_GLOBAL needs two strings at offset {at}"))),
                };
                self.push(g)?;
            }
            b'R' | 0x81 | 0x92 => { // REDUCE, NEWOBJ, NEWOBJ_EX (whose kwargs are dropped)
                if op == 0x92 {
                    self.pop()?;
                }
                let (args, func) = (self.pop()?, self.pop()?);
                let ordered_dict = matches!(self.objs.get(func),
                    Some(Obj::Global(m, n)) if m == "collections" && n == "OrderedDict");
                self.push(if ordered_dict { Obj::Dict(Vec::new()) } else { Obj::Call(func, args) })?;
            }
            b'b' => drop(self.pop()?), // BUILD: the state (e.g. `_metadata`) is ignored
            b'Q' => { // BINPERSID
                let pid = self.pop()?;
                self.push(Obj::Persistent(pid))?;
            }
            _ => return Err(bad(format!("unsupported pickle opcode 0x{op:02x} at offset {at}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Python-like rendering (depth-limited, so shared or cyclic objects are fine).
    fn show(p: &Pickle, id: Id, depth: usize) -> String {
        let all = |ids: &[Id]| ids.iter().map(|&i| show(p, i, depth + 1)).collect::<Vec<_>>().join(", ");
        if depth > 8 {
            return "...".into();
        }
        match p.get(id) {
            Obj::None => "None".into(),
            Obj::Bool(b) => (if *b { "True" } else { "False" }).into(),
            Obj::Int(v) => v.to_string(),
            Obj::BigInt => "bigint".into(),
            Obj::Float(v) => format!("{v:?}"),
            Obj::Str(s) => format!("{s:?}"),
            Obj::Bytes(n) => format!("bytes{n}"),
            Obj::Tuple(t) => format!("({})", all(t)),
            Obj::List(l) => format!("[{}]", all(l)),
            Obj::Dict(d) => {
                let items: Vec<_> = d.iter().map(|&(k, v)| format!("{}: {}", show(p, k, depth + 1), show(p, v, depth + 1))).collect();
                format!("{{{}}}", items.join(", "))
            }
            Obj::Global(m, n) => format!("{m}.{n}"),
            Obj::Call(f, a) => format!("{}{}", show(p, *f, depth + 1), show(p, *a, depth + 1)),
            Obj::Persistent(pid) => format!("pid{}", show(p, *pid, depth + 1)),
        }
    }

    /// `pickle.dumps(obj, protocol=P)` of CPython 3 for
    /// `{'a': [1, -2, 300, 70000, 2**40, -2**63, 2.5, None, True, False], 'b': (b'xy', 'é', ()),
    ///   'c': ((1,), (1, 2), (1, 2, 3)), 'x': l, 'y': l, 'o': OrderedDict(k=1), 'big': 2**80}`
    /// with `l = [1]` (shared).
    const PROTO2: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89eX\x01\x00\x00\x00bq\x03c_codecs\nencode\nq\x04X\x02\x00\x00\x00xyq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08X\x02\x00\x00\x00\xc3\xa9q\t)\x87q\nX\x01\x00\x00\x00cq\x0bK\x01\x85q\x0cK\x01K\x02\x86q\rK\x01K\x02K\x03\x87q\x0e\x87q\x0fX\x01\x00\x00\x00xq\x10]q\x11K\x01aX\x01\x00\x00\x00yq\x12h\x11X\x01\x00\x00\x00oq\x13ccollections\nOrderedDict\nq\x14)Rq\x15X\x01\x00\x00\x00kq\x16K\x01sX\x03\x00\x00\x00bigq\x17\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01u.";
    const PROTO5: &[u8] = b"\x80\x05\x95\xb1\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89e\x8c\x01b\x94C\x02xy\x94\x8c\x02\xc3\xa9\x94)\x87\x94\x8c\x01c\x94K\x01\x85\x94K\x01K\x02\x86\x94K\x01K\x02K\x03\x87\x94\x87\x94\x8c\x01x\x94]\x94K\x01a\x8c\x01y\x94h\r\x8c\x01o\x94\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94\x8c\x01k\x94K\x01s\x8c\x03big\x94\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01u.";

    #[test]
    fn cpython_pickles() {
        let tail = r#""c": ((1), (1, 2), (1, 2, 3)), "x": [1], "y": [1], "o": {"k": 1}, "big": bigint}"#;
        let head = "{\"a\": [1, -2, 300, 70000, 1099511627776, -9223372036854775808, 2.5, None, True, False], \"b\": (";
        let p2 = load(PROTO2).unwrap();
        let b2 = "_codecs.encode(\"xy\", \"latin1\"), \"é\", ())";
        assert_eq!(show(&p2, p2.root, 0), format!("{head}{b2}, {tail}"));
        let p5 = load(PROTO5).unwrap();
        assert_eq!(show(&p5, p5.root, 0), format!("{head}bytes2, \"é\", ()), {tail}"));
    }

    #[test]
    fn torch_opcodes() {
        // ctorch._utils\n_rebuild_tensor_v2\n (('storage', torch.FloatStorage, '0', 'cpu', 4) Q ...)
        let pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000K\x04tQK\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR}b.";
        let p = load(pkl).unwrap();
        let want = "torch._utils._rebuild_tensor_v2(pid(\"storage\", torch.FloatStorage, \"0\", 4), 0, (4), (1), False, {})";
        assert_eq!(show(&p, p.root, 0), want);
    }

    #[test]
    fn errors_never_panics() {
        for good in [PROTO2, PROTO5] {
            for cut in 0..good.len() {
                assert!(matches!(load(&good[..cut]), Err(Error::Weights(_))), "cut {cut}");
            }
            for i in 0..good.len() {
                let mut b = good.to_vec();
                b[i] = b[i].wrapping_add(0x41);
                let _ = load(&b);
            }
        }
        let err = |b: &[u8]| load(b).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(b"\x80\x02\xff.").contains("opcode 0xff at offset 2"));
        assert!(err(b"\x80\x06}.").contains("protocol 6"));
        assert!(err(b"\x80\x02h\x05.").contains("memo key 5"));
        assert!(err(b"\x80\x02(.").contains("underflow"));
        assert!(err(b"\x80\x02K\x01(0.").contains("underflow"));
        assert!(err(b"\x80\x02t.").contains("MARK"));
        assert!(err(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.").contains("truncated"));
        assert!(err(b"\x80\x02X\xff\xff\xff\xff").contains("truncated"));
        assert!(err(b"\x80\x02K\x01K\x02\x93.").contains("STACK_GLOBAL"));
    }
}
