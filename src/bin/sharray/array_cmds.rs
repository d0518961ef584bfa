//! Array commands: create, info, check, show, import, export.

use clap::Subcommand;

/// Commands on arrays and plain `.npy` files.
#[derive(Subcommand)]
pub enum ArrayCmd {
    /// Print the layout of an array, ring or queue file.
    Info {
        /// Path, or shm:NAME for /dev/shm/NAME.
        path: String,
    },
}

pub fn run(cmd: ArrayCmd) -> sharray::Result<()> {
    match cmd {
        ArrayCmd::Info { path } => {
            let info = sharray::inspect(sharray::resolve_location(&path)?)?;
            println!("{info:?}");
            Ok(())
        }
    }
}
