/*
 * test_concurrency.c — threads, callbacks that call back into the library, closing and freeing with traffic in flight, faults and statistics, exercised from C.
 *
 *   tests/c/run.sh                 builds this with ASan+UBSan and without (under valgrind)
 *   build/tests-c/test_concurrency [name…]  runs every test, or those whose name contains an argument
 *
 * Each test prints "ok" or "FAIL" with its time; the last line is "N passed, N failed".
 * A watchdog ends the process (exit 3) if one test exceeds its time budget (a deadlock).
 * Shared fixtures: fixtures.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>

#include "fixtures.h"

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

static const test_case TESTS[] = {
    {"eight_threads_send_concurrently", t_eight_threads_send_concurrently, 120, NULL},
    {"echo_bot", t_echo_bot, 60, NULL},
    {"open_close_send_from_callbacks", t_open_close_send_from_callbacks, 60, NULL},
    {"close_channel_guarantee", t_close_channel_guarantee, 60, NULL},
    {"free_with_traffic_in_flight", t_free_with_traffic_in_flight, 60, NULL},
    {"memory_faults_exactly_once_in_order", t_memory_faults_exactly_once_in_order, 120, NULL},
    {"stats_json", t_stats_json, 30, NULL},
};

int main(int argc, char **argv) { return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv); }
