/*
 * fixtures.h — fixtures shared by the C API test programs (test_capi.c, test_host.c,
 * test_concurrency.c): a pair of managers on one memory network and a test host transport.
 * Everything is static (one translation unit per program): not every program uses every helper.
 */
#ifndef RC_TEST_FIXTURES_H
#define RC_TEST_FIXTURES_H

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"

/* ------------------------------------------------------------------------------------------ */
/* Shared fixtures                                                                            */

static const char *topic_of(const char *channel) {
    static _Thread_local char buf[300];
    snprintf(buf, sizeof buf, "/rc-test/1/%s/proto", channel);
    return buf;
}

/* Two memory-transport managers on a private network, each with an event recorder. */
typedef struct {
    rc_manager *a, *b;
    recorder ra, rb;
} pair;

static void pair_new(pair *p, const char *extra_a, const char *extra_b) {
    const char *net = unique_network();
    char name[64];
    snprintf(name, sizeof name, "%s", net);
    rec_init(&p->ra, "alice");
    rec_init(&p->rb, "bob");
    p->a = mk_memory(name, extra_a);
    p->b = mk_memory(name, extra_b);
    p->ra.mgr = p->a;
    p->rb.mgr = p->b;
    CHECK_ST(rc_set_event_callback(p->a, rec_on_event, &p->ra), RC_OK);
    CHECK_ST(rc_set_event_callback(p->b, rec_on_event, &p->rb), RC_OK);
}

/* Both managers' default encryption hook: the counting cipher, with `ca` and `cb` as user data. */
static void pair_encrypt(pair *p, counting_cipher *ca, counting_cipher *cb, rc_free_fn free_ud) {
    CHECK_ST(rc_set_encryption(p->a, NULL, cc_encrypt, cc_decrypt, ca, free_ud), RC_OK);
    CHECK_ST(rc_set_encryption(p->b, NULL, cc_encrypt, cc_decrypt, cb, free_ud), RC_OK);
}

static void pair_open(pair *p, const char *channel, const char *cfg) {
    CHECK_ST(rc_open_channel(p->a, channel, topic_of(channel), "alice", cfg), RC_OK);
    CHECK_ST(rc_open_channel(p->b, channel, topic_of(channel), "bob", cfg), RC_OK);
    barrier(p->a, channel);
    barrier(p->b, channel);
}

static void rec_finish(recorder *r) {
    CHECK_MSG(r->shape_errors == 0, "%s: %d events with a wrong shape", r->name, r->shape_errors);
    CHECK_MSG(r->seq_errors == 0, "%s: %d events whose seq did not grow", r->name, r->seq_errors);
    CHECK_MSG(atomic_load(&r->concurrent_calls) == 0, "%s: concurrent event callbacks", r->name);
    CHECK_MSG(atomic_load(&r->after_free) == 0, "%s: %d events after rc_manager_free returned", r->name,
              atomic_load(&r->after_free));
    rec_destroy(r);
}

static void free_marked(rc_manager *m, recorder *r) {
    if (!m) return;
    CHECK_ST(rc_manager_free(m), RC_OK);
    if (r) atomic_store(&r->freed, 1);
}

static void pair_free(pair *p) {
    free_marked(p->a, &p->ra);
    free_marked(p->b, &p->rb);
    rec_finish(&p->ra);
    rec_finish(&p->rb);
}

/* Every send in `rids` got exactly one SENT before exactly one DELIVERED, and no SEND_ERROR. */
static void check_delivered_in_order(recorder *r, char (*rids)[RC_REQUEST_ID_LEN + 1], int n) {
    for (int i = 0; i < n; i++) {
        size_t s = rec_count(r, RC_EVENT_MESSAGE_SENT, NULL, rids[i]);
        size_t d = rec_count(r, RC_EVENT_MESSAGE_DELIVERED, NULL, rids[i]);
        size_t e = rec_count(r, RC_EVENT_SEND_ERROR, NULL, rids[i]);
        long si = rec_find(r, RC_EVENT_MESSAGE_SENT, NULL, rids[i]);
        long di = rec_find(r, RC_EVENT_MESSAGE_DELIVERED, NULL, rids[i]);
        CHECK_MSG(s == 1 && d == 1 && e == 0 && si < di, "%s send %d (%s): %zu SENT, %zu DELIVERED, %zu SEND_ERROR",
                  r->name, i, rids[i], s, d, e);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Test host transport: a host that delivers synchronously to a peer manager.                 */

enum host_mode { HOST_SENT_INLINE, HOST_DEFER, HOST_ALTERNATE, HOST_FAIL_INLINE, HOST_RETURN_ERROR };

typedef struct test_host test_host;
struct test_host {
    owned own; /* first: the finalizer counter */
    rc_manager *self, *peer;
    enum host_mode mode;
    pthread_mutex_t mu;
    uint64_t deferred[8192];
    size_t n_deferred;
    atomic_int calls;
    atomic_int report_errors;
    void (*extra)(test_host *h, uint64_t id, const rc_waku_message *m);
    void *ctx;
    /* the last message published, for replays */
    uint8_t last_payload[200000];
    size_t last_len;
    char last_topic[300];
};

static void host_init(test_host *h, rc_manager *self, rc_manager *peer, enum host_mode mode) {
    memset(h, 0, sizeof *h);
    h->self = self;
    h->peer = peer;
    h->mode = mode;
    pthread_mutex_init(&h->mu, NULL);
}

static int host_send(void *ud, uint64_t id, const rc_waku_message *m) {
    test_host *h = ud;
    atomic_fetch_add(&h->calls, 1);
    /* The message is well formed: the marker, a topic, a Unix timestamp. */
    if (!m || !m->content_topic || !m->payload || m->meta_len != 22 || memcmp(m->meta, "RELIABLE-CHANNEL-API/1", 22) != 0 ||
        m->timestamp_ns < 1600000000000000000LL)
        atomic_fetch_add(&h->report_errors, 1);
    pthread_mutex_lock(&h->mu);
    if (m && m->payload_len <= sizeof h->last_payload) {
        memcpy(h->last_payload, m->payload, m->payload_len);
        h->last_len = m->payload_len;
        snprintf(h->last_topic, sizeof h->last_topic, "%s", m->content_topic);
    }
    pthread_mutex_unlock(&h->mu);
    if (h->extra) h->extra(h, id, m);
    if (h->mode == HOST_RETURN_ERROR) return 5;
    if (h->peer && rc_transport_receive(h->peer, m, NULL) != RC_OK) atomic_fetch_add(&h->report_errors, 1);
    int inline_report = h->mode == HOST_SENT_INLINE || (h->mode == HOST_ALTERNATE && id % 2 == 1);
    if (h->mode == HOST_FAIL_INLINE) {
        if (rc_transport_failed(h->self, id, "relay has no peers") != RC_OK) atomic_fetch_add(&h->report_errors, 1);
    } else if (inline_report) {
        if (rc_transport_sent(h->self, id, NULL) != RC_OK) atomic_fetch_add(&h->report_errors, 1);
    } else {
        pthread_mutex_lock(&h->mu);
        if (h->n_deferred < sizeof h->deferred / sizeof h->deferred[0]) h->deferred[h->n_deferred++] = id;
        pthread_mutex_unlock(&h->mu);
    }
    return 0;
}

/* Reports every deferred dispatch as sent (with a hash) — the asynchronous half. */
static int host_flush(test_host *h) {
    pthread_mutex_lock(&h->mu);
    size_t n = h->n_deferred;
    uint64_t ids[8192];
    memcpy(ids, h->deferred, n * sizeof ids[0]);
    h->n_deferred = 0;
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        char hash[67];
        snprintf(hash, sizeof hash, "0x%064llx", (unsigned long long)ids[i] * 2654435761ull);
        if (rc_transport_sent(h->self, ids[i], hash) != RC_OK) atomic_fetch_add(&h->report_errors, 1);
    }
    return (int)n;
}

static uint64_t host_take_deferred(test_host *h) {
    pthread_mutex_lock(&h->mu);
    uint64_t id = h->n_deferred ? h->deferred[--h->n_deferred] : 0;
    pthread_mutex_unlock(&h->mu);
    return id;
}

/* The number after `prefix` in an event's payload, or -1. */
static int payload_index(const rec_event *e, const char *prefix) {
    size_t n = strlen(prefix);
    if (e->len <= n || e->len > 60 || memcmp(e->payload, prefix, n) != 0) return -1;
    char buf[64];
    memcpy(buf, e->payload + n, e->len - n);
    buf[e->len - n] = '\0';
    return atoi(buf);
}

/* A decryption hook that passes the bytes through. */
static int ident_decrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    (void)ud, (void)ch;
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

#pragma GCC diagnostic pop

#endif
