/* Arrays from C: create, describe, write under the write guard, read back
 * under the read guard, and take turns with other processes.
 *
 *   array_demo PATH                  create a 3x4 float64 array at PATH
 *                                    (must not exist), fill it, read it back
 *   array_demo turns PATH N PARITY   on an existing int64 array: N times,
 *                                    wait until element 0 has parity PARITY
 *                                    (0 or 1), then add 1 under the guard
 *
 * Another process may open the same file at any time: from Python,
 * np.load(PATH, mmap_mode="r") or sharray.open(PATH); from Rust,
 * SharedArray::<f64>::open(PATH). */
#include <string.h>

#include "common.h"

static const char *P = "array_demo";

static int demo(const char *path) {
    size_t shape[2] = {3, 4};
    sharray_array *a = NULL;
    check_ok(P, "create", sharray_array_create(path, "float64", shape, 2, SHARRAY_ORDER_C, &a));

    sharray_array_info info;
    check_ok(P, "info", sharray_array_get_info(a, &info));
    printf("created %s: dtype %s, shape (%zu, %zu), %zu bytes\n", path, info.dtype, info.shape[0],
           info.shape[1], info.nbytes);

    /* Write under the exclusive guard: no other process or thread reads or
     * writes meanwhile. Releasing it bumps the generation. */
    uint64_t gen0 = 0, gen1 = 0;
    check_ok(P, "generation", sharray_array_generation(a, &gen0));
    sharray_write_guard *w = NULL;
    check_ok(P, "write guard", sharray_array_write(a, SHARRAY_FOREVER, &w));
    void *wdata = NULL;
    size_t wlen = 0;
    check_ok(P, "write data", sharray_write_guard_data(w, &wdata, &wlen));
    double *x = (double *)wdata;
    for (size_t i = 0; i < wlen / sizeof(double); i++) {
        x[i] = 1.5 * (double)i;
    }
    check_ok(P, "release", sharray_write_guard_release(w));
    check_ok(P, "generation", sharray_array_generation(a, &gen1));

    /* Read back under the shared guard. */
    sharray_read_guard *r = NULL;
    check_ok(P, "read guard", sharray_array_read(a, 1000, &r));
    const void *rdata = NULL;
    size_t rlen = 0;
    check_ok(P, "read data", sharray_read_guard_data(r, &rdata, &rlen));
    const double *y = (const double *)rdata;
    double sum = 0.0;
    for (size_t i = 0; i < rlen / sizeof(double); i++) {
        if (y[i] != 1.5 * (double)i) {
            fprintf(stderr, "array_demo: element %zu reads %g, wrote %g\n", i, y[i], 1.5 * (double)i);
            return 1;
        }
        sum += y[i];
    }
    /* A writer is refused while we read: try, without waiting. */
    sharray_write_guard *w2 = NULL;
    sharray_status st = sharray_array_write(a, SHARRAY_TRY, &w2);
    if (st != SHARRAY_WOULD_BLOCK || w2 != NULL) {
        fprintf(stderr, "array_demo: a write guard under a read guard gave %s\n",
                sharray_status_name((int)st));
        return 1;
    }
    check_ok(P, "release", sharray_read_guard_release(r));
    check_ok(P, "flush", sharray_array_flush(a));

    /* Errors come back as a status and a one-line message. */
    sharray_array *again = NULL;
    st = sharray_array_create(path, "float64", shape, 2, SHARRAY_ORDER_C, &again);
    printf("creating it again: %s: %s\n", sharray_status_name((int)st), sharray_last_error());
    if (st != SHARRAY_ALREADY_EXISTS || again != NULL) {
        return 1;
    }

    printf("{\"sum\": %.1f, \"generation_before\": %llu, \"generation_after\": %llu}\n", sum,
           (unsigned long long)gen0, (unsigned long long)gen1);
    check_ok(P, "free", sharray_array_free(a));
    return 0;
}

static int turns(const char *path, unsigned long long rounds, int parity) {
    sharray_array *a = NULL;
    check_ok(P, "open", sharray_array_open(path, 0, &a));
    sharray_array_info info;
    check_ok(P, "info", sharray_array_get_info(a, &info));
    if (strcmp(info.dtype, "<i8") != 0 || info.len == 0) {
        fprintf(stderr, "array_demo: turns needs a non-empty int64 array, %s holds %s\n", path,
                info.dtype);
        return 1;
    }
    unsigned long long done = 0;
    while (done < rounds) {
        uint64_t seen = 0, now = 0;
        sharray_write_guard *w = NULL;
        check_ok(P, "write guard", sharray_array_write(a, 60000, &w));
        /* Under the guard nobody else changes the generation: a peer's
         * next change makes it differ from seen + 1 (our own release). */
        check_ok(P, "generation", sharray_array_generation(a, &seen));
        void *data = NULL;
        size_t len = 0;
        check_ok(P, "write data", sharray_write_guard_data(w, &data, &len));
        int64_t *v = (int64_t *)data;
        int mine = (v[0] % 2) == parity;
        if (mine) {
            /* A read-modify-write spread over the whole array: without
             * mutual exclusion, the peer would see torn values. */
            int64_t next = v[0] + 1;
            for (size_t i = 0; i < len / sizeof(int64_t); i++) {
                v[i] = next;
            }
            done++;
        } else {
            /* Every element must agree: a peer never leaves it torn. */
            for (size_t i = 1; i < len / sizeof(int64_t); i++) {
                if (v[i] != v[0]) {
                    fprintf(stderr, "array_demo: torn array: element %zu is %lld, element 0 %lld\n",
                            i, (long long)v[i], (long long)v[0]);
                    return 1;
                }
            }
        }
        check_ok(P, "release", sharray_write_guard_release(w));
        if (!mine) {
            /* Releasing our own guard bumped the generation once; wait
             * for the peer's next change. */
            sharray_status st = sharray_array_wait_changed(a, seen + 1, 200, &now);
            if (st != SHARRAY_OK && st != SHARRAY_TIMEOUT) {
                check_ok(P, "wait", st);
            }
        }
    }
    printf("{\"turns\": %llu, \"parity\": %d}\n", done, parity);
    check_ok(P, "free", sharray_array_free(a));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2) {
        return demo(argv[1]);
    }
    if (argc == 5 && strcmp(argv[1], "turns") == 0) {
        char *end = NULL;
        unsigned long long n = strtoull(argv[3], &end, 10);
        int parity = atoi(argv[4]);
        if (*end != '\0' || (parity != 0 && parity != 1)) {
            fprintf(stderr, "array_demo: turns PATH N PARITY: N a number, PARITY 0 or 1\n");
            return 2;
        }
        return turns(argv[2], n, parity);
    }
    fprintf(stderr, "usage: array_demo PATH | array_demo turns PATH N PARITY\n");
    return 2;
}
