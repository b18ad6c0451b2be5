/*
 * test_capi.c — the C API of libreliable_channel, exercised from C: constants, errors, argument checks, status codes, finalizers, events, regressions.
 *
 *   tests/c/run.sh                 builds this with ASan+UBSan and without (under valgrind)
 *   build/tests-c/test_capi [name…]  runs every test, or those whose name contains an argument
 *
 * Each test prints "ok" or "FAIL" with its time; the last line is "N passed, N failed".
 * A watchdog ends the process (exit 3) if one test exceeds its time budget (a deadlock).
 * Shared fixtures: fixtures.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>

#include "fixtures.h"

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

static const test_case TESTS[] = {
    {"version_and_status_names", t_version_and_status_names, 10, NULL},
    {"last_error_is_thread_local", t_last_error_is_thread_local, 10, NULL},
    {"manager_new_and_config", t_manager_new_and_config, 20, NULL},
    {"null_manager_everywhere", t_null_manager_everywhere, 10, NULL},
    {"argument_validation", t_argument_validation, 20, NULL},
    {"queue_full", t_queue_full, 20, NULL},
    {"stopped_during_free", t_stopped_during_free, 30, NULL},
    {"free_from_callbacks_is_reentrant", t_free_from_callbacks_is_reentrant, 60, NULL},
    {"finalizers_exactly_once", t_finalizers_exactly_once, 30, NULL},
    {"event_order_per_channel", t_event_order_per_channel, 60, NULL},
    {"ephemeral_send", t_ephemeral_send, 30, NULL},
    {"event_callback_replacement", t_event_callback_replacement, 30, NULL},
    {"failed_send_is_never_referenced_or_delivered", t_failed_send_is_never_referenced_or_delivered, 60, NULL},
    {"close_from_runtime_vs_stats_from_event", t_close_from_runtime_vs_stats_from_event, 20, NULL},
};

int main(int argc, char **argv) { return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv); }
