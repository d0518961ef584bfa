// The C++17 wrappers of include/sharray.hpp (run by ffi/tests/c_peers.rs
// under AddressSanitizer): RAII ends every handle, errors throw
// sharray::error with the status and message.
//
//   cpp_test DIR
#include <cstdio>
#include <string>

#include "sharray.hpp"

static int failures = 0;
#define EXPECT(cond)                                                                    \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "cpp_test.cpp:%d: check failed: %s\n", __LINE__, #cond); \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: cpp_test DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    try {
        // Arrays and guards.
        auto a = sharray::Array::create(dir + "/a.npy", "float32", {2, 3});
        EXPECT(a.info().nbytes == 24);
        {
            auto w = a.write();
            for (std::size_t i = 0; i < w.size<float>(); i++) {
                w.data<float>()[i] = 0.5f * static_cast<float>(i);
            }
            EXPECT(!a.try_read(sharray::try_now)); // the writer excludes readers
        }
        EXPECT(a.generation() == 1);
        EXPECT(!a.wait_changed(1, sharray::millis(10)));
        {
            auto r = a.read();
            EXPECT(r.size<float>() == 6 && r.data<float>()[5] == 2.5f);
        }
        try {
            sharray::Array::create(dir + "/a.npy", "float32", {2, 3});
            EXPECT(false);
        } catch (const sharray::error &e) {
            EXPECT(e.status() == SHARRAY_ALREADY_EXISTS);
            EXPECT(std::string(e.what()).find("a.npy") != std::string::npos);
        }

        // A ring: loans not committed are abandoned, the stream ends.
        sharray_ring_options opts{};
        opts.slots = 2;
        auto ring = sharray::Ring::create(dir + "/r.npy", "uint64", {4}, opts);
        auto consumer = ring.consumer();
        {
            auto producer = ring.producer();
            { auto dropped = producer.loan(); } // abandoned
            for (std::uint64_t n = 0; n < 2; n++) {
                auto loan = producer.loan();
                for (std::size_t i = 0; i < loan.size<std::uint64_t>(); i++) {
                    loan.data<std::uint64_t>()[i] = n + i;
                }
                loan.set_tag(n);
                EXPECT(loan.commit() == n);
            }
            EXPECT(!producer.try_loan(sharray::try_now)); // both slots ready
            producer.close();
        }
        std::uint64_t got = 0;
        while (auto lease = consumer.recv()) {
            EXPECT(lease->info().tag == got && lease->data<std::uint64_t>()[3] == got + 3);
            got++;
        }
        EXPECT(got == 2);
        EXPECT(ring.stats().free == 2);

        // A worker pool.
        auto out = sharray::Array::create(dir + "/out.npy", "int32", {10});
        auto q = sharray::Queue::create(dir + "/q.npy", 10, 3);
        auto w = q.join();
        { auto given_back = w.claim(); } // abandoned by the destructor
        int chunks = 0;
        while (auto c = w.claim()) {
            {
                auto rows = c->rows(out);
                for (std::size_t i = 0; i < rows.size<std::int32_t>(); i++) {
                    rows.data<std::int32_t>()[i] = static_cast<std::int32_t>(c->row_start() + i);
                }
                try {
                    c->complete(); // refused while the rows live; the claim stays
                    EXPECT(false);
                } catch (const sharray::error &e) {
                    EXPECT(e.status() == SHARRAY_INVALID_ARGUMENT);
                }
            }
            c->complete();
            chunks++;
        }
        EXPECT(chunks == 4);
        auto p = q.wait_all(sharray::millis(10000));
        EXPECT(p.done == 4 && p.requeued == 1);
        auto r = out.read();
        for (int i = 0; i < 10; i++) {
            EXPECT(r.data<std::int32_t>()[i] == i);
        }
    } catch (const sharray::error &e) {
        std::fprintf(stderr, "cpp_test: unexpected error: %s\n", e.what());
        return 1;
    }
    if (failures) {
        std::fprintf(stderr, "cpp_test: %d checks failed\n", failures);
        return 1;
    }
    std::printf("cpp_test: all checks passed\n");
    return 0;
}
