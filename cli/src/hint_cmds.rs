//! Page-cache commands: `advise` (warm a range with `willneed`, evict it
//! with `dontneed`, report what `hugepage` would do) and `prefault` (read a
//! range into the page cache now, or allocate it for writing).
//!
//! A command is a process of its own: hints about a process's mapping
//! (`sequential`, `random`, `normal`) end when it exits, so only the advice
//! that acts on the shared page cache is offered here. Programs give the
//! others to their own handles (Rust `advise`, Python `a.advise`).

use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use sharray::{Advice, Advised, Error, ErrorKind, OpenOptions, Result, UntypedArray};

use crate::array_cmds::human_bytes;

/// Page-cache commands.
#[derive(Subcommand)]
pub enum HintCmd {
    /// Warm (willneed) or evict (dontneed) an array's pages in the page
    /// cache, or report whether huge pages are possible (hugepage); rings
    /// take willneed and hugepage.
    Advise {
        /// Path, or shm:NAME.
        path: String,
        /// What to do with the range.
        #[arg(value_enum)]
        advice: CliAdvice,
        #[command(flatten)]
        range: RangeArg,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
    },
    /// Read an array's pages into the page cache now (MADV_POPULATE_READ);
    /// with --write, allocate them for writing (a full disk fails here, not
    /// with SIGBUS later).
    Prefault {
        /// Path, or shm:NAME.
        path: String,
        /// Fault the pages in for writing (needs write permission).
        #[arg(long)]
        write: bool,
        #[command(flatten)]
        range: RangeArg,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
    },
}

/// Advice that outlives the command.
#[derive(Clone, Copy, ValueEnum)]
pub enum CliAdvice {
    /// Start reading the range into the page cache (returns at once).
    Willneed,
    /// Drop the range from the page cache (next reads come from disk).
    Dontneed,
    /// Say whether this file can get transparent huge pages, and why not.
    Hugepage,
}

/// `--range START:STOP` in elements of the flat array.
#[derive(Args)]
pub struct RangeArg {
    /// Elements START:STOP of the flat array in memory order (either end
    /// may be left out); default: all.
    #[arg(long, value_name = "START:STOP", value_parser = crate::args::parse_range)]
    range: Option<(Option<usize>, Option<usize>)>,
}

impl RangeArg {
    fn bounds(&self, a: &UntypedArray) -> std::ops::Range<usize> {
        let (s, e) = self.range.unwrap_or((None, None));
        s.unwrap_or(0)..e.unwrap_or(a.len())
    }
}

fn open(path: &str, writable: bool, allow_other_owner: bool) -> Result<UntypedArray> {
    OpenOptions::new()
        .read_only(!writable)
        .allow_other_owner(allow_other_owner)
        .open_untyped(sharray::resolve_location(path)?)
}

/// Run one page-cache command.
pub fn run(cmd: HintCmd) -> Result<()> {
    match cmd {
        HintCmd::Advise {
            path,
            advice,
            range,
            owner,
        } => {
            let loc = sharray::resolve_location(&path)?;
            let kind = OpenOptions::new()
                .allow_other_owner(owner.allow_other_owner)
                .inspect(&loc)?
                .kind;
            if kind == sharray::FileKind::Ring {
                return advise_ring(&loc, advice, &range);
            }
            let a = open(&path, false, owner.allow_other_owner)?;
            let r = range.bounds(&a);
            let bytes = r.len().saturating_mul(a.dtype().itemsize()) as u64;
            match advice {
                CliAdvice::Willneed => report(a.advise(r, Advice::WillNeed)?, "reading in", bytes),
                CliAdvice::Dontneed => {
                    a.evict(r)?;
                    println!(
                        "evicted {} from the page cache (pages other processes map, and dirty pages, stay)",
                        human_bytes(bytes)
                    );
                    Ok(())
                }
                CliAdvice::Hugepage => match a.advise(r, Advice::HugePage)? {
                    Advised::Applied => {
                        println!(
                            "huge pages: possible for this file; a process gets them by advising its own mapping (advise(HugePage) in Rust, a.advise(\"hugepage\") in Python)"
                        );
                        Ok(())
                    }
                    Advised::Fallback(why) => {
                        println!("huge pages: not available: {why}");
                        Ok(())
                    }
                },
            }
        }
        HintCmd::Prefault {
            path,
            write,
            range,
            owner,
        } => {
            let a = open(&path, write, owner.allow_other_owner)?;
            let r = range.bounds(&a);
            let bytes = r.len().saturating_mul(a.dtype().itemsize()) as u64;
            let t = Instant::now();
            if write {
                a.prefault_write(r)?;
            } else {
                a.prefault_read(r)?;
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "prefaulted {} for {} in {:.3} s ({}/s)",
                human_bytes(bytes),
                if write { "writing" } else { "reading" },
                secs,
                human_bytes((bytes as f64 / secs.max(1e-9)) as u64)
            );
            Ok(())
        }
    }
}

/// `advise` on a ring: warm its slots, or report on huge pages.
fn advise_ring(path: &std::path::Path, advice: CliAdvice, range: &RangeArg) -> Result<()> {
    if range.range.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--range is for arrays; a ring is advised as a whole",
        )
        .at(path));
    }
    let ring = sharray::Ring::open(path)?;
    let bytes = (ring.slot_bytes() * ring.slots()) as u64;
    match advice {
        CliAdvice::Willneed => report(ring.advise(Advice::WillNeed)?, "reading in", bytes),
        CliAdvice::Hugepage => {
            match ring.advise(Advice::HugePage)? {
                Advised::Applied => println!("huge pages: possible for this ring"),
                Advised::Fallback(why) => println!("huge pages: not available: {why}"),
            }
            Ok(())
        }
        CliAdvice::Dontneed => Err(Error::new(
            ErrorKind::Unsupported,
            "evicting works on arrays; a ring's slots are in use by its peers (willneed and hugepage work on rings)",
        )
        .at(path)),
    }
}

fn report(got: Advised, doing: &str, bytes: u64) -> Result<()> {
    match got {
        Advised::Applied => {
            println!("{doing} {}", human_bytes(bytes));
            Ok(())
        }
        Advised::Fallback(why) => Err(Error::new(ErrorKind::Unsupported, why)),
    }
}
