//! The session: one config, the old build as found among the loaded
//! objects, the new build in its namespace, the wrappers, and the shadow.
//!
//! All rebinding happens under one lock (`Session::state`): at start-up,
//! after every `dlopen`/`dlclose`, and when the old build arrives late. The
//! caller's path ([`before_call`], [`after_call`]) takes no lock: it reads
//! the session through an atomic pointer and hands invocations to the
//! shadow's lock-free queue.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arbiter::config::{Config, Mode};
use arbiter::marshal::{capture_inputs, capture_outputs, raw_arg, raw_ret, Frame, Inputs, Raw};
use arbiter::ring::{ScalarCall, GPRS, XMMS};
use arbiter::shadow::{BoundaryFn, FpEnv, Invocation, Shadow, ShadowHooks, ShadowSettings};

use crate::elf::{self, LoadedObject, ObjectInfo};
use crate::interpose::{real_dlclose, real_dlopen, real_dlsym, real_dlvsym};
use crate::namespace::NewBuild;
use crate::wrapper::{make_thunks, FnCtx, ThreadState};
use smallvec::SmallVec;

/// One wrapper: the old build's function a (function, symbol version) pair resolves to.
#[derive(Clone, Copy)]
struct Wrapper {
    ctx: &'static FnCtx,
    thunk: usize,
}

/// The old build as found in the base namespace.
struct OldBuild {
    obj: LoadedObject,
    /// Its `link_map` as a dlsym handle. DDL holds no reference to it (an
    /// application's dlclose must unload it as without DDL, so that a later
    /// dlopen gets a fresh instance): use it only while the object is held
    /// open (`pin_objects`, [`lookup_answer`]).
    handle: *mut c_void,
}

/// Everything rebinding changes, under one lock.
struct State {
    old: Option<OldBuild>,
    new: Option<NewBuild>,
    /// By (symbol, symbol version): one wrapper per old function.
    wrappers: HashMap<(String, Option<String>), Wrapper>,
    /// The objects seen, by `link_map` address and load address (an entry
    /// whose name differs is another object).
    objects: HashMap<(usize, usize), Seen>,
    shadow_started: bool,
    /// The main program's mapped range.
    main_span: (usize, usize),
    /// A load or symbol error: DDL has stood down for good.
    failed: bool,
    /// The old build's boundary symbols (found when it arrived).
    symbols: Vec<crate::cxxrt::BoundarySymbol>,
    /// Poisoned namespaces of the new build that could not be unloaded.
    poisoned_kept: usize,
    /// The capture log has been started.
    capture_started: bool,
    /// The old build (its path) the new build is to be loaded for in the
    /// background, once the rescan that found it is done ([`activate`]).
    loader: Option<std::path::PathBuf>,
}

// SAFETY: the raw handles inside are opaque dynamic-linker tokens, used only
// under the state lock.
unsafe impl Send for State {}

/// What a rescan knows of one loaded object.
struct Seen {
    /// Its name as ld.so recorded it.
    name: String,
    /// It matches the config's `old` ([`is_old`], asked once per object).
    old: bool,
    /// Its slots and ranges, once read.
    info: Option<ObjectInfo>,
}

impl State {
    /// The entry of `o`, made (and `old` asked) when `o` is new.
    fn seen(&mut self, s: &Session, o: &LoadedObject) -> &mut Seen {
        let of = |o: &LoadedObject| Seen {
            name: o.name.clone(),
            old: is_old(&s.config.old, o),
            info: None,
        };
        let e = self
            .objects
            .entry((o.lmap, o.base))
            .or_insert_with(|| of(o));
        if e.name != o.name {
            *e = of(o);
        }
        e
    }
}

/// A boundary symbol of the old build.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    /// Index of its boundary function.
    func: u32,
    /// A deleting destructor (D0).
    deleting: bool,
}

/// A configured process.
pub struct Session {
    config: Config,
    shadow: Arc<Shadow>,
    /// The old build's symbols that are boundary functions: C functions by
    /// name from the start, C++ symbols (mangled) once the old build is
    /// there to resolve them.
    names: RwLock<HashMap<String, Symbol>>,
    /// `sampling` as a threshold on a 64-bit random number.
    threshold: u64,
    /// Wrappers mirror only while this is set (old present, not finished).
    active: AtomicBool,
    /// Set with `State::failed`: DDL stood down after an error.
    failed: AtomicBool,
    state: Mutex<State>,
    pid: u32,
    /// libddl's own `link_map`, never rebound.
    own_lmap: usize,
    /// Where the capture log goes (`capture` in the config), absolute.
    capture_path: Option<std::path::PathBuf>,
}

static SESSION: AtomicPtr<Session> = AtomicPtr::new(std::ptr::null_mut());

impl Session {
    /// The config.
    /// Mirroring stops for now (at exit, in a forked child, the old build
    /// gone): the session is inactive and every wrapper disarmed, so that
    /// calls are forwarded uncounted.
    fn deactivate(&self) {
        self.active.store(false, Ordering::Release);
        crate::wrapper::disarm_all();
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The shadow.
    pub(crate) fn shadow(&self) -> &Arc<Shadow> {
        &self.shadow
    }
}

/// The symbol (and version) each wrapper's new-build slot was resolved for,
/// by the slot's address ([`Invocation::new_fn`]): the capture log names
/// the symbol a call went to.
static SLOT_SYMBOLS: RwLock<Option<HashMap<usize, SymbolKey>>> = RwLock::new(None);

/// A symbol and its symbol version.
type SymbolKey = (String, Option<String>);

/// The symbol a call whose `new_fn` is `slot` went to.
pub(crate) fn symbol_of_slot(slot: usize) -> Option<SymbolKey> {
    SLOT_SYMBOLS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()?
        .get(&slot)
        .cloned()
}

fn session() -> Option<&'static Session> {
    let p = SESSION.load(Ordering::Acquire);
    // SAFETY: set once to a leaked Box, never freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Says something on stderr when `DDL_LOG` asks for it.
pub fn log_info(msg: &str) {
    if matches!(
        std::env::var("DDL_LOG").as_deref(),
        Ok("info") | Ok("debug")
    ) {
        eprintln!("ddl: {msg}");
    }
}

/// Reports an error once and leaves the application as it was.
pub fn fail_open(msg: &dyn std::fmt::Display) {
    eprintln!("ddl: error: {msg}");
}

/// Reads the config and sets the session up; rebinding starts as soon as
/// the old build is among the loaded objects. Called once, from libddl's
/// constructor.
pub fn boot() {
    let Some(path) = std::env::var_os("DDL_CONFIG") else {
        return;
    };
    // SAFETY: getauxval is always safe to call.
    if stands_down_in(unsafe { libc::getauxval(libc::AT_SECURE) }) {
        log_info("set-uid/set-gid program: standing down");
        return;
    }
    // The tests run every fixture with the generic (libffi) shadow calls
    // too, and expect the same verdicts as with the specialised ones.
    if std::env::var_os("DDL_SHADOW_CALLS").is_some_and(|v| v == "libffi") {
        arbiter::invoke::use_generic_calls(true);
    }
    // And with every call on the caller's general path (no ring, no
    // assembly ring path).
    if std::env::var_os("DDL_CALLER_PATH").is_some_and(|v| v == "general") {
        arbiter::shadow::use_general_path(true);
    }
    let config = match Config::load(Path::new(&path)) {
        Ok(c) => c,
        Err(e) => return fail_open(&e),
    };
    let exe = elf::exe_path();
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv0 = std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if !config.attaches_to(&exe_name) && !config.attaches_to(&argv0) {
        log_info(&format!("{exe_name} is not in attach.exe: standing down"));
        return;
    }
    if matches!(config.mode, Mode::Off) {
        log_info("mode off: nothing loaded, nothing rebound");
        return;
    }
    let functions = boundary_fns(&config);
    let pid = std::process::id();
    let report_path = config.report_path(pid);
    // Relative to the working directory the process starts in: the report
    // is opened again for every line, and the application may chdir (a
    // daemon to "/") meanwhile.
    let report_path = absolute(report_path);
    // The report is created on first use; check now that it can be, so a
    // bad `report` is a config error before anything is rebound.
    if let Err(dir) = folder_writable(&report_path) {
        return fail_open(&config.key_error(
            "report",
            format!(
                "cannot write the report {}: {} is not a writable folder",
                report_path.display(),
                dir.display()
            ),
        ));
    }
    // The capture log likewise (it is created when the old build arrives).
    let capture_path = config.capture.as_ref().map(|c| absolute(c.path_for(pid)));
    if let Some(p) = &capture_path {
        if let Err(dir) = folder_writable(p) {
            return fail_open(&config.key_error(
                "capture",
                format!(
                    "cannot write the capture log {}: {} is not a writable folder",
                    p.display(),
                    dir.display()
                ),
            ));
        }
    }
    let settings = ShadowSettings {
        queue: config.queue,
        queue_bytes: config.queue_bytes,
        timeout_ms: config.timeout_ms,
        summary_every_s: config.summary_every_s,
    };
    let hooks = ShadowHooks {
        thread_init: crate::wrapper::mark_thread_busy,
        caller_name,
        reload: reload_new_build,
        take_outgoing,
    };
    let shadow = Shadow::new(
        Arc::new(functions),
        settings,
        Some(report_path),
        config.records_per_signature,
        hooks,
    );
    let names = RwLock::new(
        config
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.cxx.is_none())
            .map(|(i, f)| {
                let sym = Symbol {
                    func: i as u32,
                    deleting: false,
                };
                (f.sig.name.clone(), sym)
            })
            .collect(),
    );
    let threshold = if config.sampling >= 1.0 {
        u64::MAX
    } else {
        (config.sampling * u64::MAX as f64) as u64
    };
    let session = Box::new(Session {
        names,
        threshold,
        active: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        state: Mutex::new(State {
            old: None,
            new: None,
            wrappers: HashMap::new(),
            objects: HashMap::new(),
            shadow_started: false,
            main_span: (0, 0),
            failed: false,
            symbols: Vec::new(),
            poisoned_kept: 0,
            capture_started: false,
            loader: None,
        }),
        pid,
        own_lmap: own_link_map(),
        capture_path,
        shadow,
        config,
    });
    SESSION.store(Box::leak(session), Ordering::Release);
    // The application's signal-handler changes are announced from now on:
    // the sandbox need not re-read them before every shadow call.
    crate::signals::announce_changes();
    // SAFETY: registering a plain extern "C" function for the child side of fork.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    objects_changed();
}

/// `p` relative to the working directory now (the application may chdir later).
fn absolute(p: std::path::PathBuf) -> std::path::PathBuf {
    match std::env::current_dir() {
        Ok(cwd) if p.is_relative() => cwd.join(p),
        _ => p,
    }
}

/// `Err(folder)` when the folder `path` would be created in is not writable.
fn folder_writable(path: &Path) -> Result<(), std::path::PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let writable = CString::new(dir.to_string_lossy().as_bytes())
        // SAFETY: access() on a valid C string.
        .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
        .unwrap_or(false);
    if writable {
        Ok(())
    } else {
        Err(dir)
    }
}

/// The shadow's view of the config's boundary, in its order.
pub(crate) fn boundary_fns(config: &Config) -> Vec<BoundaryFn> {
    config
        .functions
        .iter()
        .map(|f| BoundaryFn::new(f.key.clone(), f.sig.clone(), f.compare.clone()))
        .collect()
}

/// Whether libddl stands down in a process whose auxiliary vector says
/// `AT_SECURE = at_secure`: a set-uid or set-gid program (or one with
/// file capabilities). ld.so already ignores a preload path with a slash
/// there, but a libddl installed in a trusted folder would still be
/// loaded: it must not act on an environment the invoking user controls.
fn stands_down_in(at_secure: libc::c_ulong) -> bool {
    at_secure != 0
}

/// libddl's own `link_map`.
fn own_link_map() -> usize {
    let mut lmap: *mut c_void = std::ptr::null_mut();
    // SAFETY: Dl_info is plain data (pointers and integers); all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr1 on an address inside libddl, asking for its link_map.
    unsafe {
        libc::dladdr1(
            own_link_map as *const c_void,
            &mut info,
            &mut lmap as *mut *mut c_void,
            2, // RTLD_DL_LINKMAP
        )
    };
    lmap as usize
}

/// In a forked child the shadow thread does not exist: stand down cleanly
/// (the parent's report stays the parent's).
extern "C" fn after_fork_child() {
    if let Some(s) = session() {
        s.deactivate();
    }
}

/// Names an application return address as `object+0xoffset`.
pub(crate) fn caller_name(addr: u64) -> Option<String> {
    // SAFETY: Dl_info is plain data (pointers and integers); all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads ld.so's tables.
    if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a C string owned by ld.so.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let base = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(name);
    Some(format!(
        "{base}+{:#x}",
        addr as usize - info.dli_fbase as usize
    ))
}

/// Does `obj` match the config's `old` (a soname, a file name or a path)?
fn is_old(old: &str, obj: &LoadedObject) -> bool {
    if obj.is_main() {
        return false;
    }
    if old.contains('/') {
        let a = std::fs::canonicalize(old).ok();
        return a.is_some() && a == std::fs::canonicalize(&obj.path).ok();
    }
    let base = obj
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base == old {
        return true;
    }
    // Only a symlink can have a canonical name of another file name (a
    // symlinked folder keeps the last component): one lstat instead of
    // resolving every component of every object's path.
    let is_link = std::fs::symlink_metadata(&obj.path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return false;
    }
    std::fs::canonicalize(&obj.path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy() == old))
        .unwrap_or(false)
}

/// Brings rebinding up to date with the loaded objects: called at start-up
/// and after every successful `dlopen`/`dlclose`.
///
/// Another application thread may `dlopen`/`dlclose` meanwhile, and this
/// may run inside ld.so's load lock (a constructor that calls `dlopen`)
/// while a thread holding the state lock waits for that lock in a `dlsym`:
/// so the state lock is never waited for long. When it is busy the holder
/// is told to look again ([`RESCAN`]), and does so once it is done.
pub fn objects_changed() {
    let Some(s) = session() else { return };
    if s.pid != std::process::id() {
        return;
    }
    let _guard = Busy::enter();
    loop {
        RESCAN.store(true, Ordering::SeqCst);
        let Some(mut st) = lock_briefly(&s.state) else {
            return; // the holder looks again
        };
        RESCAN.store(false, Ordering::SeqCst);
        let pins = pin_objects(s, &mut st);
        objects_changed_locked(s, &mut st, &pins.0);
        let loader = st.loader.take();
        drop(st);
        let generation = elf::load_generation();
        let pinned = !pins.1.is_empty();
        for h in pins.1 {
            real_dlclose(h);
        }
        // Closing a pin unloads the object when the application's dlclose
        // came meanwhile, and that unload passed no hook: look again (when
        // ld.so loaded or unloaded anything at all).
        if pinned && elf::load_generation() != generation {
            let now: std::collections::HashSet<usize> = elf::base_namespace_objects()
                .iter()
                .map(|o| o.lmap)
                .collect();
            if pins.0.iter().any(|o| !now.contains(&o.lmap)) {
                RESCAN.store(true, Ordering::SeqCst);
            }
        }
        if let Some(old) = loader {
            start_loader(s, old);
        }
        // DDL's own failed lookups must not show in the caller's dlerror().
        // SAFETY: dlerror has no preconditions.
        unsafe { libc::dlerror() };
        if !RESCAN.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Set by a thread that found the state lock held: the holder walks the
/// objects again before it leaves [`objects_changed`].
static RESCAN: AtomicBool = AtomicBool::new(false);

/// The state lock, waited for at most 50 ms (see [`objects_changed`]).
fn lock_briefly(m: &Mutex<State>) -> Option<std::sync::MutexGuard<'_, State>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
    loop {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// The base namespace's objects, those DDL is going to read or write held
/// open (`RTLD_NOLOAD`) so that no other thread's `dlclose` unmaps them
/// meanwhile; objects already on their way out are left out. Returns the
/// objects and the handles to close afterwards.
///
/// Objects nothing is done with are listed without being held: all of them
/// while no object matches `old` (only names are compared), and, once it
/// is there, those already read that hold no boundary slot.
fn pin_objects(s: &Session, st: &mut State) -> (Vec<LoadedObject>, Vec<*mut c_void>) {
    let walked = elf::base_namespace_objects();
    let mut old_here = false;
    for o in &walked {
        old_here |= matches_old(s, st, o);
    }
    let mut objs = Vec::with_capacity(walked.len());
    let mut handles = Vec::new();
    for o in walked {
        if o.is_main()
            || o.lmap == s.own_lmap
            || o.name.contains("linux-vdso")
            || o.name.contains("/ld-linux")
        {
            objs.push(o); // never unloaded
            continue;
        }
        let idle = !old_here || {
            let seen = st.seen(s, &o);
            !seen.old && seen.info.as_ref().is_some_and(|i| i.slots.is_empty())
        };
        if idle {
            objs.push(o); // not read nor written
            continue;
        }
        let Ok(c) = CString::new(o.name.as_bytes()) else {
            continue;
        };
        let h = real_dlopen(&c, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            continue;
        }
        handles.push(h);
        // A dlopen handle is the object's link_map: the same object, still there.
        if h as usize == o.lmap {
            objs.push(o);
        }
    }
    (objs, handles)
}

/// [`is_old`] for `o`, asked once per object (by `link_map`, load address
/// and name).
fn matches_old(s: &Session, st: &mut State, o: &LoadedObject) -> bool {
    st.seen(s, o).old
}

fn objects_changed_locked(s: &Session, st: &mut State, objs: &[LoadedObject]) {
    if st.failed {
        return;
    }
    let found = objs.iter().find(|o| matches_old(s, st, o)).cloned();
    match (&st.old, found) {
        (None, Some(o)) => {
            if let Err(e) = activate(s, st, o) {
                st.failed = true;
                s.failed.store(true, Ordering::Release);
                s.deactivate();
                fail_open(&e);
                return;
            }
        }
        (Some(prev), None) => {
            log_info(&format!(
                "{} was unloaded: its wrappers stand down",
                prev.obj.name
            ));
            s.deactivate();
            st.old = None;
        }
        (Some(prev), Some(o)) if prev.obj.lmap != o.lmap || prev.obj.base != o.base => {
            // Unloaded and loaded again between two looks: start over.
            s.deactivate();
            st.old = None;
            if let Err(e) = activate(s, st, o) {
                st.failed = true;
                s.failed.store(true, Ordering::Release);
                fail_open(&e);
                return;
            }
        }
        _ => {}
    }
    let live: std::collections::HashSet<(usize, usize)> =
        objs.iter().map(|o| (o.lmap, o.base)).collect();
    st.objects.retain(|k, _| live.contains(k));
    let Some(old_lmap) = st.old.as_ref().map(|o| o.obj.lmap) else {
        return;
    };
    for obj in objs {
        if obj.lmap == s.own_lmap
            || obj.name.contains("linux-vdso")
            || obj.name.contains("/ld-linux")
        {
            continue;
        }
        // The old build itself: only the slots that take a boundary
        // function's address (GLOB_DAT, R_X86_64_64), never its PLT slots
        // (its calls to itself stay internal). Without this, in a PIE the
        // application's `&f` (the wrapper) and the component's own `&f`
        // differed, and a component comparing a callback with one of its
        // own functions answered differently under DDL.
        let own = obj.lmap == old_lmap;
        if let Err(e) = rebind_object(s, st, obj, own) {
            log_info(&format!("cannot rebind {}: {e}", obj.short_name()));
        }
    }
    crate::observe::patch_old_build(objs.iter().find(|o| o.lmap == old_lmap));
    if let Err(e) = patch_vtables(s, st) {
        log_info(&format!("cannot patch the vtables: {e}"));
    }
}

/// Points the entries of the vtables the application uses that hold a
/// boundary method of the old build at its wrapper: the application's
/// virtual calls go through them, and a vtable copied into the executable
/// (`R_X86_64_COPY`) has no relocation of its own to rebind.
fn patch_vtables(s: &Session, st: &mut State) -> Result<(), String> {
    let classes = crate::cxxrt::classes(&s.config);
    if classes.is_empty() {
        return Ok(());
    }
    let keys: Vec<(String, Option<String>)> = {
        let names = s.names.read().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .filter(|(_, sym)| s.config.functions[sym.func as usize].cxx.is_some())
            .map(|(n, _)| (n.clone(), None))
            .collect()
    };
    ensure_wrappers(s, st, &keys)?;
    let map: HashMap<usize, usize> = st
        .wrappers
        .values()
        .map(|w| (w.ctx.target.load(Ordering::Relaxed) as usize, w.thunk))
        .collect();
    let old_handle = st.old.as_ref().map(|o| o.handle);
    for c in &classes {
        for h in [Some(libc::RTLD_DEFAULT), old_handle].into_iter().flatten() {
            let Some((at, size)) = crate::cxxrt::vtable(h, c) else {
                continue;
            };
            let Some(info) = st
                .objects
                .values()
                .filter_map(|o| o.info.as_ref())
                .find(|i| at >= i.span.0 && at < i.span.1)
            else {
                continue; // not an object we have read: its protection is unknown
            };
            // SAFETY: a vtable of a loaded object, as ld.so describes it.
            unsafe { crate::cxxrt::patch_vtable(at, size, &map, info.relro)? };
        }
    }
    Ok(())
}

/// The old build has arrived: load the new one, check every boundary
/// symbol in both, start the shadow. Nothing is rebound yet if this fails.
///
/// Once the program's `main` has started, the first load of the new build
/// (the pre-flight gate, the `dlmopen`, its containment and the symbols'
/// resolution) is left to a thread of DDL's ([`load_in_background`]) and
/// the shadow starts when it is done: the application's thread rebinds and
/// goes on at once, its calls counted and captured, waiting in the queue
/// for the shadow. Before `main` (the old build linked or preloaded, found
/// in libddl's constructor while ld.so still runs the initial objects'
/// constructors) it is done here, as is every later reload.
// Cold path, once per arrival of the old build: the error's size does not matter.
#[allow(clippy::result_large_err)]
fn activate(
    s: &Session,
    st: &mut State,
    obj: LoadedObject,
) -> Result<(), arbiter::config::ConfigError> {
    let cpath = CString::new(obj.path.to_string_lossy().as_bytes()).unwrap_or_default();
    let handle = real_dlopen(&cpath, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
    if handle.is_null() {
        return Err(s.config.key_error(
            "old",
            format!(
                "{} is loaded but cannot be opened: {}",
                obj.name,
                crate::namespace::dlerror()
            ),
        ));
    }
    let loading = LOAD.load(Ordering::Acquire) == LOAD_RUNNING;
    let background = st.new.is_none() && (loading || crate::interpose::main_started());
    if st.new.is_none() && !background {
        arbiter::config::writable_by_others(&s.config.new)
            .map_err(|why| s.config.key_error("new", why))?;
        st.new = Some(load_new(s, &obj.path)?);
    } else if background && !loading {
        // Refused before anything is loaded, and before anything is
        // rebound: a cheap look at the file's mode.
        arbiter::config::writable_by_others(&s.config.new)
            .map_err(|why| s.config.key_error("new", why))?;
    }
    let symbols = match crate::cxxrt::c_boundary_symbols(&s.config, &obj) {
        Some(symbols) => symbols,
        None => crate::cxxrt::boundary_symbols(&s.config, &obj.path)?,
    };
    if let Some(new) = st.new.as_ref() {
        if let Err(e) = check_symbols(s, new, &symbols) {
            real_dlclose(handle);
            return Err(e);
        }
        prepare_cxx(s, new, &symbols);
    }
    st.symbols = symbols.clone();
    {
        let mut names = s.names.write().unwrap_or_else(|e| e.into_inner());
        let before = names.len();
        for sym in &symbols {
            names.insert(
                sym.name.clone(),
                Symbol {
                    func: sym.func,
                    deleting: sym.deleting,
                },
            );
        }
        if names.len() != before {
            // Objects parsed before looked for fewer names.
            for o in st.objects.values_mut() {
                o.info = None;
            }
        }
    }
    // Wrappers made for an earlier incarnation of the old build point at
    // its addresses: re-resolve them.
    for ((name, ver), w) in &st.wrappers {
        if let Some(t) = resolve_old(handle, name, ver.as_deref()) {
            w.ctx.target.store(t as u64, Ordering::Release);
        }
    }
    log_info(&format!(
        "old build {} found; new build {} {}",
        obj.path.display(),
        s.config.new.display(),
        if background {
            "loading in the background"
        } else {
            "loaded"
        }
    ));
    let old_path = obj.path.clone();
    st.old = Some(OldBuild { obj, handle });
    // No reference is kept (see `OldBuild::handle`); the object is held
    // open by `objects_changed` for as long as this runs.
    real_dlclose(handle);
    if background {
        if !loading {
            // Started once this thread is done with ld.so (the rebinding's
            // lookups, the pins' closes): the `dlmopen` holds ld.so's load
            // lock throughout, and would make them wait.
            LOAD.store(LOAD_RUNNING, Ordering::Release);
            st.loader = Some(old_path);
        }
    } else {
        // The keeper's first fill keeps off this thread's CPU.
        arbiter::affinity::note_app_cpu();
        start_shadow(s, st)?;
    }
    s.active.store(true, Ordering::Release);
    Ok(())
}

/// The pre-flight gate, then the new build loaded in a namespace of its own
/// (with the sandbox's handlers installed first).
#[allow(clippy::result_large_err)]
fn load_new(s: &Session, old: &Path) -> Result<NewBuild, arbiter::config::ConfigError> {
    // `ddl check`'s verdict, before anything is loaded: an incompatible
    // pair is refused (docs/CHECK.md, "In libddl").
    let t = std::time::Instant::now();
    arbiter::abi::gate(&s.config, old).map_err(|(f, why)| match f {
        Some(i) => s.config.function_error(i, why),
        None => s.config.key_error("new", why),
    })?;
    log_info(&format!(
        "pre-flight check passed ({} µs)",
        t.elapsed().as_micros()
    ));
    if let Err(e) = arbiter::sandbox::install() {
        log_info(&format!("no sandbox for the new build: {e}"));
    }
    let new = NewBuild::load(&s.config.new, &s.config.sandbox_intercept).map_err(|e| {
        s.config.key_error(
            "new",
            format!("cannot load {}: {e}", s.config.new.display()),
        )
    })?;
    s.shadow.set_new_errno(new.errno_location);
    Ok(new)
}

/// Every boundary symbol of the old build exists in the new one.
#[allow(clippy::result_large_err)]
fn check_symbols(
    s: &Session,
    new: &NewBuild,
    symbols: &[crate::cxxrt::BoundarySymbol],
) -> Result<(), arbiter::config::ConfigError> {
    for sym in symbols {
        let f = &s.config.functions[sym.func as usize];
        if new.resolve(&sym.name, None).is_none() {
            return Err(s.config.function_error(
                sym.func as usize,
                format!(
                    "symbol {} ({}) not found in the new build {}",
                    sym.name,
                    f.key,
                    new.path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The capture log (once) and the shadow thread (once), the new build
/// being loaded.
#[allow(clippy::result_large_err)]
fn start_shadow(s: &Session, st: &mut State) -> Result<(), arbiter::config::ConfigError> {
    if !st.capture_started {
        if let (Some(path), Some(new), Some(old)) = (&s.capture_path, &st.new, &st.old) {
            st.capture_started = true;
            if let Err(e) = crate::capture::start(s, path, &old.obj.path, &new.path, &st.symbols) {
                fail_open(&s.config.key_error(
                    "capture",
                    format!(
                        "cannot create the capture log {}: {e} (mirroring goes on without it)",
                        path.display()
                    ),
                ));
            }
        }
    }
    if !st.shadow_started {
        s.shadow.start().map_err(|e| {
            s.config
                .key_error("new", format!("cannot start the shadow thread: {e}"))
        })?;
        st.shadow_started = true;
        // The capture buffers' keeper: without it, the captures take fresh
        // buffers the application's thread must fault in.
        let warm = has_sized_buffers(s.shadow.functions(), s.threshold != 0);
        let shadow = Arc::clone(s.shadow());
        let spawned = arbiter::bufpool::keep(warm, |body| {
            arbiter::shadow::spawn_blocked("ddl-pool", move || {
                crate::wrapper::mark_thread_busy();
                // The shadow's queue, if no call has made it yet.
                shadow.make_queue();
                body()
            })
            .map(|h| h.thread().clone())
        });
        if let Err(e) = spawned {
            log_info(&format!("no keeper for the capture buffers: {e}"));
        }
    }
    Ok(())
}

/// Does a boundary function that can be mirrored (`sampled`: `sampling`
/// is above 0, or its calls are never sampled out) take a buffer whose size
/// is given at run time (a parameter or an expression: a matrix, a string
/// of bytes)? The capture buffers' pool then starts warm
/// ([`arbiter::bufpool::keep`]).
fn has_sized_buffers(fns: &[BoundaryFn], sampled: bool) -> bool {
    fns.iter().any(|f| {
        (sampled || !f.per_call_sampling)
            && f.sig.params.iter().any(|p| {
                matches!(
                    &p.role,
                    arbiter::types::Role::Buffer { count, scalar_out: false, .. }
                        if !matches!(count, arbiter::types::Expr::Int(_))
                )
            })
    })
}

/// Where the background load of the new build stands ([`activate`]).
static LOAD: AtomicU8 = AtomicU8::new(LOAD_NONE);
/// No background load (none yet, or it failed and DDL stood down).
const LOAD_NONE: u8 = 0;
/// The loader thread is at work.
const LOAD_RUNNING: u8 = 1;
/// The loader is starting the shadow: too late for the exit to give it up.
const LOAD_STARTING: u8 = 2;
/// Loaded, the shadow started.
const LOAD_DONE: u8 = 3;
/// The process exited first: the loader must not start the shadow.
const LOAD_ABANDONED: u8 = 4;

/// The loader thread's work ([`activate`]): the gate and the load without
/// any lock (ld.so's own load lock serialises the `dlmopen` with the
/// application's `dlopen`s) and off the starting application thread's CPU
/// ([`arbiter::affinity`]), then, under the state lock, every boundary
/// symbol checked in the new build, the wrappers made meanwhile pointed
/// into it, and the shadow started. A failure is the `ddl: error:` line it
/// would have been before rebinding, and DDL stands down as after any
/// error: the wrappers already in place only forward, the calls counted
/// meanwhile are never reported (no report is written).
// Cold path, once: the error's size does not matter.
#[allow(clippy::result_large_err)]
fn load_in_background(old: std::path::PathBuf) {
    let Some(s) = session() else { return };
    crate::wrapper::mark_thread_busy();
    // The load is a burst of milliseconds: off the CPU of the application
    // thread that started it (`arbiter::affinity`), until the shadow's
    // threads are made (they must not inherit it).
    let off_app_cpu = arbiter::affinity::off_app_cpu();
    // The shadow's queue made here, not by the application's first call.
    s.shadow.make_queue();
    let loaded = load_new(s, &old);
    let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
    let published = loaded.and_then(|new| {
        let symbols = std::mem::take(&mut st.symbols);
        let checked = check_symbols(s, &new, &symbols);
        if checked.is_ok() {
            for ((name, ver), w) in &st.wrappers {
                let a = new.resolve(name, ver.as_deref()).unwrap_or(0);
                w.ctx.new_fn.store(a as u64, Ordering::Release);
            }
            prepare_cxx(s, &new, &symbols);
        }
        st.symbols = symbols;
        // Kept even when a symbol is missing: its constructors ran.
        st.new = Some(new);
        checked
    });
    let stand_down = |st: &mut State, e: arbiter::config::ConfigError| {
        st.failed = true;
        s.failed.store(true, Ordering::Release);
        s.deactivate();
        fail_open(&e);
    };
    if let Err(e) = published {
        stand_down(&mut st, e);
        LOAD.store(LOAD_NONE, Ordering::Release);
        return;
    }
    drop(off_app_cpu);
    if LOAD
        .compare_exchange(
            LOAD_RUNNING,
            LOAD_STARTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return; // the process is exiting: nothing to start
    }
    if let Err(e) = start_shadow(s, &mut st) {
        stand_down(&mut st, e);
    }
    LOAD.store(LOAD_DONE, Ordering::Release);
}

/// Starts the loader thread ([`load_in_background`]); DDL stands down if
/// it cannot.
fn start_loader(s: &'static Session, old: std::path::PathBuf) {
    arbiter::affinity::note_app_cpu();
    if let Err(e) = arbiter::shadow::spawn_blocked("ddl-loader", move || load_in_background(old)) {
        let e = s
            .config
            .key_error("new", format!("cannot start the loader thread: {e}"));
        // Not waited for long: this may run inside ld.so's load lock.
        if let Some(mut st) = lock_briefly(&s.state) {
            st.failed = true;
        }
        s.failed.store(true, Ordering::Release);
        s.deactivate();
        LOAD.store(LOAD_NONE, Ordering::Release);
        fail_open(&e);
    }
}

/// At exit: waits for a background load of the new build to end (at most
/// `timeout_ms`, the drain's own limit), so that the calls it held back are
/// judged; past it, the load is given up (the queued calls count as
/// `dropped`).
fn wait_for_loader(s: &Session) {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(s.config.timeout_ms);
    loop {
        match LOAD.load(Ordering::Acquire) {
            LOAD_RUNNING => {
                if std::time::Instant::now() >= deadline
                    && LOAD
                        .compare_exchange(
                            LOAD_RUNNING,
                            LOAD_ABANDONED,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                {
                    return;
                }
            }
            // Starting the shadow: a moment.
            LOAD_STARTING => {}
            _ => return,
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

fn resolve_old(handle: *mut c_void, name: &str, version: Option<&str>) -> Option<usize> {
    let n = CString::new(name).ok()?;
    let r = match version.and_then(|v| CString::new(v).ok()) {
        Some(v) => match real_dlvsym(handle, &n, &v) {
            0 => real_dlsym(handle, &n),
            r => r,
        },
        None => real_dlsym(handle, &n),
    };
    (r != 0).then_some(r)
}

/// Makes the wrappers for `keys` that do not exist yet.
fn ensure_wrappers(
    s: &Session,
    st: &mut State,
    keys: &[(String, Option<String>)],
) -> Result<(), String> {
    let mut missing: Vec<(String, Option<String>)> = keys
        .iter()
        .filter(|k| !st.wrappers.contains_key(*k))
        .cloned()
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    // The new build may still be loading (`load_in_background`): its
    // addresses are filled in once it is there.
    let Some(old) = st.old.as_ref() else {
        return Err("no old build".into());
    };
    let new = st.new.as_ref();
    // One wrapper per old function: a (name, version) pair that resolves to
    // a function that already has a wrapper gets that wrapper, so that
    // `dlsym(h, "f") == dlvsym(h, "f", "V2")` stays true under DDL.
    let mut ctxs = Vec::new();
    let mut fresh: Vec<((String, Option<String>), usize)> = Vec::new();
    let names = s.names.read().unwrap_or_else(|e| e.into_inner());
    for (name, ver) in missing {
        let Some(sym) = names.get(&name).copied() else {
            continue;
        };
        let f = &s.shadow.functions()[sym.func as usize];
        let target = resolve_old(old.handle, &name, ver.as_deref()).ok_or("symbol vanished")?;
        let existing = st
            .wrappers
            .values()
            .find(|w| w.ctx.target.load(Ordering::Relaxed) as usize == target);
        if let Some(w) = existing.copied() {
            st.wrappers.insert((name, ver), w);
            continue;
        }
        if let Some(i) = fresh.iter().position(|(_, t)| *t == target) {
            fresh.push(((name, ver), fresh[i].1));
            continue;
        }
        let new_fn = new
            .and_then(|n| n.resolve(&name, ver.as_deref()))
            .unwrap_or(0);
        ctxs.push(FnCtx {
            target: AtomicU64::new(target as u64),
            new_fn: AtomicU64::new(new_fn as u64),
            copy_bytes: f.layout.stack_bytes as u64,
            func: sym.func,
            deleting: sym.deleting,
            cxx: name.starts_with("_Z"),
        });
        fresh.push(((name, ver), target));
    }
    drop(names);
    if ctxs.is_empty() {
        return Ok(());
    }
    let made = make_thunks(ctxs).map_err(|e| e.to_string())?;
    let mut slots = SLOT_SYMBOLS.write().unwrap_or_else(|e| e.into_inner());
    let slots = slots.get_or_insert_with(HashMap::new);
    for (ctx, thunk) in made {
        let target = ctx.target.load(Ordering::Relaxed) as usize;
        for (key, _) in fresh.iter().filter(|(_, t)| *t == target) {
            st.wrappers.insert(key.clone(), Wrapper { ctx, thunk });
            slots
                .entry(&ctx.new_fn as *const AtomicU64 as usize)
                .or_insert_with(|| key.clone());
        }
    }
    Ok(())
}

/// Points every slot of `obj` that refers to a boundary function of the
/// old build at its wrapper.
fn rebind_object(
    s: &Session,
    st: &mut State,
    obj: &LoadedObject,
    addresses_only: bool,
) -> Result<(), String> {
    if st.seen(s, obj).info.is_none() {
        let names = s.names.read().unwrap_or_else(|e| e.into_inner());
        let wanted = |n: &str| names.contains_key(n);
        let filter = elf::NameFilter::new(names.keys().map(String::as_str), &wanted);
        let info = elf::object_info(obj, &filter)?;
        drop(names);
        if obj.is_main() {
            st.main_span = info.span;
        }
        st.seen(s, obj).info = Some(info);
    }
    let Some(cached) = st.seen(s, obj).info.as_ref() else {
        return Ok(());
    };
    if cached.slots.is_empty() {
        return Ok(());
    }
    let mut info = cached.clone();
    if addresses_only {
        info.slots
            .retain(|sl| sl.r_type != goblin::elf::reloc::R_X86_64_JUMP_SLOT);
    }
    if info.slots.is_empty() {
        return Ok(());
    }
    let keys: Vec<(String, Option<String>)> = info
        .slots
        .iter()
        .map(|sl| (sl.name.clone(), sl.version.clone()))
        .collect();
    ensure_wrappers(s, st, &keys)?;
    for (slot, k) in info.slots.iter().zip(&keys) {
        let w = &st.wrappers[k];
        let target = w.ctx.target.load(Ordering::Relaxed) as usize;
        // SAFETY: the slot is a relocated GOT/data word of a loaded object.
        let current = unsafe { crate::rebind::read_slot(slot.addr) };
        let patch = if current == target {
            true
        } else if current == w.thunk {
            false
        } else if slot.r_type == goblin::elf::reloc::R_X86_64_JUMP_SLOT
            && current >= info.span.0
            && current < info.span.1
        {
            // Lazy binding has not resolved it yet: patch it if the lookup
            // ld.so would do resolves to the old build.
            let name = CString::new(slot.name.as_str()).unwrap_or_default();
            let global = match slot.version.as_deref().and_then(|v| CString::new(v).ok()) {
                Some(v) => real_dlvsym(libc::RTLD_DEFAULT, &name, &v),
                None => real_dlsym(libc::RTLD_DEFAULT, &name),
            };
            // In a non-PIE program that takes the function's address, the
            // global answer is the program's canonical PLT entry, which
            // itself jumps through the program's (patched) slot.
            global == target
                || (global != 0
                    && global >= st.main_span.0
                    && global < st.main_span.1
                    && !defines(global, &name))
                || (global == 0 && own_scope_resolves(obj, &name, target))
        } else {
            false
        };
        if patch {
            // SAFETY: as above; RELRO is lifted for the write only.
            unsafe { crate::rebind::write_slot(slot.addr, w.thunk, info.relro)? };
        }
    }
    Ok(())
}

/// Is `addr` the definition of `name` (not a canonical PLT entry, which is
/// an undefined symbol with an address, and which `dladdr` never names)?
/// A program that defines and exports a boundary function overrides the
/// old build's for every object: its lazy references must not be rebound
/// (they were, and the program's own function was no longer called).
fn defines(addr: usize, name: &CStr) -> bool {
    // SAFETY: Dl_info is plain data (pointers and integers); all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut sym: *const libc::Elf64_Sym = std::ptr::null();
    // SAFETY: dladdr1 only reads ld.so's tables; dli_sname and the symbol
    // entry are ld.so's.
    unsafe {
        libc::dladdr1(
            addr as *const c_void,
            &mut info,
            &mut sym as *mut *const libc::Elf64_Sym as *mut *mut c_void,
            1, // RTLD_DL_SYMENT
        ) != 0
            && info.dli_saddr as usize == addr
            && !info.dli_sname.is_null()
            && CStr::from_ptr(info.dli_sname) == name
            && !sym.is_null()
            && (*sym).st_shndx != 0 // SHN_UNDEF: a canonical PLT entry
    }
}

/// For an object loaded with `RTLD_LOCAL`: does its own scope resolve `name` to `target`?
fn own_scope_resolves(obj: &LoadedObject, name: &CStr, target: usize) -> bool {
    let Ok(p) = CString::new(obj.path.to_string_lossy().as_bytes()) else {
        return false;
    };
    let h = real_dlopen(&p, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
    if h.is_null() {
        return false;
    }
    let r = real_dlsym(h, name);
    real_dlclose(h);
    r == target
}

/// A `dlsym`/`dlvsym` answer: the wrapper when the real answer is a
/// boundary function of the old build, the real answer otherwise.
pub fn lookup_answer(name: &CStr, version: Option<&CStr>, real: usize) -> usize {
    let Some(s) = session() else { return real };
    // Not gated on `active`: while the old build is there, its rebound slots
    // hold wrappers even where the wrappers only forward (a forked child,
    // after the at-exit drain), and a `dlsym` answer must stay equal to
    // them. Once the old build is gone, `st.old` is None: the real answer.
    let Some(name) = name
        .to_str()
        .ok()
        .filter(|n| s.names.read().map(|m| m.contains_key(*n)).unwrap_or(false))
    else {
        return real;
    };
    let _guard = Busy::enter();
    // Not waited for long: this may run inside ld.so's load lock (a
    // constructor's dlsym) while the holder waits for that lock. The real
    // answer is then the best there is.
    // In a forked child a lock held at fork time is never released: don't wait.
    let st = if s.pid == std::process::id() {
        lock_briefly(&s.state)
    } else {
        match s.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    };
    let Some(mut st) = st else {
        return real;
    };
    let ver = version.map(|v| v.to_string_lossy().into_owned());
    if st.failed {
        return real; // nothing was rebound
    }
    let Some(old) = st.old.as_ref() else {
        return real;
    };
    // Hold the old build open while its handle is used: another thread
    // may be unloading it.
    let Ok(path) = CString::new(old.obj.name.as_bytes()) else {
        return real;
    };
    let pin = real_dlopen(&path, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
    if pin.is_null() {
        return real;
    }
    let answer = if pin != old.handle {
        real
    } else {
        match resolve_old(old.handle, name, ver.as_deref()) {
            Some(target) if target == real => {
                let key = (name.to_string(), ver);
                match ensure_wrappers(s, &mut st, std::slice::from_ref(&key)) {
                    Ok(()) => st.wrappers[&key].thunk,
                    Err(_) => real,
                }
            }
            _ => real,
        }
    };
    real_dlclose(pin);
    answer
}

/// Runs once `main` returns or `exit` is called, before `_dl_fini`.
pub extern "C" fn at_exit() {
    let Some(s) = session() else { return };
    if s.pid != std::process::id() {
        return;
    }
    let _guard = Busy::enter();
    s.deactivate();
    wait_for_loader(s);
    // Not the state lock: `exit` may be called from a constructor running
    // inside a `dlopen`, while another thread holds the state lock and waits
    // for ld.so's lock in a `dlsym`.
    if s.failed.load(Ordering::Acquire) {
        // DDL stood down after an error: as if it had never been there.
        return;
    }
    s.shadow.finish();
}

/// Runs before `exec` replaces the process image: drain and summary, as at
/// exit. A `vfork` child (another pid) leaves the parent's session alone.
/// Should the exec fail, DDL has stood down for the rest of the process.
pub fn before_exec() {
    at_exit();
}

/// Marks the thread as inside DDL for a scope (re-arms on drop).
struct Busy(bool);

impl Busy {
    fn enter() -> Busy {
        Busy(crate::wrapper::set_busy(true))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        crate::wrapper::set_busy(self.0);
    }
}

/// What the pre hook captured, waiting for the primary call to return.
pub struct Pending {
    seq: u64,
    errno_before: i32,
    raw: SmallVec<[Raw; 8]>,
    inputs: Inputs,
    caller: u64,
    fp_env: FpEnv,
}

/// A mirrored call of a function that takes the ring, between the pre and
/// the post hook (the arguments stay in the entry's frame), or one the
/// ring path handed over ([`ring_call_pending`]).
#[derive(Clone, Copy)]
pub struct RingPending {
    seq: u64,
    caller: u64,
    errno_before: i32,
    fp_env: FpEnv,
    gpr: [u64; GPRS],
    xmm: [u64; XMMS],
}

impl RingPending {
    /// The general path's `Pending` for the same call (when it cannot take
    /// the ring after all: outgoing calls, an exception).
    fn widen(self, f: &arbiter::shadow::BoundaryFn) -> Pending {
        let raw: SmallVec<[Raw; 8]> = f
            .layout
            .args
            .iter()
            .map(|loc| {
                let reg = arbiter::ring::slot_reg(loc).unwrap_or(0);
                Raw::Bits(arbiter::ring::reg_bits(&self.gpr, &self.xmm, reg))
            })
            .collect();
        // SAFETY: a ring function's inputs are bits: no pointer is read.
        let inputs = unsafe { capture_inputs(&f.sig, &raw) };
        Pending {
            seq: self.seq,
            errno_before: self.errno_before,
            raw,
            inputs,
            caller: self.caller,
            fp_env: self.fp_env,
        }
    }
}

/// The argument registers a ring slot keeps, from an entry's frame.
fn frame_regs(frame: &Frame) -> ([u64; GPRS], [u64; XMMS]) {
    let gpr: [u64; GPRS] = frame.gpr;
    let xmm: [u64; XMMS] = std::array::from_fn(|i| frame.xmm[i][0]);
    (gpr, xmm)
}

/// The ring path's call (in `frame`, with the FP control word `fp`) goes
/// the general way (its old build made outgoing calls): it becomes this
/// thread's pending ring call, which `after_call` widens.
pub fn ring_call_pending(t: &ThreadState, frame: &Frame, fp: u64) {
    let Some(s) = session() else { return };
    let (gpr, xmm) = frame_regs(frame);
    t.ring_pending.set(Some(RingPending {
        seq: s.shadow.next_seq(),
        caller: frame.ret_addr,
        errno_before: 0,
        fp_env: FpEnv {
            mxcsr: fp as u32,
            x87_cw: (fp >> 32) as u16,
        },
        gpr,
        xmm,
    }));
}

/// The name of boundary function `func` as the report keys it.
pub fn function_name(func: u32) -> String {
    session()
        .and_then(|s| s.shadow.functions().get(func as usize))
        .map(|f| f.name.clone())
        .unwrap_or_default()
}

/// The ring path dropped a call on handles of `ctx` (its thread's ring
/// was full; the assembly counted it): its handles part
/// (`ThreadCounts::part_dropped`), and a sleeping shadow is woken.
pub fn ring_dropped(t: &ThreadState, ctx: &FnCtx, frame: &Frame) {
    let Some(s) = session() else { return };
    let (gpr, xmm) = frame_regs(frame);
    if let Some(c) = t.counts.borrow().as_ref() {
        c.part_dropped(ctx.func, &gpr, &xmm);
    }
    s.shadow.wake_if_sleeping();
}

/// Wakes the shadow thread if it sleeps (the ring path, once a batch has
/// piled up).
pub fn wake_shadow() {
    if let Some(s) = session() {
        s.shadow.wake_if_sleeping();
    }
}

fn tid(t: &ThreadState) -> u32 {
    if t.tid.get() == 0 {
        // SAFETY: gettid has no preconditions.
        t.tid.set(unsafe { libc::gettid() } as u32);
    }
    t.tid.get()
}

/// The caller's path, before the primary call: count it, decide, capture
/// the inputs. Returns true to mirror (the entry then calls `after_call`).
pub fn before_call(ctx: &FnCtx, frame: &Frame, t: &ThreadState) -> bool {
    let Some(s) = session() else { return false };
    if !s.active.load(Ordering::Acquire) {
        return false;
    }
    // Count the call and decide (the assembly entry takes the same
    // decision for the calls it skips without coming here).
    if !crate::wrapper::decide(
        t,
        ctx.func,
        s.shadow.functions()[ctx.func as usize].per_call_sampling,
        s.threshold,
        &s.active,
        s.shadow.is_stopped(),
        || s.shadow.thread_counts(),
    ) {
        return false;
    }
    let f = &s.shadow.functions()[ctx.func as usize];
    let ring = s.shadow.takes_ring(ctx.func);
    if !ring {
        // If it may pair or unpair handles: before its number is taken.
        s.shadow.note_pairing(ctx.func);
    }
    let seq = s.shadow.next_seq();
    if ring {
        if s.threshold == u64::MAX || !f.per_call_sampling {
            // Every call is mirrored (sampling 1, or a function given
            // handles): the wrapper's later calls take the assembly ring
            // path (C functions only: `FnCtx::cxx`).
            crate::wrapper::arm_ring(
                t,
                crate::wrapper::RingArm {
                    ret_sse: matches!(f.sig.ret, arbiter::types::Type::Scalar(sc) if sc.is_float()),
                    parts: s.shadow.ring_on_handles(ctx.func),
                    narrow: s.shadow.ring_narrow(ctx.func),
                    handle: s.shadow.ring_handle(ctx.func),
                    pairings: s.shadow.pairings_counter(),
                    flags: s.shadow.raw_flags(),
                    watched: crate::observe::patched_flag(),
                },
            );
        }
        crate::observe::discard_observed();
        let (gpr, xmm) = frame_regs(frame);
        t.ring_pending.set(Some(RingPending {
            seq,
            caller: frame.ret_addr,
            errno_before: t.entry_errno.get(),
            fp_env: FpEnv::current(),
            gpr,
            xmm,
        }));
        return true;
    }
    // SAFETY: the frame was filled by the entry for a call of this function.
    let raw: SmallVec<[Raw; 8]> = (0..f.sig.params.len())
        .map(|i| unsafe { raw_arg(frame, &f.layout, &f.sig, i) })
        .collect();
    // SAFETY: the application's own arguments, read within their annotated sizes.
    let inputs = unsafe { capture_inputs(&f.sig, &raw) };
    crate::observe::discard_observed();
    *t.pending.borrow_mut() = Some(Pending {
        seq,
        errno_before: t.entry_errno.get(),
        raw,
        inputs,
        caller: frame.ret_addr,
        fp_env: FpEnv::current(),
    });
    true
}

/// The caller's path, after the primary call: capture the outcome, enqueue.
pub fn after_call(ctx: &'static FnCtx, frame: &Frame, t: &ThreadState) {
    let ring = t.ring_pending.take();
    let Some(s) = session() else { return };
    let f = &s.shadow.functions()[ctx.func as usize];
    let outgoing = crate::observe::patched().then(crate::observe::take_observed);
    if let Some(r) = ring {
        // SAFETY: the primary call returned; its registers are in the frame.
        let ret = unsafe { raw_ret(frame, &f.layout, &f.sig) };
        if outgoing.as_ref().is_none_or(|o| o.is_empty()) {
            // A fixed-size record in this thread's ring.
            if let Some(c) = t.counts.borrow().as_ref() {
                c.submit_scalar(ScalarCall {
                    seq: r.seq,
                    caller: r.caller,
                    target: crate::wrapper::ring_target(ctx),
                    fp: ScalarCall::fp_word(r.fp_env, outgoing.is_some()),
                    ret: ret.bits(),
                    gpr: r.gpr,
                    xmm: r.xmm,
                });
            }
            return;
        }
        *t.pending.borrow_mut() = Some(r.widen(f));
    }
    let Some(p) = t.pending.borrow_mut().take() else {
        return;
    };
    // SAFETY: the primary call returned; its registers are in the frame.
    let ret = unsafe { raw_ret(frame, &f.layout, &f.sig) };
    let inputs = p.inputs;
    // SAFETY: the same pointers the callee was given, within their sizes.
    let mut primary = unsafe { capture_outputs(&f.sig, &p.raw, &ret, &inputs, &inputs.deep) };
    if f.wants_errno {
        primary.errno = Some(t.primary_errno.get());
    }
    primary.outgoing = outgoing;
    let inv = Box::new(Invocation {
        seq: p.seq,
        func: ctx.func,
        tid: tid(t),
        caller: p.caller,
        new_fn: &ctx.new_fn,
        inputs,
        primary,
        errno_before: p.errno_before,
        deleting: ctx.deleting,
        fp_env: p.fp_env,
    });
    s.shadow.submit(inv);
}

/// The primary call of `ctx` ended with a C++ exception on its way to the
/// application (`wrapper::exception_caught`): that is its outcome.
pub fn after_throw(ctx: &'static FnCtx, t: &ThreadState, ex: arbiter::compare::Exception) {
    let Some(s) = session() else { return };
    let f = &s.shadow.functions()[ctx.func as usize];
    if let Some(r) = t.ring_pending.take() {
        *t.pending.borrow_mut() = Some(r.widen(f));
    }
    let Some(p) = t.pending.borrow_mut().take() else {
        return;
    };
    let primary = arbiter::compare::Outcome {
        ret: arbiter::value::Value::None,
        outputs: vec![arbiter::value::Value::None; f.sig.params.len()],
        errno: None,
        exception: Some(ex),
        outgoing: crate::observe::patched().then(crate::observe::take_observed),
    };
    let inv = Box::new(Invocation {
        seq: p.seq,
        func: ctx.func,
        tid: tid(t),
        caller: p.caller,
        new_fn: &ctx.new_fn,
        inputs: p.inputs,
        primary,
        errno_before: p.errno_before,
        deleting: ctx.deleting,
        fp_env: p.fp_env,
    });
    s.shadow.submit(inv);
}

/// Poisoned namespaces of the new build kept loaded (not safe to unload)
/// before mirroring stops: glibc gives about 11 usable namespaces (static
/// TLS), one of them the fresh namespace in use.
pub(crate) const POISONED_BUDGET: usize = 8;

/// The shadow's `reload` hook: the new build's namespace is poisoned (a
/// fault, a hang or an exit at `pc`). It is never called again: unloaded
/// when that is safe (the call stopped in the new build's own code, not in
/// its libc or ld.so, and it started no threads), else kept and counted
/// against [`POISONED_BUDGET`]; a fresh namespace takes its place and the
/// wrappers' new-build addresses are pointed into it.
fn reload_new_build(pc: usize) -> Result<(), String> {
    let s = session().ok_or("no session")?;
    let _guard = Busy::enter();
    let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
    for w in st.wrappers.values() {
        w.ctx.new_fn.store(0, Ordering::Release);
    }
    let Some(old) = st.new.take() else {
        return Err("the new build is gone".into());
    };
    if old.owns(pc) && !old.starts_threads && !crate::contain::started_threads(old.handle) {
        crate::contain::forget_namespace(old.handle);
        real_dlclose(old.handle);
    } else {
        st.poisoned_kept += 1;
        std::mem::forget(old);
        if st.poisoned_kept > POISONED_BUDGET {
            return Err(format!(
                "{} namespaces of the new build were poisoned where they could not be unloaded (a fault, hang or exit outside its own code, or a build that starts threads)",
                st.poisoned_kept
            ));
        }
    }
    let new = NewBuild::load(&s.config.new, &s.config.sandbox_intercept).map_err(|e| {
        format!(
            "cannot load a fresh namespace of {}: {e}",
            s.config.new.display()
        )
    })?;
    s.shadow.set_new_errno(new.errno_location);
    for ((name, ver), w) in &st.wrappers {
        let a = new.resolve(name, ver.as_deref()).unwrap_or(0);
        w.ctx.new_fn.store(a as u64, Ordering::Release);
    }
    let symbols = std::mem::take(&mut st.symbols);
    prepare_cxx(s, &new, &symbols);
    st.symbols = symbols;
    log_info(&format!(
        "the new build's namespace was poisoned at {pc:#x}: a fresh one is loaded"
    ));
    st.new = Some(new);
    Ok(())
}

/// The shadow's `take_outgoing` hook.
pub(crate) fn take_outgoing() -> Vec<arbiter::compare::Outgoing> {
    let taken = crate::contain::take_outgoing();
    if taken.is_empty() {
        return Vec::new();
    }
    taken
        .into_iter()
        .map(|o| arbiter::compare::Outgoing {
            function: o.function.to_string(),
            target: o.target,
            len: o.len,
            hash: o.hash,
            head: o.bytes,
        })
        .collect()
}

/// What the shadow needs to call the new build's C++ functions: each
/// constructor's object size, each destructor's D1, and the exception
/// guard in the new build's namespace (with the sandbox that runs it).
fn prepare_cxx(s: &Session, new: &NewBuild, symbols: &[crate::cxxrt::BoundarySymbol]) {
    prepare_cxx_of(&s.config, s.shadow.functions(), new, symbols)
}

/// [`prepare_cxx`] for any config and boundary (replay has no session).
pub(crate) fn prepare_cxx_of(
    config: &Config,
    fns: &[BoundaryFn],
    new: &NewBuild,
    symbols: &[crate::cxxrt::BoundarySymbol],
) {
    for (i, f) in config.functions.iter().enumerate() {
        let Some(d) = &f.cxx else {
            continue;
        };
        let rt = &fns[i].cxx;
        match d.kind {
            arbiter::cxx::CxxKind::Ctor => {
                match crate::cxxrt::new_class_size(config, &new.path, &d.class) {
                    Some(n) => rt.instance_size.store(n, Ordering::Relaxed),
                    None => fail_open(&config.function_error(
                        i,
                        format!(
                            "the size of class {} in the new build is unknown (no DWARF for it in {}): build it with -g or give it in \"classes\"; its constructor's calls stay unmirrored",
                            d.class,
                            new.path.display()
                        ),
                    )),
                }
            }
            arbiter::cxx::CxxKind::Dtor => {
                if let Some(d1) = symbols
                    .iter()
                    .find(|x| x.func == i as u32 && x.complete_dtor)
                {
                    let a = new.resolve(&d1.name, None).unwrap_or(0);
                    rt.new_d1.store(a, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
    // Any function of a build with a C++ runtime may throw (a C-linkage
    // function of a C++ component too): every call goes through the guard.
    if new.resolve("__cxa_throw", None).is_none() {
        return;
    }
    // SAFETY: the new build's handle is a live dlmopen handle.
    let guard = unsafe { new.lmid() }.and_then(|lmid| unsafe { crate::cxxguard::load_into(lmid) });
    match guard.and_then(|g| arbiter::sandbox::install().map(|_| g)) {
        Ok(g) => {
            for f in fns.iter() {
                f.cxx.guard.store(g as usize, Ordering::Relaxed);
            }
        }
        Err(e) => log_info(&format!(
            "no exception guard in the new build's namespace: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision an installed libddl takes in a set-uid program.
    #[test]
    fn stands_down_in_secure_processes() {
        assert!(stands_down_in(1));
        assert!(stands_down_in(2));
        assert!(!stands_down_in(0));
        // This test process itself is not secure: the real value says so.
        // SAFETY: getauxval is always safe to call.
        assert!(!stands_down_in(unsafe { libc::getauxval(libc::AT_SECURE) }));
    }

    /// `old` names an object by its file name, or by the file name its
    /// path resolves to through symlinks (a symlinked folder, a symlinked
    /// file, a chain of them).
    #[test]
    fn old_is_matched_by_file_name_or_through_symlinks() {
        let dir = std::env::temp_dir().join(format!("ddl-is-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/libreal.so.1.2"), b"").unwrap();
        std::fs::write(dir.join("real/libplain.so.1"), b"").unwrap();
        std::os::unix::fs::symlink("libreal.so.1.2", dir.join("real/libreal.so.1")).unwrap();
        std::os::unix::fs::symlink("real/libreal.so.1", dir.join("libchain.so")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("linked")).unwrap();
        let obj = |p: &str| {
            let path = dir.join(p);
            LoadedObject {
                base: 0x1000,
                name: path.to_string_lossy().into_owned(),
                path,
                lmap: 1,
            }
        };
        assert!(is_old("libreal.so.1", &obj("real/libreal.so.1")));
        assert!(is_old("libreal.so.1.2", &obj("real/libreal.so.1")));
        assert!(is_old("libreal.so.1.2", &obj("libchain.so")));
        assert!(is_old("libplain.so.1", &obj("linked/libplain.so.1")));
        assert!(!is_old("libreal.so.1.2", &obj("real/libplain.so.1")));
        assert!(!is_old("libreal.so.1.2", &obj("linked/libplain.so.1")));
        assert!(!is_old("libplain.so", &obj("real/libplain.so.1")));
        assert!(!is_old("libreal.so.1.2", &obj("real/missing.so")));
        let by_path = dir.join("real/libreal.so.1.2");
        assert!(is_old(
            by_path.to_str().unwrap(),
            &obj("linked/libreal.so.1")
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
