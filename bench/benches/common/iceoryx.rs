//! iceoryx2 publish-subscribe as a [`Link`] (feature `iceoryx2`):
//! `[u64]` slices loaned from the publisher's shared memory, filled in
//! place, sent; the subscriber busy-polls `receive()` (iceoryx2 has no
//! blocking receive on a subscriber; waking needs a separate event service).
//! Same slot count as the rings: the subscriber buffer holds `slots` samples
//! and a full buffer makes the publisher retry (backpressure, no loss).

use super::link::{Case, Link};

#[cfg(feature = "iceoryx2")]
mod imp {
    #![allow(unsafe_code)]

    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;

    use super::super::link::PEER_TIMEOUT;
    use super::super::payload::{check, fill};
    use super::{Case, Link};

    type Svc = ipc::Service;

    pub struct IceLink {
        tx: Option<Publisher<Svc, [u64], ()>>,
        rx: Option<Subscriber<Svc, [u64], ()>>,
        words: usize,
        _node: Node<Svc>,
    }

    /// iceoryx2 service names from our per-case file paths.
    fn service_name(path: &str) -> ServiceName {
        let p = std::path::Path::new(path);
        let dir = p.parent().and_then(|d| d.file_name()).unwrap_or_default();
        let name = format!(
            "sharray-bench/{}/{}",
            dir.to_string_lossy(),
            p.file_name().unwrap().to_string_lossy()
        );
        name.as_str().try_into().unwrap()
    }

    pub fn open(case: &Case, tx: Option<&str>, rx: Option<&str>) -> Box<dyn Link> {
        set_log_level_from_env_or(LogLevel::Warn);
        let node = NodeBuilder::new().create::<Svc>().unwrap();
        let service = |path: &str| {
            node.service_builder(&service_name(path))
                .publish_subscribe::<[u64]>()
                .max_publishers(1)
                .max_subscribers(1)
                .max_nodes(2)
                .history_size(0)
                .subscriber_max_buffer_size(case.slots as usize)
                .enable_safe_overflow(false)
                .open_or_create()
                .unwrap()
        };
        let tx = tx.map(|p| {
            service(p)
                .publisher_builder()
                .initial_max_slice_len(case.words)
                .max_loaned_samples(1)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .unwrap()
        });
        let rx = rx.map(|p| {
            service(p)
                .subscriber_builder()
                .buffer_size(case.slots as usize)
                .create()
                .unwrap()
        });
        Box::new(IceLink {
            tx,
            rx,
            words: case.words,
            _node: node,
        })
    }

    impl Link for IceLink {
        fn send(&mut self, seq: u64) {
            let p = self.tx.as_ref().unwrap();
            let mut s = p.loan_slice_uninit(self.words).unwrap();
            let m = s.payload_mut();
            // SAFETY: `fill` writes every element before anything reads one;
            // MaybeUninit<u64> has the layout of u64.
            let words =
                unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<u64>(), m.len()) };
            fill(words, seq);
            // SAFETY: every element was just written.
            let s = unsafe { s.assume_init() };
            s.send().unwrap();
        }

        fn recv(&mut self) -> (u64, bool) {
            let sub = self.rx.as_ref().unwrap();
            let t0 = std::time::Instant::now();
            for n in 0u64.. {
                if let Some(s) = sub.receive().unwrap() {
                    return check(s.payload());
                }
                if n % 4096 == 4095 {
                    assert!(t0.elapsed() < PEER_TIMEOUT, "no sample from the publisher");
                }
                std::hint::spin_loop();
            }
            unreachable!()
        }
    }
}

/// Attach as publisher on `tx` and/or subscriber on `rx`.
#[cfg(feature = "iceoryx2")]
pub fn open(case: &Case, tx: Option<&str>, rx: Option<&str>) -> Box<dyn Link> {
    imp::open(case, tx, rx)
}

/// Without the feature there is no iceoryx2 case to run.
#[cfg(not(feature = "iceoryx2"))]
pub fn open(_: &Case, _: Option<&str>, _: Option<&str>) -> Box<dyn Link> {
    panic!("iceoryx2 cases need `--features iceoryx2`")
}

/// Whether this build can run the iceoryx2 cases.
pub const AVAILABLE: bool = cfg!(feature = "iceoryx2");
