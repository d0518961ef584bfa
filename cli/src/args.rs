//! Parsers for the argument types several commands share (clap
//! `value_parser`s: they return a one-line message on bad input).

use std::time::Duration;

/// A `--shape` / `--frame-shape`: `480,640`, `(480, 640)`, `5,` or `(5,)`
/// for one dimension, empty or `()` for a 0-d array. An empty dimension
/// (`1,,2`) is an error, not a typo to skip.
pub fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    let t = s
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    // One trailing comma is Python's 1-tuple spelling.
    let t = t.strip_suffix(',').unwrap_or(t);
    t.split(',')
        .map(str::trim)
        .map(|d| {
            if d.is_empty() {
                return Err(format!(
                    "{s:?} has an empty dimension: use comma-separated non-negative integers like 480,640"
                ));
            }
            d.parse::<usize>().map_err(|_| {
                format!("{d:?} is not a dimension: use non-negative integers like 480,640")
            })
        })
        .collect()
}

/// A `--mode`: octal permission bits, at most `777` (setuid, setgid and
/// sticky bits are refused: a shared data file never needs them).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal file mode like 600 or 640"))?;
    if m > 0o777 {
        return Err(format!(
            "mode {s} has setuid, setgid or sticky bits; give permission bits only, at most 777"
        ));
    }
    Ok(m)
}

/// A `--range START:STOP` of element indices; either end may be left out
/// (`10:`, `:20`, `:`).
pub fn parse_range(s: &str) -> Result<(Option<usize>, Option<usize>), String> {
    let bad = || {
        format!(
            "{s:?} is not a range: use START:STOP with non-negative integers, e.g. 0:1000 or 5000:"
        )
    };
    let (a, b) = s.trim().split_once(':').ok_or_else(bad)?;
    let end = |t: &str| -> Result<Option<usize>, String> {
        let t = t.trim();
        if t.is_empty() {
            Ok(None)
        } else {
            t.parse().map(Some).map_err(|_| bad())
        }
    };
    let (a, b) = (end(a)?, end(b)?);
    if let (Some(x), Some(y)) = (a, b)
        && x > y
    {
        return Err(format!(
            "range {s:?} ends before it starts; give START <= STOP"
        ));
    }
    Ok((a, b))
}

/// A `--timeout` in seconds, fractions allowed.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds like 5 or 0.5"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(parse_shape("480,640"), Ok(vec![480, 640]));
        assert_eq!(parse_shape("(480, 640)"), Ok(vec![480, 640]));
        assert_eq!(parse_shape("(5,)"), Ok(vec![5]));
        assert_eq!(parse_shape("5,"), Ok(vec![5]));
        assert_eq!(parse_shape("()"), Ok(vec![]));
        assert!(parse_shape("1,,2").unwrap_err().contains("empty dimension"));
        assert!(parse_shape(",2").is_err());
        assert!(parse_shape("2,-1").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0:10"), Ok((Some(0), Some(10))));
        assert_eq!(parse_range("5:"), Ok((Some(5), None)));
        assert_eq!(parse_range(":"), Ok((None, None)));
        assert!(parse_range("10:5").unwrap_err().contains("ends before"));
        assert!(parse_range("10").is_err());
        assert!(parse_range("a:5").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert!(parse_mode("6777").unwrap_err().contains("setuid"));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("9").is_err());
    }
}
