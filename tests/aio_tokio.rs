//! The async waits under a multi-threaded tokio runtime: tasks that move
//! between worker threads, cancellation by `tokio::time::timeout` and by
//! aborting a task, and many concurrent waiters on one ring.

use std::time::Duration;

use sharray::{Dtype, ErrorKind, Ring, SharedArray};

fn ring(dir: &std::path::Path, broadcast: bool) -> Ring {
    Ring::builder(Dtype::parse_user("uint64").unwrap(), &[2])
        .slots(4)
        .broadcast(broadcast)
        .create(dir.join("r.npy"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_between_tokio_tasks_and_the_stream_ends() {
    let dir = tempfile::tempdir().unwrap();
    let r = ring(dir.path(), false);
    let path = r.path().to_path_buf();
    let n = 300u64;
    let producer = tokio::spawn(async move {
        let p = Ring::open(&path).unwrap().producer().unwrap();
        for i in 0..n {
            let mut loan = p.loan_async(Some(Duration::from_secs(30))).await.unwrap();
            loan.as_mut_slice::<u64>().unwrap().fill(i);
            loan.commit().unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        p.close().unwrap();
    });
    let c = r.consumer().unwrap();
    let mut next = 0u64;
    loop {
        match c.recv_async(Some(Duration::from_secs(30))).await {
            Ok(f) => {
                assert_eq!(f.as_slice::<u64>().unwrap(), &[next, next]);
                next += 1;
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, n);
    producer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_waits_take_nothing_and_later_waits_work() {
    let dir = tempfile::tempdir().unwrap();
    let r = ring(dir.path(), false);
    let c = std::sync::Arc::new(r.consumer().unwrap());
    let p = r.producer().unwrap();
    // Cancelled by a timeout around it.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), c.recv_async(None))
            .await
            .is_err()
    );
    // Cancelled by aborting the task.
    let c2 = c.clone();
    let task = tokio::spawn(async move { c2.recv_async(None).await.map(|f| f.seq()) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    p.loan().unwrap().commit().unwrap();
    let f = c.recv_async(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(f.seq(), 0, "the cancelled waits took no frame");

    let a = SharedArray::<u8>::create(dir.path().join("a.npy"), &[1]).unwrap();
    let g = a.generation();
    assert!(
        tokio::time::timeout(Duration::from_millis(20), a.wait_changed_async(g, None))
            .await
            .is_err()
    );
    a.write().unwrap()[0] = 1;
    assert_eq!(a.wait_changed_async(g, None).await.unwrap(), g + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_all_get_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let r = ring(dir.path(), true);
    let consumers: Vec<_> = (0..50).map(|_| r.consumer().unwrap()).collect();
    let p = r.producer().unwrap();
    let tasks: Vec<_> = consumers
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let f = c.recv_async(Some(Duration::from_secs(30))).await.unwrap();
                f.as_slice::<u64>().unwrap()[0]
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut loan = p.loan().unwrap();
    loan.as_mut_slice::<u64>().unwrap().fill(9);
    loan.commit().unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 9);
    }
}
