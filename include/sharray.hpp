// sharray.hpp: thin C++17 RAII wrappers over the C API of sharray.h.
//
// Every wrapper owns one C handle and ends it in its destructor (a guard
// unlocks, a lease is released, a loan not committed is abandoned, a claim
// not completed is given back). Failures throw sharray::error, which
// carries the status and the one-line message of sharray_last_error().
// Timeouts are std::chrono durations; sharray::forever blocks and
// sharray::try_now never waits (then a call that finds nothing available
// returns an empty std::optional instead of throwing).
//
// Threads, blocking and pointer validity are as documented in sharray.h:
// data pointers live as long as the guard, loan, lease or rows object.
//
//   sharray::Array a = sharray::Array::create("data.npy", "float32", {480, 640});
//   {
//       auto w = a.write();
//       float *x = w.data<float>();   // w.size<float>() elements
//       x[0] = 1.5f;
//   }                                  // unlocked, generation bumped
#ifndef SHARRAY_HPP
#define SHARRAY_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sharray.h"

namespace sharray {

// A failed call: status() and what() (the sharray_last_error() message).
class error : public std::runtime_error {
  public:
    error(sharray_status status, const char *message)
        : std::runtime_error(std::string(sharray_status_name(static_cast<int>(status))) + ": " +
                             message),
          status_(status) {}
    sharray_status status() const noexcept { return status_; }

  private:
    sharray_status status_;
};

namespace detail {
inline void check(sharray_status st) {
    if (st != SHARRAY_OK) {
        throw error(st, sharray_last_error());
    }
}

// Owns a C handle; `End` ends it (its status is ignored in destructors,
// which must not throw).
template <typename T, sharray_status (*End)(T *)> class handle {
  public:
    handle() noexcept = default;
    explicit handle(T *p) noexcept : p_(p) {}
    handle(handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    handle &operator=(handle &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }
    T *get() const noexcept { return p_; }
    T *release() noexcept { return std::exchange(p_, nullptr); }
    void reset() noexcept {
        if (p_ != nullptr) {
            (void)End(std::exchange(p_, nullptr));
        }
    }
    explicit operator bool() const noexcept { return p_ != nullptr; }

  private:
    T *p_ = nullptr;
};
} // namespace detail

using millis = std::chrono::milliseconds;
// Block until the operation can proceed.
inline constexpr millis forever{SHARRAY_FOREVER};
// Never wait.
inline constexpr millis try_now{SHARRAY_TRY};

// Bytes of shared memory held by a guard, loan, lease or rows object.
template <typename Ptr> struct bytes {
    Ptr ptr = nullptr;
    std::size_t len = 0;
    template <typename E> auto as() const {
        using Out = std::conditional_t<std::is_const_v<std::remove_pointer_t<Ptr>>, const E *, E *>;
        return static_cast<Out>(ptr);
    }
    template <typename E> std::size_t count() const { return len / sizeof(E); }
};

class ReadGuard {
  public:
    explicit ReadGuard(sharray_read_guard *g) : h_(g) {
        detail::check(sharray_read_guard_data(g, &b_.ptr, &b_.len));
    }
    template <typename E> const E *data() const { return b_.as<E>(); }
    template <typename E> std::size_t size() const { return b_.count<E>(); }
    std::size_t nbytes() const { return b_.len; }

  private:
    detail::handle<sharray_read_guard, sharray_read_guard_release> h_;
    bytes<const void *> b_;
};

class WriteGuard {
  public:
    explicit WriteGuard(sharray_write_guard *g) : h_(g) {
        detail::check(sharray_write_guard_data(g, &b_.ptr, &b_.len));
    }
    template <typename E> E *data() const { return b_.as<E>(); }
    template <typename E> std::size_t size() const { return b_.count<E>(); }
    std::size_t nbytes() const { return b_.len; }

  private:
    detail::handle<sharray_write_guard, sharray_write_guard_release> h_;
    bytes<void *> b_;
};

class Array {
  public:
    static Array create(const std::string &path, const std::string &dtype,
                        std::initializer_list<std::size_t> shape, int order = SHARRAY_ORDER_C) {
        std::vector<std::size_t> s(shape);
        return create(path, dtype, s, order);
    }
    static Array create(const std::string &path, const std::string &dtype,
                        const std::vector<std::size_t> &shape, int order = SHARRAY_ORDER_C) {
        sharray_array *a = nullptr;
        detail::check(
            sharray_array_create(path.c_str(), dtype.c_str(), shape.data(), shape.size(), order, &a));
        return Array(a);
    }
    static Array open(const std::string &path, bool read_only = false) {
        sharray_array *a = nullptr;
        detail::check(sharray_array_open(path.c_str(), read_only ? 1 : 0, &a));
        return Array(a);
    }
    // Pointers inside stay valid while this Array lives.
    sharray_array_info info() const {
        sharray_array_info i;
        detail::check(sharray_array_get_info(h_.get(), &i));
        return i;
    }
    std::uint64_t generation() const {
        std::uint64_t g = 0;
        detail::check(sharray_array_generation(h_.get(), &g));
        return g;
    }
    // The new generation, or nothing if it did not change within `timeout`.
    std::optional<std::uint64_t> wait_changed(std::uint64_t since, millis timeout) const {
        std::uint64_t g = 0;
        sharray_status st = sharray_array_wait_changed(h_.get(), since, timeout.count(), &g);
        if (st == SHARRAY_TIMEOUT) {
            return std::nullopt;
        }
        detail::check(st);
        return g;
    }
    void flush() const { detail::check(sharray_array_flush(h_.get())); }
    ReadGuard read() const { return *try_read(forever); }
    WriteGuard write() const { return *try_write(forever); }
    // Nothing if the lock was not free within `timeout`.
    std::optional<ReadGuard> try_read(millis timeout) const {
        sharray_read_guard *g = nullptr;
        if (!locked(sharray_array_read(h_.get(), timeout.count(), &g))) {
            return std::nullopt;
        }
        return ReadGuard(g);
    }
    std::optional<WriteGuard> try_write(millis timeout) const {
        sharray_write_guard *g = nullptr;
        if (!locked(sharray_array_write(h_.get(), timeout.count(), &g))) {
            return std::nullopt;
        }
        return WriteGuard(g);
    }
    sharray_array *get() const noexcept { return h_.get(); }

  private:
    explicit Array(sharray_array *a) : h_(a) {}
    static bool locked(sharray_status st) {
        if (st == SHARRAY_WOULD_BLOCK || st == SHARRAY_LOCK_TIMEOUT) {
            return false;
        }
        detail::check(st);
        return true;
    }
    detail::handle<sharray_array, sharray_array_free> h_;
};

class Loan {
  public:
    explicit Loan(sharray_loan *l) : h_(l) { detail::check(sharray_loan_data(l, &b_.ptr, &b_.len)); }
    template <typename E> E *data() const { return b_.as<E>(); }
    template <typename E> std::size_t size() const { return b_.count<E>(); }
    std::size_t nbytes() const { return b_.len; }
    void set_tag(std::uint64_t tag) { detail::check(sharray_loan_set_tag(h_.get(), tag)); }
    void set_valid_len(std::size_t n) { detail::check(sharray_loan_set_valid_len(h_.get(), n)); }
    // Publish; returns the sequence number. The loan is over either way.
    std::uint64_t commit() {
        std::uint64_t seq = 0;
        detail::check(sharray_loan_commit(h_.release(), &seq));
        return seq;
    }
    // A loan destroyed without commit() is abandoned.

  private:
    detail::handle<sharray_loan, sharray_loan_abandon> h_;
    bytes<void *> b_;
};

class Lease {
  public:
    explicit Lease(sharray_lease *l) : h_(l) {
        detail::check(sharray_lease_data(l, &b_.ptr, &b_.len));
        detail::check(sharray_lease_get_info(l, &info_));
    }
    template <typename E> const E *data() const { return b_.as<E>(); }
    template <typename E> std::size_t size() const { return b_.count<E>(); }
    std::size_t nbytes() const { return b_.len; }
    const sharray_lease_info &info() const { return info_; }

  private:
    detail::handle<sharray_lease, sharray_lease_release> h_;
    bytes<const void *> b_;
    sharray_lease_info info_{};
};

class Producer {
  public:
    explicit Producer(sharray_producer *p) : h_(p) {}
    Loan loan() const { return *try_loan(forever); }
    // Nothing if no slot became free within `timeout`.
    std::optional<Loan> try_loan(millis timeout) const {
        sharray_loan *l = nullptr;
        sharray_status st = sharray_producer_loan(h_.get(), timeout.count(), &l);
        if (st == SHARRAY_WOULD_BLOCK || st == SHARRAY_TIMEOUT) {
            return std::nullopt;
        }
        detail::check(st);
        return Loan(l);
    }
    // End the stream (consumers drain, then see the end).
    void close() const { detail::check(sharray_producer_close(h_.get())); }

  private:
    detail::handle<sharray_producer, sharray_producer_free> h_;
};

class Consumer {
  public:
    explicit Consumer(sharray_consumer *c) : h_(c) {}
    // The next frame; nothing once the stream was closed and drained.
    std::optional<Lease> recv() const { return recv_for(forever); }
    // Throws sharray::error with SHARRAY_TIMEOUT / SHARRAY_WOULD_BLOCK if
    // no frame came within `timeout`; nothing at the end of the stream.
    std::optional<Lease> recv_for(millis timeout) const {
        sharray_lease *l = nullptr;
        sharray_status st = sharray_consumer_recv(h_.get(), timeout.count(), &l);
        if (st == SHARRAY_DISCONNECTED) {
            return std::nullopt;
        }
        detail::check(st);
        return Lease(l);
    }

  private:
    detail::handle<sharray_consumer, sharray_consumer_free> h_;
};

class Ring {
  public:
    static Ring create(const std::string &path, const std::string &dtype,
                       const std::vector<std::size_t> &frame_shape,
                       const sharray_ring_options &options = {}) {
        sharray_ring *r = nullptr;
        detail::check(sharray_ring_create(path.c_str(), dtype.c_str(), frame_shape.data(),
                                          frame_shape.size(), &options, &r));
        return Ring(r);
    }
    static Ring open(const std::string &path) {
        sharray_ring *r = nullptr;
        detail::check(sharray_ring_open(path.c_str(), &r));
        return Ring(r);
    }
    sharray_ring_info info() const {
        sharray_ring_info i;
        detail::check(sharray_ring_get_info(h_.get(), &i));
        return i;
    }
    sharray_ring_stats stats() const {
        sharray_ring_stats s;
        detail::check(sharray_ring_get_stats(h_.get(), &s));
        return s;
    }
    Producer producer(bool reopen = false) const {
        sharray_producer *p = nullptr;
        detail::check(sharray_ring_producer(h_.get(), reopen ? 1 : 0, &p));
        return Producer(p);
    }
    Consumer consumer() const {
        sharray_consumer *c = nullptr;
        detail::check(sharray_ring_consumer(h_.get(), &c));
        return Consumer(c);
    }

  private:
    explicit Ring(sharray_ring *r) : h_(r) {}
    detail::handle<sharray_ring, sharray_ring_free> h_;
};

class Rows {
  public:
    explicit Rows(sharray_rows *r) : h_(r) { detail::check(sharray_rows_data(r, &b_.ptr, &b_.len)); }
    template <typename E> E *data() const { return b_.as<E>(); }
    template <typename E> std::size_t size() const { return b_.count<E>(); }
    std::size_t nbytes() const { return b_.len; }

  private:
    detail::handle<sharray_rows, sharray_rows_release> h_;
    bytes<void *> b_;
};

class Claim {
  public:
    explicit Claim(sharray_claim *c) : h_(c) {
        detail::check(sharray_claim_info(c, &index_, &start_, &end_));
    }
    std::size_t index() const { return index_; }
    std::size_t row_start() const { return start_; }
    std::size_t row_end() const { return end_; }
    // Destroy the Rows before complete().
    Rows rows(const Array &out) const {
        sharray_rows *r = nullptr;
        detail::check(sharray_claim_rows(h_.get(), out.get(), &r));
        return Rows(r);
    }
    void complete() { end(sharray_claim_complete); }
    void abandon() { end(sharray_claim_abandon); }
    // A claim destroyed without complete() is given back to the queue.

  private:
    void end(sharray_status (*f)(sharray_claim *)) {
        sharray_status st = f(h_.get());
        // The claim is over unless a row view kept it alive (then it stays
        // valid and this object still owns it).
        if (st != SHARRAY_INVALID_ARGUMENT) {
            (void)h_.release();
        }
        detail::check(st);
    }
    detail::handle<sharray_claim, sharray_claim_abandon> h_;
    std::size_t index_ = 0, start_ = 0, end_ = 0;
};

class Worker {
  public:
    explicit Worker(sharray_worker *w) : h_(w) {}
    // The next chunk; nothing once every chunk is done.
    std::optional<Claim> claim(millis timeout = forever) const {
        sharray_claim *c = nullptr;
        sharray_status st = sharray_worker_claim(h_.get(), timeout.count(), &c);
        if (st == SHARRAY_DONE) {
            return std::nullopt;
        }
        detail::check(st);
        return Claim(c);
    }

  private:
    detail::handle<sharray_worker, sharray_worker_free> h_;
};

class Queue {
  public:
    // `chunk_rows` 0: `rows` independent tasks.
    static Queue create(const std::string &path, std::size_t rows, std::size_t chunk_rows) {
        sharray_queue *q = nullptr;
        detail::check(sharray_queue_create(path.c_str(), rows, chunk_rows, &q));
        return Queue(q);
    }
    static Queue open(const std::string &path) {
        sharray_queue *q = nullptr;
        detail::check(sharray_queue_open(path.c_str(), &q));
        return Queue(q);
    }
    sharray_queue_progress progress() const {
        sharray_queue_progress p;
        detail::check(sharray_queue_get_progress(h_.get(), &p));
        return p;
    }
    sharray_queue_progress wait_all(millis timeout = forever) const {
        sharray_queue_progress p;
        detail::check(sharray_queue_wait_all(h_.get(), timeout.count(), &p));
        return p;
    }
    Worker join() const {
        sharray_worker *w = nullptr;
        detail::check(sharray_queue_join(h_.get(), &w));
        return Worker(w);
    }

  private:
    explicit Queue(sharray_queue *q) : h_(q) {}
    detail::handle<sharray_queue, sharray_queue_free> h_;
};

} // namespace sharray

#endif
