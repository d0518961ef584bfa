//! File commands: `sharray ls [DIR]` lists the sharray files of a directory,
//! `sharray rm PATH...` deletes them.
//!
//! Removing a file only unlinks its name: processes that have it mapped keep
//! their mapping (and the memory) until they close it. `rm` still refuses a
//! ring or queue that a live process is attached to, unless `--force`, since
//! a peer starting later would no longer find it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};
use sharray::{Error, ErrorKind, FileKind, Info, Result, Ring, WorkQueue};

use crate::array_cmds::human_bytes;
use sharray::format::npy::shape_repr;

/// Commands on files.
#[derive(Subcommand)]
pub enum FsCmd {
    /// List the arrays, rings and queues of a directory (default /dev/shm).
    ///
    /// With kind, dtype, shape, file size and live participants (attached
    /// ring producers and consumers, registered queue workers).
    Ls {
        /// The directory (default /dev/shm).
        #[arg(default_value = "/dev/shm")]
        dir: PathBuf,
        /// Print one JSON array of objects instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete sharray files (not while a live process holds a ring or queue).
    ///
    /// Refuses files that are not sharray arrays, rings or queues, and rings
    /// or queues a live process is attached to (unless --force). Processes
    /// that have the file mapped keep it.
    Rm {
        /// Paths, or shm:NAME for /dev/shm/NAME.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Delete a ring or queue even while live participants hold it.
        #[arg(long)]
        force: bool,
    },
}

fn os_error(what: &str, e: &std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Io,
    };
    Error::new(kind, format!("{what}: {e}"))
}

/// Live participants of a ring (attached producers and consumers) or a
/// queue (registered workers); `None` for an array (it keeps no table).
fn live(i: &Info) -> Result<Option<usize>> {
    Ok(match i.kind {
        FileKind::Ring => Some(Ring::open(&i.path)?.stats().alive()),
        FileKind::Queue => Some(WorkQueue::open_read_only(&i.path)?.progress().workers as usize),
        _ => None,
    })
}

/// The file at `path` if it is a sharray array, ring or queue.
fn sharray_file(path: &Path) -> Result<Info> {
    let i = sharray::inspect(path).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            e
        } else {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "not a sharray file ({}); sharray rm removes only sharray files",
                    e.message()
                ),
            )
            .at(path)
        }
    })?;
    if i.kind == FileKind::Npy {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a plain .npy file, not a sharray file; sharray rm removes only sharray files (use rm)",
        )
        .at(path));
    }
    Ok(i)
}

fn rm(loc: &str, force: bool) -> Result<()> {
    let path = sharray::resolve_location(loc)?;
    if sharray::GrowableArray::detect(&path).unwrap_or(false) {
        // A growable array keeps no count of its appenders (like an array).
        return std::fs::remove_file(&path).map_err(|e| os_error("cannot remove", &e).at(&path));
    }
    let i = sharray_file(&path)?;
    if let Some(n) = live(&i)?
        && n > 0
        && !force
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{n} live participant{} attached to this {}; stop {} or pass --force",
                if n == 1 { " is" } else { "s are" },
                i.kind.name(),
                if n == 1 { "it" } else { "them" }
            ),
        )
        .at(&path));
    }
    std::fs::remove_file(&path).map_err(|e| os_error("cannot remove", &e).at(&path))
}

/// One line of `ls`.
struct Row {
    path: PathBuf,
    kind: &'static str,
    dtype: sharray::Dtype,
    shape: Vec<usize>,
    file_len: u64,
}

fn ls(dir: &Path, as_json: bool) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| os_error("cannot list the directory", &e).at(dir))?;
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut rows = Vec::new();
    for p in names {
        if sharray::GrowableArray::detect(&p).unwrap_or(false) {
            if let Ok(g) = sharray::GrowableArray::open_read_only(&p) {
                let g = g.info();
                let shape = std::iter::once(g.rows as usize)
                    .chain(g.row_shape)
                    .collect();
                rows.push((
                    Row {
                        path: g.path,
                        kind: "growable",
                        dtype: g.dtype,
                        shape,
                        file_len: g.file_len,
                    },
                    None,
                ));
            }
            continue;
        }
        // Files that are not sharray's (or vanish meanwhile) are not listed.
        let Ok(i) = sharray::inspect(&p) else {
            continue;
        };
        if i.kind == FileKind::Npy {
            continue;
        }
        let live = live(&i).ok().flatten();
        rows.push((
            Row {
                path: i.path.clone(),
                kind: i.kind.name(),
                dtype: i.dtype.clone(),
                shape: i.shape.clone(),
                file_len: i.file_len,
            },
            live,
        ));
    }
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(i, live)| {
                json!({
                    "path": i.path.display().to_string(),
                    "kind": i.kind,
                    "dtype": i.dtype.descr(),
                    "shape": i.shape,
                    "file_len": i.file_len,
                    "live": live,
                })
            })
            .collect();
        println!("{}", Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<6} {:<10} {:<18} {:>10} {:>5}  PATH",
        "KIND", "DTYPE", "SHAPE", "SIZE", "LIVE"
    );
    for (i, live) in &rows {
        println!(
            "{:<6} {:<10} {:<18} {:>10} {:>5}  {}",
            i.kind,
            i.dtype.descr(),
            shape_repr(&i.shape),
            human_bytes(i.file_len),
            live.map_or("-".to_string(), |n| n.to_string()),
            i.path.display()
        );
    }
    Ok(())
}

/// Run one file command.
pub fn run(cmd: FsCmd) -> Result<()> {
    match cmd {
        FsCmd::Ls { dir, json } => ls(&dir, json),
        FsCmd::Rm { paths, force } => {
            for p in paths {
                rm(&p, force)?;
            }
            Ok(())
        }
    }
}
