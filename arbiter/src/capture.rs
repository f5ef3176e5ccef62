//! The capture log: every mirrored invocation (its function, inputs, the
//! primary's outcome, the handles it parted with), written off the
//! caller's path, so that `ddl replay` can run last week's traffic against
//! a fixed build.
//!
//! # Format (version 1)
//!
//! ```text
//! "DDLCAPT\n"                      8 bytes
//! format version                   u32 LE (1)
//! header length, header CRC-32     u32 LE each
//! header                           JSON (`Header`): both builds, the config
//! zstd stream                      one or more frames, holding records:
//!     payload length, CRC-32       u32 LE each
//!     payload                      postcard (`Entry`)
//! ```
//!
//! zstd checks a frame only at its end; every record carries its own
//! CRC-32, so a damaged record is found where it is. The writer flushes the
//! zstd stream whenever it has nothing more to write: a process killed at
//! any moment (SIGKILL included) leaves a log whose complete records all
//! read back. A log that was closed normally ends with [`Entry::End`];
//! without it the reader says where the log stops ([`CaptureError::Cut`]).
//!
//! The encoding is the shadow thread's work ([`CaptureWriter::append`]);
//! compression and `write` are a thread of their own.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::compare::{Exception, Outcome, Outgoing};
use crate::marshal::{FieldPtr, Inputs};
use crate::shadow::FpEnv;
use crate::types::{Scalar, StructDef, Type};
use crate::value::Value;

/// The first 8 bytes of every capture log.
pub const MAGIC: &[u8; 8] = b"DDLCAPT\n";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Larger records are refused as damage (a length field that was hit).
const MAX_RECORD: usize = 1 << 30;
/// Records that may wait for the writer thread before the shadow waits.
const CHANNEL_DEPTH: usize = 4096;

/// One build, as the header names it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Its path when the log was written.
    pub path: String,
    /// Its GNU build-id, in hex (`None` when it has none).
    pub build_id: Option<String>,
}

/// A boundary symbol of the old build (C++ declarations have several).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolInfo {
    /// The symbol (mangled for C++).
    pub name: String,
    /// Index of its function in [`Header::functions`].
    pub func: u32,
    /// A deleting destructor (D0).
    pub deleting: bool,
    /// The complete-object destructor (D1) of a destructor declaration.
    pub complete_dtor: bool,
}

/// What the log was captured from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// DDL's version that wrote it.
    pub ddl_version: String,
    /// When the log was started (seconds since the epoch).
    pub created_unix_s: u64,
    /// The process.
    pub pid: u32,
    /// Its executable.
    pub exe: String,
    /// The config's path when the log was written.
    pub config_path: String,
    /// The config's text: replay parses it again unless given another.
    pub config_text: String,
    /// The old build (the primary's outcomes come from it).
    pub old: BuildInfo,
    /// The new build mirrored in the live run.
    pub new: BuildInfo,
    /// The boundary's function keys, in the config's order
    /// ([`Call::func`] indexes this).
    pub functions: Vec<String>,
    /// The old build's boundary symbols.
    pub symbols: Vec<SymbolInfo>,
    /// `capture.max_buffer_bytes`.
    pub max_buffer_bytes: Option<usize>,
    /// `capture.hash`, as `function.output`.
    pub hash: Vec<String>,
}

/// Which output of a call a [`Mask`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    /// The return value.
    Ret,
    /// Parameter `i`'s output.
    Out(u32),
}

/// How a captured output was reduced for privacy (the shadow's outcome
/// is reduced the same way before it is judged on replay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mask {
    /// Stored as `fnv1a64:<hex>` of its bytes (`capture.hash`).
    Hash,
    /// Cut to its first N bytes (`capture.max_buffer_bytes`).
    Cut(u32),
}

/// One mirrored invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The live run's sequence number.
    pub seq: u64,
    /// Index of the function in [`Header::functions`].
    pub func: u32,
    /// The symbol the application called, with its symbol version.
    pub symbol: String,
    /// Its symbol version, if the reference named one.
    pub version: Option<String>,
    /// The calling thread.
    pub tid: u32,
    /// Where in the application the call was made (`object+0xoffset`).
    pub caller: Option<String>,
    /// What the callee could read (buffers possibly cut: see `inputs_cut`).
    pub inputs: Inputs,
    /// What the primary produced (outputs reduced by `masks`).
    pub primary: Outcome,
    /// `errno` when the call was made.
    pub errno_before: i32,
    /// The call went to a deleting destructor (D0).
    pub deleting: bool,
    /// The caller's floating-point control state.
    pub fp_env: FpEnv,
    /// The primary's outputs stored reduced.
    pub masks: Vec<(Slot, Mask)>,
    /// An input buffer was cut to `max_buffer_bytes`: the call cannot be
    /// re-executed faithfully (replay counts it `unmirrored`).
    pub inputs_cut: bool,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A mirrored invocation.
    Call(Box<Call>),
    /// A handle whose history left the shadow (a call given it was
    /// dropped): later calls on it, up to a new life, are `unmirrored`.
    Parted {
        /// Handle class.
        class: u32,
        /// The primary's handle.
        handle: u64,
        /// Sequence number of the dropped call.
        seq: u64,
    },
    /// The log was closed normally after this many records before it.
    End {
        /// Records written before this one.
        records: u64,
    },
}

// ---------------------------------------------------------------------
// Wire form (postcard): values with their element types by name.

#[derive(Serialize, Deserialize)]
enum WType {
    Void,
    Scalar(Scalar),
    Pointer(Box<WType>, bool),
    Struct(String),
    FnPtr,
}

#[derive(Serialize, Deserialize)]
enum WValue {
    Null,
    None,
    Int(Scalar, i64),
    UInt(Scalar, u64),
    F32(f32),
    F64(f64),
    Opaque(u64),
    Str(ByteBuf),
    Buf(WType, ByteBuf),
    Struct(Vec<WValue>),
}

#[derive(Serialize, Deserialize)]
struct WOutgoing {
    function: String,
    target: String,
    len: u64,
    hash: u64,
    head: ByteBuf,
}

#[derive(Serialize, Deserialize)]
struct WOutcome {
    ret: WValue,
    outputs: Vec<WValue>,
    errno: Option<i32>,
    exception: Option<(String, String)>,
    outgoing: Option<Vec<WOutgoing>>,
}

#[derive(Serialize, Deserialize)]
struct WCall {
    seq: u64,
    func: u32,
    symbol: String,
    version: Option<String>,
    tid: u32,
    caller: Option<String>,
    values: Vec<WValue>,
    counts: Vec<Option<u64>>,
    deep: Vec<Option<Vec<(u64, u64)>>>,
    structs: Vec<(u64, u64)>,
    primary: WOutcome,
    errno_before: i32,
    deleting: bool,
    mxcsr: u32,
    x87_cw: u16,
    masks: Vec<(Slot, Mask)>,
    inputs_cut: bool,
}

#[derive(Serialize, Deserialize)]
enum WEntry {
    Call(Box<WCall>),
    Parted { class: u32, handle: u64, seq: u64 },
    End { records: u64 },
}

fn wtype(t: &Type) -> WType {
    match t {
        Type::Void => WType::Void,
        Type::Scalar(s) => WType::Scalar(*s),
        Type::Pointer { pointee, is_const } => WType::Pointer(Box::new(wtype(pointee)), *is_const),
        Type::Struct(d) => WType::Struct(d.name.clone()),
        Type::FnPtr => WType::FnPtr,
    }
}

fn wvalue(v: &Value) -> WValue {
    match v {
        Value::Null => WValue::Null,
        Value::None => WValue::None,
        Value::Int(s, x) => WValue::Int(*s, *x),
        Value::UInt(s, x) => WValue::UInt(*s, *x),
        Value::F32(x) => WValue::F32(*x),
        Value::F64(x) => WValue::F64(*x),
        Value::Opaque(p) => WValue::Opaque(*p),
        Value::Str(b) => WValue::Str(ByteBuf::from(b.clone())),
        Value::Buf { elem, bytes } => WValue::Buf(wtype(elem), ByteBuf::from(bytes.clone())),
        Value::Struct(fs) => WValue::Struct(fs.iter().map(wvalue).collect()),
    }
}

fn woutcome(o: &Outcome) -> WOutcome {
    WOutcome {
        ret: wvalue(&o.ret),
        outputs: o.outputs.iter().map(wvalue).collect(),
        errno: o.errno,
        exception: o.exception.as_ref().map(|e| (e.ty.clone(), e.what.clone())),
        outgoing: o.outgoing.as_ref().map(|v| {
            v.iter()
                .map(|g| WOutgoing {
                    function: g.function.clone(),
                    target: g.target.clone(),
                    len: g.len as u64,
                    hash: g.hash,
                    head: ByteBuf::from(g.head.clone()),
                })
                .collect()
        }),
    }
}

/// Struct definitions by name, to give decoded buffers their element types
/// back (from the config the log is replayed with).
pub type Structs = HashMap<String, Arc<StructDef>>;

/// Every struct reachable from `types` (parameters, returns, fields).
pub fn structs_of<'a>(types: impl IntoIterator<Item = &'a Type>) -> Structs {
    fn walk(t: &Type, out: &mut Structs) {
        match t {
            Type::Pointer { pointee, .. } => walk(pointee, out),
            Type::Struct(d) if out.insert(d.name.clone(), d.clone()).is_none() => {
                for f in &d.fields {
                    walk(&f.ty, out);
                    if let crate::types::Role::Buffer { elem, .. } = &f.role {
                        walk(elem, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Structs::new();
    for t in types {
        walk(t, &mut out);
    }
    out
}

fn ttype(w: WType, structs: &Structs) -> Result<Type, String> {
    Ok(match w {
        WType::Void => Type::Void,
        WType::Scalar(s) => Type::Scalar(s),
        WType::Pointer(p, c) => Type::Pointer {
            pointee: Box::new(ttype(*p, structs)?),
            is_const: c,
        },
        WType::Struct(n) => Type::Struct(
            structs
                .get(&n)
                .cloned()
                .ok_or_else(|| format!("struct {n} is not declared in the config"))?,
        ),
        WType::FnPtr => Type::FnPtr,
    })
}

fn tvalue(w: WValue, structs: &Structs) -> Result<Value, String> {
    Ok(match w {
        WValue::Null => Value::Null,
        WValue::None => Value::None,
        WValue::Int(s, x) => Value::Int(s, x),
        WValue::UInt(s, x) => Value::UInt(s, x),
        WValue::F32(x) => Value::F32(x),
        WValue::F64(x) => Value::F64(x),
        WValue::Opaque(p) => Value::Opaque(p),
        WValue::Str(b) => Value::Str(b.into_vec()),
        WValue::Buf(t, b) => Value::Buf {
            elem: ttype(t, structs)?,
            bytes: b.into_vec(),
        },
        WValue::Struct(fs) => Value::Struct(
            fs.into_iter()
                .map(|f| tvalue(f, structs))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn toutcome(w: WOutcome, structs: &Structs) -> Result<Outcome, String> {
    Ok(Outcome {
        ret: tvalue(w.ret, structs)?,
        outputs: w
            .outputs
            .into_iter()
            .map(|v| tvalue(v, structs))
            .collect::<Result<_, _>>()?,
        errno: w.errno,
        exception: w.exception.map(|(ty, what)| Exception { ty, what }),
        outgoing: w.outgoing.map(|v| {
            v.into_iter()
                .map(|g| Outgoing {
                    function: g.function,
                    target: g.target,
                    len: g.len as usize,
                    hash: g.hash,
                    head: g.head.into_vec(),
                })
                .collect()
        }),
    })
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Reduces a captured value the way `mask` says: its bytes replaced by
/// `fnv1a64:<hex>` (a string), or cut to the first N bytes (whole
/// elements). The capture reduces the primary's output; replay reduces the
/// shadow's the same way before judging, so equal outputs stay equal.
pub fn mask_value(v: &mut Value, mask: Mask) {
    match mask {
        Mask::Hash => {
            let h = match &*v {
                Value::Str(b) => fnv1a64(b),
                Value::Buf { bytes, .. } => fnv1a64(bytes),
                Value::Null | Value::None => return,
                other => fnv1a64(&other.scalar_bits().to_le_bytes()),
            };
            *v = Value::Str(format!("fnv1a64:{h:016x}").into_bytes());
        }
        Mask::Cut(n) => match v {
            Value::Str(b) => b.truncate(n as usize),
            Value::Buf { elem, bytes } => {
                let size = elem.size().max(1);
                bytes.truncate(n as usize / size * size);
            }
            _ => {}
        },
    }
}

/// The value's bytes, if it has more than `max` of them.
fn too_long(v: &Value, max: usize) -> bool {
    match v {
        Value::Str(b) => b.len() > max,
        Value::Buf { bytes, .. } => bytes.len() > max,
        Value::Struct(fs) => fs.iter().any(|f| too_long(f, max)),
        _ => false,
    }
}

/// Cuts every string and buffer inside `v` to `max` bytes.
fn cut_all(v: &mut Value, max: usize) {
    match v {
        Value::Struct(fs) => fs.iter_mut().for_each(|f| cut_all(f, max)),
        _ => mask_value(v, Mask::Cut(max as u32)),
    }
}

/// What the capture keeps of each call (the config's privacy options).
#[derive(Clone, Debug, Default)]
pub struct Privacy {
    /// `capture.max_buffer_bytes`.
    pub max_buffer_bytes: Option<usize>,
    /// `capture.hash`: (function index, parameter index or `None` for the
    /// return value).
    pub hash: Vec<(usize, Option<usize>)>,
}

impl Privacy {
    /// Applies the options to a call about to be written: hashed outputs,
    /// cut buffers (an input cut makes the call not replayable).
    pub fn apply(&self, call: &mut Call) {
        for (f, which) in &self.hash {
            if *f != call.func as usize {
                continue;
            }
            let (slot, v) = match which {
                None => (Slot::Ret, &mut call.primary.ret),
                Some(i) => match call.primary.outputs.get_mut(*i) {
                    Some(v) => (Slot::Out(*i as u32), v),
                    None => continue,
                },
            };
            mask_value(v, Mask::Hash);
            call.masks.push((slot, Mask::Hash));
        }
        let Some(max) = self.max_buffer_bytes else {
            return;
        };
        for v in call.inputs.values.iter_mut() {
            if too_long(v, max) {
                cut_all(v, max);
                call.inputs_cut = true;
            }
        }
        let slots = std::iter::once((Slot::Ret, &mut call.primary.ret)).chain(
            call.primary
                .outputs
                .iter_mut()
                .enumerate()
                .map(|(i, v)| (Slot::Out(i as u32), v)),
        );
        for (slot, v) in slots {
            if too_long(v, max) && !call.masks.iter().any(|(s, _)| *s == slot) {
                cut_all(v, max);
                call.masks.push((slot, Mask::Cut(max as u32)));
            }
        }
    }
}

/// Applies a call's masks to an outcome (the shadow's, on replay).
pub fn mask_outcome(o: &mut Outcome, masks: &[(Slot, Mask)]) {
    for (slot, mask) in masks {
        let v = match slot {
            Slot::Ret => &mut o.ret,
            Slot::Out(i) => match o.outputs.get_mut(*i as usize) {
                Some(v) => v,
                None => continue,
            },
        };
        match mask {
            Mask::Cut(n) => cut_all(v, *n as usize),
            m => mask_value(v, *m),
        }
    }
}

/// Encodes one entry as its payload.
pub fn encode(e: &Entry) -> Vec<u8> {
    let w = match e {
        Entry::Call(c) => WEntry::Call(Box::new(WCall {
            seq: c.seq,
            func: c.func,
            symbol: c.symbol.clone(),
            version: c.version.clone(),
            tid: c.tid,
            caller: c.caller.clone(),
            values: c.inputs.values.iter().map(wvalue).collect(),
            counts: c
                .inputs
                .counts
                .iter()
                .map(|n| n.map(|n| n as u64))
                .collect(),
            deep: c
                .inputs
                .deep
                .iter()
                .map(|d| {
                    d.as_ref()
                        .map(|v| v.iter().map(|f| (f.addr, f.count as u64)).collect())
                })
                .collect(),
            structs: c
                .inputs
                .structs
                .iter()
                .map(|(i, a)| (*i as u64, *a))
                .collect(),
            primary: woutcome(&c.primary),
            errno_before: c.errno_before,
            deleting: c.deleting,
            mxcsr: c.fp_env.mxcsr,
            x87_cw: c.fp_env.x87_cw,
            masks: c.masks.clone(),
            inputs_cut: c.inputs_cut,
        })),
        Entry::Parted { class, handle, seq } => WEntry::Parted {
            class: *class,
            handle: *handle,
            seq: *seq,
        },
        Entry::End { records } => WEntry::End { records: *records },
    };
    // Serialising plain data into a Vec cannot fail.
    postcard::to_stdvec(&w).unwrap_or_default()
}

/// Decodes a payload; `structs` gives buffers their element types back.
pub fn decode(payload: &[u8], structs: &Structs) -> Result<Entry, String> {
    let w: WEntry =
        postcard::from_bytes(payload).map_err(|e| format!("undecodable record: {e}"))?;
    Ok(match w {
        WEntry::Call(c) => Entry::Call(Box::new(Call {
            seq: c.seq,
            func: c.func,
            symbol: c.symbol,
            version: c.version,
            tid: c.tid,
            caller: c.caller,
            inputs: Inputs {
                values: c
                    .values
                    .into_iter()
                    .map(|v| tvalue(v, structs))
                    .collect::<Result<_, _>>()?,
                counts: c
                    .counts
                    .into_iter()
                    .map(|n| n.map(|n| n as usize))
                    .collect(),
                deep: c
                    .deep
                    .into_iter()
                    .map(|d| {
                        d.map(|v| {
                            v.into_iter()
                                .map(|(addr, count)| FieldPtr {
                                    addr,
                                    count: count as usize,
                                })
                                .collect()
                        })
                    })
                    .collect(),
                structs: c
                    .structs
                    .into_iter()
                    .map(|(i, a)| (i as usize, a))
                    .collect(),
            },
            primary: toutcome(c.primary, structs)?,
            errno_before: c.errno_before,
            deleting: c.deleting,
            fp_env: FpEnv {
                mxcsr: c.mxcsr,
                x87_cw: c.x87_cw,
            },
            masks: c.masks,
            inputs_cut: c.inputs_cut,
        })),
        WEntry::Parted { class, handle, seq } => Entry::Parted { class, handle, seq },
        WEntry::End { records } => Entry::End { records },
    })
}

/// The record frame: length and CRC-32 of the payload, then the payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------------
// Writing.

/// Writes a capture log: entries are encoded by the caller (the shadow
/// thread) and compressed and written by a thread of the writer's own.
pub struct CaptureWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    records: u64,
    path: PathBuf,
}

impl CaptureWriter {
    /// Creates the log at `path`, or, when a file is already there (the
    /// log of the image this process `exec`ed from, with the same pid), at
    /// the first free `stem.N.ext` next to it ([`CaptureWriter::path`]
    /// says which): a log is never overwritten. Readable by its owner only
    /// (it holds the application's data). Writes the header; `thread_init`
    /// runs first on the writer thread.
    pub fn create(path: &Path, header: &Header, thread_init: fn()) -> io::Result<CaptureWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
        };
        let mut path = path.to_path_buf();
        let mut file = open(&path);
        let mut n = 0;
        while matches!(&file, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) && n < 1000 {
            n += 1;
            path = numbered(&path, n);
            file = open(&path);
        }
        let mut file = file?;
        let json = serde_json::to_vec(header).map_err(io::Error::other)?;
        let mut head = Vec::with_capacity(json.len() + 20);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        head.extend_from_slice(&json);
        file.write_all(&head)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
        // Every signal blocked: the process's signals are not for it.
        let thread = crate::shadow::spawn_blocked("ddl-capture", move || {
            thread_init();
            write_loop(file, rx)
        })?;
        Ok(CaptureWriter {
            tx: Some(tx),
            thread: Some(thread),
            records: 0,
            path,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends one entry. Waits when the writer thread is
    /// [`CHANNEL_DEPTH`] records behind (the shadow thread, never the
    /// application's, calls this). `false` when the writer is gone (an I/O
    /// error: see [`CaptureWriter::finish`]).
    pub fn append(&mut self, e: &Entry) -> bool {
        let Some(tx) = &self.tx else { return false };
        let ok = tx.send(frame(&encode(e))).is_ok();
        self.records += ok as u64;
        ok
    }

    /// Writes the end mark, ends the zstd stream and waits for the writer.
    pub fn finish(&mut self) -> io::Result<()> {
        let records = self.records;
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(frame(&encode(&Entry::End { records })));
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the capture writer thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// `dir/stem.N.ext` for `dir/stem.ext` (`cap.zst` → `cap.1.zst`); the
/// original's own number is replaced, not stacked (`cap.1.zst` → `cap.2.zst`).
fn numbered(path: &Path, n: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    let stem = match stem.rsplit_once('.') {
        Some((s, num)) if num.chars().all(|c| c.is_ascii_digit()) && !num.is_empty() => {
            s.to_string()
        }
        _ => stem,
    };
    path.with_file_name(format!("{stem}.{n}{ext}"))
}

fn write_loop(file: File, rx: Receiver<Vec<u8>>) -> io::Result<()> {
    let mut z = zstd::stream::write::Encoder::new(file, 3)?;
    while let Ok(first) = rx.recv() {
        z.write_all(&first)?;
        // Everything that is waiting, then a flush: what reached the
        // file decodes even if the process dies before the next one.
        loop {
            match rx.try_recv() {
                Ok(more) => z.write_all(&more)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        z.flush()?;
    }
    z.finish()?.sync_data()
}

// ---------------------------------------------------------------------
// Reading.

/// Why a log cannot be read (further).
#[derive(Debug)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    Io(PathBuf, io::Error),
    /// Not a capture log, or one of a format this DDL does not read.
    NotACapture(PathBuf, String),
    /// Record `index` (counted from 1) is damaged.
    Corrupt {
        /// The log.
        path: PathBuf,
        /// The damaged record's number (1 = the first).
        index: u64,
        /// What is wrong.
        why: String,
    },
    /// The log stops before its end mark, after `records` whole records
    /// (the process was killed, or the file was cut).
    Cut {
        /// The log.
        path: PathBuf,
        /// Whole records read.
        records: u64,
        /// Where it stops.
        why: String,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CaptureError::NotACapture(p, why) => write!(f, "{}: {why}", p.display()),
            CaptureError::Corrupt { path, index, why } => write!(
                f,
                "{}: record {index} is damaged ({why}); the {} records before it are good",
                path.display(),
                index - 1
            ),
            CaptureError::Cut { path, records, why } => write!(
                f,
                "{}: the log stops after record {records} without its end mark ({why}): the process was killed or the file was cut",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// Reads a capture log, record by record.
pub struct CaptureReader {
    path: PathBuf,
    header: Header,
    z: BufReader<zstd::stream::read::Decoder<'static, BufReader<File>>>,
    index: u64,
    done: bool,
}

impl CaptureReader {
    /// Opens the log and reads its header.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let io_err = |e| CaptureError::Io(path.to_path_buf(), e);
        let bad = |why: String| CaptureError::NotACapture(path.to_path_buf(), why);
        let mut f = BufReader::new(File::open(path).map_err(io_err)?);
        let mut fixed = [0u8; 20];
        f.read_exact(&mut fixed)
            .map_err(|_| bad("not a DDL capture log (too short)".into()))?;
        if &fixed[..8] != MAGIC {
            return Err(bad("not a DDL capture log (no DDLCAPT mark)".into()));
        }
        let word = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap());
        let (version, len, crc) = (word(8), word(12) as usize, word(16));
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "capture format {version}; this ddl reads format {FORMAT_VERSION}"
            )));
        }
        if len > MAX_RECORD {
            return Err(bad("damaged header (impossible length)".into()));
        }
        let mut json = vec![0u8; len];
        f.read_exact(&mut json)
            .map_err(|_| bad("the header is cut".into()))?;
        if crc32fast::hash(&json) != crc {
            return Err(bad("damaged header (checksum)".into()));
        }
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| bad(format!("unreadable header: {e}")))?;
        let z = zstd::stream::read::Decoder::with_buffer(f).map_err(io_err)?;
        Ok(CaptureReader {
            path: path.to_path_buf(),
            header,
            z: BufReader::new(z),
            index: 0,
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whole records read so far.
    pub fn records(&self) -> u64 {
        self.index
    }

    /// The next record's payload, checked: `None` after the end mark.
    /// An error ends the reading (the records before it were good).
    fn next_payload(&mut self) -> Option<Result<Vec<u8>, CaptureError>> {
        if self.done {
            return None;
        }
        let n = self.index + 1;
        let mut head = [0u8; 8];
        match read_full(&mut self.z, &mut head) {
            Ok(8) => {}
            Ok(got) => {
                self.done = true;
                let why = if got == 0 {
                    "end of file".to_string()
                } else {
                    format!("record {n} is cut after {got} bytes")
                };
                return Some(Err(self.cut(why)));
            }
            Err(e) => {
                self.done = true;
                return Some(Err(self.stream_error(n, e)));
            }
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap());
        if len > MAX_RECORD {
            self.done = true;
            return Some(Err(self.corrupt(n, format!("impossible length {len}"))));
        }
        let mut payload = vec![0u8; len];
        match read_full(&mut self.z, &mut payload) {
            Ok(got) if got == len => {}
            Ok(got) => {
                self.done = true;
                return Some(Err(self.cut(format!(
                    "record {n} is cut after {} of {} bytes",
                    got + 8,
                    len + 8
                ))));
            }
            Err(e) => {
                self.done = true;
                return Some(Err(self.stream_error(n, e)));
            }
        }
        if crc32fast::hash(&payload) != crc {
            self.done = true;
            return Some(Err(self.corrupt(n, "checksum mismatch".into())));
        }
        self.index = n;
        Some(Ok(payload))
    }

    /// The next entry (`None` after the end mark); `structs` gives buffers
    /// their element types back ([`structs_of`] the replay's config).
    pub fn next_entry(&mut self, structs: &Structs) -> Option<Result<Entry, CaptureError>> {
        let payload = match self.next_payload()? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        match decode(&payload, structs) {
            Ok(Entry::End { records }) => {
                self.done = true;
                // The end mark is not a record of the run.
                self.index -= 1;
                // The zstd stream must end with the mark: a frame cut
                // after it, or data after it, is damage too.
                let mut more = [0u8; 1];
                match read_full(&mut self.z, &mut more) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Some(Err(
                            self.corrupt(self.index + 1, "data after the end mark".into())
                        ))
                    }
                    Err(e) => return Some(Err(self.stream_error(self.index + 1, e))),
                }
                if records != self.index {
                    return Some(Err(self.corrupt(
                        self.index + 1,
                        format!(
                            "the end mark counts {records} records, the log has {}",
                            self.index
                        ),
                    )));
                }
                None
            }
            Ok(e) => Some(Ok(e)),
            Err(why) => {
                self.done = true;
                Some(Err(self.corrupt(self.index, why)))
            }
        }
    }

    fn corrupt(&self, index: u64, why: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            index,
            why,
        }
    }

    fn cut(&self, why: String) -> CaptureError {
        CaptureError::Cut {
            path: self.path.clone(),
            records: self.index,
            why,
        }
    }

    /// An error of the zstd stream: an unfinished frame at the end of the
    /// file is a cut log; anything else is damage.
    fn stream_error(&self, n: u64, e: io::Error) -> CaptureError {
        if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("incomplete frame") {
            self.cut(format!("the compressed stream ends inside record {n}"))
        } else {
            self.corrupt(n, format!("compressed data: {e}"))
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The GNU build-id of an ELF file, in hex.
pub fn build_id(path: &Path) -> Option<String> {
    use object::Object;
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let id = file.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Scalar;

    fn call(seq: u64, payload: &[u8]) -> Entry {
        Entry::Call(Box::new(Call {
            seq,
            func: 1,
            symbol: "codec_encode".into(),
            version: Some("V2".into()),
            tid: 7,
            caller: Some("app+0x10".into()),
            inputs: Inputs {
                values: vec![
                    Value::Int(Scalar::I32, -3),
                    Value::Buf {
                        elem: Type::Scalar(Scalar::U8),
                        bytes: payload.to_vec(),
                    },
                    Value::Opaque(0xdead),
                ],
                counts: vec![None, Some(payload.len()), None],
                deep: vec![None, None, None],
                structs: vec![(2, 0x1000)],
            },
            primary: Outcome {
                ret: Value::F64(1.5),
                outputs: vec![Value::None, Value::Str(b"out".to_vec()), Value::None],
                errno: Some(2),
                exception: None,
                outgoing: Some(vec![Outgoing {
                    function: "write".into(),
                    target: "fd:3".into(),
                    len: 3,
                    hash: 9,
                    head: b"abc".to_vec(),
                }]),
            },
            errno_before: 0,
            deleting: false,
            fp_env: FpEnv {
                mxcsr: 0x1f80,
                x87_cw: 0x37f,
            },
            masks: vec![],
            inputs_cut: false,
        }))
    }

    fn write_log(dir: &Path, n: u64) -> (PathBuf, Vec<Entry>) {
        let path = dir.join("cap.zst");
        let header = Header {
            functions: vec!["a".into(), "codec_encode".into()],
            ..Header::default()
        };
        let mut w = CaptureWriter::create(&path, &header, || {}).unwrap();
        let mut all = Vec::new();
        for i in 0..n {
            let e = if i % 10 == 9 {
                Entry::Parted {
                    class: 1,
                    handle: 0x1000,
                    seq: i,
                }
            } else {
                call(i, &vec![i as u8; (i % 300) as usize])
            };
            assert!(w.append(&e));
            all.push(e);
        }
        w.finish().unwrap();
        (path, all)
    }

    fn read_all(path: &Path) -> (Vec<Entry>, Option<CaptureError>) {
        let mut r = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => return (vec![], Some(e)),
        };
        let mut out = Vec::new();
        while let Some(e) = r.next_entry(&Structs::new()) {
            match e {
                Ok(e) => out.push(e),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ddl-capture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip() {
        let d = tmp("rt");
        let (path, all) = write_log(&d, 500);
        let (got, err) = read_all(&path);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, all);
        let r = CaptureReader::open(&path).unwrap();
        assert_eq!(r.header().functions[1], "codec_encode");
    }

    /// A log cut at every 97th byte reads back a prefix of the records and
    /// then says it was cut (never a panic, never a wrong record).
    #[test]
    fn cut_logs_give_their_prefix() {
        let d = tmp("cut");
        let (path, all) = write_log(&d, 300);
        let bytes = std::fs::read(&path).unwrap();
        let cut = d.join("cut.zst");
        for at in (0..bytes.len()).step_by(97) {
            std::fs::write(&cut, &bytes[..at]).unwrap();
            let (got, err) = read_all(&cut);
            assert_eq!(&all[..got.len()], &got[..], "cut at {at}");
            let err = err.expect("a cut log is an error");
            let msg = err.to_string();
            assert!(
                matches!(
                    err,
                    CaptureError::Cut { .. } | CaptureError::NotACapture(..)
                ),
                "cut at {at}: {msg}"
            );
        }
    }

    /// Flipped bytes in the compressed stream: the records before the
    /// damage read back, then an error (cut, corrupt), never a panic.
    #[test]
    fn flipped_bytes_are_found() {
        let d = tmp("flip");
        let (path, all) = write_log(&d, 300);
        let bytes = std::fs::read(&path).unwrap();
        let bad = d.join("bad.zst");
        let start = 20 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let mut seen_corrupt = 0;
        for at in (start..bytes.len()).step_by(131) {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            std::fs::write(&bad, &b).unwrap();
            let (got, err) = read_all(&bad);
            assert_eq!(&all[..got.len()], &got[..], "flip at {at}");
            if let Some(CaptureError::Corrupt { .. }) = err {
                seen_corrupt += 1;
            }
        }
        assert!(seen_corrupt > 0);
        // A damaged header is refused as a whole.
        let mut b = bytes.clone();
        b[25] ^= 1;
        std::fs::write(&bad, &b).unwrap();
        assert!(matches!(
            read_all(&bad).1,
            Some(CaptureError::NotACapture(..))
        ));
    }

    #[test]
    fn an_existing_log_is_never_overwritten() {
        let d = tmp("excl");
        let p = d.join("cap.zst");
        let h = Header::default();
        let mut a = CaptureWriter::create(&p, &h, || {}).unwrap();
        let mut b = CaptureWriter::create(&p, &h, || {}).unwrap();
        let mut c = CaptureWriter::create(&p, &h, || {}).unwrap();
        assert_eq!(a.path(), p);
        assert_eq!(b.path(), d.join("cap.1.zst"));
        assert_eq!(c.path(), d.join("cap.2.zst"));
        for w in [&mut a, &mut b, &mut c] {
            w.finish().unwrap();
        }
        assert_eq!(numbered(Path::new("/x/log"), 3), PathBuf::from("/x/log.3"));
    }

    #[test]
    fn privacy_hashes_and_cuts() {
        let Entry::Call(mut c) = call(1, &[7u8; 100]) else {
            unreachable!()
        };
        let p = Privacy {
            max_buffer_bytes: Some(10),
            hash: vec![(1, None)],
        };
        p.apply(&mut c);
        assert!(c.inputs_cut);
        assert_eq!(c.masks[0], (Slot::Ret, Mask::Hash));
        assert!(matches!(&c.primary.ret, Value::Str(s) if s.starts_with(b"fnv1a64:")));
        assert!(matches!(&c.inputs.values[1], Value::Buf { bytes, .. } if bytes.len() == 10));
        // The shadow's outcome reduced the same way compares equal.
        let Entry::Call(orig) = call(1, &[7u8; 100]) else {
            unreachable!()
        };
        let mut o = orig.primary.clone();
        mask_outcome(&mut o, &c.masks);
        assert_eq!(o, c.primary);
    }
}
