//! Print an array the way numpy's `print(a)` does: nested brackets, lines
//! wrapped at 75 columns, and big arrays summarised to their corners with
//! `...` (numpy's `threshold` and `edgeitems = 3`).

use std::collections::HashMap;

use sharray::{Dtype, Order};

use super::values::{format_elements, scalar_text};

const EDGE_ITEMS: usize = 3;
const LINE_WIDTH: usize = 75;
/// More printed elements than this (a large `--max`, or very many
/// dimensions) is refused rather than flooding the terminal.
const MAX_PRINTED: usize = 1 << 20;

struct Printer<'a> {
    shape: &'a [usize],
    strides: Vec<usize>,
    summarize: bool,
    words: HashMap<usize, String>,
}

/// The positions along an axis of length `n` that are printed.
fn shown(n: usize, summarize: bool) -> Vec<usize> {
    if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS).chain(n - EDGE_ITEMS..n).collect()
    } else {
        (0..n).collect()
    }
}

/// Render the array `data` (all of its bytes, in `order`) as numpy prints it.
/// Arrays with more than `threshold` elements are summarised.
pub fn render(
    dtype: &Dtype,
    shape: &[usize],
    order: Order,
    data: &[u8],
    threshold: usize,
) -> Result<String, String> {
    let len: usize = shape.iter().product();
    if shape.is_empty() {
        return Ok(scalar_text(dtype, &data[..dtype.itemsize()]));
    }
    if len == 0 {
        return Ok("[]".into());
    }
    let summarize = len > threshold;
    let mut strides = vec![1usize; shape.len()];
    match order {
        Order::C => {
            for k in (0..shape.len().saturating_sub(1)).rev() {
                strides[k] = strides[k + 1] * shape[k + 1];
            }
        }
        Order::F => {
            for k in 1..shape.len() {
                strides[k] = strides[k - 1] * shape[k - 1];
            }
        }
    }
    let axes: Vec<Vec<usize>> = shape.iter().map(|&n| shown(n, summarize)).collect();
    let count = axes
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.len()));
    let printed = count.filter(|&n| n <= MAX_PRINTED).ok_or_else(|| {
        let asked = match count {
            Some(n) => format!("{n} elements"),
            None => "more elements than a usize counts".to_string(),
        };
        let why = if summarize {
            format!(
                "(the corners of {} dimensions)",
                shape.len()
            )
        } else {
            format!("(--max {threshold} lets all of them print)")
        };
        format!(
            "printing this array would write {asked} {why}, over the limit of {MAX_PRINTED} printed elements; \
             lower --max below {MAX_PRINTED} to print its corners, or look at it with numpy"
        )
    })?;
    // Every printed element's flat index, in print order.
    let mut flats = Vec::with_capacity(printed);
    let mut idx = vec![0usize; shape.len()];
    'outer: loop {
        flats.push(
            idx.iter()
                .zip(&axes)
                .zip(&strides)
                .map(|((&i, a), &s)| a[i] * s)
                .sum::<usize>(),
        );
        // Odometer over the printed positions.
        let mut k = shape.len();
        loop {
            if k == 0 {
                break 'outer;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < axes[k].len() {
                break;
            }
            idx[k] = 0;
        }
    }
    let size = dtype.itemsize();
    let elems: Vec<&[u8]> = flats
        .iter()
        .map(|&f| &data[f * size..(f + 1) * size])
        .collect();
    let words = format_elements(dtype, &elems);
    let p = Printer {
        shape,
        strides,
        summarize,
        words: flats.into_iter().zip(words).collect(),
    };
    Ok(p.recurse(&mut Vec::new(), " ", LINE_WIDTH))
}

/// numpy's `_extendLine`: wrap before `word` if the line would get too long
/// (unless wrapping cannot help).
fn extend_line(s: &mut String, line: &mut String, word: &str, width: usize, indent: &str) {
    let needs_wrap =
        line.chars().count() + word.chars().count() > width && line.len() > indent.len();
    if needs_wrap {
        s.push_str(line.trim_end());
        s.push('\n');
        *line = indent.to_string();
    }
    line.push_str(word);
}

impl Printer<'_> {
    fn word(&self, index: &[usize]) -> &str {
        let flat: usize = index.iter().zip(&self.strides).map(|(i, s)| i * s).sum();
        self.words.get(&flat).map_or("?", String::as_str)
    }

    /// numpy's `_formatArray` recursion (non-legacy mode, separator ' ').
    fn recurse(&self, index: &mut Vec<usize>, hanging: &str, width: usize) -> String {
        let axis = index.len();
        let axes_left = self.shape.len() - axis;
        if axes_left == 0 {
            return self.word(index).to_string();
        }
        let next_hanging = format!("{hanging} ");
        let next_width = width - 1;
        let n = self.shape[axis];
        let summary = self.summarize && 2 * EDGE_ITEMS < n;
        let (leading, trailing) = if summary {
            (EDGE_ITEMS, EDGE_ITEMS)
        } else {
            (0, n)
        };
        let mut s = String::new();
        let child = |index: &mut Vec<usize>, i: usize| {
            index.push(i);
            let r = self.recurse(index, &next_hanging, next_width);
            index.pop();
            r
        };
        if axes_left == 1 {
            let elem_width = width - 1;
            let mut line = hanging.to_string();
            for i in 0..leading {
                let w = child(index, i);
                extend_line(&mut s, &mut line, &w, elem_width, hanging);
                line.push(' ');
            }
            if summary {
                extend_line(&mut s, &mut line, "...", elem_width, hanging);
                line.push(' ');
            }
            for i in (2..=trailing).rev() {
                let w = child(index, n - i);
                extend_line(&mut s, &mut line, &w, elem_width, hanging);
                line.push(' ');
            }
            let w = child(index, n - 1);
            extend_line(&mut s, &mut line, &w, elem_width, hanging);
            s.push_str(&line);
        } else {
            let line_sep = "\n".repeat(axes_left - 1);
            for i in 0..leading {
                s.push_str(hanging);
                s.push_str(&child(index, i));
                s.push_str(&line_sep);
            }
            if summary {
                s.push_str(hanging);
                s.push_str("...");
                s.push_str(&line_sep);
            }
            for i in (2..=trailing).rev() {
                s.push_str(hanging);
                s.push_str(&child(index, n - i));
                s.push_str(&line_sep);
            }
            s.push_str(hanging);
            s.push_str(&child(index, n - 1));
        }
        format!("[{}]", &s[hanging.len()..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], order: Order, threshold: usize) -> String {
        let n: usize = shape.iter().product();
        let data: Vec<u8> = (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
        render(
            &Dtype::parse_user("<i8").unwrap(),
            shape,
            order,
            &data,
            threshold,
        )
        .unwrap()
    }

    #[test]
    fn small_and_summarised() {
        assert_eq!(ints(&[2, 3], Order::C, 1000), "[[0 1 2]\n [3 4 5]]");
        assert_eq!(ints(&[2, 3], Order::F, 1000), "[[0 2 4]\n [1 3 5]]");
        assert_eq!(ints(&[], Order::C, 1000), "0");
        assert_eq!(ints(&[10], Order::C, 5), "[0 1 2 ... 7 8 9]");
        assert_eq!(
            ints(&[2, 2, 2], Order::C, 1000),
            "[[[0 1]\n  [2 3]]\n\n [[4 5]\n  [6 7]]]"
        );
        assert_eq!(ints(&[0, 3], Order::C, 1000), "[]");
    }
}
