/* The C API's contract, checked from C (run by ffi/tests/c_peers.rs under
 * AddressSanitizer, which also reports leaked handles):
 *
 *   api_test DIR
 *
 * NULL handles and bad arguments give a status and a message, never a
 * crash; out-parameters are cleared on failure; the try and timeout
 * variants; the end of a stream; lease metadata; ring stats; a worker pool
 * from claim to wait_all; a claim cannot end while a row view lives. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sharray.h"

static int failures = 0;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "api_test.c:%d: check failed: %s (last error: %s)\n",     \
                    __LINE__, #cond, sharray_last_error());                           \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#define EXPECT_ST(call, want)                                                          \
    do {                                                                               \
        sharray_status st_ = (call);                                                   \
        if (st_ != (want)) {                                                           \
            fprintf(stderr, "api_test.c:%d: %s gave %s, want %s (last error: %s)\n",  \
                    __LINE__, #call, sharray_status_name((int)st_),                   \
                    sharray_status_name((int)(want)), sharray_last_error());          \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#define OK(call) EXPECT_ST(call, SHARRAY_OK)

static char dir[4096];

static const char *path_in(const char *name) {
    static char buf[8][4200];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void *other_thread_error(void *arg) {
    (void)arg;
    sharray_array *a = NULL;
    sharray_array_open("/nonexistent/other-thread.npy", 0, &a);
    return NULL;
}

/* Changes the array after a short while (for a wait with SHARRAY_FOREVER). */
static void *write_later(void *arg) {
    sharray_array *a = (sharray_array *)arg;
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, NULL);
    sharray_write_guard *w = NULL;
    if (sharray_array_write(a, SHARRAY_FOREVER, &w) == SHARRAY_OK) {
        sharray_write_guard_release(w);
    }
    return NULL;
}

static void errors_and_arguments(void) {
    EXPECT(strcmp(sharray_status_name(SHARRAY_OK), "SHARRAY_OK") == 0);
    EXPECT(strcmp(sharray_status_name(SHARRAY_WOULD_BLOCK), "SHARRAY_WOULD_BLOCK") == 0);
    EXPECT(strcmp(sharray_status_name(12345), "SHARRAY_UNKNOWN_STATUS") == 0);
    EXPECT(strlen(sharray_version()) > 0);

    /* NULL everywhere: a status and a message, never a crash. */
    EXPECT_ST(sharray_array_get_info(NULL, NULL), SHARRAY_INVALID_ARGUMENT);
    EXPECT(strstr(sharray_last_error(), "NULL") != NULL);
    EXPECT_ST(sharray_array_open(NULL, 0, NULL), SHARRAY_INVALID_ARGUMENT);
    EXPECT_ST(sharray_consumer_recv(NULL, SHARRAY_TRY, NULL), SHARRAY_INVALID_ARGUMENT);
    EXPECT_ST(sharray_loan_commit(NULL, NULL), SHARRAY_INVALID_ARGUMENT);
    EXPECT_ST(sharray_claim_complete(NULL), SHARRAY_INVALID_ARGUMENT);
    OK(sharray_array_free(NULL));
    OK(sharray_read_guard_release(NULL));
    OK(sharray_lease_release(NULL));
    OK(sharray_loan_abandon(NULL));

    /* Out-parameters are cleared on failure. */
    sharray_array *a = (sharray_array *)0x1;
    EXPECT_ST(sharray_array_open(path_in("missing.npy"), 0, &a), SHARRAY_NOT_FOUND);
    EXPECT(a == NULL);
    EXPECT(strstr(sharray_last_error(), "missing.npy") != NULL);

    /* The message is per thread: another thread's failure leaves ours. */
    char mine[512];
    snprintf(mine, sizeof mine, "%s", sharray_last_error());
    pthread_t t;
    pthread_create(&t, NULL, other_thread_error, NULL);
    pthread_join(t, NULL);
    EXPECT(strcmp(mine, sharray_last_error()) == 0);

    size_t shape[2] = {2, 3};
    EXPECT_ST(sharray_array_create(path_in("bad.npy"), "u8", shape, 2, SHARRAY_ORDER_C, &a),
              SHARRAY_INVALID_INPUT); /* ambiguous: 1 byte in Rust, 8 in numpy */
    EXPECT(strstr(sharray_last_error(), "u8") != NULL);
    EXPECT_ST(sharray_array_create(path_in("bad.npy"), "float32", shape, 2, 7, &a),
              SHARRAY_INVALID_ARGUMENT);
    EXPECT_ST(sharray_array_create(path_in("bad.npy"), "float32", NULL, 2, SHARRAY_ORDER_C, &a),
              SHARRAY_INVALID_ARGUMENT);
}

static void arrays(void) {
    size_t shape[2] = {4, 5};
    sharray_array *a = NULL;
    OK(sharray_array_create(path_in("a.npy"), "int32", shape, 2, SHARRAY_ORDER_F, &a));
    sharray_array_info info;
    OK(sharray_array_get_info(a, &info));
    EXPECT(strcmp(info.dtype, "<i4") == 0);
    EXPECT(info.itemsize == 4 && info.ndim == 2 && info.shape[0] == 4 && info.shape[1] == 5);
    EXPECT(info.order == SHARRAY_ORDER_F && info.len == 20 && info.nbytes == 80);
    EXPECT(info.kind == SHARRAY_KIND_ARRAY && info.writable && info.data_offset == 4096);

    /* Two readers at once; a writer neither tries nor waits its way in. */
    sharray_read_guard *r1 = NULL, *r2 = NULL;
    OK(sharray_array_read(a, SHARRAY_FOREVER, &r1));
    OK(sharray_array_read(a, SHARRAY_TRY, &r2));
    sharray_write_guard *w = (sharray_write_guard *)0x1;
    EXPECT_ST(sharray_array_write(a, SHARRAY_TRY, &w), SHARRAY_WOULD_BLOCK);
    EXPECT(w == NULL);
    EXPECT_ST(sharray_array_write(a, 50, &w), SHARRAY_LOCK_TIMEOUT);
    EXPECT_ST(sharray_array_write(a, -5, &w), SHARRAY_INVALID_ARGUMENT);
    const void *rd = NULL;
    size_t rlen = 0;
    OK(sharray_read_guard_data(r1, &rd, &rlen));
    EXPECT(rd != NULL && rlen == 80);
    OK(sharray_read_guard_release(r1));
    OK(sharray_read_guard_release(r2));

    uint64_t g0 = 99, g1 = 0, now = 7;
    OK(sharray_array_generation(a, &g0));
    EXPECT_ST(sharray_array_wait_changed(a, g0, 20, &now), SHARRAY_TIMEOUT);
    EXPECT(now == 0);
    OK(sharray_array_write(a, SHARRAY_FOREVER, &w));
    void *wd = NULL;
    size_t wlen = 0;
    OK(sharray_write_guard_data(w, &wd, &wlen));
    ((int32_t *)wd)[19] = 42;
    /* A reader is refused while we write. */
    EXPECT_ST(sharray_array_read(a, SHARRAY_TRY, &r1), SHARRAY_WOULD_BLOCK);
    OK(sharray_write_guard_release(w));
    OK(sharray_array_wait_changed(a, g0, SHARRAY_TRY, &g1));
    EXPECT(g1 == g0 + 1);
    OK(sharray_array_flush(a));
    /* Waiting forever returns when another thread writes. */
    pthread_t writer;
    pthread_create(&writer, NULL, write_later, a);
    OK(sharray_array_wait_changed(a, g1, SHARRAY_FOREVER, &now));
    EXPECT(now == g1 + 1);
    pthread_join(writer, NULL);
    /* So does the longest timeout there is. */
    pthread_create(&writer, NULL, write_later, a);
    OK(sharray_array_wait_changed(a, g1 + 1, INT64_MAX, &now));
    EXPECT(now == g1 + 2);
    pthread_join(writer, NULL);

    /* A guard outlives the handle it came from. */
    OK(sharray_array_read(a, SHARRAY_FOREVER, &r1));
    OK(sharray_array_free(a));
    OK(sharray_read_guard_data(r1, &rd, &rlen));
    EXPECT(((const int32_t *)rd)[19] == 42);
    OK(sharray_read_guard_release(r1));

    /* Read-only handles refuse write guards. */
    OK(sharray_array_open(path_in("a.npy"), 1, &a));
    OK(sharray_array_get_info(a, &info));
    EXPECT(!info.writable);
    EXPECT_ST(sharray_array_write(a, SHARRAY_TRY, &w), SHARRAY_PERMISSION_DENIED);
    OK(sharray_array_free(a));

    /* shm: paths. */
    char shm[128];
    snprintf(shm, sizeof shm, "shm:sharray-api-test-%ld", (long)getpid());
    OK(sharray_array_create(shm, "uint8", shape, 1, SHARRAY_ORDER_C, &a));
    OK(sharray_array_get_info(a, &info));
    EXPECT(info.nbytes == 4);
    OK(sharray_array_free(a));
    char real[160];
    snprintf(real, sizeof real, "/dev/shm/%s", shm + 4);
    EXPECT(remove(real) == 0);
}

static void rings(void) {
    size_t frame[1] = {16};
    sharray_ring_options opts = {.slots = 2, .broadcast = false, .overwrite = false};
    sharray_ring *ring = NULL;
    OK(sharray_ring_create(path_in("r.npy"), "uint32", frame, 1, &opts, &ring));
    sharray_ring_info info;
    OK(sharray_ring_get_info(ring, &info));
    EXPECT(strcmp(info.dtype, "<u4") == 0 && info.frame_ndim == 1 && info.frame_shape[0] == 16);
    EXPECT(info.slots == 2 && info.slot_bytes == 64 && !info.broadcast && !info.overwrite);

    /* A ring is not an array (nor a queue), and says which API to use. */
    sharray_array *as_array = NULL;
    EXPECT_ST(sharray_array_open(path_in("r.npy"), 1, &as_array), SHARRAY_UNSUPPORTED);
    EXPECT(as_array == NULL && strstr(sharray_last_error(), "ring") != NULL);
    sharray_queue *as_queue = NULL;
    EXPECT_ST(sharray_queue_open(path_in("r.npy"), &as_queue), SHARRAY_UNSUPPORTED);

    sharray_array *not_ring = NULL;
    size_t one = 1;
    OK(sharray_array_create(path_in("not_ring.npy"), "uint8", &one, 1, SHARRAY_ORDER_C, &not_ring));
    sharray_ring *bad = NULL;
    EXPECT_ST(sharray_ring_open(path_in("not_ring.npy"), &bad), SHARRAY_UNSUPPORTED);
    OK(sharray_array_free(not_ring));

    sharray_producer *p = NULL;
    sharray_consumer *c = NULL;
    OK(sharray_ring_producer(ring, 0, &p));
    OK(sharray_ring_consumer(ring, &c));
    sharray_lease *lease = NULL;
    EXPECT_ST(sharray_consumer_recv(c, SHARRAY_TRY, &lease), SHARRAY_WOULD_BLOCK);
    EXPECT_ST(sharray_consumer_recv(c, 20, &lease), SHARRAY_TIMEOUT);

    /* Fill both slots; the third loan finds none free. */
    for (uint64_t n = 0; n < 2; n++) {
        sharray_loan *loan = NULL;
        OK(sharray_producer_loan(p, SHARRAY_TRY, &loan));
        void *data = NULL;
        size_t len = 0;
        OK(sharray_loan_data(loan, &data, &len));
        EXPECT(len == 64);
        for (size_t i = 0; i < 16; i++) {
            ((uint32_t *)data)[i] = (uint32_t)(n * 100 + i);
        }
        OK(sharray_loan_set_tag(loan, 1000 + n));
        EXPECT_ST(sharray_loan_set_valid_len(loan, 65), SHARRAY_INVALID_INPUT);
        OK(sharray_loan_set_valid_len(loan, n == 0 ? 64 : 8));
        uint64_t seq = 99;
        OK(sharray_loan_commit(loan, &seq));
        EXPECT(seq == n);
    }
    sharray_loan *loan = NULL;
    EXPECT_ST(sharray_producer_loan(p, SHARRAY_TRY, &loan), SHARRAY_WOULD_BLOCK);
    EXPECT_ST(sharray_producer_loan(p, 20, &loan), SHARRAY_TIMEOUT);

    sharray_ring_stats st;
    OK(sharray_ring_get_stats(ring, &st));
    EXPECT(st.committed == 2 && st.ready == 2 && st.free == 0 && !st.closed);
    EXPECT(st.participants == 2 && st.alive == 2 && st.producers_attached == 1);

    for (uint64_t n = 0; n < 2; n++) {
        OK(sharray_consumer_recv(c, SHARRAY_FOREVER, &lease));
        sharray_lease_info li;
        OK(sharray_lease_get_info(lease, &li));
        EXPECT(li.seq == n && li.tag == 1000 + n && li.lost == 0 && li.timestamp_ns > 0);
        EXPECT(li.valid_len == (n == 0 ? 64u : 8u));
        const void *data = NULL;
        size_t len = 0;
        OK(sharray_lease_data(lease, &data, &len));
        EXPECT(len == li.valid_len && ((const uint32_t *)data)[1] == n * 100 + 1);
        OK(sharray_lease_release(lease));
    }

    /* An abandoned loan publishes nothing. */
    OK(sharray_producer_loan(p, SHARRAY_FOREVER, &loan));
    OK(sharray_loan_abandon(loan));
    EXPECT_ST(sharray_consumer_recv(c, SHARRAY_TRY, &lease), SHARRAY_WOULD_BLOCK);

    /* The end of the stream: drain, then DISCONNECTED; a plain producer is
     * refused, a reopening one is taken. */
    OK(sharray_producer_loan(p, SHARRAY_FOREVER, &loan));
    OK(sharray_loan_commit(loan, NULL));
    OK(sharray_producer_close(p));
    EXPECT_ST(sharray_producer_loan(p, SHARRAY_TRY, &loan), SHARRAY_DISCONNECTED);
    EXPECT_ST(sharray_producer_loan(p, SHARRAY_FOREVER, &loan), SHARRAY_DISCONNECTED);
    OK(sharray_consumer_recv(c, SHARRAY_TRY, &lease));
    OK(sharray_lease_release(lease));
    EXPECT_ST(sharray_consumer_recv(c, SHARRAY_TRY, &lease), SHARRAY_DISCONNECTED);
    EXPECT_ST(sharray_consumer_recv(c, SHARRAY_FOREVER, &lease), SHARRAY_DISCONNECTED);
    EXPECT(lease == NULL);
    OK(sharray_ring_get_stats(ring, &st));
    EXPECT(st.closed && st.free == 2);
    sharray_producer *p2 = NULL;
    EXPECT_ST(sharray_ring_producer(ring, 0, &p2), SHARRAY_DISCONNECTED);
    OK(sharray_ring_producer(ring, 1, &p2));
    OK(sharray_producer_free(p2));

    /* A lease outlives its consumer and ring handles. */
    OK(sharray_producer_loan(p, SHARRAY_FOREVER, &loan));
    OK(sharray_loan_commit(loan, NULL));
    OK(sharray_consumer_recv(c, SHARRAY_FOREVER, &lease));
    OK(sharray_consumer_free(c));
    OK(sharray_producer_free(p));
    OK(sharray_ring_free(ring));
    const void *data = NULL;
    size_t len = 0;
    OK(sharray_lease_data(lease, &data, &len));
    EXPECT(len == 64);
    OK(sharray_lease_release(lease));

    /* Broadcast: every subscriber gets every frame. */
    opts.broadcast = true;
    opts.slots = 4;
    OK(sharray_ring_create(path_in("b.npy"), "float32", frame, 1, &opts, &ring));
    sharray_consumer *s1 = NULL, *s2 = NULL;
    OK(sharray_ring_consumer(ring, &s1));
    OK(sharray_ring_consumer(ring, &s2));
    OK(sharray_ring_producer(ring, 0, &p));
    OK(sharray_producer_loan(p, SHARRAY_FOREVER, &loan));
    OK(sharray_loan_commit(loan, NULL));
    sharray_lease *l1 = NULL, *l2 = NULL;
    OK(sharray_consumer_recv(s1, SHARRAY_TRY, &l1));
    OK(sharray_consumer_recv(s2, SHARRAY_TRY, &l2));
    OK(sharray_lease_release(l1));
    OK(sharray_lease_release(l2));
    OK(sharray_consumer_free(s1));
    OK(sharray_consumer_free(s2));
    OK(sharray_producer_free(p));
    OK(sharray_ring_free(ring));
}

static void pools(void) {
    size_t shape[2] = {10, 3};
    sharray_array *out = NULL;
    OK(sharray_array_create(path_in("out.npy"), "uint16", shape, 2, SHARRAY_ORDER_C, &out));
    sharray_queue *q = NULL;
    OK(sharray_queue_create(path_in("q.npy"), 10, 4, &q));
    sharray_queue_progress pr;
    OK(sharray_queue_get_progress(q, &pr));
    EXPECT(pr.chunks == 3 && pr.done == 0 && pr.pending == 3 && pr.rows == 10 && pr.chunk_rows == 4);
    EXPECT_ST(sharray_queue_wait_all(q, 20, &pr), SHARRAY_TIMEOUT);

    sharray_worker *w = NULL;
    OK(sharray_queue_join(q, &w));
    sharray_claim *c = NULL;
    OK(sharray_worker_claim(w, SHARRAY_FOREVER, &c));
    size_t index = 99, start = 99, end = 99;
    OK(sharray_claim_info(c, &index, &start, &end));
    EXPECT(index == 0 && start == 0 && end == 4);
    /* Give it back: it is claimable again. */
    OK(sharray_claim_abandon(c));

    int claimed = 0;
    sharray_status st;
    while ((st = sharray_worker_claim(w, 1000, &c)) == SHARRAY_OK) {
        OK(sharray_claim_info(c, &index, &start, &end));
        sharray_rows *rows = NULL;
        OK(sharray_claim_rows(c, out, &rows));
        void *data = NULL;
        size_t len = 0;
        OK(sharray_rows_data(rows, &data, &len));
        EXPECT(len == (end - start) * 3 * sizeof(uint16_t));
        for (size_t i = 0; i < len / sizeof(uint16_t); i++) {
            ((uint16_t *)data)[i] = (uint16_t)(start * 3 + i);
        }
        /* A second view of the same rows is refused in this process. */
        sharray_rows *again = NULL;
        EXPECT_ST(sharray_claim_rows(c, out, &again), SHARRAY_LOCK_TIMEOUT);
        /* The claim cannot end while its view lives, and stays valid. */
        EXPECT_ST(sharray_claim_complete(c), SHARRAY_INVALID_ARGUMENT);
        OK(sharray_rows_release(rows));
        OK(sharray_claim_complete(c));
        claimed++;
    }
    EXPECT_ST(st, SHARRAY_DONE);
    EXPECT(claimed == 3);
    EXPECT_ST(sharray_worker_claim(w, SHARRAY_TRY, &c), SHARRAY_DONE);
    EXPECT(c == NULL);
    OK(sharray_queue_wait_all(q, SHARRAY_FOREVER, &pr));
    EXPECT(pr.done == 3 && pr.in_flight == 0 && pr.requeued == 1);

    sharray_read_guard *r = NULL;
    OK(sharray_array_read(out, SHARRAY_FOREVER, &r));
    const void *data = NULL;
    size_t len = 0;
    OK(sharray_read_guard_data(r, &data, &len));
    for (size_t i = 0; i < 30; i++) {
        EXPECT(((const uint16_t *)data)[i] == i);
    }
    OK(sharray_read_guard_release(r));
    OK(sharray_worker_free(w));
    OK(sharray_queue_free(q));

    /* A task queue (chunk_rows 0), opened again by path. */
    OK(sharray_queue_create(path_in("tasks.npy"), 2, 0, &q));
    OK(sharray_queue_free(q));
    OK(sharray_queue_open(path_in("tasks.npy"), &q));
    OK(sharray_queue_join(q, &w));
    OK(sharray_worker_claim(w, SHARRAY_TRY, &c));
    OK(sharray_claim_info(c, &index, NULL, NULL));
    EXPECT(index == 0);
    /* Rows of an array whose axis 0 is not the queue's: refused. */
    sharray_rows *rows = NULL;
    EXPECT_ST(sharray_claim_rows(c, out, &rows), SHARRAY_SHAPE_MISMATCH);
    sharray_claim *c2 = NULL;
    OK(sharray_worker_claim(w, SHARRAY_TRY, &c2));
    sharray_claim *c3 = NULL;
    EXPECT_ST(sharray_worker_claim(w, SHARRAY_TRY, &c3), SHARRAY_WOULD_BLOCK);
    OK(sharray_claim_complete(c));
    OK(sharray_claim_complete(c2));
    OK(sharray_worker_free(w));
    OK(sharray_queue_free(q));
    OK(sharray_array_free(out));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: api_test DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    errors_and_arguments();
    arrays();
    rings();
    pools();
    if (failures) {
        fprintf(stderr, "api_test: %d checks failed\n", failures);
        return 1;
    }
    printf("api_test: all checks passed\n");
    return 0;
}
