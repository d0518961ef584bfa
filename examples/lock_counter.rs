//! A peer for cross-language locking tests (the Python suite runs it next to
//! Python processes doing the same thing).
//!
//! ```text
//! lock_counter PATH ROUNDS
//! ```
//!
//! Opens the `<i8` array at PATH and, ROUNDS times, takes the write lock,
//! checks that every element holds the same value (a torn update by a peer
//! that ignored the lock would show up here), adds 1 to every element and
//! releases the lock. Prints `ok FINAL_GENERATION` and exits 0, or prints the
//! error and exits 1.

mod common;

const USAGE: &str = "usage: lock_counter PATH ROUNDS\n\
\n\
Opens the <i8 array at PATH and ROUNDS times takes the write lock, checks\n\
that all elements are equal and adds 1 to each. Prints `ok GENERATION`.";

use sharray::SharedArray;

fn run() -> Result<u64, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(rounds)) = (args.next(), args.next()) else {
        return Err("usage: lock_counter PATH ROUNDS".into());
    };
    let rounds: u64 = rounds.parse()?;
    let a = SharedArray::<i64>::open(sharray::resolve_location(&path)?)?;
    for round in 0..rounds {
        let mut w = a.write()?;
        let first = w[0];
        if let Some(i) = w.iter().position(|&x| x != first) {
            return Err(format!(
                "round {round}: element {i} is {} but element 0 is {first}: a peer wrote without the lock",
                w[i]
            )
            .into());
        }
        w.iter_mut().for_each(|x| *x += 1);
        // Let peers queue up on the lock while we hold it.
        std::thread::yield_now();
    }
    Ok(a.generation())
}

fn main() {
    common::start(USAGE);
    match run() {
        Ok(generation) => println!("ok {generation}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
