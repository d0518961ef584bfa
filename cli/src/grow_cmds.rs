//! Growable arrays on the command line: `sharray create --growable`,
//! `sharray append PATH rows.npy`, and the rows/capacity lines of `info`.

use std::path::Path;

use clap::{Args, Subcommand};
use sharray::format::npy::shape_repr;
use sharray::{Dtype, Error, ErrorKind, GrowableArray, Order, Result};

/// The `--growable` options of `sharray create`.
#[derive(Args, Default)]
pub struct GrowArgs {
    /// Make the first axis growable: `sharray append` adds rows, several
    /// processes at once (the first entry of --shape is the initial row count,
    /// usually 0).
    #[arg(long)]
    pub growable: bool,
    /// Rows the file reserves room for (sparse; default: 64 GiB worth, at
    /// most 99999999). Needs --growable.
    #[arg(long, requires = "growable")]
    pub capacity: Option<u64>,
}

/// Commands on growable arrays.
#[derive(Subcommand)]
pub enum GrowCmd {
    /// Append the rows of a .npy file to a growable array (its dtype and row
    /// shape must match; a single row may be given without the row axis).
    Append {
        /// The growable array: path, or shm:NAME.
        path: String,
        /// A .npy file holding the rows.
        rows: String,
    },
}

/// Run a growable-array command.
pub fn run(cmd: GrowCmd) -> Result<()> {
    match cmd {
        GrowCmd::Append { path, rows } => append(&path, &rows),
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, m)
}

/// `sharray create --growable`.
pub fn create(
    path: &Path,
    dtype: Dtype,
    shape: &[usize],
    order: Order,
    fill: bool,
    mode: u32,
    args: &GrowArgs,
) -> Result<()> {
    let Some((&rows, row_shape)) = shape.split_first() else {
        return Err(invalid(
            "--growable needs at least one dimension: --shape 0,ROW_SHAPE... (the first is the initial row count)",
        ));
    };
    if order != Order::C {
        return Err(invalid(
            "--growable arrays are C order (rows are contiguous); drop --order F",
        ));
    }
    if fill {
        return Err(invalid(
            "--fill is not supported with --growable (initial rows are zeros); append the rows instead",
        ));
    }
    let mut b = GrowableArray::builder(dtype)
        .row_shape(row_shape)
        .rows(rows as u64)
        .mode(mode);
    if let Some(c) = args.capacity {
        b = b.capacity(c);
    }
    let a = b.create(path)?;
    println!(
        "created {}: growable {} rows of {}, {} rows, capacity {} rows",
        path.display(),
        a.dtype(),
        shape_repr(row_shape),
        a.len(),
        a.capacity()
    );
    Ok(())
}

fn append(loc: &str, rows_path: &str) -> Result<()> {
    let path = sharray::resolve_location(loc)?;
    let g = GrowableArray::open(&path)?;
    let src = sharray::OpenOptions::new()
        .read_only(true)
        .open_untyped(rows_path)?;
    if src.dtype() != g.dtype() {
        return Err(Error::new(
            ErrorKind::DtypeMismatch,
            format!(
                "{rows_path} holds {} but {} holds {}; convert the rows first (numpy: rows.astype('{}'))",
                src.dtype(),
                path.display(),
                g.dtype(),
                g.dtype()
            ),
        ));
    }
    let shape = src.shape();
    let fits = shape == g.row_shape() || shape.get(1..) == Some(g.row_shape());
    if !fits {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "{rows_path} has shape {}, but rows of {} have shape {}: give (N, {}) or one row",
                shape_repr(shape),
                path.display(),
                shape_repr(g.row_shape()),
                g.row_shape()
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if src.order() == Order::F && shape.len() > 1 && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(invalid(format!(
            "{rows_path} is in Fortran order; save it in C order (np.ascontiguousarray) first"
        )));
    }
    let guard = src.read()?;
    let n = guard.bytes().len() / g.row_bytes().max(1);
    let at = g.append_bytes(guard.bytes())?;
    println!(
        "appended {n} rows at row {at} of {}; {} rows published",
        path.display(),
        g.len()
    );
    Ok(())
}

/// Print `sharray info` (text or JSON) for a growable array; `false` if
/// the file is not one (nothing printed).
pub fn info(path: &Path, json: bool) -> Result<bool> {
    if !GrowableArray::detect(path)? {
        return Ok(false);
    }
    let i = GrowableArray::open_read_only(path)?.info();
    let shape: Vec<u64> = std::iter::once(i.rows)
        .chain(i.row_shape.iter().map(|&d| d as u64))
        .collect();
    if json {
        let v = serde_json::json!({
            "path": i.path.display().to_string(),
            "kind": "growable",
            "dtype": i.dtype.descr(),
            "shape": shape,
            "order": "C",
            "rows": i.rows,
            "reserved": i.reserved,
            "capacity": i.capacity,
            "row_bytes": i.row_bytes,
            "max_appenders": i.max_appenders,
            "rollbacks": i.rollbacks,
            "data_offset": 4096,
            "nbytes": i.rows * i.row_bytes,
            "file_len": i.file_len,
            "format_version": 2,
            "generation": i.generation,
            "itemsize": i.dtype.itemsize(),
        });
        println!("{v}");
        return Ok(true);
    }
    println!("path:           {}", i.path.display());
    println!(
        "kind:           growable array (`sharray append` adds rows; numpy sees the published ones)"
    );
    println!("dtype:          {}", i.dtype);
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    println!("shape:          {}", shape_repr(&shape));
    println!(
        "rows:           {} published, {} reserved",
        i.rows, i.reserved
    );
    println!(
        "capacity:       {} rows ({} bytes each)",
        i.capacity, i.row_bytes
    );
    println!(
        "file_len:       {} ({}, sparse)",
        i.file_len,
        crate::array_cmds::human_bytes(i.file_len)
    );
    println!("format_version: 2");
    println!("generation:     {}", i.generation);
    println!("rollbacks:      {}", i.rollbacks);
    Ok(true)
}
