//! The capture log of a live run (`capture` in the config): started when
//! the old build arrives, fed by the shadow thread (never the caller's
//! path), closed by the shadow's `finish` at exit.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use arbiter::capture::{
    build_id, BuildInfo, Call, CaptureWriter, Entry, Header, Privacy, SymbolInfo,
};
use arbiter::shadow::CaptureEvent;

use crate::cxxrt::BoundarySymbol;
use crate::runtime::{caller_name, symbol_of_slot, Session};

/// Creates the log at `path`, with a header naming both builds and the
/// config, and hooks it to the shadow.
pub(crate) fn start(
    s: &Session,
    path: &Path,
    old: &Path,
    new: &Path,
    symbols: &[BoundarySymbol],
) -> io::Result<()> {
    let config = s.config();
    let spec = config.capture.clone().unwrap_or_else(|| unreachable!());
    let config_text = std::fs::read_to_string(&config.file)?;
    let hash = spec
        .hash
        .iter()
        .map(|(f, out)| {
            let f = &config.functions[*f];
            let out = match out {
                Some(p) => f.sig.params[*p].name.clone(),
                None => "return".into(),
            };
            format!("{}.{out}", f.key)
        })
        .collect();
    let header = Header {
        ddl_version: env!("CARGO_PKG_VERSION").into(),
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        pid: std::process::id(),
        exe: crate::elf::exe_path().to_string_lossy().into_owned(),
        config_path: std::path::absolute(&config.file)
            .unwrap_or_else(|_| config.file.clone())
            .to_string_lossy()
            .into_owned(),
        config_text,
        old: BuildInfo {
            path: old.to_string_lossy().into_owned(),
            build_id: build_id(old),
        },
        new: BuildInfo {
            path: new.to_string_lossy().into_owned(),
            build_id: build_id(new),
        },
        functions: config.functions.iter().map(|f| f.key.clone()).collect(),
        symbols: symbols
            .iter()
            .map(|b| SymbolInfo {
                name: b.name.clone(),
                func: b.func,
                deleting: b.deleting,
                complete_dtor: b.complete_dtor,
            })
            .collect(),
        max_buffer_bytes: spec.max_buffer_bytes,
        hash,
    };
    let mut writer = CaptureWriter::create(path, &header, crate::wrapper::mark_thread_busy)?;
    if writer.path() != path {
        // The image this one `exec`ed from left its log there.
        crate::runtime::log_info(&format!(
            "{} exists: the capture log is {}",
            path.display(),
            writer.path().display()
        ));
    }
    let privacy = Privacy {
        max_buffer_bytes: spec.max_buffer_bytes,
        hash: spec.hash.clone(),
    };
    // Callers are named once per return address (dladdr is not free).
    let mut callers: HashMap<u64, Option<String>> = HashMap::new();
    let fns = s.shadow().functions().clone();
    s.shadow().set_capture(Box::new(move |e| match e {
        CaptureEvent::Call(inv) => {
            let slot = inv.new_fn as *const _ as usize;
            let (symbol, version) = symbol_of_slot(slot)
                .unwrap_or_else(|| (fns[inv.func as usize].sig.name.clone(), None));
            let caller = callers
                .entry(inv.caller)
                .or_insert_with(|| caller_name(inv.caller))
                .clone();
            let mut call = Call {
                seq: inv.seq,
                func: inv.func,
                symbol,
                version,
                tid: inv.tid,
                caller,
                inputs: inv.inputs.clone(),
                primary: inv.primary.clone(),
                errno_before: inv.errno_before,
                deleting: inv.deleting,
                fp_env: inv.fp_env,
                masks: Vec::new(),
                inputs_cut: false,
            };
            privacy.apply(&mut call);
            writer.append(&Entry::Call(Box::new(call)));
        }
        CaptureEvent::Parted(class, handle, seq) => {
            writer.append(&Entry::Parted { class, handle, seq });
        }
    }));
    Ok(())
}
