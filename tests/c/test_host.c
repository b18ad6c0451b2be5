/*
 * test_host.c — the host transport (status codes, exchange, failures, the store hook) and encryption hooks, exercised from C.
 *
 *   tests/c/run.sh                 builds this with ASan+UBSan and without (under valgrind)
 *   build/tests-c/test_host [name…]  runs every test, or those whose name contains an argument
 *
 * Each test prints "ok" or "FAIL" with its time; the last line is "N passed, N failed".
 * A watchdog ends the process (exit 3) if one test exceeds its time budget (a deadlock).
 * Shared fixtures: fixtures.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>

#include "fixtures.h"

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
    {"host_transport_status_codes", t_host_transport_status_codes, 30, NULL},
    {"host_transport_exchange", t_host_transport_exchange, 60, NULL},
    {"host_transport_failures", t_host_transport_failures, 60, NULL},
    {"host_transport_retrieve", t_host_transport_retrieve, 30, NULL},
    {"encrypt_failure_is_send_error", t_encrypt_failure_is_send_error, 30, NULL},
    {"decrypt_failure_is_dropped_and_lost", t_decrypt_failure_is_dropped_and_lost, 30, NULL},
    {"lost_message_names_its_sender", t_lost_message_names_its_sender, 30, NULL},
    {"buffer_append_limits", t_buffer_append_limits, 30, NULL},
    {"encryption_default_and_per_channel", t_encryption_default_and_per_channel, 30, NULL},
};

int main(int argc, char **argv) { return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv); }
