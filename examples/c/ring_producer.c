/* A C producer for a ring of uint64 frames, the counterpart of
 * `ring_peer produce` (examples/ring_peer.rs).
 *
 *   ring_producer PATH FRAMES [--no-close] [--reopen]
 *
 * The ring holds uint64 frames of any shape (`sharray ring create --dtype
 * uint64 ...`); if PATH does not exist, a ring of 8 slots of 8192 words
 * (64 KiB) is created there (a path, or shm:NAME). Frame n, tagged n,
 * holds the words n, n + 1, n + 2, ... The producer writes every word of
 * FRAMES frames, then closes the stream (--no-close: just detaches;
 * --reopen: reopens a closed stream) and prints one JSON line. */
#include <string.h>

#include "common.h"

static const char *P = "ring_producer";

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ring_producer PATH FRAMES [--no-close] [--reopen]\n");
        return 2;
    }
    char *end = NULL;
    unsigned long long frames = strtoull(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0') {
        fprintf(stderr, "ring_producer: FRAMES %s is not a number\n", argv[2]);
        return 2;
    }
    int close_stream = 1, reopen = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--no-close") == 0) {
            close_stream = 0;
        } else if (strcmp(argv[i], "--reopen") == 0) {
            reopen = 1;
        } else {
            fprintf(stderr, "ring_producer: unknown option %s\n", argv[i]);
            return 2;
        }
    }

    sharray_ring *ring = open_or_create_ring(P, argv[1], 8192, 8);
    sharray_ring_info info;
    check_ok(P, "info", sharray_ring_get_info(ring, &info));
    if (strcmp(info.dtype, "<u8") != 0) {
        fprintf(stderr, "ring_producer: the ring holds %s, not uint64 (<u8)\n", info.dtype);
        return 1;
    }
    sharray_producer *producer = NULL;
    check_ok(P, "attach", sharray_ring_producer(ring, reopen, &producer));

    double t0 = now_s();
    uint64_t n = 0;
    for (; n < frames; n++) {
        sharray_loan *loan = NULL;
        check_ok(P, "loan", sharray_producer_loan(producer, SHARRAY_FOREVER, &loan));
        void *data = NULL;
        size_t len = 0;
        check_ok(P, "loan data", sharray_loan_data(loan, &data, &len));
        fill_frame((uint64_t *)data, len / sizeof(uint64_t), n);
        check_ok(P, "tag", sharray_loan_set_tag(loan, n));
        check_ok(P, "commit", sharray_loan_commit(loan, NULL));
    }
    double secs = now_s() - t0;
    if (close_stream) {
        check_ok(P, "close", sharray_producer_close(producer));
    }
    report("produce", n, 0, 0, n * (uint64_t)info.slot_bytes, secs);
    sharray_producer_free(producer);
    sharray_ring_free(ring);
    return 0;
}
