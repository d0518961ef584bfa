//! Array commands: create, info, check, show, import, export.
//!
//! Locking: `show`, `check`, `import` (its source) and `export` take the
//! shared read lock; `import` takes the new file's write lock while copying.
//! `create` needs none (nobody can see the file before it is complete) and
//! `info` reads only the immutable header and the atomic generation counter,
//! so it never waits: it works even while a stuck writer holds the lock.
//! `--lock-timeout SECONDS` turns a longer wait into exit code 3.

mod floats;
mod show;
mod values;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use sharray::format::npy::shape_repr;
use sharray::{CopyOptions, Dtype, Error, ErrorKind, FileKind, Info, Order, Result, UntypedArray};

/// Commands on arrays and plain `.npy` files.
#[derive(Subcommand)]
pub enum ArrayCmd {
    /// Create a new array file (never overwrites; 0600 unless --mode).
    Create(CreateArgs),
    /// Print the layout of an array, ring, queue or plain .npy file.
    Info {
        /// Path, or shm:NAME for /dev/shm/NAME.
        path: String,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        owner: OwnerArgs,
    },
    /// Validate every invariant of a file; exit 0 only if all hold.
    Check {
        /// Path, or shm:NAME.
        path: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Print an array like numpy does (corners only for big arrays).
    Show {
        /// Path, or shm:NAME.
        path: String,
        /// Summarise arrays with more than N elements (numpy's threshold).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        max: usize,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        owner: OwnerArgs,
        #[command(flatten)]
        raw: RawArgs,
    },
    /// Copy a plain .npy (or, with --raw, a headerless binary file) into a
    /// new sharray file (dtype, shape, order and bytes kept).
    Import {
        /// The .npy (or sharray, or with --raw headerless) file to read.
        src: String,
        /// The new sharray file (path or shm:NAME).
        dst: String,
        /// Permission bits of the new file, in octal.
        #[arg(long, default_value = "600", value_parser = crate::args::parse_mode)]
        mode: u32,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        owner: OwnerArgs,
        #[command(flatten)]
        raw: RawArgs,
    },
    /// Copy an array into a new plain .npy exactly as numpy's np.save writes it.
    Export {
        /// The sharray (or .npy) file to read.
        src: String,
        /// The new .npy file.
        dst: String,
        /// Replace an existing DST atomically: the new file is written under
        /// a temporary name and renamed over it (a process mapping the old
        /// file keeps it intact).
        #[arg(long)]
        force: bool,
        /// Permission bits of the new file, in octal.
        #[arg(long, default_value = "600", value_parser = crate::args::parse_mode)]
        mode: u32,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        owner: OwnerArgs,
    },
}

/// `import --raw`: the layout of a headerless file, as numpy's
/// `np.memmap(path, dtype, shape=..., offset=..., order=...)` takes it.
#[derive(Args)]
pub struct RawArgs {
    /// The file is headerless binary data laid out as --dtype, --shape,
    /// --offset and --order say (np.memmap's arguments); its size must
    /// match exactly.
    #[arg(long, requires_all = ["dtype", "shape"])]
    raw: bool,
    /// numpy dtype of the raw data (with --raw), e.g. float64 or '>i4'.
    #[arg(long, requires = "raw")]
    dtype: Option<String>,
    /// Comma-separated dimensions of the raw data (with --raw).
    #[arg(long, requires = "raw", value_parser = parse_shape, allow_hyphen_values = true)]
    shape: Option<Shape>,
    /// Bytes to skip at the start of the raw file (with --raw).
    #[arg(long, requires = "raw", default_value_t = 0)]
    offset: u64,
    /// Memory order of the raw data (with --raw).
    #[arg(long, requires = "raw", value_enum, ignore_case = true)]
    order: Option<OrderArg>,
}

impl RawArgs {
    fn layout(&self) -> Result<Option<sharray::RawLayout>> {
        if !self.raw {
            return Ok(None);
        }
        let (Some(dtype), Some(shape)) = (&self.dtype, &self.shape) else {
            return Err(invalid("--raw needs --dtype and --shape"));
        };
        let dtype = Dtype::parse_user(dtype).map_err(|e| invalid(format!("--dtype: {e}")))?;
        let order = match self.order {
            Some(OrderArg::F) => Order::F,
            _ => Order::C,
        };
        Ok(Some(
            sharray::RawLayout::new(dtype, &shape.0)
                .order(order)
                .offset(self.offset),
        ))
    }
}

/// `--lock-timeout`, shared by the commands that lock.
#[derive(Args)]
pub struct LockArgs {
    /// Wait at most this many seconds for the lock (exit 3 after that);
    /// without it, wait as long as it takes.
    #[arg(long, value_name = "SECONDS", value_parser = crate::args::parse_seconds)]
    lock_timeout: Option<Duration>,
}

/// `--allow-other-owner`, shared by the commands that open a file to read.
#[derive(Args)]
pub struct OwnerArgs {
    /// Accept a file owned by another user (refused by default: that
    /// user's bytes decide what this command reads).
    #[arg(long)]
    pub allow_other_owner: bool,
}

/// Memory order on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum OrderArg {
    /// Row-major (numpy's default).
    C,
    /// Column-major (Fortran).
    F,
}

/// Arguments of `sharray create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Path, or shm:NAME for /dev/shm/NAME.
    path: String,
    /// numpy descr ('<f4', '|u1', '>i4', '<U8', a structured list) or name (f32, float32, uint8, complex64, bool).
    #[arg(long)]
    dtype: String,
    /// Comma-separated dimensions, e.g. 480,640 ("" for a 0-d array).
    #[arg(long, value_parser = parse_shape, allow_hyphen_values = true)]
    shape: Shape,
    /// Initial value of every element (default 0): ints, floats, nan/inf,
    /// true/false/1/0, complex as 1+2j.
    #[arg(long, allow_hyphen_values = true)]
    fill: Option<String>,
    /// Memory order.
    #[arg(long, value_enum, default_value = "c", ignore_case = true)]
    order: OrderArg,
    /// Permission bits of the new file, in octal (applied whatever the umask).
    #[arg(long, default_value = "600", value_parser = crate::args::parse_mode)]
    mode: u32,
    #[command(flatten)]
    grow: crate::grow_cmds::GrowArgs,
}

/// A parsed `--shape`.
#[derive(Clone)]
pub struct Shape(Vec<usize>);

fn parse_shape(s: &str) -> std::result::Result<Shape, String> {
    crate::args::parse_shape(s).map(Shape)
}

fn location(loc: &str) -> Result<PathBuf> {
    sharray::resolve_location(loc)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

/// Run one array command.
pub fn run(cmd: ArrayCmd) -> Result<()> {
    match cmd {
        ArrayCmd::Create(args) => create(args),
        ArrayCmd::Info { path, json, owner } => info(&path, json, owner.allow_other_owner),
        ArrayCmd::Check { path, lock } => check(&path, lock.lock_timeout),
        ArrayCmd::Show {
            path,
            max,
            lock,
            owner,
            raw,
        } => show(
            &path,
            max,
            lock.lock_timeout,
            owner.allow_other_owner,
            raw.layout()?,
        ),
        ArrayCmd::Import {
            src,
            dst,
            mode,
            lock,
            owner,
            raw,
        } if raw.raw => import_raw(
            &src,
            &dst,
            raw.layout()?,
            mode,
            lock.lock_timeout,
            owner.allow_other_owner,
        ),
        ArrayCmd::Import {
            src,
            dst,
            mode,
            lock,
            owner,
            raw: _,
        } => copy(
            &src,
            &dst,
            mode,
            lock.lock_timeout,
            owner.allow_other_owner,
            None,
        ),
        ArrayCmd::Export {
            src,
            dst,
            force,
            mode,
            lock,
            owner,
        } => copy(
            &src,
            &dst,
            mode,
            lock.lock_timeout,
            owner.allow_other_owner,
            Some(force),
        ),
    }
}

fn create(args: CreateArgs) -> Result<()> {
    let path = location(&args.path)?;
    let dtype = Dtype::parse_user(&args.dtype).map_err(|e| invalid(format!("--dtype: {e}")))?;
    if args.grow.growable {
        let order = match args.order {
            OrderArg::C => Order::C,
            OrderArg::F => Order::F,
        };
        return crate::grow_cmds::create(
            &path,
            dtype,
            &args.shape.0,
            order,
            args.fill.is_some(),
            args.mode,
            &args.grow,
        );
    }
    let mut builder = UntypedArray::builder(dtype.clone())
        .shape(&args.shape.0)
        .order(match args.order {
            OrderArg::C => Order::C,
            OrderArg::F => Order::F,
        })
        .mode(args.mode);
    if let Some(fill) = &args.fill {
        let bytes = values::parse_fill(&dtype, fill).map_err(invalid)?;
        builder = builder.fill_bytes(&bytes);
    }
    let a = builder.create(&path)?;
    println!(
        "created {}: {} {} {}-order, {} bytes of data",
        path.display(),
        a.dtype(),
        shape_repr(a.shape()),
        a.order().as_str(),
        a.nbytes()
    );
    Ok(())
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// numpy's name of a simple dtype, for the summary.
fn dtype_name(d: &Dtype) -> String {
    let n = d.itemsize();
    let name = match d.kind() {
        None => return "structured".into(),
        Some('b') => "bool".to_string(),
        Some('i') => format!("int{}", n * 8),
        Some('u') => format!("uint{}", n * 8),
        Some('f') if n == 16 => "longdouble".to_string(),
        Some('f') => format!("float{}", n * 8),
        Some('c') if n == 32 => "clongdouble".to_string(),
        Some('c') => format!("complex{}", n * 8),
        Some('S') => format!("bytes{n}"),
        Some('U') => format!("str{}", n / 4),
        Some('V') => format!("void{n}"),
        Some('M') => "datetime64".to_string(),
        Some('m') => "timedelta64".to_string(),
        Some(_) => return String::new(),
    };
    if d.descr().starts_with('>') {
        format!("{name}, big-endian")
    } else {
        name
    }
}

fn info_json(i: &Info) -> serde_json::Value {
    serde_json::json!({
        "path": i.path.display().to_string(),
        "kind": i.kind.name(),
        "dtype": i.dtype.descr(),
        "shape": i.shape,
        "order": i.order.as_str(),
        "data_offset": i.data_offset,
        "nbytes": i.nbytes,
        "file_len": i.file_len,
        "format_version": i.format_version,
        "generation": i.generation,
        "itemsize": i.dtype.itemsize(),
    })
}

fn info(loc: &str, json: bool, allow_other_owner: bool) -> Result<()> {
    if crate::grow_cmds::info(&location(loc)?, json)? {
        return Ok(());
    }
    let i = sharray::OpenOptions::new()
        .allow_other_owner(allow_other_owner)
        .inspect(location(loc)?)?;
    if i.kind == FileKind::Npy && i.data_offset == 4096 {
        // A sharray file that lost its control block looks like a plain
        // .npy; `check` knows the signs (cheap for a plain file).
        for p in sharray::check(&i.path, Some(Duration::from_secs(5)))? {
            eprintln!("warning: {p}");
        }
    }
    if json {
        let mut v = info_json(&i);
        if i.kind == FileKind::Queue {
            v["queue"] = crate::pool_cmds::queue_info_json(&i.path)?;
        }
        if i.kind == FileKind::Ring
            && let Some(r) = crate::ring_cmds::ring_info_json(&i.path, allow_other_owner)?
        {
            v["ring"] = r;
        }
        println!("{v}");
        return Ok(());
    }
    let name = dtype_name(&i.dtype);
    println!("path:           {}", i.path.display());
    println!(
        "kind:           {}{}",
        i.kind.name(),
        if i.kind == FileKind::Npy {
            " (plain numpy file: whole-array locks only; `sharray import` adds a generation counter)"
        } else {
            ""
        }
    );
    if name.is_empty() {
        println!("dtype:          {}", i.dtype);
    } else {
        println!("dtype:          {} ({name})", i.dtype);
    }
    println!("shape:          {}", shape_repr(&i.shape));
    println!("order:          {}", i.order.as_str());
    println!("itemsize:       {}", i.dtype.itemsize());
    println!("data_offset:    {}", i.data_offset);
    println!("nbytes:         {} ({})", i.nbytes, human_bytes(i.nbytes));
    println!(
        "file_len:       {} ({})",
        i.file_len,
        human_bytes(i.file_len)
    );
    match i.format_version {
        Some(v) => println!("format_version: {v}"),
        None => println!("format_version: none (no control block)"),
    }
    println!("generation:     {}", i.generation);
    if i.kind == FileKind::Queue {
        print!("{}", crate::pool_cmds::queue_info_text(&i.path)?);
    }
    if i.kind == FileKind::Ring
        && let Some(r) = crate::ring_cmds::ring_info_json(&i.path, allow_other_owner)?
    {
        println!("ring state:");
        print!("{}", text_of_json(&r, 1));
    }
    Ok(())
}

/// A JSON object as indented `key: value` lines (the text form of `info`;
/// `--json` gives the JSON itself).
fn text_of_json(v: &serde_json::Value, depth: usize) -> String {
    use serde_json::Value;
    let pad = "  ".repeat(depth);
    let mut out = String::new();
    let Value::Object(m) = v else {
        return format!("{pad}{v}\n");
    };
    for (k, val) in m {
        match val {
            Value::Object(_) => {
                out += &format!("{pad}{k}:\n{}", text_of_json(val, depth + 1));
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out += &format!("{pad}{k}:{}\n", if items.is_empty() { " none" } else { "" });
                for (n, item) in items.iter().enumerate() {
                    out += &format!("{pad}  - #{n}\n{}", text_of_json(item, depth + 2));
                }
            }
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(Value::to_string).collect();
                out += &format!("{pad}{k}: [{}]\n", parts.join(", "));
            }
            Value::String(s) => out += &format!("{pad}{k}: {s}\n"),
            _ => out += &format!("{pad}{k}: {val}\n"),
        }
    }
    out
}

fn check(loc: &str, lock_timeout: Option<Duration>) -> Result<()> {
    let path = location(loc)?;
    let problems = sharray::check(&path, lock_timeout)?;
    if problems.is_empty() && sharray::GrowableArray::detect(&path)? {
        let g = sharray::GrowableArray::open_read_only(&path)?;
        println!(
            "ok: {} is a valid sharray growable array (format 2) ({} rows of {}, capacity {})",
            path.display(),
            g.len(),
            shape_repr(g.row_shape()),
            g.capacity()
        );
        return Ok(());
    }
    if problems.is_empty() {
        let i = sharray::inspect(&path)?;
        println!(
            "ok: {} is a valid {} ({} {} {}-order)",
            path.display(),
            if i.kind == FileKind::Npy {
                "plain .npy file".to_string()
            } else {
                format!(
                    "sharray {} (format {})",
                    i.kind.name(),
                    i.format_version.unwrap_or(0)
                )
            },
            i.dtype,
            shape_repr(&i.shape),
            i.order.as_str()
        );
        return Ok(());
    }
    for p in &problems {
        println!("FAIL {p}");
    }
    Err(Error::new(
        ErrorKind::Corrupt,
        format!(
            "{} problem{} found (the FAIL lines on stdout say what and where)",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
    )
    .at(&path))
}

fn show(
    loc: &str,
    max: usize,
    lock_timeout: Option<Duration>,
    allow_other_owner: bool,
    raw: Option<sharray::RawLayout>,
) -> Result<()> {
    let path = location(loc)?;
    let opts = sharray::OpenOptions::new()
        .read_only(true)
        .allow_other_owner(allow_other_owner);
    let a = match &raw {
        Some(layout) => opts.open_raw_untyped(&path, layout)?,
        None => opts.open_untyped(&path)?,
    };
    let guard = match lock_timeout {
        Some(t) => a.read_timeout(t)?,
        None => a.read()?,
    };
    if a.dtype().is_structured() {
        eprintln!(
            "sharray: note: structured dtype {}; each record is shown as its {} raw bytes in hex",
            a.dtype(),
            a.dtype().itemsize()
        );
    }
    let text = show::render(a.dtype(), a.shape(), a.order(), guard.bytes(), max)
        .map_err(|e| invalid(e).at(&path))?;
    drop(guard);
    println!("{text}");
    Ok(())
}

/// A progress bar on a terminal for big copies; nothing otherwise.
fn progress_bar(label: &str) -> impl FnMut(u64, u64) {
    const MIN_BYTES: u64 = 64 << 20;
    let tty = std::io::stderr().is_terminal();
    let label = label.to_string();
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |done, total| {
        // Ctrl-C (or SIGTERM) during the copy: unwind out of the library,
        // which removes the unpublished file, to `main` (exit 130/143).
        if let Some(sig) = sharray::sys::interrupted() {
            if let Some(b) = &bar {
                b.abandon();
            }
            std::panic::resume_unwind(Box::new(crate::Interrupted(sig)));
        }
        if !tty || total < MIN_BYTES {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(label.clone());
            b
        });
        b.set_position(done);
        if done >= total {
            b.finish_and_clear();
        }
    }
}

fn copy(
    src: &str,
    dst: &str,
    mode: u32,
    lock_timeout: Option<Duration>,
    allow_other_owner: bool,
    // `None` for import, `Some(replace)` for export.
    export: Option<bool>,
) -> Result<()> {
    let import = export.is_none();
    let (src, dst) = (location(src)?, location(dst)?);
    let opts = CopyOptions::new()
        .mode(mode)
        .lock_timeout(lock_timeout)
        .allow_other_owner(allow_other_owner)
        .replace(export == Some(true));
    // Interrupts stop the copy cleanly instead of killing the process in
    // the middle (which, where the filesystem has no O_TMPFILE, would leave
    // the named temporary file behind).
    let _cancellable = sharray::sys::Cancellable::new()
        .map_err(|e| sharray::Error::new(ErrorKind::Io, format!("cannot handle Ctrl-C: {e}")))?;
    if import {
        let mut bar = progress_bar("importing");
        sharray::import_npy_with(&src, &dst, opts, &mut bar)?;
    } else {
        let mut bar = progress_bar("exporting");
        sharray::export_npy_with(&src, &dst, opts, &mut bar)?;
    }
    Ok(())
}

fn import_raw(
    src: &str,
    dst: &str,
    layout: Option<sharray::RawLayout>,
    mode: u32,
    lock_timeout: Option<Duration>,
    allow_other_owner: bool,
) -> Result<()> {
    let Some(layout) = layout else {
        return Err(invalid("--raw needs --dtype and --shape"));
    };
    let (src, dst) = (location(src)?, location(dst)?);
    let opts = CopyOptions::new()
        .mode(mode)
        .lock_timeout(lock_timeout)
        .allow_other_owner(allow_other_owner);
    let _cancellable = sharray::sys::Cancellable::new()
        .map_err(|e| sharray::Error::new(ErrorKind::Io, format!("cannot handle Ctrl-C: {e}")))?;
    let mut bar = progress_bar("importing");
    sharray::import_raw(&src, &layout, &dst, opts, &mut bar)?;
    Ok(())
}
