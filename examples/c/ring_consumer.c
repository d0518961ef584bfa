/* A C consumer for a ring of uint64 frames, the counterpart of
 * `ring_peer consume` (examples/ring_peer.rs).
 *
 *   ring_consumer PATH [FRAMES] [--timeout S] [--hold]
 *
 * Opens the ring of uint64 frames at PATH, or creates one of 8 slots of
 * 8192 words if PATH does not exist (as ring_producer does), so either may
 * start first. Prints "ready" once attached, then receives and checks every word of
 * every frame until the stream is closed and drained, or it has FRAMES
 * frames (0 or absent: no limit), and prints one JSON line: frames, bad
 * and lost frames, bytes, seconds, rates. --timeout S (default 60) bounds
 * each wait for a frame (exit 3 after that). --hold receives one frame,
 * prints "holding SEQ" and sleeps without releasing it (for crash tests). */
#include <string.h>
#include <unistd.h>

#include "common.h"

static const char *P = "ring_consumer";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ring_consumer PATH [FRAMES] [--timeout S] [--hold]\n");
        return 2;
    }
    unsigned long long limit = 0;
    double timeout_s = 60.0;
    int hold = 0;
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--hold") == 0) {
            hold = 1;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_s = strtod(argv[++i], &end);
            if (*end != '\0' || timeout_s <= 0) {
                fprintf(stderr, "ring_consumer: --timeout %s is not a positive number\n", argv[i]);
                return 2;
            }
        } else {
            limit = strtoull(argv[i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0') {
                fprintf(stderr, "ring_consumer: unknown argument %s\n", argv[i]);
                return 2;
            }
        }
    }

    sharray_ring *ring = open_or_create_ring(P, argv[1], 8192, 8);
    sharray_ring_info info;
    check_ok(P, "info", sharray_ring_get_info(ring, &info));
    if (strcmp(info.dtype, "<u8") != 0) {
        fprintf(stderr, "ring_consumer: the ring holds %s, not uint64 (<u8)\n", info.dtype);
        return 1;
    }
    sharray_consumer *consumer = NULL;
    check_ok(P, "attach", sharray_ring_consumer(ring, &consumer));
    printf("ready\n");
    fflush(stdout);

    int64_t timeout_ms = (int64_t)(timeout_s * 1000.0);
    uint64_t n = 0, bad = 0, lost = 0, bytes = 0;
    double t0 = 0.0;
    while (limit == 0 || n < limit) {
        sharray_lease *lease = NULL;
        sharray_status st = sharray_consumer_recv(consumer, timeout_ms, &lease);
        if (st == SHARRAY_DISCONNECTED) {
            break; /* closed by a producer and drained: the normal end */
        }
        check_ok(P, "recv", st);
        /* The clock starts at the first frame, as in ring_peer. */
        if (n == 0) {
            t0 = now_s();
        }
        const void *data = NULL;
        size_t len = 0;
        sharray_lease_info meta;
        check_ok(P, "lease data", sharray_lease_data(lease, &data, &len));
        check_ok(P, "lease info", sharray_lease_get_info(lease, &meta));
        if (hold) {
            printf("holding %llu\n", (unsigned long long)meta.seq);
            fflush(stdout);
            for (;;) {
                pause(); /* until killed, never releasing the lease */
            }
        }
        if (!check_frame((const uint64_t *)data, len / sizeof(uint64_t), meta.tag)) {
            bad++;
        }
        lost += meta.lost;
        bytes += meta.valid_len;
        n++;
        check_ok(P, "release", sharray_lease_release(lease));
    }
    double secs = n > 0 ? now_s() - t0 : 0.0;
    report("consume", n, bad, lost, bytes, secs);
    sharray_consumer_free(consumer);
    sharray_ring_free(ring);
    return 0;
}
