/* Helpers shared by the C examples: the uint64 frame pattern of
 * examples/ring_peer.rs, a clock, and error reporting. */
#ifndef SHARRAY_EXAMPLES_COMMON_H
#define SHARRAY_EXAMPLES_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sharray.h"

/* Print "PROGRAM: what: message" and exit 1 (3 on a timeout, as ring_peer)
 * unless the call succeeded. */
__attribute__((unused)) static void check_ok(const char *program, const char *what, sharray_status st) {
    if (st == SHARRAY_OK) {
        return;
    }
    fprintf(stderr, "%s: %s: %s (%s)\n", program, what, sharray_last_error(),
            sharray_status_name((int)st));
    exit(st == SHARRAY_TIMEOUT || st == SHARRAY_LOCK_TIMEOUT ? 3 : 1);
}

/* Frame n holds the words n, n + 1, n + 2, ... (wrapping). Never inlined,
 * like ring_peer's, so every peer runs comparable code. */
__attribute__((noinline, unused)) static void fill_frame(uint64_t *words, size_t len, uint64_t n) {
    for (size_t i = 0; i < len; i++) {
        words[i] = n + (uint64_t)i;
    }
}

/* Check every word of frame n: the wrapping sum against the closed form,
 * plus the first and the last word. */
__attribute__((noinline, unused)) static int check_frame(const uint64_t *words, size_t len, uint64_t n) {
    if (len == 0) {
        return 1;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += words[i];
    }
    uint64_t l = (uint64_t)len;
    /* l * (l - 1) / 2 modulo 2^64: halve the even factor first. */
    uint64_t tri = (l % 2 == 0) ? (l / 2) * (l - 1) : l * ((l - 1) / 2);
    uint64_t want = n * l + tri;
    return sum == want && words[0] == n && words[len - 1] == n + (l - 1);
}

__attribute__((unused)) static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The one-line JSON report of examples/ring_peer.rs. */
__attribute__((unused)) static void report(const char *role, uint64_t frames, uint64_t bad, uint64_t lost, uint64_t bytes,
                   double secs) {
    double s = secs > 1e-9 ? secs : 1e-9;
    printf("{\"role\": \"%s\", \"frames\": %llu, \"bad\": %llu, \"lost\": %llu, \"bytes\": %llu, "
           "\"seconds\": %.6f, \"frames_per_s\": %.3f, \"gb_per_s\": %.4f}\n",
           role, (unsigned long long)frames, (unsigned long long)bad, (unsigned long long)lost,
           (unsigned long long)bytes, secs, (double)frames / s, (double)bytes / s / 1e9);
    fflush(stdout);
}

/* Open the ring at path, or create it (uint64 frames of `words` words,
 * `slots` slots) if it does not exist yet, so either side may start first.
 * Two processes creating at once: one wins, the other opens its ring. */
__attribute__((unused)) static sharray_ring *open_or_create_ring(const char *program,
                                                                 const char *path, size_t words,
                                                                 uint32_t slots) {
    sharray_ring *ring = NULL;
    sharray_status st = sharray_ring_open(path, &ring);
    if (st == SHARRAY_NOT_FOUND) {
        sharray_ring_options opts = {0};
        opts.slots = slots;
        st = sharray_ring_create(path, "uint64", &words, 1, &opts, &ring);
        if (st == SHARRAY_ALREADY_EXISTS) {
            st = sharray_ring_open(path, &ring);
        }
    }
    check_ok(program, "open", st);
    return ring;
}

#endif
