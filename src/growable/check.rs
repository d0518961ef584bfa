//! `sharray check` for growable arrays.

use crate::error::Result;
use crate::format::control::{self, HEADER_LEN};
use crate::format::grow::{self, GROW_CTRL_LEN};
use crate::format::npy::NpyHeader;

/// `sharray check` of a growable array: the static layout
/// ([`grow::validate`]), the canonical growable header, zero padding after
/// the reserved data, and a stable snapshot of the dynamic words
/// ([`grow::validate_state`]). `read(offset, len)` reads private copies.
pub(crate) fn check_file(
    read: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
    header: &NpyHeader,
    prefix: &[u8],
    file_len: u64,
    sink: &mut dyn crate::format::sink::Sink,
) -> Result<()> {
    let Some(ctrl_off) = grow::candidate_ctrl_offset(file_len) else {
        return Ok(());
    };
    let ctrl = read(ctrl_off, GROW_CTRL_LEN)?;
    let Some(cfg) = grow::validate(&ctrl, ctrl_off, header, prefix, file_len, sink) else {
        return Ok(());
    };
    match grow::growable_header(header, header.shape[0] as u64) {
        Ok((canonical, field)) if canonical[..] == prefix[..canonical.len()] && field == cfg.count_field => {}
        _ => {
            if sink
                .problem(
                    Some(0),
                    "the .npy header is not the canonical growable one (numpy's dict with the row count right-aligned in 8 bytes at an 8-aligned offset, space padding, newline at byte 4095)".into(),
                )
                .is_break()
            {
                return Ok(());
            }
        }
    }
    let data_end = control::DATA_OFFSET + cfg.capacity * cfg.row_bytes;
    let pad = read(data_end, ctrl_off - data_end)?;
    if let Some(i) = pad.iter().position(|&b| b != 0)
        && sink
            .problem(
                Some(data_end + i as u64),
                "the padding between the reserved rows and the control block must be zero".into(),
            )
            .is_break()
    {
        return Ok(());
    }
    let sec_len = grow::section_len(cfg.max_appenders);
    if let Some(i) = ctrl[(HEADER_LEN + sec_len) as usize..]
        .iter()
        .position(|&b| b != 0)
        && sink
            .problem(
                Some(ctrl_off + HEADER_LEN + sec_len + i as u64),
                "the unused rest of the control block must be zero".into(),
            )
            .is_break()
    {
        return Ok(());
    }
    // Appenders change the section without the lock `check` holds: re-read
    // until two reads (section and header count) agree.
    let snap = || -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((read(cfg.sec(), sec_len)?, read(cfg.count_field, 8)?))
    };
    let mut last = snap()?;
    for _ in 0..50 {
        let now = snap()?;
        if now == last {
            break;
        }
        last = now;
    }
    // Judge the state the next append will see: after replaying the journal
    // of a transaction whose process died (as the append lock does).
    let (mut sec, mut count) = last;
    grow::replay_copy(&mut sec, &mut count, &cfg);
    let last = (sec, count);
    let rows = grow::parse_count(&last.1).unwrap_or(u64::MAX);
    let _ = grow::validate_state(&last.0, &cfg, rows, sink);
    Ok(())
}
