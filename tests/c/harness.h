/*
 * harness.h — a tiny test framework and event recorder for the C API tests.
 *
 * Everything here is static (one translation unit per test program). Waiting is done with
 * condition variables and generous deadlines, scaled by RC_TEST_TIMEOUT_SCALE (valgrind runs
 * use 10); no fixed sleep is a correctness assumption.
 */
#ifndef RC_TEST_HARNESS_H
#define RC_TEST_HARNESS_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reliable_channel.h"

/* ------------------------------------------------------------------------------------------ */
/* Checks                                                                                     */

static const char *current_test = "";
static atomic_int test_failures; /* checks failed in the current test (any thread) */
static double timeout_scale = 1.0;

static void check_failed(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    FAIL %s:%d [%s] ", file, line, current_test);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    atomic_fetch_add(&test_failures, 1);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) check_failed(__FILE__, __LINE__, "%s", #cond);                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) check_failed(__FILE__, __LINE__, __VA_ARGS__);                                \
    } while (0)

/* Checks a status; on mismatch prints both names and rc_last_error(). */
#define CHECK_ST(expr, want)                                                                       \
    do {                                                                                           \
        rc_status st_ = (expr);                                                                    \
        rc_status want_ = (want);                                                                  \
        if (st_ != want_)                                                                          \
            check_failed(__FILE__, __LINE__, "%s -> %s, want %s (last error: %s)", #expr,          \
                         rc_status_name((int)st_), rc_status_name((int)want_), rc_last_error());   \
    } while (0)

/* Same, and the last error must contain `needle`. */
#define CHECK_ST_ERR(expr, want, needle)                                                           \
    do {                                                                                           \
        rc_status st2_ = (expr);                                                                   \
        if (st2_ != (want))                                                                        \
            check_failed(__FILE__, __LINE__, "%s -> %s, want %s (last error: %s)", #expr,          \
                         rc_status_name((int)st2_), rc_status_name((int)(want)), rc_last_error()); \
        else if (!strstr(rc_last_error(), (needle)))                                               \
            check_failed(__FILE__, __LINE__, "%s: last error \"%s\" lacks \"%s\"", #expr,          \
                         rc_last_error(), (needle));                                               \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Time                                                                                       */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A timeout in ms, scaled for slow runs (valgrind). */
static int T(int ms) { return (int)(ms * timeout_scale); }

static void deadline_ts(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Polls `cond` (an expression) every 2 ms until it holds or `ms` (scaled) elapsed. A statement:
 * check `cond` afterwards. */
#define POLL_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        double end_ = now_s() + T(ms) / 1000.0;                                                    \
        while (!(cond) && now_s() < end_) sleep_ms(2);                                             \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Event recorder: an rc_event_fn that copies every event, checks its shape, wakes waiters,   */
/* and optionally runs a hook (for re-entrant calls from inside the callback).                */

typedef struct {
    rc_event_kind kind;
    char channel[260];
    char request_id[32]; /* "" when NULL */
    char sender[260]; /* "" when NULL (MESSAGE_LOST from an unknown sender) */
    char topic[260];
    uint8_t *payload;
    size_t len;
    char *error; /* NULL when NULL */
    uint64_t seq;
} rec_event;

typedef struct recorder recorder;
typedef void (*rec_hook)(recorder *r, const rc_event *ev);

struct recorder {
    const char *name;
    rc_manager *mgr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_event *ev;
    size_t n, cap;
    int shape_errors;
    rec_hook hook; /* runs after recording, outside the lock */
    void *ctx;
    atomic_int freed;             /* set by the test once rc_manager_free returned */
    atomic_int after_free;        /* events delivered after that: must stay 0 */
    atomic_int closed_flag;       /* set by a test once rc_close_channel(closed_channel) returned */
    char closed_channel[64];
    atomic_int after_close;       /* events of closed_channel after that: must stay 0 */
    atomic_int in_callback;       /* > 1 would mean concurrent callbacks */
    atomic_int concurrent_calls;
    /* The last seq seen per channel (the first 16 channels): seq grows in delivery order. */
    struct {
        char channel[64];
        uint64_t seq;
    } last_seq[16];
    int seq_errors;
};

static int is_hex20(const char *s) {
    if (!s || strlen(s) != RC_REQUEST_ID_LEN) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

static void rec_init(recorder *r, const char *name) {
    memset(r, 0, sizeof *r);
    r->name = name;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rec_destroy(recorder *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].payload);
        free(r->ev[i].error);
    }
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void rec_on_event(const rc_event *e, void *user_data) {
    recorder *r = user_data;
    if (atomic_fetch_add(&r->in_callback, 1) != 0) atomic_fetch_add(&r->concurrent_calls, 1);
    if (atomic_load(&r->freed)) atomic_fetch_add(&r->after_free, 1);
    if (atomic_load(&r->closed_flag) && e->channel_id && strcmp(e->channel_id, r->closed_channel) == 0)
        atomic_fetch_add(&r->after_close, 1);

    /* The shape the header documents for each kind: sender_id is NULL only for a MESSAGE_LOST
     * whose sender is unknown. */
    int bad = !e || !e->channel_id || !e->content_topic || (!e->sender_id && e->kind != RC_EVENT_MESSAGE_LOST);
    if (!bad) {
        switch (e->kind) {
        case RC_EVENT_MESSAGE_RECEIVED:
            bad = !is_hex20(e->request_id) || !e->payload || e->payload_len == 0 || e->error;
            break;
        case RC_EVENT_MESSAGE_SENT:
        case RC_EVENT_MESSAGE_DELIVERED:
            bad = !is_hex20(e->request_id) || e->payload || e->payload_len || e->error;
            break;
        case RC_EVENT_SEND_ERROR:
            bad = !is_hex20(e->request_id) || e->payload || e->payload_len || !e->error;
            break;
        case RC_EVENT_MESSAGE_LOST:
            bad = e->payload || e->payload_len || !e->error || (e->request_id && !is_hex20(e->request_id));
            break;
        default:
            bad = 1;
        }
    }
    pthread_mutex_lock(&r->mu);
    if (bad) {
        r->shape_errors++;
    } else {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
            if (!r->ev) abort();
        }
        rec_event *x = &r->ev[r->n++];
        memset(x, 0, sizeof *x);
        x->kind = e->kind;
        x->seq = e->seq;
        /* seq starts at 1 and grows strictly within a channel, in delivery order. */
        if (e->seq == 0) r->seq_errors++;
        for (size_t k = 0; k < sizeof r->last_seq / sizeof r->last_seq[0]; k++) {
            if (r->last_seq[k].channel[0] == 0) {
                snprintf(r->last_seq[k].channel, sizeof r->last_seq[k].channel, "%s", e->channel_id);
                r->last_seq[k].seq = e->seq;
                break;
            }
            if (strcmp(r->last_seq[k].channel, e->channel_id) == 0) {
                if (e->seq <= r->last_seq[k].seq) r->seq_errors++;
                r->last_seq[k].seq = e->seq;
                break;
            }
        }
        snprintf(x->channel, sizeof x->channel, "%s", e->channel_id);
        snprintf(x->request_id, sizeof x->request_id, "%s", e->request_id ? e->request_id : "");
        snprintf(x->sender, sizeof x->sender, "%s", e->sender_id ? e->sender_id : "");
        snprintf(x->topic, sizeof x->topic, "%s", e->content_topic);
        if (e->payload_len) {
            x->payload = malloc(e->payload_len);
            if (!x->payload) abort();
            memcpy(x->payload, e->payload, e->payload_len);
            x->len = e->payload_len;
        }
        if (e->error) x->error = strdup(e->error);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->hook) r->hook(r, e);
    atomic_fetch_sub(&r->in_callback, 1);
}

/* rec_init, and the recorder becomes `m`'s event callback. */
static void rec_attach(recorder *r, const char *name, rc_manager *m) {
    rec_init(r, name);
    CHECK_ST(rc_set_event_callback(m, rec_on_event, r), RC_OK);
}

/* Number of recorded events of `kind` (0 = any) on `channel` (NULL = any) with `rid` (NULL = any). */
static size_t rec_count_locked(recorder *r, int kind, const char *channel, const char *rid) {
    size_t c = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (kind && (int)r->ev[i].kind != kind) continue;
        if (channel && strcmp(r->ev[i].channel, channel) != 0) continue;
        if (rid && strcmp(r->ev[i].request_id, rid) != 0) continue;
        c++;
    }
    return c;
}

static size_t rec_count(recorder *r, int kind, const char *channel, const char *rid) {
    pthread_mutex_lock(&r->mu);
    size_t c = rec_count_locked(r, kind, channel, rid);
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* Waits until at least `min` matching events were recorded; returns whether they were. */
static int rec_wait(recorder *r, int kind, const char *channel, const char *rid, size_t min, int timeout_ms) {
    struct timespec ts;
    deadline_ts(&ts, T(timeout_ms));
    pthread_mutex_lock(&r->mu);
    int ok;
    while (!(ok = rec_count_locked(r, kind, channel, rid) >= min))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            ok = rec_count_locked(r, kind, channel, rid) >= min;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Index of the first matching event, or -1. */
static long rec_find(recorder *r, int kind, const char *channel, const char *rid) {
    pthread_mutex_lock(&r->mu);
    long found = -1;
    for (size_t i = 0; i < r->n && found < 0; i++) {
        if (kind && (int)r->ev[i].kind != kind) continue;
        if (channel && strcmp(r->ev[i].channel, channel) != 0) continue;
        if (rid && strcmp(r->ev[i].request_id, rid) != 0) continue;
        found = (long)i;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* A copy of event i's error text (or "") — to be freed. */
static char *rec_error(recorder *r, long i) {
    pthread_mutex_lock(&r->mu);
    char *s = strdup(i >= 0 && (size_t)i < r->n && r->ev[i].error ? r->ev[i].error : "");
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* The sender id of recorded event `i` ("" when it was NULL or `i` is out of range); free() it. */
static char *rec_sender(recorder *r, long i) {
    pthread_mutex_lock(&r->mu);
    char *s = strdup(i >= 0 && (size_t)i < r->n ? r->ev[i].sender : "");
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Managers                                                                                   */

/* A network name unique to this process and call, so that tests never hear each other. */
static const char *unique_network(void) {
    static atomic_int counter;
    static _Thread_local char buf[64];
    snprintf(buf, sizeof buf, "net-%ld-%d", (long)getpid(), atomic_fetch_add(&counter, 1));
    return buf;
}

/* Fast acknowledgements and syncs, no rate limit: the defaults for most tests. */
#define FAST_DEFAULTS                                                                              \
    "\"channelDefaults\": {\"sdsConfig\": {\"acknowledgementTimeoutMs\": 300, "                    \
    "\"maxRetransmissions\": 30, \"syncIntervalMs\": 200, \"idleSyncRounds\": 5}, "                \
    "\"rateLimitConfig\": {\"enabled\": false}}"

/* A memory-transport manager on `network` with extra transport keys (e.g. ", \"loss\": 0.2"). */
static rc_manager *mk_memory(const char *network, const char *transport_extra) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"transport\": {\"kind\": \"memory\", \"network\": \"%s\"%s}, " FAST_DEFAULTS "}",
             network, transport_extra ? transport_extra : "");
    rc_manager *m = NULL;
    rc_status st = rc_manager_new(cfg, &m);
    CHECK_MSG(st == RC_OK && m, "rc_manager_new(%s): %s %s", cfg, rc_status_name(st), rc_last_error());
    return m;
}

static rc_manager *mk_host(void) {
    rc_manager *m = NULL;
    rc_status st = rc_manager_new("{\"transport\": {\"kind\": \"host\"}, " FAST_DEFAULTS "}", &m);
    CHECK_MSG(st == RC_OK && m, "rc_manager_new(host): %s %s", rc_status_name(st), rc_last_error());
    return m;
}

/* A round trip through the manager's runtime thread: every command submitted before (e.g. an
 * rc_open_channel, whose subscription is asynchronous) has been carried out when it returns. */
static void barrier(rc_manager *m, const char *channel) {
    char *json = NULL;
    CHECK_ST(rc_channel_stats_json(m, channel, &json), RC_OK);
    rc_string_free(json);
}

/* The unsigned counter `key` of a channel's stats (or -1). */
static long long stat_of(rc_manager *m, const char *channel, const char *key) {
    char *json = NULL;
    if (rc_channel_stats_json(m, channel, &json) != RC_OK) return -1;
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    long long v = p ? strtoll(p + strlen(pat), NULL, 10) : -1;
    rc_string_free(json);
    return v;
}

static rc_status send_str(rc_manager *m, const char *channel, const char *s, char rid[RC_REQUEST_ID_LEN + 1]) {
    char tmp[RC_REQUEST_ID_LEN + 1];
    return rc_send(m, channel, (const uint8_t *)s, strlen(s), 0, rid ? rid : tmp);
}

/* ------------------------------------------------------------------------------------------ */
/* Finalizer counters                                                                         */

typedef struct {
    atomic_int freed;
    const char *label;
} owned;

static void owned_free(void *p) { atomic_fetch_add(&((owned *)p)->freed, 1); }

/* A pass-through "cipher" that counts its calls; user data is an owned-derived struct. */
typedef struct {
    owned own;
    atomic_int enc_calls, dec_calls;
    uint8_t tag; /* XORed into every byte, so that mismatched hooks fail visibly */
    atomic_int fail_encrypt, fail_decrypt;
} counting_cipher;

/* Appends `in` XOR `tag` to `out` in pieces (exercises repeated rc_buffer_append); 1 on failure. */
static int xor_append(rc_buffer *out, const uint8_t *in, size_t len, uint8_t tag) {
    uint8_t buf[4096];
    for (size_t off = 0; off < len; off += sizeof buf) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = in[off + i] ^ tag;
        if (rc_buffer_append(out, buf, n) != RC_OK) return 1;
    }
    return 0;
}

static int cc_encrypt(void *ud, const char *channel_id, const uint8_t *in, size_t len, rc_buffer *out) {
    counting_cipher *c = ud;
    (void)channel_id;
    atomic_fetch_add(&c->enc_calls, 1);
    if (atomic_load(&c->fail_encrypt)) return 7;
    uint8_t hdr[2] = {0xC1, c->tag};
    if (rc_buffer_append(out, hdr, 2) != RC_OK) return 1;
    return xor_append(out, in, len, c->tag);
}

static int cc_decrypt(void *ud, const char *channel_id, const uint8_t *in, size_t len, rc_buffer *out) {
    counting_cipher *c = ud;
    (void)channel_id;
    atomic_fetch_add(&c->dec_calls, 1);
    if (atomic_load(&c->fail_decrypt)) return 9;
    if (len < 2 || in[0] != 0xC1 || in[1] != c->tag) return 2;
    return xor_append(out, in + 2, len - 2, c->tag);
}

static void cc_free(void *ud) { owned_free(&((counting_cipher *)ud)->own); }

/* ------------------------------------------------------------------------------------------ */
/* The runner: each test prints "ok" or "not ok" with its time; the last line is              */
/* "N passed, N failed". A watchdog ends the process (exit 3) if one test exceeds its time    */
/* budget (a deadlock).                                                                       */

typedef struct {
    const char *name;
    void (*fn)(void);
    int budget_s;          /* watchdog, before scaling */
    const char *known_bug; /* non-NULL: skipped unless RC_TEST_KNOWN_BUGS=1 */
} test_case;

static atomic_llong watchdog_deadline_ms; /* 0 = idle */

static long long mono_ms(void) { return (long long)(now_s() * 1000.0); }

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        sleep_ms(200);
        long long d = atomic_load(&watchdog_deadline_ms);
        if (d && mono_ms() > d) {
            fprintf(stderr, "TIMEOUT: test %s exceeded its time budget (deadlock?)\n", current_test);
            printf("not ok - %s (timeout)\n0 passed, 1 failed\n", current_test);
            fflush(stdout);
            _exit(3);
        }
    }
    return NULL;
}

/* Runs every test, or those whose name contains one of the arguments; the exit status. */
static int run_tests(const test_case *tests, size_t n, int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *scale = getenv("RC_TEST_TIMEOUT_SCALE");
    if (scale && atof(scale) > 0) timeout_scale = atof(scale);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);
    int known = getenv("RC_TEST_KNOWN_BUGS") && atoi(getenv("RC_TEST_KNOWN_BUGS")) > 0;
    int passed = 0, failed = 0, skipped = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++) selected |= strstr(tests[i].name, argv[a]) != NULL;
        if (!selected) continue;
        if (tests[i].known_bug && !known) {
            printf("skip - %s (known bug: %s; RC_TEST_KNOWN_BUGS=1 runs it)\n", tests[i].name, tests[i].known_bug);
            skipped++;
            continue;
        }
        current_test = tests[i].name;
        atomic_store(&test_failures, 0);
        atomic_store(&watchdog_deadline_ms, mono_ms() + (long long)(tests[i].budget_s * 1000 * timeout_scale));
        double t = now_s();
        tests[i].fn();
        atomic_store(&watchdog_deadline_ms, 0);
        int f = atomic_load(&test_failures);
        printf("%s - %s (%.2fs)\n", f ? "not ok" : "ok", tests[i].name, now_s() - t);
        if (f) failed++;
        else passed++;
    }
    printf("# %.1fs in all, %d skipped\n", now_s() - t0, skipped);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
