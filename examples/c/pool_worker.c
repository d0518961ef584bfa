/* A worker process of a worker pool, in C.
 *
 *   pool_worker QUEUE OUT [--die-in-chunk K]
 *
 * Joins the work queue QUEUE, claims chunks of rows until every chunk is
 * done, and writes each claimed chunk's rows of OUT (an int64 array whose
 * axis 0 is the queue's row count) in place: element (r, c) = r * 1000 + c.
 * Prints one JSON line with the chunks it completed. --die-in-chunk K
 * SIGKILLs this process halfway through its K-th chunk (from 1): the queue
 * gives that chunk to another worker. Create the files with sharray_queue_create
 * and sharray_array_create, `sharray queue create`, or Python. */
#include <signal.h>
#include <string.h>

#include "common.h"

static const char *P = "pool_worker";

int main(int argc, char **argv) {
    long die_in = 0;
    if (argc == 5 && strcmp(argv[3], "--die-in-chunk") == 0) {
        die_in = atol(argv[4]);
    } else if (argc != 3) {
        fprintf(stderr, "usage: pool_worker QUEUE OUT [--die-in-chunk K]\n");
        return 2;
    }
    sharray_queue *queue = NULL;
    sharray_array *out = NULL;
    check_ok(P, "open queue", sharray_queue_open(argv[1], &queue));
    check_ok(P, "open output", sharray_array_open(argv[2], 0, &out));
    sharray_array_info info;
    check_ok(P, "info", sharray_array_get_info(out, &info));
    if (strcmp(info.dtype, "<i8") != 0 || info.ndim != 2) {
        fprintf(stderr, "pool_worker: OUT must be a 2-d int64 array, it is %s with %zu dimensions\n",
                info.dtype, info.ndim);
        return 1;
    }
    size_t cols = info.shape[1];
    sharray_worker *worker = NULL;
    check_ok(P, "join", sharray_queue_join(queue, &worker));

    long chunks = 0;
    for (;;) {
        sharray_claim *claim = NULL;
        sharray_status st = sharray_worker_claim(worker, 60000, &claim);
        if (st == SHARRAY_DONE) {
            break; /* every chunk of the job is done */
        }
        check_ok(P, "claim", st);
        size_t start = 0, end = 0;
        check_ok(P, "claim info", sharray_claim_info(claim, NULL, &start, &end));
        sharray_rows *rows = NULL;
        check_ok(P, "rows", sharray_claim_rows(claim, out, &rows));
        void *data = NULL;
        size_t len = 0;
        check_ok(P, "rows data", sharray_rows_data(rows, &data, &len));
        int64_t *x = (int64_t *)data;
        for (size_t r = start; r < end; r++) {
            if (die_in > 0 && chunks + 1 == die_in && r == start + (end - start) / 2) {
                raise(SIGKILL); /* mid-chunk, claim held */
            }
            for (size_t c = 0; c < cols; c++) {
                x[(r - start) * cols + c] = (int64_t)(r * 1000 + c);
            }
        }
        check_ok(P, "release rows", sharray_rows_release(rows));
        check_ok(P, "complete", sharray_claim_complete(claim));
        chunks++;
    }
    printf("{\"role\": \"worker\", \"chunks\": %ld}\n", chunks);
    sharray_worker_free(worker);
    sharray_array_free(out);
    sharray_queue_free(queue);
    return 0;
}
