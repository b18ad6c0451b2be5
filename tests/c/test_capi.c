/*
 * test_capi.c — the C API of libreliable_channel, exercised from C.
 *
 *   tests/c/run.sh                   builds this with ASan+UBSan and without (under valgrind)
 *   build/tests-c/test_capi [name…]  runs every test, or those whose name contains an argument
 *
 * Each test prints "ok" or "FAIL" with its time; the last line is "N passed, N failed".
 * A watchdog ends the process (exit 3) if one test exceeds its time budget (a deadlock).
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>

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

/* ------------------------------------------------------------------------------------------ */
/* Tests: constants, names, errors                                                            */

static void t_version_and_status_names(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RC_VERSION_MAJOR, RC_VERSION_MINOR, RC_VERSION_PATCH);
    CHECK(rc_version() && strcmp(rc_version(), want) == 0);
    static const char *names[] = {"RC_OK",
                                  "RC_ERR_INVALID_ARGUMENT",
                                  "RC_ERR_CONFIG",
                                  "RC_ERR_CHANNEL_EXISTS",
                                  "RC_ERR_UNKNOWN_CHANNEL",
                                  "RC_ERR_PAYLOAD_EMPTY",
                                  "RC_ERR_PAYLOAD_TOO_LARGE",
                                  "RC_ERR_QUEUE_FULL",
                                  "RC_ERR_STOPPED",
                                  "RC_ERR_STORAGE",
                                  "RC_ERR_TRANSPORT",
                                  "RC_ERR_REENTRANT",
                                  "RC_ERR_PANIC"};
    rc_status all[] = {RC_OK, RC_ERR_INVALID_ARGUMENT, RC_ERR_CONFIG, RC_ERR_CHANNEL_EXISTS, RC_ERR_UNKNOWN_CHANNEL,
                       RC_ERR_PAYLOAD_EMPTY, RC_ERR_PAYLOAD_TOO_LARGE, RC_ERR_QUEUE_FULL, RC_ERR_STOPPED,
                       RC_ERR_STORAGE, RC_ERR_TRANSPORT, RC_ERR_REENTRANT, RC_ERR_PANIC};
    for (int i = 0; i < 13; i++) {
        CHECK((int)all[i] == i);
        CHECK_MSG(strcmp(rc_status_name((int)all[i]), names[i]) == 0, "rc_status_name(%d) = %s", i,
                  rc_status_name(i));
    }
    int out_of_range[] = {-1, 13, 14, 255, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        const char *n = rc_status_name(out_of_range[i]);
        CHECK_MSG(n && strcmp(n, "RC_UNKNOWN_STATUS") == 0, "rc_status_name(%d) = %s", out_of_range[i], n ? n : "NULL");
    }
    CHECK(RC_REQUEST_ID_LEN == 20 && RC_SEND_EPHEMERAL == 1 && RC_MAX_PAYLOAD_BYTES == 1048576);
    rc_string_free(NULL); /* NULL is fine */
}

static void *last_error_thread(void *arg) {
    int *ok = arg;
    const char *e = rc_last_error();
    ok[0] = e != NULL && e[0] == '\0'; /* a fresh thread has no error */
    ok[1] = rc_open_channel(NULL, "c", "t", "s", NULL) == RC_ERR_INVALID_ARGUMENT && strstr(rc_last_error(), "mgr");
    return NULL;
}

static void t_last_error_is_thread_local(void) {
    CHECK(rc_last_error() != NULL);
    rc_manager *m = mk_memory(unique_network(), NULL);
    CHECK_ST_ERR(rc_open_channel(m, NULL, "t", "s", NULL), RC_ERR_INVALID_ARGUMENT, "channel_id");
    char mine[256];
    snprintf(mine, sizeof mine, "%s", rc_last_error());
    int ok[2] = {0, 0};
    pthread_t t;
    pthread_create(&t, NULL, last_error_thread, ok);
    pthread_join(t, NULL);
    CHECK_MSG(ok[0], "a new thread's rc_last_error() is not \"\"");
    CHECK_MSG(ok[1], "the other thread did not get its own error");
    CHECK_MSG(strcmp(rc_last_error(), mine) == 0, "another thread's failure changed this thread's last error");
    /* A success does not clobber the detail of the last failure; the next failure replaces it. */
    CHECK_ST(rc_open_channel(m, "c", "/t/1/c/proto", "s", NULL), RC_OK);
    CHECK(strcmp(rc_last_error(), mine) == 0);
    CHECK_ST_ERR(rc_open_channel(m, "c", "/t/1/c/proto", "s", NULL), RC_ERR_CHANNEL_EXISTS, "c");
    CHECK(strcmp(rc_last_error(), mine) != 0);
    free_marked(m, NULL);
}

static void t_manager_new_and_config(void) {
    rc_manager *m = (rc_manager *)0x1;
    CHECK_ST(rc_manager_new(NULL, NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_manager_new("{}", NULL), RC_ERR_INVALID_ARGUMENT);
    struct {
        const char *json;
        rc_status want;
        const char *needle;
    } cases[] = {
        {"{", RC_ERR_CONFIG, "invalid JSON"},
        {"[]", RC_ERR_CONFIG, "expected an object"},
        {"{\"bogus\": 1}", RC_ERR_CONFIG, "bogus"},
        {"{\"transport\": {\"kind\": \"carrier-pigeon\"}}", RC_ERR_CONFIG, "transport.kind"},
        {"{\"transport\": {\"kind\": \"host\", \"loss\": 0.5}}", RC_ERR_CONFIG, "transport.loss"},
        {"{\"transport\": {\"loss\": 1.5}}", RC_ERR_CONFIG, "transport.loss"},
        {"{\"transport\": {\"delayMs\": [5, 1]}}", RC_ERR_CONFIG, "transport.delayMs"},
        {"{\"channelDefaults\": {\"sdsConfig\": {\"maxRetransmissions\": -1}}}", RC_ERR_CONFIG,
         "channelDefaults.sdsConfig.maxRetransmissions"},
        {"{\"channelDefaults\": {\"sdsConfig\": {\"historyBackend\": \"sqlite\"}}}", RC_ERR_CONFIG, "historyBackend"},
        {"{\"channelDefaults\": {\"segmentationConfig\": {\"chunkSizeBytes\": 200000}}}", RC_ERR_CONFIG,
         "chunkSizeBytes"},
        {"{\"channelDefaults\": {\"rateLimitConfig\": {\"accounting\": \"sometimes\"}}}", RC_ERR_CONFIG, "accounting"},
        {"{\"channelDefaults\": {\"sdsConfig\": {\"ackTimeout\": 1}}}", RC_ERR_CONFIG, "ackTimeout"},
        {"\xff\xfe", RC_ERR_INVALID_ARGUMENT, "UTF-8"},
        {"{\"transport\": {\"network\": \"caf\xc3\"}}", RC_ERR_INVALID_ARGUMENT, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m = (rc_manager *)0x1;
        rc_status st = rc_manager_new(cases[i].json, &m);
        CHECK_MSG(st == cases[i].want, "rc_manager_new(%s) -> %s, want %s (%s)", cases[i].json, rc_status_name(st),
                  rc_status_name(cases[i].want), rc_last_error());
        CHECK_MSG(strstr(rc_last_error(), cases[i].needle), "rc_manager_new(%s): error \"%s\" lacks \"%s\"",
                  cases[i].json, rc_last_error(), cases[i].needle);
        CHECK_MSG(m == (rc_manager *)0x1, "out written on failure");
    }
    /* NULL and "" mean defaults; a full configuration as in the contract is accepted. */
    const char *good[] = {
        NULL,
        "",
        "  ",
        "{\"transport\": {\"kind\": \"memory\", \"network\": \"default-cfg-test\", \"loss\": 0.0, \"duplicate\": 0.0,"
        " \"reorder\": 0.0, \"delayMs\": [0, 0], \"seed\": 1},"
        " \"channelDefaults\": {\"segmentationConfig\": {\"chunkSizeBytes\": 102400},"
        " \"sdsConfig\": {\"historyBackend\": \"memory\", \"acknowledgementTimeoutMs\": 5000,"
        " \"maxRetransmissions\": 5, \"causalHistorySize\": 2},"
        " \"rateLimitConfig\": {\"enabled\": true, \"epochSizeMs\": 600000, \"messagesPerEpoch\": 100,"
        " \"accounting\": \"firstChunk\"}}}",
        "{\"transport\": {\"kind\": \"host\"}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        m = NULL;
        CHECK_ST(rc_manager_new(good[i], &m), RC_OK);
        CHECK(m != NULL);
        CHECK_ST(rc_manager_free(m), RC_OK);
    }
    CHECK_ST(rc_manager_free(NULL), RC_OK);
}

/* Every function taking a manager refuses NULL (rc_manager_free(NULL) is a no-op). */
static void t_null_manager_everywhere(void) {
    char rid[RC_REQUEST_ID_LEN + 1] = "untouched";
    char *json = (char *)0x1;
    rc_waku_message msg = {"/t/1/c/proto", (const uint8_t *)"x", 1, NULL, 0, 0, false};
    CHECK_ST_ERR(rc_set_event_callback(NULL, rec_on_event, NULL), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_open_channel(NULL, "c", "/t/1/c/proto", "s", NULL), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_close_channel(NULL, "c"), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_send(NULL, "c", (const uint8_t *)"x", 1, 0, rid), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK(strcmp(rid, "untouched") == 0);
    CHECK_ST_ERR(rc_channel_stats_json(NULL, "c", &json), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK(json == (char *)0x1);
    owned o = {0, "enc"};
    CHECK_ST_ERR(rc_set_encryption(NULL, NULL, cc_encrypt, cc_decrypt, &o, owned_free), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_set_transport(NULL, host_send, &o, owned_free), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_transport_sent(NULL, 1, NULL), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_transport_failed(NULL, 1, "x"), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST_ERR(rc_transport_receive(NULL, &msg, NULL), RC_ERR_INVALID_ARGUMENT, "mgr");
    CHECK_ST(rc_manager_free(NULL), RC_OK);
    CHECK_ST_ERR(rc_buffer_append(NULL, (const uint8_t *)"x", 1), RC_ERR_INVALID_ARGUMENT, "out");
    CHECK(atomic_load(&o.freed) == 0); /* refused: the finalizer is not ours to run */
}

static void t_argument_validation(void) {
    rc_manager *m = mk_memory(unique_network(), NULL);
    char long_name[300];
    memset(long_name, 'n', 257);
    long_name[257] = '\0';
    const char *T1 = "/t/1/c/proto";

    /* rc_open_channel */
    CHECK_ST_ERR(rc_open_channel(m, NULL, T1, "s", NULL), RC_ERR_INVALID_ARGUMENT, "channel_id");
    CHECK_ST_ERR(rc_open_channel(m, "c", NULL, "s", NULL), RC_ERR_INVALID_ARGUMENT, "content_topic");
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, NULL, NULL), RC_ERR_INVALID_ARGUMENT, "sender_id");
    CHECK_ST_ERR(rc_open_channel(m, "c\xff", T1, "s", NULL), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST_ERR(rc_open_channel(m, "c", "/t/\xc3(/c", "s", NULL), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "\xed\xa0\x80", NULL), RC_ERR_INVALID_ARGUMENT, "UTF-8"); /* surrogate */
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "s", "{\"sdsConfig\": \"\xff\"}"), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST(rc_open_channel(m, "", T1, "s", NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_open_channel(m, "c", "", "s", NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_open_channel(m, "c", T1, "", NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_open_channel(m, long_name, T1, "s", NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_open_channel(m, "c", long_name, "s", NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_open_channel(m, "c", T1, long_name, NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "s", "{nope"), RC_ERR_CONFIG, "invalid JSON");
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "s", "{\"transport\": {}}"), RC_ERR_CONFIG, "transport");
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "s", "{\"sdsConfig\": {\"causalHistorySize\": 65}}"), RC_ERR_CONFIG,
                 "causalHistorySize");
    CHECK_ST(rc_open_channel(m, "c", T1, "s", "{\"sdsConfig\": {\"acknowledgementTimeoutMs\": 1000}}"), RC_OK);
    CHECK_ST_ERR(rc_open_channel(m, "c", T1, "s", NULL), RC_ERR_CHANNEL_EXISTS, "c");
    CHECK_ST(rc_open_channel(m, "c2", T1, "s", NULL), RC_OK); /* two channels may share a topic */

    /* rc_send */
    char rid[RC_REQUEST_ID_LEN + 1];
    static uint8_t big[RC_MAX_PAYLOAD_BYTES + 1];
    memcpy(rid, "untouched", 10);
    CHECK_ST_ERR(rc_send(m, NULL, (const uint8_t *)"x", 1, 0, rid), RC_ERR_INVALID_ARGUMENT, "channel_id");
    CHECK_ST_ERR(rc_send(m, "c\xff", (const uint8_t *)"x", 1, 0, rid), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST_ERR(rc_send(m, "c", (const uint8_t *)"x", 1, 0, NULL), RC_ERR_INVALID_ARGUMENT, "request_id_out");
    CHECK_ST_ERR(rc_send(m, "c", (const uint8_t *)"x", 1, 2, rid), RC_ERR_INVALID_ARGUMENT, "flags");
    CHECK_ST_ERR(rc_send(m, "c", (const uint8_t *)"x", 1, 0x80000001u, rid), RC_ERR_INVALID_ARGUMENT, "flags");
    CHECK_ST_ERR(rc_send(m, "c", NULL, 5, 0, rid), RC_ERR_INVALID_ARGUMENT, "payload");
    CHECK_ST(rc_send(m, "c", NULL, 0, 0, rid), RC_ERR_PAYLOAD_EMPTY);
    CHECK_ST(rc_send(m, "c", (const uint8_t *)"x", 0, 0, rid), RC_ERR_PAYLOAD_EMPTY);
    CHECK_ST(rc_send(m, "c", big, sizeof big, 0, rid), RC_ERR_PAYLOAD_TOO_LARGE);
    CHECK_ST(rc_send(m, "c", big, SIZE_MAX, 0, rid), RC_ERR_PAYLOAD_TOO_LARGE); /* never read */
    CHECK_ST(rc_send(m, "nope", big, SIZE_MAX, 0, rid), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST_ERR(rc_send(m, "nope", (const uint8_t *)"x", 1, 0, rid), RC_ERR_UNKNOWN_CHANNEL, "nope");
    CHECK_MSG(memcmp(rid, "untouched", 10) == 0, "request_id_out written on failure");
    CHECK_ST(rc_send(m, "c", big, RC_MAX_PAYLOAD_BYTES, 0, rid), RC_OK); /* exactly 1 MiB is fine */
    CHECK(is_hex20(rid));
    char rid2[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_send(m, "c", (const uint8_t *)"e", 1, RC_SEND_EPHEMERAL, rid2), RC_OK);
    CHECK(is_hex20(rid2) && strcmp(rid, rid2) != 0);

    /* rc_channel_stats_json */
    char *json = (char *)0x1;
    CHECK_ST_ERR(rc_channel_stats_json(m, NULL, &json), RC_ERR_INVALID_ARGUMENT, "channel_id");
    CHECK_ST_ERR(rc_channel_stats_json(m, "c\xff", &json), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST_ERR(rc_channel_stats_json(m, "c", NULL), RC_ERR_INVALID_ARGUMENT, "json_out");
    CHECK_ST(rc_channel_stats_json(m, "nope", &json), RC_ERR_UNKNOWN_CHANNEL);
    CHECK(json == (char *)0x1);
    CHECK_ST(rc_channel_stats_json(m, "c", &json), RC_OK);
    CHECK(json != (char *)0x1 && json[0] == '{' && strstr(json, "\"messagesSent\":"));
    rc_string_free(json);

    /* rc_close_channel */
    CHECK_ST_ERR(rc_close_channel(m, NULL), RC_ERR_INVALID_ARGUMENT, "channel_id");
    CHECK_ST_ERR(rc_close_channel(m, "\xff"), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST_ERR(rc_close_channel(m, "nope"), RC_ERR_UNKNOWN_CHANNEL, "nope");
    CHECK_ST(rc_close_channel(m, "c2"), RC_OK);
    CHECK_ST(rc_close_channel(m, "c2"), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_send(m, "c2", (const uint8_t *)"x", 1, 0, rid), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_open_channel(m, "c2", T1, "s", NULL), RC_OK); /* re-open after close */

    /* rc_set_encryption: refused hooks are not taken (no finalizer). */
    owned o = {0, "enc"};
    CHECK_ST_ERR(rc_set_encryption(m, NULL, cc_encrypt, NULL, &o, owned_free), RC_ERR_INVALID_ARGUMENT, "both");
    CHECK_ST_ERR(rc_set_encryption(m, NULL, NULL, cc_decrypt, &o, owned_free), RC_ERR_INVALID_ARGUMENT, "both");
    CHECK_ST_ERR(rc_set_encryption(m, "nope", cc_encrypt, cc_decrypt, &o, owned_free), RC_ERR_UNKNOWN_CHANNEL, "nope");
    CHECK_ST_ERR(rc_set_encryption(m, "c\xff", cc_encrypt, cc_decrypt, &o, owned_free), RC_ERR_INVALID_ARGUMENT,
                 "UTF-8");
    CHECK_ST(rc_set_encryption(m, NULL, NULL, NULL, NULL, NULL), RC_OK);  /* removing nothing */
    CHECK_ST(rc_set_encryption(m, "c", NULL, NULL, &o, owned_free), RC_OK); /* removal: user data not taken */

    /* rc_set_event_callback: NULL removes. */
    CHECK_ST(rc_set_event_callback(m, NULL, NULL), RC_OK);

    /* The host-transport functions on a memory-transport manager. */
    rc_waku_message msg = {T1, (const uint8_t *)"x", 1, NULL, 0, 0, false};
    CHECK_ST_ERR(rc_set_transport(m, host_send, &o, owned_free), RC_ERR_TRANSPORT, "host");
    CHECK_ST(rc_set_transport(m, NULL, NULL, NULL), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_sent(m, 1, NULL), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_failed(m, 1, "x"), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_receive(m, &msg, NULL), RC_ERR_TRANSPORT);

    CHECK_ST(rc_manager_free(m), RC_OK);
    CHECK_MSG(atomic_load(&o.freed) == 0, "a refused user data was finalized %d times", atomic_load(&o.freed));
}

/* ------------------------------------------------------------------------------------------ */
/* Status codes that need a situation: QUEUE_FULL, STOPPED, REENTRANT                         */

static void t_queue_full(void) {
    rc_manager *m = mk_memory(unique_network(), NULL); /* nobody listens: nothing is acknowledged */
    CHECK_ST(rc_open_channel(m, "q", topic_of("q"), "s", "{\"sendQueue\": {\"maxPendingChunks\": 2}}"), RC_OK);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(m, "q", "one", rid), RC_OK);
    CHECK_ST(send_str(m, "q", "two", rid), RC_OK);
    CHECK_ST_ERR(send_str(m, "q", "three", rid), RC_ERR_QUEUE_FULL, "pending");
    static uint8_t two_chunks[150 * 1024];
    CHECK_ST(rc_open_channel(m, "q2", topic_of("q2"), "s", "{\"sendQueue\": {\"maxPendingChunks\": 1}}"), RC_OK);
    CHECK_ST(rc_send(m, "q2", two_chunks, sizeof two_chunks, 0, rid), RC_ERR_QUEUE_FULL); /* 2 chunks > 1 */
    CHECK_ST(send_str(m, "q2", "fits", rid), RC_OK);
    free_marked(m, NULL);
}

typedef struct {
    atomic_int phase;
    rc_status send_st, set_cb_st, free_st, open_st, stats_st, enc_st;
    int sends_ok;
} stop_ctx;

static void stop_hook(recorder *r, const rc_event *ev) {
    stop_ctx *c = r->ctx;
    (void)ev;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->phase, &expected, 1)) return;
    /* The main thread now calls rc_manager_free; it cannot return before this callback does. */
    double end = now_s() + T(10000) / 1000.0;
    rc_status st;
    while ((st = send_str(r->mgr, "s", "late", NULL)) == RC_OK && now_s() < end) {
        c->sends_ok++;
        sleep_ms(1);
    }
    c->send_st = st;
    c->set_cb_st = rc_set_event_callback(r->mgr, rec_on_event, r);
    c->free_st = rc_manager_free(r->mgr);
    c->open_st = rc_open_channel(r->mgr, "s2", topic_of("s2"), "x", NULL);
    char *json = NULL;
    c->stats_st = rc_channel_stats_json(r->mgr, "s", &json);
    if (c->stats_st == RC_OK) rc_string_free(json);
    c->enc_st = rc_set_encryption(r->mgr, NULL, NULL, NULL, NULL, NULL);
    atomic_store(&c->phase, 2);
}

static void t_stopped_during_free(void) {
    recorder r;
    rec_init(&r, "stopper");
    stop_ctx c;
    memset(&c, 0, sizeof c);
    r.ctx = &c;
    r.hook = stop_hook;
    r.mgr = mk_memory(unique_network(), NULL);
    CHECK_ST(rc_set_event_callback(r.mgr, rec_on_event, &r), RC_OK);
    CHECK_ST(rc_open_channel(r.mgr, "s", topic_of("s"), "x", NULL), RC_OK);
    CHECK_ST(send_str(r.mgr, "s", "first", NULL), RC_OK); /* its SENT event starts the hook */
    POLL_UNTIL(atomic_load(&c.phase) >= 1, 10000);
    CHECK(atomic_load(&c.phase) >= 1);
    CHECK_ST(rc_manager_free(r.mgr), RC_OK);
    atomic_store(&r.freed, 1);
    CHECK(atomic_load(&c.phase) == 2);
    CHECK_ST(c.send_st, RC_ERR_STOPPED);
    CHECK_ST(c.set_cb_st, RC_ERR_STOPPED);
    CHECK_ST(c.free_st, RC_ERR_REENTRANT);
    CHECK_ST(c.open_st, RC_ERR_STOPPED);
    CHECK(c.stats_st == RC_ERR_STOPPED || c.stats_st == RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(c.enc_st, RC_ERR_STOPPED);
    rec_finish(&r);
}

/* rc_manager_free from inside every kind of callback: RC_ERR_REENTRANT, and the manager works. */
typedef struct {
    rc_manager *mgr;
    atomic_int done;
    rc_status free_st, stats_st;
} reent;

static int reent_encrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    reent *r = ud;
    (void)ch;
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->done, &expected, 1)) {
        r->free_st = rc_manager_free(r->mgr);
        char *json = NULL;
        r->stats_st = rc_channel_stats_json(r->mgr, "r", &json);
        if (r->stats_st == RC_OK) rc_string_free(json);
        atomic_store(&r->done, 2);
    }
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

static int reent_decrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    return reent_encrypt(ud, ch, in, len, out);
}

static void reent_event_hook(recorder *rec, const rc_event *ev) {
    reent *r = rec->ctx;
    int expected = 0;
    if (ev->kind == RC_EVENT_MESSAGE_RECEIVED && atomic_compare_exchange_strong(&r->done, &expected, 1)) {
        r->free_st = rc_manager_free(r->mgr);
        char *json = NULL;
        r->stats_st = rc_channel_stats_json(r->mgr, ev->channel_id, &json); /* fine from the event thread */
        if (r->stats_st == RC_OK) rc_string_free(json);
        atomic_store(&r->done, 2);
    }
}

static void reent_host_extra(test_host *h, uint64_t id, const rc_waku_message *m) {
    reent *r = h->ctx;
    (void)id, (void)m;
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->done, &expected, 1)) {
        r->free_st = rc_manager_free(r->mgr);
        char *json = NULL;
        r->stats_st = rc_channel_stats_json(r->mgr, "r", &json);
        if (r->stats_st == RC_OK) rc_string_free(json);
        atomic_store(&r->done, 2);
    }
}

static void t_free_from_callbacks_is_reentrant(void) {
    /* event callback, encrypt callback, decrypt callback on a memory pair */
    for (int where = 0; where < 3; where++) {
        pair p;
        pair_new(&p, NULL, NULL);
        reent r = {.mgr = where == 1 ? p.a : p.b};
        if (where == 0) {
            p.rb.ctx = &r;
            p.rb.hook = reent_event_hook;
        } else if (where == 1) {
            CHECK_ST(rc_set_encryption(p.a, NULL, reent_encrypt, reent_decrypt, &r, NULL), RC_OK);
        } else {
            CHECK_ST(rc_set_encryption(p.b, NULL, reent_encrypt, reent_decrypt, &r, NULL), RC_OK);
        }
        pair_open(&p, "r", NULL);
        char rid[RC_REQUEST_ID_LEN + 1];
        CHECK_ST(send_str(p.a, "r", "trigger", rid), RC_OK);
        POLL_UNTIL(atomic_load(&r.done) == 2, 10000);
        CHECK_MSG(atomic_load(&r.done) == 2, "callback %d never ran", where);
        CHECK_ST(r.free_st, RC_ERR_REENTRANT);
        if (where == 0) CHECK_ST(r.stats_st, RC_OK);
        else CHECK_ST(r.stats_st, RC_ERR_REENTRANT); /* runtime-thread callbacks may not ask for stats */
        /* The manager keeps working: a full exchange after the refused free. */
        CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "r", rid, 1, 10000));
        char rid2[RC_REQUEST_ID_LEN + 1], rid3[RC_REQUEST_ID_LEN + 1];
        CHECK_ST(send_str(p.a, "r", "after", rid2), RC_OK);
        CHECK_ST(send_str(p.b, "r", "reply", rid3), RC_OK);
        CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "r", rid2, 1, 10000));
        CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_RECEIVED, "r", rid3, 1, 10000));
        CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "r", rid2, 1, 10000));
        CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_DELIVERED, "r", rid3, 1, 10000));
        pair_free(&p);
    }
    /* the host transport's send callback */
    rc_manager *h = mk_host();
    test_host th;
    host_init(&th, h, NULL, HOST_SENT_INLINE);
    reent r = {.mgr = h};
    th.ctx = &r;
    th.extra = reent_host_extra;
    recorder rec;
    rec_init(&rec, "host");
    CHECK_ST(rc_set_event_callback(h, rec_on_event, &rec), RC_OK);
    CHECK_ST(rc_set_transport(h, host_send, &th, NULL), RC_OK);
    CHECK_ST(rc_open_channel(h, "r", topic_of("r"), "me", NULL), RC_OK);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(h, "r", "x", rid), RC_OK);
    POLL_UNTIL(atomic_load(&r.done) == 2, 10000);
    CHECK_ST(r.free_st, RC_ERR_REENTRANT);
    CHECK_ST(r.stats_st, RC_ERR_REENTRANT);
    CHECK(rec_wait(&rec, RC_EVENT_MESSAGE_SENT, "r", rid, 1, 10000));
    CHECK_ST(send_str(h, "r", "y", rid), RC_OK);
    CHECK(rec_wait(&rec, RC_EVENT_MESSAGE_SENT, "r", rid, 1, 10000));
    free_marked(h, &rec);
    CHECK(atomic_load(&th.report_errors) == 0);
    rec_finish(&rec);
}

/* ------------------------------------------------------------------------------------------ */
/* The host transport                                                                         */

static void t_host_transport_status_codes(void) {
    rc_manager *h = mk_host();
    test_host th;
    host_init(&th, h, NULL, HOST_DEFER);
    recorder rec;
    rec_init(&rec, "host");
    CHECK_ST(rc_set_event_callback(h, rec_on_event, &rec), RC_OK);
    CHECK_ST(rc_set_transport(h, host_send, &th, NULL), RC_OK);
    CHECK_ST(rc_open_channel(h, "c", topic_of("c"), "me", NULL), RC_OK);

    CHECK_ST_ERR(rc_transport_sent(h, 999999, NULL), RC_ERR_TRANSPORT, "999999");
    CHECK_ST(rc_transport_failed(h, 999999, "x"), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_sent(h, 0, NULL), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_sent(h, UINT64_MAX, NULL), RC_ERR_TRANSPORT);

    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(h, "c", "one", rid), RC_OK);
    POLL_UNTIL(atomic_load(&th.calls) >= 1, 10000);
    uint64_t id = host_take_deferred(&th);
    CHECK(id != 0);
    /* A malformed hash is refused and leaves the dispatch outstanding. */
    const char *bad_hashes[] = {"0x12", "zz", "0x" "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
                                "0x" "00000000000000000000000000000000000000000000000000000000000000000000",
                                "\xff", ""};
    for (size_t i = 0; i < sizeof bad_hashes / sizeof bad_hashes[0]; i++)
        CHECK_ST(rc_transport_sent(h, id, bad_hashes[i]), RC_ERR_INVALID_ARGUMENT);
    /* Without the 0x prefix is accepted. */
    CHECK_ST(rc_transport_sent(h, id, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), RC_OK);
    CHECK_ST_ERR(rc_transport_sent(h, id, NULL), RC_ERR_TRANSPORT, "already");
    CHECK_ST(rc_transport_failed(h, id, "late"), RC_ERR_TRANSPORT);
    CHECK(rec_wait(&rec, RC_EVENT_MESSAGE_SENT, "c", rid, 1, 10000));

    CHECK_ST(send_str(h, "c", "two", rid), RC_OK);
    POLL_UNTIL(atomic_load(&th.calls) >= 2, 10000);
    id = host_take_deferred(&th);
    CHECK(id != 0);
    CHECK_ST_ERR(rc_transport_failed(h, id, "\xff"), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_ST(rc_transport_failed(h, id, NULL), RC_OK); /* NULL error: a generic reason */
    CHECK_ST(rc_transport_failed(h, id, NULL), RC_ERR_TRANSPORT);
    CHECK_ST(rc_transport_sent(h, id, NULL), RC_ERR_TRANSPORT);
    CHECK(rec_wait(&rec, RC_EVENT_SEND_ERROR, "c", rid, 1, 10000));
    long i = rec_find(&rec, RC_EVENT_SEND_ERROR, "c", rid);
    char *err = rec_error(&rec, i);
    CHECK_MSG(strstr(err, "transport failed"), "error: %s", err);
    free(err);

    /* rc_transport_receive */
    static uint8_t huge[RC_MAX_WAKU_MESSAGE_BYTES + 1];
    rc_waku_message ok = {topic_of("c"), (const uint8_t *)"payload", 7, (const uint8_t *)"meta", 4, 1, false};
    rc_waku_message m = ok;
    CHECK_ST_ERR(rc_transport_receive(h, NULL, NULL), RC_ERR_INVALID_ARGUMENT, "msg");
    m.content_topic = NULL;
    CHECK_ST_ERR(rc_transport_receive(h, &m, NULL), RC_ERR_INVALID_ARGUMENT, "content_topic");
    m.content_topic = "/t/\xff";
    CHECK_ST_ERR(rc_transport_receive(h, &m, NULL), RC_ERR_INVALID_ARGUMENT, "UTF-8");
    m = ok;
    m.payload = NULL;
    CHECK_ST_ERR(rc_transport_receive(h, &m, NULL), RC_ERR_INVALID_ARGUMENT, "payload");
    m = ok;
    m.meta = NULL;
    CHECK_ST_ERR(rc_transport_receive(h, &m, NULL), RC_ERR_INVALID_ARGUMENT, "meta");
    m = ok;
    m.payload = huge;
    m.payload_len = sizeof huge;
    CHECK_ST_ERR(rc_transport_receive(h, &m, NULL), RC_ERR_INVALID_ARGUMENT, "payload");
    CHECK_ST(rc_transport_receive(h, &ok, "0x1"), RC_ERR_INVALID_ARGUMENT);
    /* Foreign traffic (no reliable-channel marker; another topic; an empty message) is accepted
     * and filtered. */
    long long foreign0 = stat_of(h, "c", "droppedForeign");
    CHECK_ST(rc_transport_receive(h, &ok, NULL), RC_OK);
    CHECK_ST(rc_transport_receive(h, &ok, "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), RC_OK);
    m = ok;
    m.content_topic = "/other/1/topic/proto";
    CHECK_ST(rc_transport_receive(h, &m, NULL), RC_OK);
    m = ok;
    m.payload = NULL;
    m.payload_len = 0;
    m.meta = NULL;
    m.meta_len = 0;
    CHECK_ST(rc_transport_receive(h, &m, NULL), RC_OK);
    /* With the marker but garbage inside: dropped as invalid. */
    m = ok;
    m.meta = (const uint8_t *)"RELIABLE-CHANNEL-API/1";
    m.meta_len = 22;
    CHECK_ST(rc_transport_receive(h, &m, NULL), RC_OK);
    barrier(h, "c");
    CHECK_MSG(stat_of(h, "c", "droppedForeign") >= foreign0 + 3, "droppedForeign %lld", stat_of(h, "c", "droppedForeign"));
    CHECK_MSG(stat_of(h, "c", "droppedInvalid") >= 1, "droppedInvalid %lld", stat_of(h, "c", "droppedInvalid"));
    CHECK(rec_count(&rec, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 0);

    free_marked(h, &rec);
    CHECK(atomic_load(&th.report_errors) == 0);
    rec_finish(&rec);
}

static void host_pair_flush_until(test_host *ha, test_host *hb, recorder *r, int kind, size_t n, int timeout_ms) {
    double end = now_s() + T(timeout_ms) / 1000.0;
    while (rec_count(r, kind, NULL, NULL) < n && now_s() < end) {
        int work = host_flush(ha) + host_flush(hb);
        if (!work) sleep_ms(2);
    }
}

static void t_host_transport_exchange(void) {
    rc_manager *a = mk_host(), *b = mk_host();
    test_host ha, hb;
    host_init(&ha, a, b, HOST_ALTERNATE); /* odd ids reported inside the callback, even ones later */
    host_init(&hb, b, a, HOST_ALTERNATE);
    recorder ra, rb;
    rec_init(&ra, "alice");
    rec_init(&rb, "bob");
    CHECK_ST(rc_set_event_callback(a, rec_on_event, &ra), RC_OK);
    CHECK_ST(rc_set_event_callback(b, rec_on_event, &rb), RC_OK);
    CHECK_ST(rc_set_transport(a, host_send, &ha, owned_free), RC_OK);
    CHECK_ST(rc_set_transport(b, host_send, &hb, owned_free), RC_OK);
    CHECK_ST(rc_open_channel(a, "h", topic_of("h"), "alice", NULL), RC_OK);
    CHECK_ST(rc_open_channel(b, "h", topic_of("h"), "bob", NULL), RC_OK);
    barrier(a, "h");
    barrier(b, "h");
    enum { N = 10 };
    char ra_ids[N + 1][RC_REQUEST_ID_LEN + 1], rb_ids[N][RC_REQUEST_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "a->b %d", i);
        CHECK_ST(send_str(a, "h", s, ra_ids[i]), RC_OK);
        snprintf(s, sizeof s, "b->a %d", i);
        CHECK_ST(send_str(b, "h", s, rb_ids[i]), RC_OK);
    }
    static uint8_t big[250 * 1024];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i ^ (i >> 8));
    CHECK_ST(rc_send(a, "h", big, sizeof big, 0, ra_ids[N]), RC_OK);
    host_pair_flush_until(&ha, &hb, &ra, RC_EVENT_MESSAGE_DELIVERED, N + 1, 20000);
    host_pair_flush_until(&ha, &hb, &rb, RC_EVENT_MESSAGE_DELIVERED, N, 20000);
    host_pair_flush_until(&ha, &hb, &rb, RC_EVENT_MESSAGE_RECEIVED, N + 1, 20000);
    host_pair_flush_until(&ha, &hb, &ra, RC_EVENT_MESSAGE_RECEIVED, N, 20000);
    check_delivered_in_order(&ra, ra_ids, N + 1);
    check_delivered_in_order(&rb, rb_ids, N);
    for (int i = 0; i < N; i++) {
        CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, "h", ra_ids[i]) == 1);
        CHECK(rec_count(&ra, RC_EVENT_MESSAGE_RECEIVED, "h", rb_ids[i]) == 1);
    }
    long bi = rec_find(&rb, RC_EVENT_MESSAGE_RECEIVED, "h", ra_ids[N]);
    CHECK(bi >= 0);
    if (bi >= 0) {
        pthread_mutex_lock(&rb.mu);
        CHECK(rb.ev[bi].len == sizeof big && memcmp(rb.ev[bi].payload, big, sizeof big) == 0);
        CHECK(strcmp(rb.ev[bi].sender, "alice") == 0 && strcmp(rb.ev[bi].topic, topic_of("h")) == 0);
        pthread_mutex_unlock(&rb.mu);
    }
    /* A replay of a message already received is a duplicate, not a second RECEIVED. */
    pthread_mutex_lock(&ha.mu);
    rc_waku_message replay = {topic_of("h"), ha.last_payload, ha.last_len, (const uint8_t *)"RELIABLE-CHANNEL-API/1", 22, 1, false};
    CHECK_ST(rc_transport_receive(b, &replay, NULL), RC_OK);
    pthread_mutex_unlock(&ha.mu);
    barrier(b, "h");
    CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == N + 1);
    CHECK(atomic_load(&ha.report_errors) == 0 && atomic_load(&hb.report_errors) == 0);
    free_marked(a, &ra);
    free_marked(b, &rb);
    CHECK(atomic_load(&ha.own.freed) == 1 && atomic_load(&hb.own.freed) == 1);
    rec_finish(&ra);
    rec_finish(&rb);
}

static void t_host_transport_failures(void) {
    struct {
        int set_transport;
        enum host_mode mode;
        const char *needle;
    } cases[] = {
        {0, HOST_SENT_INLINE, "no host transport"},
        {1, HOST_RETURN_ERROR, "returned 5"},
        {1, HOST_FAIL_INLINE, "relay has no peers"},
        {1, HOST_DEFER, "late failure"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rc_manager *h = mk_host();
        test_host th;
        host_init(&th, h, NULL, cases[c].mode);
        recorder rec;
        rec_init(&rec, "host");
        CHECK_ST(rc_set_event_callback(h, rec_on_event, &rec), RC_OK);
        if (cases[c].set_transport) CHECK_ST(rc_set_transport(h, host_send, &th, NULL), RC_OK);
        CHECK_ST(rc_open_channel(h, "f", topic_of("f"), "me", NULL), RC_OK);
        char rid[RC_REQUEST_ID_LEN + 1];
        static uint8_t two_chunks[150 * 1024];
        CHECK_ST(rc_send(h, "f", two_chunks, sizeof two_chunks, 0, rid), RC_OK);
        if (cases[c].mode == HOST_DEFER) {
            POLL_UNTIL(atomic_load(&th.calls) >= 1, 10000);
            uint64_t id = host_take_deferred(&th);
            CHECK_ST(rc_transport_failed(h, id, "late failure"), RC_OK);
        }
        CHECK_MSG(rec_wait(&rec, RC_EVENT_SEND_ERROR, "f", rid, 1, 10000), "case %zu: no SEND_ERROR", c);
        char *err = rec_error(&rec, rec_find(&rec, RC_EVENT_SEND_ERROR, "f", rid));
        CHECK_MSG(strstr(err, cases[c].needle), "case %zu: error \"%s\" lacks \"%s\"", c, err, cases[c].needle);
        free(err);
        /* Exactly one final event and no SENT; drain the other chunk's outcome first. */
        host_flush(&th);
        barrier(h, "f");
        CHECK(rec_count(&rec, RC_EVENT_SEND_ERROR, NULL, rid) == 1);
        CHECK(rec_count(&rec, RC_EVENT_MESSAGE_SENT, NULL, rid) == 0);
        CHECK(rec_count(&rec, RC_EVENT_MESSAGE_DELIVERED, NULL, rid) == 0);
        CHECK(stat_of(h, "f", "sendErrors") == 1);
        free_marked(h, &rec);
        rec_finish(&rec);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Encryption                                                                                 */

static void t_encrypt_failure_is_send_error(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    counting_cipher ca = {.tag = 0x42}, cb = {.tag = 0x42};
    atomic_store(&ca.fail_encrypt, 1);
    pair_encrypt(&p, &ca, &cb, cc_free);
    pair_open(&p, "e", "{\"sdsConfig\": {\"dependencyTimeoutMs\": 300}}");
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "e", "secret", rid), RC_OK); /* accepted: encryption happens later */
    CHECK(rec_wait(&p.ra, RC_EVENT_SEND_ERROR, "e", rid, 1, 10000));
    char *err = rec_error(&p.ra, rec_find(&p.ra, RC_EVENT_SEND_ERROR, "e", rid));
    CHECK_MSG(strstr(err, "encryption failed") && strstr(err, "7"), "error: %s", err);
    free(err);
    barrier(p.a, "e");
    CHECK(rec_count(&p.ra, RC_EVENT_MESSAGE_SENT, NULL, rid) == 0);
    CHECK(stat_of(p.a, "e", "sendErrors") == 1 && stat_of(p.a, "e", "chunksSent") == 0);
    /* Fail closed: nothing reached bob, not even plaintext. */
    barrier(p.b, "e");
    CHECK(rec_count(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 0);
    CHECK(atomic_load(&cb.dec_calls) == 0);
    /* Encryption works again: later sends go through. */
    atomic_store(&ca.fail_encrypt, 0);
    char rid2[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "e", "secret 2", rid2), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "e", rid2, 1, 10000));
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "e", rid2, 1, 10000));
    pair_free(&p);
    CHECK(atomic_load(&ca.own.freed) == 1 && atomic_load(&cb.own.freed) == 1);
}

static void t_decrypt_failure_is_dropped_and_lost(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    counting_cipher ca = {.tag = 0x42}, cb = {.tag = 0x42};
    atomic_store(&cb.fail_decrypt, 1);
    pair_encrypt(&p, &ca, &cb, cc_free);
    pair_open(&p, "d", "{\"sdsConfig\": {\"maxRetransmissions\": 1, \"acknowledgementTimeoutMs\": 200}}");
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "d", "unreadable", rid), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_LOST, "d", NULL, 1, 10000));
    char *err = rec_error(&p.rb, rec_find(&p.rb, RC_EVENT_MESSAGE_LOST, "d", NULL));
    CHECK_MSG(strstr(err, "decryption failed"), "error: %s", err);
    free(err);
    /* Undecryptable: nobody can tell whose it was, so sender_id is NULL. */
    char *from = rec_sender(&p.rb, rec_find(&p.rb, RC_EVENT_MESSAGE_LOST, "d", NULL));
    CHECK_MSG(from[0] == '\0', "sender of an undecryptable message: %s", from);
    free(from);
    CHECK(stat_of(p.b, "d", "droppedUndecryptable") >= 1);
    CHECK(stat_of(p.b, "d", "messagesLost") >= 1);
    CHECK(rec_count(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 0);
    /* The sender never gets an acknowledgement: it gives up (exactly one final event). */
    CHECK(rec_wait(&p.ra, RC_EVENT_SEND_ERROR, "d", rid, 1, 10000));
    char *err2 = rec_error(&p.ra, rec_find(&p.ra, RC_EVENT_SEND_ERROR, "d", rid));
    CHECK_MSG(strstr(err2, "unacknowledged"), "error: %s", err2);
    free(err2);
    CHECK(rec_count(&p.ra, RC_EVENT_MESSAGE_DELIVERED, NULL, rid) == 0);
    pair_free(&p);
}

/* A host that hands the peer only its large messages (a first chunk of 100 KiB) and reports
 * every dispatch as sent: later chunks and syncs never arrive. */
typedef struct {
    rc_manager *self, *peer;
    atomic_int forwarded, errors;
} big_only_host;

static int big_only_send(void *ud, uint64_t id, const rc_waku_message *m) {
    big_only_host *h = ud;
    if (m->payload_len > 80 * 1024) {
        atomic_fetch_add(&h->forwarded, 1);
        if (rc_transport_receive(h->peer, m, NULL) != RC_OK) atomic_fetch_add(&h->errors, 1);
    }
    if (rc_transport_sent(h->self, id, NULL) != RC_OK) atomic_fetch_add(&h->errors, 1);
    return 0;
}

/* A message lost midway (its second chunk never arrives, reassembly expires) is reported with
 * its request id and, in sender_id, the remote participant who sent it. */
static void t_lost_message_names_its_sender(void) {
    rc_manager *a = mk_host(), *b = mk_host();
    big_only_host ha = {.self = a, .peer = b};
    test_host hb;
    host_init(&hb, b, NULL, HOST_SENT_INLINE); /* bob's syncs go nowhere */
    recorder ra, rb;
    rec_attach(&ra, "alice", a);
    rec_attach(&rb, "bob", b);
    CHECK_ST(rc_set_transport(a, big_only_send, &ha, NULL), RC_OK);
    CHECK_ST(rc_set_transport(b, host_send, &hb, NULL), RC_OK);
    CHECK_ST(rc_open_channel(a, "l", topic_of("l"), "alice", NULL), RC_OK);
    CHECK_ST(rc_open_channel(b, "l", topic_of("l"), "bob", "{\"segmentationConfig\": {\"reassemblyExpiryMs\": 300}}"), RC_OK);
    static uint8_t two_chunks[150 * 1024]; /* 100 KiB chunks by default */
    memset(two_chunks, 'l', sizeof two_chunks);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_send(a, "l", two_chunks, sizeof two_chunks, 0, rid), RC_OK);
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_LOST, "l", rid, 1, 10000));
    long i = rec_find(&rb, RC_EVENT_MESSAGE_LOST, "l", rid);
    char *from = rec_sender(&rb, i), *err = rec_error(&rb, i);
    CHECK_MSG(strcmp(from, "alice") == 0, "sender_id of the lost message: \"%s\"", from);
    CHECK_MSG(err[0] != '\0' && !strstr(err, "alice"), "the error says why, not who: %s", err);
    free(from);
    free(err);
    CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 0);
    CHECK(atomic_load(&ha.forwarded) >= 1 && atomic_load(&ha.errors) == 0 && atomic_load(&hb.report_errors) == 0);
    free_marked(a, &ra);
    free_marked(b, &rb);
    rec_finish(&ra);
    rec_finish(&rb);
}

typedef struct {
    rc_status null_zero, null_len, limit, huge, wrap;
    int appended_mib;
    atomic_int done;
} append_probe;

static int probing_encrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    append_probe *p = ud;
    static uint8_t mib[1 << 20];
    (void)ch, (void)in, (void)len;
    if (atomic_load(&p->done)) return 1; /* probe once: later syncs also come through here */
    p->null_zero = rc_buffer_append(out, NULL, 0);
    p->null_len = rc_buffer_append(out, NULL, 3);
    /* lengths that overflow a size computation must be refused, not wrap around */
    p->huge = rc_buffer_append(out, mib, SIZE_MAX);
    if (rc_buffer_append(out, mib, 2) == RC_OK) p->wrap = rc_buffer_append(out, mib, SIZE_MAX - 1);
    rc_status st = RC_OK;
    for (p->appended_mib = 0; p->appended_mib < 20 && (st = rc_buffer_append(out, mib, sizeof mib)) == RC_OK;)
        p->appended_mib++;
    p->limit = st;
    atomic_store(&p->done, 1);
    return 1;
}

static void t_buffer_append_limits(void) {
    rc_manager *m = mk_memory(unique_network(), NULL);
    recorder rec;
    rec_init(&rec, "m");
    CHECK_ST(rc_set_event_callback(m, rec_on_event, &rec), RC_OK);
    append_probe p;
    memset(&p, 0, sizeof p);
    CHECK_ST(rc_open_channel(m, "b", topic_of("b"), "me", NULL), RC_OK);
    CHECK_ST(rc_set_encryption(m, "b", probing_encrypt, cc_decrypt, &p, NULL), RC_OK);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(m, "b", "x", rid), RC_OK);
    CHECK(rec_wait(&rec, RC_EVENT_SEND_ERROR, "b", rid, 1, 10000));
    CHECK(atomic_load(&p.done) == 1);
    CHECK_ST(p.null_zero, RC_OK);
    CHECK_ST(p.null_len, RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(p.limit, RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(p.huge, RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(p.wrap, RC_ERR_INVALID_ARGUMENT);
    /* 2 bytes were appended before: 15 whole MiB still fit under RC_BUFFER_MAX */
    CHECK_MSG(p.appended_mib == RC_BUFFER_MAX / (1 << 20) - 1, "appended %d MiB", p.appended_mib);
    free_marked(m, &rec);
    rec_finish(&rec);
}

static void t_encryption_default_and_per_channel(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    counting_cipher da = {.tag = 0x11}, db = {.tag = 0x11}, sa = {.tag = 0x22}, sb = {.tag = 0x22};
    pair_open(&p, "plain", NULL);
    pair_open(&p, "special", NULL);
    CHECK_ST(rc_set_encryption(p.a, NULL, cc_encrypt, cc_decrypt, &da, cc_free), RC_OK);
    CHECK_ST(rc_set_encryption(p.b, NULL, cc_encrypt, cc_decrypt, &db, cc_free), RC_OK);
    CHECK_ST(rc_set_encryption(p.a, "special", cc_encrypt, cc_decrypt, &sa, cc_free), RC_OK);
    CHECK_ST(rc_set_encryption(p.b, "special", cc_encrypt, cc_decrypt, &sb, cc_free), RC_OK);
    barrier(p.a, "plain");
    barrier(p.b, "plain");
    char r1[RC_REQUEST_ID_LEN + 1], r2[RC_REQUEST_ID_LEN + 1], r3[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "plain", "via the default hook", r1), RC_OK);
    CHECK_ST(send_str(p.a, "special", "via the channel's hook", r2), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "plain", r1, 1, 10000));
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "special", r2, 1, 10000));
    CHECK(atomic_load(&sa.enc_calls) >= 1 && atomic_load(&sb.dec_calls) >= 1);
    CHECK(atomic_load(&da.enc_calls) >= 1 && atomic_load(&db.dec_calls) >= 1);
    long i = rec_find(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "special", r2);
    pthread_mutex_lock(&p.rb.mu);
    CHECK(i >= 0 && p.rb.ev[i].len == 22 && memcmp(p.rb.ev[i].payload, "via the channel's hook", 22) == 0);
    pthread_mutex_unlock(&p.rb.mu);
    /* Removing the channel's hook falls back to the default one (and releases the old one). */
    CHECK_ST(rc_set_encryption(p.a, "special", NULL, NULL, NULL, NULL), RC_OK);
    CHECK_ST(rc_set_encryption(p.b, "special", NULL, NULL, NULL, NULL), RC_OK);
    barrier(p.a, "special");
    barrier(p.b, "special");
    POLL_UNTIL(atomic_load(&sa.own.freed) == 1 && atomic_load(&sb.own.freed) == 1, 10000);
    CHECK(atomic_load(&sa.own.freed) == 1 && atomic_load(&sb.own.freed) == 1);
    int sa_calls = atomic_load(&sa.enc_calls), da_calls = atomic_load(&da.enc_calls);
    CHECK_ST(send_str(p.a, "special", "back to the default", r3), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "special", r3, 1, 10000));
    CHECK(atomic_load(&sa.enc_calls) == sa_calls && atomic_load(&da.enc_calls) > da_calls);
    pair_free(&p);
    CHECK(atomic_load(&da.own.freed) == 1 && atomic_load(&db.own.freed) == 1);
    CHECK(atomic_load(&sa.own.freed) == 1 && atomic_load(&sb.own.freed) == 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Finalizers                                                                                 */

static void t_finalizers_exactly_once(void) {
    rc_manager *m = mk_memory(unique_network(), NULL);
    CHECK_ST(rc_open_channel(m, "x", topic_of("x"), "me", NULL), RC_OK);
    counting_cipher A = {.tag = 1}, B = {.tag = 2}, C = {.tag = 3}, D = {.tag = 4}, E = {.tag = 5};
    CHECK_ST(rc_set_encryption(m, NULL, cc_encrypt, cc_decrypt, &A, cc_free), RC_OK);
    CHECK_ST(rc_set_encryption(m, NULL, cc_encrypt, cc_decrypt, &B, cc_free), RC_OK); /* replaces A */
    CHECK_ST(rc_set_encryption(m, "x", cc_encrypt, cc_decrypt, &C, cc_free), RC_OK);
    CHECK_ST(rc_set_encryption(m, "x", cc_encrypt, cc_decrypt, &D, cc_free), RC_OK); /* replaces C */
    CHECK_ST(rc_set_encryption(m, "nope", cc_encrypt, cc_decrypt, &E, cc_free), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_set_encryption(m, "x", cc_encrypt, NULL, &E, cc_free), RC_ERR_INVALID_ARGUMENT);
    counting_cipher G = {.tag = 7};
    CHECK_ST(rc_set_encryption(m, "x", cc_encrypt, cc_decrypt, &G, NULL), RC_OK); /* replaces D; no finalizer */
    barrier(m, "x");
    POLL_UNTIL(atomic_load(&A.own.freed) && atomic_load(&C.own.freed) && atomic_load(&D.own.freed), 10000);
    CHECK(atomic_load(&A.own.freed) == 1 && atomic_load(&C.own.freed) == 1 && atomic_load(&D.own.freed) == 1);
    CHECK(atomic_load(&B.own.freed) == 0);
    /* Traffic through the hooks does not change that. */
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_open_channel(m, "y", topic_of("y"), "me", NULL), RC_OK);
    CHECK_ST(send_str(m, "y", "through B", rid), RC_OK);
    POLL_UNTIL(atomic_load(&B.enc_calls) >= 1, 10000);
    CHECK(atomic_load(&B.enc_calls) >= 1);
    /* A closed channel's own hook is released (at the latest by rc_manager_free). */
    counting_cipher F = {.tag = 6};
    CHECK_ST(rc_set_encryption(m, "y", cc_encrypt, cc_decrypt, &F, cc_free), RC_OK);
    CHECK_ST(rc_close_channel(m, "y"), RC_OK);
    barrier(m, "x"); /* the close has been carried out */
    POLL_UNTIL(atomic_load(&F.own.freed) == 1, 10000);
    CHECK_MSG(atomic_load(&F.own.freed) == 1, "a closed channel's own hook was not released");
    CHECK_ST(rc_manager_free(m), RC_OK);
    CHECK(atomic_load(&B.own.freed) == 1 && atomic_load(&F.own.freed) == 1);
    CHECK(atomic_load(&A.own.freed) == 1 && atomic_load(&C.own.freed) == 1 && atomic_load(&D.own.freed) == 1);
    CHECK(atomic_load(&E.own.freed) == 0);

    /* The transport's user data. */
    rc_manager *h = mk_host();
    test_host T1, T2, T3, T4;
    host_init(&T1, h, NULL, HOST_SENT_INLINE);
    host_init(&T2, h, NULL, HOST_SENT_INLINE);
    host_init(&T3, h, NULL, HOST_SENT_INLINE);
    host_init(&T4, h, NULL, HOST_SENT_INLINE);
    CHECK_ST(rc_set_transport(h, host_send, &T1, owned_free), RC_OK);
    CHECK_ST(rc_set_transport(h, host_send, &T2, owned_free), RC_OK); /* replaces T1 */
    POLL_UNTIL(atomic_load(&T1.own.freed) == 1, 10000);
    CHECK(atomic_load(&T1.own.freed) == 1 && atomic_load(&T2.own.freed) == 0);
    CHECK_ST(rc_set_transport(h, NULL, &T4, owned_free), RC_OK); /* removes T2; T4 not taken */
    POLL_UNTIL(atomic_load(&T2.own.freed) == 1, 10000);
    CHECK(atomic_load(&T2.own.freed) == 1);
    CHECK_ST(rc_set_transport(h, host_send, &T3, owned_free), RC_OK);
    CHECK_ST(rc_open_channel(h, "z", topic_of("z"), "me", NULL), RC_OK);
    CHECK_ST(send_str(h, "z", "through T3", rid), RC_OK);
    POLL_UNTIL(atomic_load(&T3.calls) >= 1, 10000);
    CHECK_ST(rc_manager_free(h), RC_OK);
    CHECK(atomic_load(&T1.own.freed) == 1 && atomic_load(&T2.own.freed) == 1 && atomic_load(&T3.own.freed) == 1);
    CHECK(atomic_load(&T4.own.freed) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                     */

static int payload_index(const rec_event *e, const char *prefix) {
    size_t n = strlen(prefix);
    if (e->len <= n || e->len > 60 || memcmp(e->payload, prefix, n) != 0) return -1;
    char buf[64];
    memcpy(buf, e->payload + n, e->len - n);
    buf[e->len - n] = '\0';
    return atoi(buf);
}

static void t_event_order_per_channel(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    pair_open(&p, "A", NULL);
    pair_open(&p, "B", NULL);
    enum { N = 150 };
    static char ids[2 * N][RC_REQUEST_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "A-%d", i);
        CHECK_ST(send_str(p.a, "A", s, ids[2 * i]), RC_OK);
        snprintf(s, sizeof s, "B-%d", i);
        CHECK_ST(send_str(p.a, "B", s, ids[2 * i + 1]), RC_OK);
    }
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL, 2 * N, 30000));
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, NULL, NULL, 2 * N, 30000));
    /* RECEIVED in send order on each channel, each exactly once. */
    pthread_mutex_lock(&p.rb.mu);
    int next[2] = {0, 0};
    for (size_t i = 0; i < p.rb.n; i++) {
        rec_event *e = &p.rb.ev[i];
        if (e->kind != RC_EVENT_MESSAGE_RECEIVED) continue;
        int c = e->channel[0] == 'A' ? 0 : 1;
        int k = payload_index(e, c ? "B-" : "A-");
        if (k < 0 || k >= N) {
            CHECK_MSG(0, "unexpected payload on %s", e->channel);
            continue;
        }
        CHECK_MSG(k == next[c], "channel %s: got %d, expected %d", e->channel, k, next[c]);
        CHECK(strcmp(e->request_id, ids[2 * k + c]) == 0 && strcmp(e->sender, "alice") == 0);
        next[c] = k + 1;
    }
    pthread_mutex_unlock(&p.rb.mu);
    CHECK(next[0] == N && next[1] == N);
    check_delivered_in_order(&p.ra, ids, 2 * N);
    /* Our own events carry our sender id and the channel's topic. */
    pthread_mutex_lock(&p.ra.mu);
    for (size_t i = 0; i < p.ra.n; i++)
        if (p.ra.ev[i].kind != RC_EVENT_MESSAGE_RECEIVED)
            CHECK(strcmp(p.ra.ev[i].sender, "alice") == 0 && strcmp(p.ra.ev[i].topic, topic_of(p.ra.ev[i].channel)) == 0);
    pthread_mutex_unlock(&p.ra.mu);
    pair_free(&p);
}

static void t_ephemeral_send(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    pair_open(&p, "eph", NULL);
    char r1[RC_REQUEST_ID_LEN + 1], r2[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_send(p.a, "eph", (const uint8_t *)"typing...", 9, RC_SEND_EPHEMERAL, r1), RC_OK);
    CHECK_ST(send_str(p.a, "eph", "hello", r2), RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_SENT, "eph", r1, 1, 10000));
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "eph", r1, 1, 10000));
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "eph", r2, 1, 10000));
    CHECK(rec_count(&p.ra, RC_EVENT_MESSAGE_DELIVERED, NULL, r1) == 0);
    CHECK(rec_count(&p.ra, RC_EVENT_SEND_ERROR, NULL, r1) == 0);
    CHECK(rec_count(&p.ra, RC_EVENT_MESSAGE_SENT, NULL, r1) == 1);
    pair_free(&p);
}

static void t_event_callback_replacement(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    pair_open(&p, "cb", NULL);
    recorder second;
    rec_init(&second, "second");
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "cb", "one", rid), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "cb", rid, 1, 10000));
    CHECK_ST(rc_set_event_callback(p.b, rec_on_event, &second), RC_OK);
    CHECK_ST(send_str(p.a, "cb", "two", rid), RC_OK);
    CHECK(rec_wait(&second, RC_EVENT_MESSAGE_RECEIVED, "cb", rid, 1, 10000));
    CHECK(rec_count(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, rid) == 0);
    CHECK_ST(rc_set_event_callback(p.b, NULL, NULL), RC_OK);
    CHECK_ST(send_str(p.a, "cb", "three", rid), RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "cb", rid, 1, 10000)); /* bob got it, silently */
    CHECK(rec_count(&second, RC_EVENT_MESSAGE_RECEIVED, NULL, rid) == 0);
    CHECK(rec_count(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, rid) == 0);
    pair_free(&p);
    rec_finish(&second);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency                                                                                */

enum { THREADS = 8, PER_THREAD = 40, CHANNELS = 4 };
typedef struct {
    rc_manager *m;
    int t;
    char ids[PER_THREAD][RC_REQUEST_ID_LEN + 1];
    int failures;
} sender_arg;

static const char *chan_name(int c) {
    static const char *names[CHANNELS] = {"k0", "k1", "k2", "k3"};
    return names[c];
}

static void *sender_thread(void *arg) {
    sender_arg *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char payload[64];
        int c = (s->t + i) % CHANNELS;
        int len = snprintf(payload, sizeof payload, "t%d-i%d", s->t, i);
        if (rc_send(s->m, chan_name(c), (const uint8_t *)payload, (size_t)len, 0, s->ids[i]) != RC_OK) s->failures++;
    }
    return NULL;
}

static void t_eight_threads_send_concurrently(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    for (int c = 0; c < CHANNELS; c++) pair_open(&p, chan_name(c), NULL);
    pthread_t th[THREADS];
    static sender_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].m = p.a;
        args[t].t = t;
        pthread_create(&th[t], NULL, sender_thread, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) CHECK_MSG(args[t].failures == 0, "thread %d: %d sends refused", t, args[t].failures);
    const size_t total = THREADS * PER_THREAD;
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL, total, 60000));
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, NULL, NULL, total, 60000));
    /* Each message exactly once, on its channel, in each thread's order per channel. */
    static int seen[THREADS][PER_THREAD];
    memset(seen, 0, sizeof seen);
    int last[THREADS][CHANNELS];
    memset(last, -1, sizeof last);
    pthread_mutex_lock(&p.rb.mu);
    for (size_t i = 0; i < p.rb.n; i++) {
        rec_event *e = &p.rb.ev[i];
        if (e->kind != RC_EVENT_MESSAGE_RECEIVED) continue;
        char buf[64];
        int t = -1, k = -1;
        if (e->len < sizeof buf) {
            memcpy(buf, e->payload, e->len);
            buf[e->len] = '\0';
            if (sscanf(buf, "t%d-i%d", &t, &k) != 2) t = -1;
        }
        if (t < 0 || t >= THREADS || k < 0 || k >= PER_THREAD) {
            CHECK_MSG(0, "unexpected payload");
            continue;
        }
        int c = (t + k) % CHANNELS;
        seen[t][k]++;
        CHECK_MSG(strcmp(e->channel, chan_name(c)) == 0, "t%d-i%d on %s", t, k, e->channel);
        CHECK_MSG(strcmp(e->request_id, args[t].ids[k]) == 0, "t%d-i%d: request id mismatch", t, k);
        CHECK_MSG(k > last[t][c], "t%d on %s: %d after %d", t, e->channel, k, last[t][c]);
        last[t][c] = k;
    }
    pthread_mutex_unlock(&p.rb.mu);
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < PER_THREAD; k++) CHECK_MSG(seen[t][k] == 1, "t%d-i%d received %d times", t, k, seen[t][k]);
    /* Request ids are unique. */
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < PER_THREAD; k++)
            for (int u = t; u < THREADS; u++)
                for (int j = (u == t ? k + 1 : 0); j < PER_THREAD; j++)
                    CHECK(strcmp(args[t].ids[k], args[u].ids[j]) != 0);
    pair_free(&p);
}

/* ------------------------------------------------------------------------------------------ */
/* Re-entrant calls from callbacks                                                            */

static void echo_hook(recorder *r, const rc_event *ev) {
    if (ev->kind != RC_EVENT_MESSAGE_RECEIVED || ev->payload_len > 100) return;
    if (ev->payload_len >= 5 && memcmp(ev->payload, "echo:", 5) == 0) return;
    uint8_t buf[128];
    memcpy(buf, "echo:", 5);
    memcpy(buf + 5, ev->payload, ev->payload_len);
    char rid[RC_REQUEST_ID_LEN + 1];
    if (rc_send(r->mgr, ev->channel_id, buf, ev->payload_len + 5, 0, rid) != RC_OK) atomic_fetch_add(&test_failures, 1);
}

static void t_echo_bot(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    p.rb.hook = echo_hook;
    pair_open(&p, "echo", NULL);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "ping %d", i);
        CHECK_ST(send_str(p.a, "echo", s, NULL), RC_OK);
    }
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_RECEIVED, "echo", NULL, N, 20000));
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_DELIVERED, "echo", NULL, N, 20000));
    pthread_mutex_lock(&p.ra.mu);
    int next = 0;
    for (size_t i = 0; i < p.ra.n; i++) {
        if (p.ra.ev[i].kind != RC_EVENT_MESSAGE_RECEIVED) continue;
        CHECK(payload_index(&p.ra.ev[i], "echo:ping ") == next);
        next++;
    }
    pthread_mutex_unlock(&p.ra.mu);
    CHECK(next == N);
    pair_free(&p);
}

/* open/close/send from the event callback, an encryption callback and the transport callback */
typedef struct {
    atomic_int step;
    rc_status open_st, close_st, close_self_st, send_st, reopen_st;
} cb_ops;

static void openclose_hook(recorder *r, const rc_event *ev) {
    cb_ops *o = r->ctx;
    if (ev->kind != RC_EVENT_MESSAGE_RECEIVED) return;
    if (ev->payload_len == 4 && memcmp(ev->payload, "open", 4) == 0) {
        o->open_st = rc_open_channel(r->mgr, "opened-in-event", topic_of("opened-in-event"), "bob", NULL);
        o->send_st = send_str(r->mgr, "opened-in-event", "hello from a callback", NULL);
        /* replacing the event callback (by itself) from inside it */
        if (rc_set_event_callback(r->mgr, rec_on_event, r) != RC_OK) o->open_st = RC_ERR_PANIC;
        atomic_store(&o->step, 1);
    } else if (ev->payload_len == 5 && memcmp(ev->payload, "close", 5) == 0) {
        o->close_st = rc_close_channel(r->mgr, "opened-in-event");
        atomic_store(&o->step, 2);
    } else if (ev->payload_len == 10 && memcmp(ev->payload, "close-self", 10) == 0) {
        /* Closing the channel whose event is being delivered: no deadlock, and no further
         * event of it once this callback returns. */
        o->close_self_st = rc_close_channel(r->mgr, ev->channel_id);
        snprintf(r->closed_channel, sizeof r->closed_channel, "%s", ev->channel_id);
        atomic_store(&r->closed_flag, 1);
        o->reopen_st = rc_open_channel(r->mgr, "selfclosed-2", topic_of("selfclosed-2"), "bob", NULL);
        atomic_store(&o->step, 3);
    }
}

typedef struct {
    rc_manager *mgr;
    atomic_int calls;
    rc_status open_st, close_st, send_st;
} crypto_ops;

static int ops_encrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    crypto_ops *o = ud;
    (void)ch;
    if (atomic_fetch_add(&o->calls, 1) == 0) { /* on the runtime thread */
        o->open_st = rc_open_channel(o->mgr, "opened-in-crypto", topic_of("opened-in-crypto"), "alice", NULL);
        o->close_st = rc_close_channel(o->mgr, "victim");
        o->send_st = send_str(o->mgr, "other", "sent from the encrypt callback", NULL);
        if (rc_set_encryption(o->mgr, "victim2", NULL, NULL, NULL, NULL) != RC_OK) o->open_st = RC_ERR_PANIC;
    }
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1; /* identity: bob needs no hook */
}

static int ident_decrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    (void)ud, (void)ch;
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

static void host_ops_extra(test_host *h, uint64_t id, const rc_waku_message *m) {
    cb_ops *o = h->ctx;
    (void)id, (void)m;
    int expected = 0;
    if (atomic_compare_exchange_strong(&o->step, &expected, 1)) {
        o->open_st = rc_open_channel(h->self, "opened-in-transport", topic_of("opened-in-transport"), "me", NULL);
        o->close_st = rc_close_channel(h->self, "victim");
        o->send_st = send_str(h->self, "opened-in-transport", "queued from the send callback", NULL);
        /* re-installing the transport from inside its own send callback */
        if (rc_set_transport(h->self, host_send, h, NULL) != RC_OK) o->open_st = RC_ERR_PANIC;
        atomic_store(&o->step, 2);
    }
}

static void t_open_close_send_from_callbacks(void) {
    /* 1. from the event callback */
    pair p;
    pair_new(&p, NULL, NULL);
    cb_ops o;
    memset(&o, 0, sizeof o);
    p.rb.ctx = &o;
    p.rb.hook = openclose_hook;
    pair_open(&p, "ctl", NULL);
    pair_open(&p, "selfclosed", NULL);
    CHECK_ST(rc_open_channel(p.a, "opened-in-event", topic_of("opened-in-event"), "alice", NULL), RC_OK);
    CHECK_ST(send_str(p.a, "ctl", "open", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&o.step) == 1, 10000);
    CHECK_ST(o.open_st, RC_OK);
    CHECK_ST(o.send_st, RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_RECEIVED, "opened-in-event", NULL, 1, 10000));
    barrier(p.b, "opened-in-event");
    CHECK_ST(send_str(p.a, "ctl", "close", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&o.step) == 2, 10000);
    CHECK_ST(o.close_st, RC_OK);
    CHECK_ST(rc_channel_stats_json(p.b, "opened-in-event", &(char *){NULL}), RC_ERR_UNKNOWN_CHANNEL);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "selfclosed", "close-self", rid), RC_OK);
    for (int i = 0; i < 5; i++) CHECK_ST(send_str(p.a, "selfclosed", "after", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&o.step) == 3, 10000);
    CHECK_ST(o.close_self_st, RC_OK);
    CHECK_ST(o.reopen_st, RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_SENT, "selfclosed", NULL, 6, 10000));
    barrier(p.b, "ctl");
    CHECK_MSG(atomic_load(&p.rb.after_close) == 0, "%d events after closing from the callback",
              atomic_load(&p.rb.after_close));
    pair_free(&p);

    /* 2. from an encryption callback (runtime thread) */
    pair q;
    pair_new(&q, NULL, NULL);
    crypto_ops co;
    memset(&co, 0, sizeof co);
    co.mgr = q.a;
    pair_open(&q, "main", NULL);
    pair_open(&q, "other", NULL);
    pair_open(&q, "victim", NULL);
    pair_open(&q, "victim2", NULL);
    CHECK_ST(rc_set_encryption(q.a, "main", ops_encrypt, ident_decrypt, &co, NULL), RC_OK);
    CHECK_ST(send_str(q.a, "main", "go", rid), RC_OK);
    CHECK(rec_wait(&q.rb, RC_EVENT_MESSAGE_RECEIVED, "main", rid, 1, 10000));
    CHECK(rec_wait(&q.rb, RC_EVENT_MESSAGE_RECEIVED, "other", NULL, 1, 10000));
    CHECK_ST(co.open_st, RC_OK);
    CHECK_ST(co.close_st, RC_OK);
    CHECK_ST(co.send_st, RC_OK);
    barrier(q.a, "main");
    CHECK_ST(rc_channel_stats_json(q.a, "victim", &(char *){NULL}), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_open_channel(q.a, "opened-in-crypto", topic_of("opened-in-crypto"), "alice", NULL),
             RC_ERR_CHANNEL_EXISTS);
    pair_free(&q);

    /* 3. from the host transport's send callback (runtime thread) */
    rc_manager *h = mk_host();
    test_host th;
    host_init(&th, h, NULL, HOST_SENT_INLINE);
    cb_ops ho;
    memset(&ho, 0, sizeof ho);
    th.ctx = &ho;
    th.extra = host_ops_extra;
    recorder rec;
    rec_init(&rec, "host");
    CHECK_ST(rc_set_event_callback(h, rec_on_event, &rec), RC_OK);
    CHECK_ST(rc_set_transport(h, host_send, &th, NULL), RC_OK);
    CHECK_ST(rc_open_channel(h, "main", topic_of("main"), "me", NULL), RC_OK);
    CHECK_ST(rc_open_channel(h, "victim", topic_of("victim"), "me", NULL), RC_OK);
    CHECK_ST(send_str(h, "main", "go", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&ho.step) == 2, 10000);
    CHECK_ST(ho.open_st, RC_OK);
    CHECK_ST(ho.close_st, RC_OK);
    CHECK_ST(ho.send_st, RC_OK);
    CHECK(rec_wait(&rec, RC_EVENT_MESSAGE_SENT, "opened-in-transport", NULL, 1, 10000));
    CHECK_ST(rc_channel_stats_json(h, "victim", &(char *){NULL}), RC_ERR_UNKNOWN_CHANNEL);
    free_marked(h, &rec);
    rec_finish(&rec);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing and freeing with traffic in flight                                                 */

typedef struct {
    rc_manager *m;
    atomic_int stop;
    int sent;
} stream_arg;

static void *stream_thread(void *arg) {
    stream_arg *s = arg;
    while (!atomic_load(&s->stop) && s->sent < 2000) {
        char buf[32];
        snprintf(buf, sizeof buf, "s-%d", s->sent);
        if (send_str(s->m, "x", buf, NULL) == RC_OK) s->sent++;
        sleep_ms(1);
    }
    return NULL;
}

static void t_close_channel_guarantee(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    pair_open(&p, "x", NULL);
    pair_open(&p, "y", NULL);
    stream_arg s = {.m = p.a};
    pthread_t t;
    pthread_create(&t, NULL, stream_thread, &s);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "x", NULL, 20, 10000));
    CHECK_ST(rc_close_channel(p.b, "x"), RC_OK);
    snprintf(p.rb.closed_channel, sizeof p.rb.closed_channel, "x");
    atomic_store(&p.rb.closed_flag, 1);
    size_t at_close = rec_count(&p.rb, 0, "x", NULL);
    /* Alice keeps sending for a while; bob must not hear of channel x again. */
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "y", "still here", rid), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "y", rid, 1, 10000));
    for (int i = 0; i < 3; i++) barrier(p.b, "y");
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    CHECK_MSG(atomic_load(&p.rb.after_close) == 0, "%d events of a closed channel", atomic_load(&p.rb.after_close));
    CHECK(rec_count(&p.rb, 0, "x", NULL) == at_close);
    CHECK_ST(send_str(p.b, "x", "closed", NULL), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_close_channel(p.b, "x"), RC_ERR_UNKNOWN_CHANNEL);
    CHECK_ST(rc_open_channel(p.b, "x", topic_of("x"), "bob", NULL), RC_OK);
    barrier(p.b, "x");
    pair_free(&p);
}

static void t_free_with_traffic_in_flight(void) {
    for (int round = 0; round < 2; round++) {
        pair p;
        pair_new(&p, ", \"loss\": 0.3, \"delayMs\": [1, 10], \"seed\": 3", ", \"loss\": 0.3, \"delayMs\": [1, 10], \"seed\": 4");
        counting_cipher ca = {.tag = 9}, cb = {.tag = 9};
        pair_encrypt(&p, &ca, &cb, cc_free);
        pair_open(&p, "busy", NULL);
        static uint8_t big[300 * 1024];
        for (int i = 0; i < 30; i++) {
            if (i % 6 == 0) CHECK_ST(rc_send(p.a, "busy", big, sizeof big, 0, (char[RC_REQUEST_ID_LEN + 1]){0}), RC_OK);
            else CHECK_ST(send_str(p.a, "busy", "small", NULL), RC_OK);
            if (i % 3 == 0) CHECK_ST(send_str(p.b, "busy", "reply", NULL), RC_OK);
        }
        if (round == 1) rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL, 1, 5000); /* mid-stream */
        /* Free the sender first (round 0) or the receiver first (round 1). */
        if (round == 0) {
            free_marked(p.a, &p.ra);
            free_marked(p.b, &p.rb);
        } else {
            free_marked(p.b, &p.rb);
            free_marked(p.a, &p.ra);
        }
        p.a = p.b = NULL;
        sleep_ms(50); /* a window in which a late callback would be noticed */
        CHECK(atomic_load(&ca.own.freed) == 1 && atomic_load(&cb.own.freed) == 1);
        pair_free(&p);
    }
    /* A host manager with dispatches the host never reported. */
    rc_manager *h = mk_host();
    test_host th;
    host_init(&th, h, NULL, HOST_DEFER);
    recorder rec;
    rec_init(&rec, "host");
    CHECK_ST(rc_set_event_callback(h, rec_on_event, &rec), RC_OK);
    CHECK_ST(rc_set_transport(h, host_send, &th, owned_free), RC_OK);
    CHECK_ST(rc_open_channel(h, "pending", topic_of("pending"), "me", NULL), RC_OK);
    for (int i = 0; i < 20; i++) CHECK_ST(send_str(h, "pending", "never reported", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&th.calls) >= 20, 10000);
    free_marked(h, &rec);
    CHECK(atomic_load(&th.own.freed) == 1);
    rec_finish(&rec);
}

/* ------------------------------------------------------------------------------------------ */
/* Both transports under faults, and statistics                                               */

static void t_memory_faults_exactly_once_in_order(void) {
    pair p;
    const char *faults = ", \"loss\": 0.2, \"duplicate\": 0.3, \"reorder\": 0.3, \"delayMs\": [0, 5], \"seed\": %d";
    char fa[128], fb[128];
    snprintf(fa, sizeof fa, faults, 11);
    snprintf(fb, sizeof fb, faults, 12);
    pair_new(&p, fa, fb);
    pair_open(&p, "f", NULL);
    enum { N = 40 };
    static char ids[N][RC_REQUEST_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        char s[32];
        snprintf(s, sizeof s, "m-%d", i);
        CHECK_ST(send_str(p.a, "f", s, ids[i]), RC_OK);
    }
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "f", NULL, N, 60000));
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "f", NULL, N, 60000));
    pthread_mutex_lock(&p.rb.mu);
    int next = 0;
    for (size_t i = 0; i < p.rb.n; i++)
        if (p.rb.ev[i].kind == RC_EVENT_MESSAGE_RECEIVED) {
            CHECK(payload_index(&p.rb.ev[i], "m-") == next);
            next++;
        }
    pthread_mutex_unlock(&p.rb.mu);
    CHECK(next == N);
    check_delivered_in_order(&p.ra, ids, N);
    CHECK(stat_of(p.b, "f", "duplicates") > 0);
    pair_free(&p);
}

static void t_stats_json(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    pair_open(&p, "st", NULL);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "st", "count me", rid), RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_DELIVERED, "st", rid, 1, 10000));
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "st", rid, 1, 10000));
    const char *keys[] = {"messagesSent", "messagesDelivered", "sendErrors", "messagesReceived", "messagesLost",
                          "chunksSent", "retransmissions", "syncsSent", "acks", "duplicates", "droppedForeign",
                          "droppedInvalid", "droppedUndecryptable", "dispatchFailures", "pendingChunks", "pendingBytes"};
    char *json = NULL;
    CHECK_ST(rc_channel_stats_json(p.a, "st", &json), RC_OK);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\":", keys[i]);
        CHECK_MSG(json && strstr(json, pat), "stats lack %s: %s", keys[i], json ? json : "NULL");
    }
    rc_string_free(json);
    CHECK(stat_of(p.a, "st", "messagesSent") == 1 && stat_of(p.a, "st", "messagesDelivered") == 1);
    CHECK(stat_of(p.b, "st", "messagesReceived") == 1);
    CHECK(stat_of(p.a, "st", "pendingChunks") == 0);
    pair_free(&p);
}

/* ------------------------------------------------------------------------------------------ */
/* Regressions of bugs found by this harness (RC_TEST_KNOWN_BUGS=1 also runs any test still
 * marked as a known bug).                                                                    */

/* A send that failed before leaving (encryption failed) is not referenced by later messages and
 * never delivered afterwards. */
static void t_failed_send_is_never_referenced_or_delivered(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    counting_cipher ca = {.tag = 1}, cb = {.tag = 1};
    pair_encrypt(&p, &ca, &cb, NULL);
    pair_open(&p, "k", NULL);
    char r0[RC_REQUEST_ID_LEN + 1], r1[RC_REQUEST_ID_LEN + 1], r2[RC_REQUEST_ID_LEN + 1], r3[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(p.a, "k", "before", r0), RC_OK);
    CHECK(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "k", r0, 1, 10000));
    atomic_store(&ca.fail_encrypt, 1);
    CHECK_ST(send_str(p.a, "k", "failed", r1), RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_SEND_ERROR, "k", r1, 1, 10000));
    atomic_store(&ca.fail_encrypt, 0);
    /* bob talks: his syncs lack "failed", which makes alice rebroadcast it */
    CHECK_ST(send_str(p.b, "k", "bob talks", r3), RC_OK);
    CHECK(rec_wait(&p.ra, RC_EVENT_MESSAGE_RECEIVED, "k", r3, 1, 10000));
    sleep_ms(T(2000)); /* a window for the rebroadcast */
    CHECK_MSG(rec_count(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "k", r1) == 0, "a send reported SEND_ERROR was RECEIVED");
    CHECK_ST(send_str(p.a, "k", "after", r2), RC_OK);
    CHECK_MSG(rec_wait(&p.rb, RC_EVENT_MESSAGE_RECEIVED, "k", r2, 1, 5000),
              "the send after a SEND_ERROR is held by the receiver (dependency on the failed message)");
    CHECK_MSG(rec_count(&p.rb, RC_EVENT_MESSAGE_LOST, "k", NULL) == 0, "MESSAGE_LOST for a send that failed");
    pair_free(&p);
}

/* rc_close_channel from the runtime thread (encryption or transport callback) waits for the
 * event of that channel being delivered; if that event callback calls rc_channel_stats_json
 * (allowed from the event thread), which waits for the runtime thread: deadlock (even
 * rc_manager_free then hangs). The watchdog ends the process. */
typedef struct {
    rc_manager *mgr;
    atomic_int in_event, closed;
    rc_status close_st, stats_st;
} deadlock_ctx;

static void deadlock_event_hook(recorder *r, const rc_event *ev) {
    deadlock_ctx *d = r->ctx;
    if (ev->kind != RC_EVENT_MESSAGE_RECEIVED || strcmp(ev->channel_id, "x") != 0) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&d->in_event, &expected, 1)) return;
    POLL_UNTIL(atomic_load(&d->closed) >= 1, 2000); /* the runtime thread has entered close */
    sleep_ms(100);
    char *json = NULL;
    d->stats_st = rc_channel_stats_json(d->mgr, "y", &json);
    if (d->stats_st == RC_OK) rc_string_free(json);
    atomic_store(&d->in_event, 2);
}

static int deadlock_encrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    deadlock_ctx *d = ud;
    (void)ch;
    if (atomic_load(&d->in_event) == 1 && atomic_load(&d->closed) == 0) {
        atomic_store(&d->closed, 1);
        d->close_st = rc_close_channel(d->mgr, "x");
        atomic_store(&d->closed, 2);
    }
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

static void t_close_from_runtime_vs_stats_from_event(void) {
    pair p;
    pair_new(&p, NULL, NULL);
    deadlock_ctx d;
    memset(&d, 0, sizeof d);
    d.mgr = p.b;
    p.rb.ctx = &d;
    p.rb.hook = deadlock_event_hook;
    pair_open(&p, "x", NULL);
    pair_open(&p, "y", NULL);
    CHECK_ST(rc_set_encryption(p.b, "y", deadlock_encrypt, ident_decrypt, &d, NULL), RC_OK);
    CHECK_ST(send_str(p.a, "x", "hold the gate", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&d.in_event) >= 1, 10000);
    CHECK_ST(send_str(p.b, "y", "encrypt now", NULL), RC_OK); /* bob's runtime: encrypt -> close(x) */
    POLL_UNTIL(atomic_load(&d.in_event) == 2 && atomic_load(&d.closed) == 2, 5000);
    CHECK_MSG(atomic_load(&d.in_event) == 2 && atomic_load(&d.closed) == 2,
              "deadlock: close_channel on the runtime thread vs channel_stats on the event thread");
    pair_free(&p); /* hangs when deadlocked: the watchdog reports it */
}

/* ------------------------------------------------------------------------------------------ */
/* The host transport's store hook                                                           */

/* Alice's host: its node keeps every message it publishes in a store (hash = "0x" + counter)
 * and loses the first one on its way to Bob. */
enum { STORE_MAX = 16 };
typedef struct {
    rc_manager *self, *peer;
    pthread_mutex_t mu;
    size_t n;
    char hash[STORE_MAX][67];
    char topic[STORE_MAX][300];
    uint8_t *payload[STORE_MAX];
    size_t len[STORE_MAX];
    atomic_int dropped, errors;
} store_host;

static int store_send(void *ud, uint64_t id, const rc_waku_message *m) {
    store_host *h = ud;
    char hash[67] = "";
    pthread_mutex_lock(&h->mu);
    size_t k = h->n;
    if (k < STORE_MAX && m->payload_len > 0) {
        snprintf(h->hash[k], sizeof h->hash[k], "0x%064zx", k + 1);
        snprintf(h->topic[k], sizeof h->topic[k], "%s", m->content_topic);
        h->payload[k] = malloc(m->payload_len);
        memcpy(h->payload[k], m->payload, m->payload_len);
        h->len[k] = m->payload_len;
        h->n++;
        snprintf(hash, sizeof hash, "%s", h->hash[k]);
    }
    pthread_mutex_unlock(&h->mu);
    if (!hash[0]) atomic_fetch_add(&h->errors, 1);
    if (k == 0) atomic_fetch_add(&h->dropped, 1); /* lost on the way */
    else if (rc_transport_receive(h->peer, m, hash) != RC_OK) atomic_fetch_add(&h->errors, 1);
    if (rc_transport_sent(h->self, id, hash[0] ? hash : NULL) != RC_OK) atomic_fetch_add(&h->errors, 1);
    return 0;
}

/* Bob's store hook: looks the hashes up in Alice's node's store. */
typedef struct {
    owned own;
    store_host *store;
    rc_manager *mgr;
    atomic_int calls, found, errors;
} store_fetcher;

static void store_retrieve(void *ud, const char *topic, const char *const *hashes, size_t count) {
    store_fetcher *f = ud;
    atomic_fetch_add(&f->calls, 1);
    if (!topic || (count > 0 && !hashes)) atomic_fetch_add(&f->errors, 1);
    for (size_t i = 0; i < count; i++) {
        if (!hashes[i] || strlen(hashes[i]) != 66 || strncmp(hashes[i], "0x", 2) != 0) atomic_fetch_add(&f->errors, 1);
        store_host *s = f->store;
        pthread_mutex_lock(&s->mu);
        for (size_t k = 0; k < s->n; k++) {
            if (strcmp(s->hash[k], hashes[i]) != 0 || strcmp(s->topic[k], topic) != 0) continue;
            rc_waku_message m = {s->topic[k], s->payload[k], s->len[k], (const uint8_t *)"RELIABLE-CHANNEL-API/1", 22, 1, false};
            if (rc_transport_receive(f->mgr, &m, s->hash[k]) != RC_OK) atomic_fetch_add(&f->errors, 1);
            atomic_fetch_add(&f->found, 1);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void t_host_transport_retrieve(void) {
    CHECK_ST_ERR(rc_set_transport_retrieve(NULL, store_retrieve, NULL, NULL), RC_ERR_INVALID_ARGUMENT, "mgr");
    rc_manager *mem = mk_memory(unique_network(), NULL);
    owned refused = {0};
    CHECK_ST_ERR(rc_set_transport_retrieve(mem, store_retrieve, &refused, owned_free), RC_ERR_TRANSPORT, "host");
    free_marked(mem, NULL);
    CHECK_MSG(atomic_load(&refused.freed) == 0, "user data of a refused call is not the library's");

    rc_manager *a = mk_host(), *b = mk_host();
    store_host sa;
    memset(&sa, 0, sizeof sa);
    pthread_mutex_init(&sa.mu, NULL);
    sa.self = a;
    sa.peer = b;
    test_host hb;
    host_init(&hb, b, a, HOST_SENT_INLINE);
    store_fetcher f = {.store = &sa, .mgr = b};
    recorder ra, rb;
    rec_init(&ra, "alice");
    rec_init(&rb, "bob");
    CHECK_ST(rc_set_event_callback(a, rec_on_event, &ra), RC_OK);
    CHECK_ST(rc_set_event_callback(b, rec_on_event, &rb), RC_OK);
    CHECK_ST(rc_set_transport(a, store_send, &sa, NULL), RC_OK);
    CHECK_ST(rc_set_transport(b, host_send, &hb, NULL), RC_OK);
    /* Replacing the hook finalizes the previous user data once; NULL removes it. */
    owned first = {0};
    CHECK_ST(rc_set_transport_retrieve(b, store_retrieve, &first, owned_free), RC_OK);
    CHECK_ST(rc_set_transport_retrieve(b, NULL, NULL, NULL), RC_OK);
    CHECK(atomic_load(&first.freed) == 1);
    CHECK_ST(rc_set_transport_retrieve(b, store_retrieve, &f, owned_free), RC_OK);
    CHECK_ST(rc_open_channel(a, "s", topic_of("s"), "alice", NULL), RC_OK);
    CHECK_ST(rc_open_channel(b, "s", topic_of("s"), "bob", NULL), RC_OK);
    barrier(a, "s");
    barrier(b, "s");
    char one[RC_REQUEST_ID_LEN + 1], two[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(a, "s", "one", one), RC_OK);
    CHECK(rec_wait(&ra, RC_EVENT_MESSAGE_SENT, "s", one, 1, 10000));
    CHECK_ST(send_str(a, "s", "two", two), RC_OK);
    /* "one" never reached Bob's node: "two" names it with its hash, Bob's store hook fetches it,
     * and both are received, in order, long before any retransmission (5 s). */
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_RECEIVED, "s", two, 1, 4000));
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_RECEIVED, "s", one, 1, 100));
    CHECK(rec_find(&rb, RC_EVENT_MESSAGE_RECEIVED, "s", one) < rec_find(&rb, RC_EVENT_MESSAGE_RECEIVED, "s", two));
    CHECK(atomic_load(&sa.dropped) == 1);
    CHECK(atomic_load(&f.calls) >= 1 && atomic_load(&f.found) >= 1);
    CHECK(atomic_load(&f.errors) == 0 && atomic_load(&sa.errors) == 0 && atomic_load(&hb.report_errors) == 0);
    CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 2);
    free_marked(a, &ra);
    free_marked(b, &rb);
    CHECK(atomic_load(&f.own.freed) == 1);
    rec_finish(&ra);
    rec_finish(&rb);
    for (size_t k = 0; k < sa.n; k++) free(sa.payload[k]);
    pthread_mutex_destroy(&sa.mu);
}

static const test_case TESTS[] = {
    {"version_and_status_names", t_version_and_status_names, 10, NULL},
    {"last_error_is_thread_local", t_last_error_is_thread_local, 10, NULL},
    {"manager_new_and_config", t_manager_new_and_config, 20, NULL},
    {"null_manager_everywhere", t_null_manager_everywhere, 10, NULL},
    {"argument_validation", t_argument_validation, 20, NULL},
    {"queue_full", t_queue_full, 20, NULL},
    {"stopped_during_free", t_stopped_during_free, 30, NULL},
    {"free_from_callbacks_is_reentrant", t_free_from_callbacks_is_reentrant, 60, NULL},
    {"host_transport_status_codes", t_host_transport_status_codes, 30, NULL},
    {"host_transport_exchange", t_host_transport_exchange, 60, NULL},
    {"host_transport_failures", t_host_transport_failures, 60, NULL},
    {"host_transport_retrieve", t_host_transport_retrieve, 30, NULL},
    {"encrypt_failure_is_send_error", t_encrypt_failure_is_send_error, 30, NULL},
    {"decrypt_failure_is_dropped_and_lost", t_decrypt_failure_is_dropped_and_lost, 30, NULL},
    {"lost_message_names_its_sender", t_lost_message_names_its_sender, 30, NULL},
    {"buffer_append_limits", t_buffer_append_limits, 30, NULL},
    {"encryption_default_and_per_channel", t_encryption_default_and_per_channel, 30, NULL},
    {"finalizers_exactly_once", t_finalizers_exactly_once, 30, NULL},
    {"event_order_per_channel", t_event_order_per_channel, 60, NULL},
    {"ephemeral_send", t_ephemeral_send, 30, NULL},
    {"event_callback_replacement", t_event_callback_replacement, 30, NULL},
    {"eight_threads_send_concurrently", t_eight_threads_send_concurrently, 120, NULL},
    {"echo_bot", t_echo_bot, 60, NULL},
    {"open_close_send_from_callbacks", t_open_close_send_from_callbacks, 60, NULL},
    {"close_channel_guarantee", t_close_channel_guarantee, 60, NULL},
    {"free_with_traffic_in_flight", t_free_with_traffic_in_flight, 60, NULL},
    {"memory_faults_exactly_once_in_order", t_memory_faults_exactly_once_in_order, 120, NULL},
    {"stats_json", t_stats_json, 30, NULL},
    {"failed_send_is_never_referenced_or_delivered", t_failed_send_is_never_referenced_or_delivered, 60, NULL},
    {"close_from_runtime_vs_stats_from_event", t_close_from_runtime_vs_stats_from_event, 20, NULL},
};

int main(int argc, char **argv) { return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv); }
