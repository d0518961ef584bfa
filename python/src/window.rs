//! Revocable windows: a private mapping of an array's data per guard (of a
//! ring slot per loan or lease, of a claim's rows per row view), so a numpy
//! view can be cut off from the shared file when its guard or lease ends.
//!
//! # Why
//!
//! numpy views (and views derived from them, memoryviews, raw pointers that
//! C extensions took) all point at one address range. Python cannot find
//! them all, so the only complete way to take their access away is to change
//! what the address range maps. Each guard therefore hands out views into its
//! own window: a `MAP_SHARED` mapping of the file's data. When the guard
//! ends, before the lock is released:
//!
//! 1. `mremap(MREMAP_MAYMOVE | MREMAP_DONTUNMAP)` moves the window's page
//!    tables to a new address, which becomes a *shadow*: a ready, already
//!    faulted-in mapping that the next guard reuses as its window (no page
//!    faults per guard). The old range stays mapped to the file meanwhile,
//!    so there is never a hole another `mmap` could land in;
//! 2. `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)` atomically replaces the
//!    old range with private zero pages, with the window's protection.
//!
//! From then on every stale view reads zeros, and writes through a stale
//! writable view land in private pages that nobody else sees. Nothing
//! crashes, nothing reaches the shared data. The range stays reserved until
//! the last view is garbage collected ([`Window`]'s `Drop` unmaps it), so no
//! later mapping can appear under a stale pointer.
//!
//! Cost: two syscalls per guard (about 10-20 us for 8 MiB on the reference
//! VM), independent of how much of the data is touched.
//!
//! Cheaper ends (issue 13, `view::set_view_policy`): a window whose view
//! nothing references any more when its guard ends (checked with the GIL:
//! the guard holds the only reference) cannot be reached by anyone, so it
//! is not revoked but kept in its pool ([`ShadowPool::keep`]) and handed,
//! still mapped, to the next guard (no syscall). Small views whose
//! predecessors escaped are private copies instead (`view::make_copy`):
//! their window stays inside the guard and is kept the same way. Kernels older than
//! 5.13 refuse `MREMAP_DONTUNMAP` on shared mappings: then step 1 is skipped
//! and each window faults its pages in again (correct, slower).
//!
//! # Safety
//!
//! All raw pointers here come from our own `mmap`/`mremap` calls and are
//! unmapped exactly once, by the owner ([`RawMap`] or [`Window`]). A window's
//! range is never unmapped while a numpy view may still point into it: the
//! views hold the [`Window`] alive through their base object.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use sharray::sys;

/// Shadows kept ready per array handle (more only while several guards of
/// one handle are held at once). Ring slots keep one each (`for_leases`).
const MAX_SHADOWS: usize = 2;

/// Set once the kernel refused `MREMAP_DONTUNMAP` for a shared mapping.
static NO_DONTUNMAP: AtomicBool = AtomicBool::new(false);

/// Which part of the file a window maps: page-aligned, covering the data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    file_off: u64,
    len: usize,
    /// Offset of the first data byte from the start of the mapping.
    delta: usize,
    writable: bool,
}

impl Region {
    /// The pages covering `nbytes` of data at `data_offset`. `None` if there
    /// is no data (nothing to map).
    pub(crate) fn new(data_offset: u64, nbytes: usize, writable: bool) -> Option<Region> {
        if nbytes == 0 {
            return None;
        }
        let page = sys::page_size() as u64;
        let file_off = data_offset - data_offset % page;
        let delta = (data_offset - file_off) as usize;
        let len = delta
            .checked_add(nbytes)?
            .checked_next_multiple_of(page as usize)?;
        Some(Region {
            file_off,
            len,
            delta,
            writable,
        })
    }
}

/// An owned mapping, unmapped on drop.
struct RawMap {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory; this type only owns the address range
// (it never reads or writes through it).
unsafe impl Send for RawMap {}

impl RawMap {
    fn map_file(fd: BorrowedFd<'_>, region: &Region) -> io::Result<RawMap> {
        Ok(RawMap {
            addr: sys::map_shared(fd, region.file_off, region.len, region.writable)?,
            len: region.len,
        })
    }
}

impl RawMap {
    /// Fault every page in now (`MADV_POPULATE_READ`/`_WRITE`, Linux 5.14+):
    /// one system call instead of a fault per page on first touch. Best
    /// effort: older kernels refuse it and the pages fault in as usual.
    fn populate(&self, write: bool) {
        let (addr, len) = (self.addr.as_ptr(), self.len);
        // SAFETY: the range is our own live mapping (writable when `write`,
        // which callers pass only for writable regions); populating never
        // changes its contents. Errors (EINVAL on old kernels) are ignored.
        let _ = unsafe {
            if write {
                sys::populate_write(addr, len)
            } else {
                sys::populate_read(addr, len)
            }
        };
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: we own this range (from mmap/mremap) and nobody points
        // into it once its owner is dropped.
        let _ = unsafe { sys::munmap(self.addr, self.len) };
    }
}

/// Ready mappings of one region (an array's data, a ring slot, a claim's
/// rows), reused by successive guards or leases of that region.
pub(crate) struct ShadowPool {
    region: Option<Region>,
    shadows: Mutex<Vec<RawMap>>,
    /// Most shadows kept (0: none, every window is a fresh mapping).
    max: usize,
    /// Fault a fresh mapping's pages in with one `madvise` (for regions the
    /// holder is expected to touch in full: ring slots, claimed rows).
    populate: bool,
    /// Access advice given to the handle (`SharedArray.advise`): data byte
    /// range and `MADV_*` value, applied to every window made afterwards
    /// (advice such as `MADV_RANDOM` belongs to one mapping, and each guard
    /// has its own).
    advice: Mutex<Vec<(usize, usize, libc::c_int)>>,
    /// Windows whose views never escaped their guard or lease: still mapped
    /// to the file, handed to the next guard or lease as they are (no system
    /// call at all). At most `MAX_READY`.
    ready: Mutex<Vec<Arc<Window>>>,
    /// Did the last view of this pool escape its guard or lease? Small
    /// views are copies only while views escape (a copy costs a memcpy;
    /// a view that does not escape costs nothing at all).
    escapes: AtomicBool,
}

/// Unrevoked windows kept per pool (see [`ShadowPool::keep`]).
const MAX_READY: usize = 2;

impl ShadowPool {
    pub(crate) fn new(region: Option<Region>) -> ShadowPool {
        ShadowPool {
            region,
            shadows: Mutex::new(Vec::new()),
            max: MAX_SHADOWS,
            populate: false,
            advice: Mutex::new(Vec::new()),
            ready: Mutex::new(Vec::new()),
            escapes: AtomicBool::new(true),
        }
    }

    /// A pool for leases that touch the whole region (ring slots, claimed
    /// rows): keeps at most `max` shadows and populates fresh mappings in
    /// one call, so a lease never takes a page fault per page.
    pub(crate) fn for_leases(region: Option<Region>, max: usize) -> ShadowPool {
        ShadowPool {
            region,
            shadows: Mutex::new(Vec::new()),
            max,
            populate: true,
            advice: Mutex::new(Vec::new()),
            ready: Mutex::new(Vec::new()),
            escapes: AtomicBool::new(true),
        }
    }

    /// Remember `advice` for data bytes `[off, off+len)`: applied to every
    /// window opened from now on (and by the caller to live ones).
    pub(crate) fn remember_advice(&self, off: usize, len: usize, advice: libc::c_int) {
        let mut a = self.advice.lock();
        // Advice over the same range replaces older advice of its family
        // (the access pattern, or huge pages); keep the list short.
        let family = |adv: libc::c_int| adv == libc::MADV_HUGEPAGE;
        a.retain(|&(o, l, old)| (o, l) != (off, len) || family(old) != family(advice));
        if a.len() >= 64 {
            a.remove(0);
        }
        a.push((off, len, advice));
        drop(a);
        if let Some(region) = self.region {
            for w in self.ready.lock().iter() {
                apply(&w.state.lock().map, &region, off, len, advice);
            }
        }
    }

    /// Apply the remembered advice to a window's mapping.
    fn apply_advice(&self, map: &RawMap, region: &Region) {
        for &(off, len, advice) in self.advice.lock().iter() {
            apply(map, region, off, len, advice);
        }
    }

    /// Drop the shadows' page-table entries over data bytes
    /// `[off, off+len)` (`MADV_DONTNEED` on a shared file mapping: contents
    /// stay), so `posix_fadvise(DONTNEED)` can evict those pages.
    pub(crate) fn drop_shadow_pages(&self, off: usize, len: usize) {
        let Some(region) = self.region else { return };
        for map in self.shadows.lock().iter() {
            apply(map, &region, off, len, libc::MADV_DONTNEED);
        }
        for w in self.ready.lock().iter() {
            apply(&w.state.lock().map, &region, off, len, libc::MADV_DONTNEED);
        }
    }

    /// Remember whether the view of the guard or lease that just ended
    /// escaped it.
    pub(crate) fn note_escape(&self, escaped: bool) {
        self.escapes.store(escaped, Ordering::Relaxed);
    }

    /// Did the last view escape (then small views should be copies)?
    pub(crate) fn views_escape(&self) -> bool {
        self.escapes.load(Ordering::Relaxed)
    }

    /// Keep a window that nothing outside its guard or lease points into
    /// (its view was never shared: the caller checked that the only
    /// reference left to the view is its own, with the GIL held) for the
    /// next guard or lease, instead of revoking it. If the pool already
    /// keeps enough, the window is revoked (its pages become a shadow).
    pub(crate) fn keep(&self, window: Arc<Window>) {
        let mut ready = self.ready.lock();
        if ready.len() < MAX_READY && !window.persistent {
            ready.push(window);
            return;
        }
        drop(ready);
        window.revoke(self);
    }

    /// A window for one guard or lease: a kept one (no system call), else a
    /// new one (`Ok(None)` for an array without data).
    pub(crate) fn window(&self, fd: BorrowedFd<'_>) -> io::Result<Option<Arc<Window>>> {
        if let Some(w) = self.ready.lock().pop() {
            return Ok(Some(w));
        }
        Ok(self.open_window(fd)?.map(Arc::new))
    }

    /// A new window for one guard (`Ok(None)` for an array without data).
    pub(crate) fn open_window(&self, fd: BorrowedFd<'_>) -> io::Result<Option<Window>> {
        let Some(region) = self.region else {
            return Ok(None);
        };
        let map = match self.shadows.lock().pop() {
            Some(m) => m,
            None => {
                let m = RawMap::map_file(fd, &region)?;
                if self.populate {
                    m.populate(region.writable);
                }
                m
            }
        };
        self.apply_advice(&map, &region);
        Ok(Some(Window {
            region,
            persistent: false,
            state: Mutex::new(WindowState {
                map,
                revoked: false,
            }),
        }))
    }

    /// The one window of a copy-on-write handle: a private (`MAP_PRIVATE`)
    /// mapping that lives as long as the handle and is never revoked, so
    /// every guard of the handle sees the private changes of the earlier
    /// ones (`Ok(None)` for an array without data).
    pub(crate) fn private_window(&self, fd: BorrowedFd<'_>) -> io::Result<Option<Window>> {
        let Some(region) = self.region else {
            return Ok(None);
        };
        let map = RawMap {
            addr: sys::map_private(fd, region.file_off, region.len)?,
            len: region.len,
        };
        self.apply_advice(&map, &region);
        Ok(Some(Window {
            region: Region {
                writable: true,
                ..region
            },
            persistent: true,
            state: Mutex::new(WindowState {
                map,
                revoked: false,
            }),
        }))
    }

    fn put(&self, map: RawMap) {
        let mut shadows = self.shadows.lock();
        if shadows.len() < self.max {
            shadows.push(map);
        }
    }
}

struct WindowState {
    map: RawMap,
    revoked: bool,
}

/// `madvise(advice)` over data bytes `[off, off+len)` of `map` (clamped to
/// the mapping; errors ignored: advice is a hint).
fn apply(map: &RawMap, region: &Region, off: usize, len: usize, advice: libc::c_int) {
    let start = region.delta.saturating_add(off).min(map.len);
    let len = len.min(map.len - start);
    // SAFETY: the range lies inside our own live mapping (clamped above).
    // Callers pass only advice that keeps contents (the hints, and
    // MADV_DONTNEED on shared file mappings, never on a private window).
    let _ = unsafe { sys::madvise(map.addr.as_ptr().add(start), len, advice) };
}

/// The data mapping of one guard. Revoked when the guard ends; unmapped when
/// the last view into it is gone.
pub(crate) struct Window {
    region: Region,
    /// A copy-on-write handle's private window: never revoked (its writes
    /// reach nobody else, and the next guard must see them).
    persistent: bool,
    state: Mutex<WindowState>,
}

impl Window {
    /// Address of the first data byte (stable for the window's lifetime).
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        // SAFETY: delta < len, inside our mapping.
        unsafe { self.state.lock().map.addr.as_ptr().add(self.region.delta) }
    }

    /// The whole mapped range: (address, length).
    pub(crate) fn range(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.map.addr.as_ptr() as usize, s.map.len)
    }

    /// Apply `advice` to this window now (the handle's live private
    /// window; `MADV_DONTNEED` is never passed for it).
    pub(crate) fn advise(&self, off: usize, len: usize, advice: libc::c_int) {
        let s = self.state.lock();
        if !s.revoked {
            apply(&s.map, &self.region, off, len, advice);
        }
    }

    /// Has the window been cut off from the file?
    pub(crate) fn is_revoked(&self) -> bool {
        self.state.lock().revoked
    }

    /// Cut the window off from the file (idempotent): its page tables go to
    /// `pool` as a shadow for the next guard, and the range becomes private
    /// zero pages. Must be called before the guard's lock is released.
    pub(crate) fn revoke(&self, pool: &ShadowPool) {
        if self.persistent {
            return;
        }
        let mut s = self.state.lock();
        if s.revoked {
            return;
        }
        let (addr, len) = (s.map.addr, s.map.len);
        if !NO_DONTUNMAP.load(Ordering::Relaxed) {
            // SAFETY: moves our own mapping's pages to a new kernel-chosen
            // address; DONTUNMAP keeps the old range mapped (to the file, now
            // without page tables), so no hole appears under stale pointers.
            match unsafe { sys::mremap_dontunmap(addr, len) } {
                Ok(moved) => pool.put(RawMap { addr: moved, len }),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    NO_DONTUNMAP.store(true, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
        let mut last_err = None;
        for _attempt in 0..3 {
            // SAFETY: replaces our own range in one step (MAP_FIXED), so no
            // other mapping can appear in it; views pointing here then see
            // private zero pages with the same protection as before.
            match unsafe { sys::map_zero_fixed(addr, len, self.region.writable) } {
                Ok(()) => {
                    s.revoked = true;
                    return;
                }
                Err(e) => last_err = Some(e),
            }
        }
        // The kernel could not give us a few page-table entries. Carrying on
        // would leave stale views with access to data another process now
        // owns, or a hole a later mapping could fill: stop instead.
        eprintln!(
            "sharray: cannot revoke a view window ({}); aborting to stay memory-safe",
            last_err.expect("three failed attempts")
        );
        std::process::abort();
    }
}
