/*
 * test_storage.c — durable channels through the C API (issue #11): `storage` and
 * `historyBackend` configuration, rc_event.seq, events stored until delivered and delivered again
 * on reopen (after a restart too), rc_channel_purge, the open-time checks and refusals (a refused
 * file is left byte for byte as it was), the database lock, and a full database.
 *
 *   tests/c/run.sh                      builds this with ASan+UBSan and without (under valgrind)
 *   build/tests-c/test_storage [name…]  runs every test, or those whose name contains an argument
 */
#define _POSIX_C_SOURCE 200809L

/* The harness's helpers this program does not use are fine. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"
#pragma GCC diagnostic pop

#define TOPIC "/rc-test/1/room/proto"
#define SQLITE "{\"sdsConfig\": {\"historyBackend\": \"sqlite\"}}"

/* A database path unique to this process and test (its -wal / -shm / -rc-journal siblings are removed too). */
static const char *db_path(const char *name) {
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "/tmp/rc-c-storage-%ld-%s.db", (long)getpid(), name);
    return buf;
}

static void db_remove(const char *path) {
    char side[300];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-rc-journal", path);
    unlink(side);
}

/* A manager on `network` with storage at `path` (NULL: none); `extra_storage` adds keys. */
static rc_status mk_durable(const char *network, const char *path, const char *extra_storage, rc_manager **out) {
    char cfg[1024];
    if (path)
        snprintf(cfg, sizeof cfg,
                 "{\"transport\": {\"kind\": \"memory\", \"network\": \"%s\"}, \"storage\": {\"path\": \"%s\"%s}, " FAST_DEFAULTS "}",
                 network, path, extra_storage ? extra_storage : "");
    else
        snprintf(cfg, sizeof cfg, "{\"transport\": {\"kind\": \"memory\", \"network\": \"%s\"}, " FAST_DEFAULTS "}", network);
    *out = NULL;
    return rc_manager_new(cfg, out);
}

static rc_manager *durable(const char *network, const char *path, const char *extra_storage) {
    rc_manager *m = NULL;
    rc_status st = mk_durable(network, path, extra_storage, &m);
    CHECK_MSG(st == RC_OK && m, "manager on %s: %s %s", path, rc_status_name(st), rc_last_error());
    return m;
}

static void finish(rc_manager *m, recorder *r) {
    CHECK_ST(rc_manager_free(m), RC_OK);
    CHECK_MSG(r->shape_errors == 0, "%s: %d events with a wrong shape", r->name, r->shape_errors);
    CHECK_MSG(r->seq_errors == 0, "%s: %d events whose seq did not grow", r->name, r->seq_errors);
    rec_destroy(r);
}

/* Reads a whole file (or NULL); *len receives its size. */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

/* rc_manager_new on `path` is refused with RC_ERR_STORAGE naming `why`; the file is unchanged. */
static void check_refused_untouched(const char *path, const char *why) {
    size_t before_len = 0, after_len = 0;
    uint8_t *before = slurp(path, &before_len);
    CHECK(before != NULL);
    rc_manager *m = (rc_manager *)0x1;
    CHECK_ST_ERR(mk_durable(unique_network(), path, NULL, &m), RC_ERR_STORAGE, why);
    CHECK_MSG(m == NULL, "the out-pointer is written only on success");
    uint8_t *after = slurp(path, &after_len);
    CHECK_MSG(after && before_len == after_len && memcmp(before, after, before_len) == 0, "%s was modified", path);
    free(before);
    free(after);
}

static void t_configuration(void) {
    const char *net = unique_network();
    rc_manager *m = durable(net, NULL, NULL);
    CHECK_ST_ERR(rc_open_channel(m, "c", TOPIC, "me", SQLITE), RC_ERR_CONFIG, "channel.sdsConfig.historyBackend");
    CHECK_ST(rc_channel_purge(m, "c"), RC_OK); /* nothing is ever stored without storage */
    CHECK_ST(rc_manager_free(m), RC_OK);
    rc_manager *bad = NULL;
    CHECK_ST_ERR(mk_durable(net, db_path("cfg"), ", \"durability\": \"disk\"", &bad), RC_ERR_CONFIG, "storage.durability");
    CHECK_ST_ERR(mk_durable(net, "/nonexistent-dir/x.db", NULL, &bad), RC_ERR_STORAGE, "/nonexistent-dir/x.db");
    CHECK(bad == NULL);
    m = durable(net, db_path("cfg"), ", \"durability\": \"power\"");
    CHECK_ST(rc_open_channel(m, "c", TOPIC, "me", SQLITE), RC_OK);
    CHECK_ST(rc_channel_purge(NULL, "c"), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_channel_purge(m, NULL), RC_ERR_INVALID_ARGUMENT);
    CHECK_ST(rc_manager_free(m), RC_OK);
    db_remove(db_path("cfg"));
}

/* Delivered events are not delivered again by a restarted manager, and seq continues. */
static void t_seq_continues_across_a_restart(void) {
    const char *path = db_path("restart");
    const char *net = unique_network();
    char netname[64];
    snprintf(netname, sizeof netname, "%s", net);
    rc_manager *a = durable(netname, NULL, NULL);
    CHECK_ST(rc_open_channel(a, "room", TOPIC, "alice", NULL), RC_OK);
    recorder rb;
    rc_manager *b = durable(netname, path, NULL);
    rec_attach(&rb, "bob", b);
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "bob", SQLITE), RC_OK);
    barrier(a, "room");
    for (int i = 0; i < 3; i++) CHECK_ST(send_str(a, "room", "before", NULL), RC_OK);
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_RECEIVED, "room", NULL, 3, 10000));
    uint64_t last = rb.ev[rb.n - 1].seq;
    CHECK(rb.ev[0].seq >= 1);
    finish(b, &rb);

    b = durable(netname, path, NULL);
    rec_attach(&rb, "bob again", b);
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "bob", SQLITE), RC_OK);
    barrier(b, "room");
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(send_str(a, "room", "after", rid), RC_OK);
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_RECEIVED, "room", rid, 1, 10000));
    /* Nothing comes back from the outbox: every event has a new seq. */
    pthread_mutex_lock(&rb.mu);
    for (size_t k = 0; k < rb.n; k++)
        CHECK_MSG(rb.ev[k].seq > last, "seq continues: %llu after %llu", (unsigned long long)rb.ev[k].seq, (unsigned long long)last);
    pthread_mutex_unlock(&rb.mu);
    finish(b, &rb);
    CHECK_ST(rc_manager_free(a), RC_OK);
    db_remove(path);
}

/* Bob's event callback closes the channel inside the first RECEIVED, once all five messages are
 * in bob's runtime: the four not delivered stay stored and come back on reopen (here after a
 * restart of the manager), exactly once, in order. */
static atomic_int close_go, close_done;

static void close_hook(recorder *r, const rc_event *ev) {
    if (ev->kind != RC_EVENT_MESSAGE_RECEIVED || atomic_load(&close_done)) return;
    POLL_UNTIL(atomic_load(&close_go), 10000);
    CHECK_ST(rc_close_channel(r->mgr, "room"), RC_OK);
    atomic_store(&close_done, 1);
}

static void t_undelivered_events_come_back_and_purge_deletes_them(void) {
    const char *path = db_path("outbox");
    char net[64];
    snprintf(net, sizeof net, "%s", unique_network());
    rc_manager *a = durable(net, NULL, NULL);
    /* The first four events after the reopen are the stored ones (a long timeout: alice does not
     * retransmit meanwhile). */
    CHECK_ST(rc_open_channel(a, "room", TOPIC, "alice", "{\"sdsConfig\": {\"acknowledgementTimeoutMs\": 600000}}"), RC_OK);
    recorder rb;
    rc_manager *b = durable(net, path, NULL);
    rec_attach(&rb, "bob", b);
    rb.mgr = b;
    rb.hook = close_hook;
    atomic_store(&close_go, 0);
    atomic_store(&close_done, 0);
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "bob", SQLITE), RC_OK);
    barrier(a, "room");
    char rids[5][RC_REQUEST_ID_LEN + 1];
    const char *texts[5] = {"m0", "m1", "m2", "m3", "m4"};
    for (int i = 0; i < 5; i++) CHECK_ST(send_str(a, "room", texts[i], rids[i]), RC_OK);
    CHECK(rec_wait(&rb, RC_EVENT_MESSAGE_RECEIVED, "room", rids[0], 1, 10000));
    POLL_UNTIL(stat_of(b, "room", "messagesReceived") == 5, 10000);
    CHECK(stat_of(b, "room", "messagesReceived") == 5);
    atomic_store(&close_go, 1);
    POLL_UNTIL(atomic_load(&close_done), 10000);
    CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, NULL, NULL) == 1);
    uint64_t first_seq = rb.ev[0].seq;
    finish(b, &rb);

    b = durable(net, path, NULL);
    recorder r2;
    rec_attach(&r2, "bob restarted", b);
    CHECK_ST_ERR(rc_open_channel(b, "room", TOPIC, "mallory", SQLITE), RC_ERR_CONFIG, "sender id");
    CHECK_ST_ERR(rc_open_channel(b, "room", "/rc-test/1/elsewhere/proto", "bob", SQLITE), RC_ERR_CONFIG, "content topic");
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "bob", SQLITE), RC_OK);
    CHECK(rec_wait(&r2, RC_EVENT_MESSAGE_RECEIVED, "room", NULL, 4, 10000));
    for (int i = 1; i < 5; i++) {
        long k = rec_find(&r2, RC_EVENT_MESSAGE_RECEIVED, "room", rids[i]);
        CHECK_MSG(k == i - 1, "m%d delivered once, in order (at %ld)", i, k);
        CHECK(k < 0 || (r2.ev[k].len == 2 && memcmp(r2.ev[k].payload, texts[i], 2) == 0));
        CHECK(k < 0 || r2.ev[k].seq > first_seq);
    }

    /* Purge: refused while open; afterwards nothing comes back and any sender id may open it. */
    CHECK_ST(rc_channel_purge(b, "room"), RC_ERR_CHANNEL_EXISTS);
    CHECK_ST(rc_close_channel(b, "room"), RC_OK);
    CHECK_ST(rc_channel_purge(b, "room"), RC_OK);
    CHECK_ST(rc_channel_purge(b, "never-stored"), RC_OK);
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "mallory", SQLITE), RC_OK);
    finish(b, &r2);
    CHECK_ST(rc_manager_free(a), RC_OK);
    db_remove(path);
}

static void t_two_managers_on_one_database(void) {
    const char *path = db_path("twice");
    const char *net = unique_network();
    rc_manager *first = durable(net, path, NULL);
    rc_manager *second = (rc_manager *)0x1;
    CHECK_ST_ERR(mk_durable(net, path, NULL, &second), RC_ERR_STORAGE, "in use by another manager");
    CHECK(second == NULL);
    CHECK_ST(rc_manager_free(first), RC_OK);
    second = durable(net, path, NULL);
    CHECK_ST(rc_manager_free(second), RC_OK);
    db_remove(path);
}

static void t_foreign_and_newer_files_are_refused_untouched(void) {
    const char *text = db_path("text");
    FILE *f = fopen(text, "wb");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 50; i++) fputs("these are my notes, not a database\n", f);
        fclose(f);
    }
    check_refused_untouched(text, "not a SQLite database");
    db_remove(text);

    /* A database of ours whose schema version (user_version, bytes 60..63 of the header) is newer. */
    const char *newer = db_path("newer");
    rc_manager *m = durable(unique_network(), newer, NULL);
    CHECK_ST(rc_open_channel(m, "room", TOPIC, "bob", SQLITE), RC_OK);
    CHECK_ST(rc_manager_free(m), RC_OK);
    f = fopen(newer, "r+b");
    CHECK(f != NULL);
    if (f) {
        const uint8_t v99[4] = {0, 0, 0, 99};
        fseek(f, 60, SEEK_SET);
        fwrite(v99, 1, 4, f);
        fclose(f);
    }
    check_refused_untouched(newer, "newer version");
    db_remove(newer);
}

/* A 1 MiB database cannot take a 1 MiB RECEIVED: bob's commit fails. The message is not
 * delivered; durable sends are refused with SQLite's message from then on. */
static void t_full_database_stops_durable_sends(void) {
    const char *path = db_path("full");
    char net[64];
    snprintf(net, sizeof net, "%s", unique_network());
    rc_manager *a = durable(net, NULL, NULL);
    CHECK_ST(rc_open_channel(a, "room", TOPIC, "alice", NULL), RC_OK);
    recorder rb;
    rc_manager *b = durable(net, path, ", \"maxSizeBytes\": 1048576");
    rec_attach(&rb, "bob", b);
    CHECK_ST(rc_open_channel(b, "room", TOPIC, "bob", SQLITE), RC_OK);
    barrier(a, "room");
    CHECK_ST(send_str(b, "room", "small", NULL), RC_OK);
    size_t big = RC_MAX_PAYLOAD_BYTES;
    uint8_t *payload = calloc(1, big);
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_send(a, "room", payload, big, 0, rid), RC_OK);
    free(payload);
    rc_status st = RC_OK;
    double end = now_s() + T(20000) / 1000.0;
    while ((st = send_str(b, "room", "x", NULL)) == RC_OK && now_s() < end) sleep_ms(5);
    CHECK_MSG(st == RC_ERR_STORAGE && strstr(rc_last_error(), "full"), "%s: %s", rc_status_name((int)st), rc_last_error());
    CHECK_ST(send_str(b, "room", "y", NULL), RC_ERR_STORAGE);
    CHECK_ST(rc_open_channel(b, "other", "/rc-test/1/other/proto", "bob", SQLITE), RC_ERR_STORAGE);
    CHECK(rec_count(&rb, RC_EVENT_MESSAGE_RECEIVED, "room", rid) == 0);
    finish(b, &rb);
    CHECK_ST(rc_manager_free(a), RC_OK);
    db_remove(path);
}

/* The encryption hook runs on the thread that commits: a durable send from it cannot wait for
 * its own commit and is refused; a memory channel's is not. */
static atomic_int reentrant_status;

static int send_in_encrypt(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    rc_manager *m = ud;
    if (strcmp(ch, "plain") == 0 && atomic_load(&reentrant_status) < 0) {
        char rid[RC_REQUEST_ID_LEN + 1];
        atomic_store(&reentrant_status, (int)rc_send(m, "room", (const uint8_t *)"x", 1, 0, rid));
    }
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

static int identity(void *ud, const char *ch, const uint8_t *in, size_t len, rc_buffer *out) {
    (void)ud;
    (void)ch;
    return rc_buffer_append(out, in, len) == RC_OK ? 0 : 1;
}

static void t_durable_send_from_the_runtime_thread_is_reentrant(void) {
    const char *path = db_path("reent");
    rc_manager *m = durable(unique_network(), path, NULL);
    atomic_store(&reentrant_status, -1);
    CHECK_ST(rc_set_encryption(m, NULL, send_in_encrypt, identity, m, NULL), RC_OK);
    CHECK_ST(rc_open_channel(m, "room", TOPIC, "me", SQLITE), RC_OK);
    CHECK_ST(rc_open_channel(m, "plain", "/rc-test/1/plain/proto", "me", NULL), RC_OK);
    CHECK_ST(send_str(m, "plain", "hello", NULL), RC_OK);
    POLL_UNTIL(atomic_load(&reentrant_status) >= 0, 10000);
    CHECK_MSG(atomic_load(&reentrant_status) == RC_ERR_REENTRANT, "%s", rc_status_name(atomic_load(&reentrant_status)));
    CHECK_ST(rc_manager_free(m), RC_OK);
    db_remove(path);
}

static const test_case TESTS[] = {
    {"configuration", t_configuration, 30, NULL},
    {"seq_continues_across_a_restart", t_seq_continues_across_a_restart, 60, NULL},
    {"undelivered_events_come_back_and_purge_deletes_them", t_undelivered_events_come_back_and_purge_deletes_them, 60, NULL},
    {"two_managers_on_one_database", t_two_managers_on_one_database, 30, NULL},
    {"foreign_and_newer_files_are_refused_untouched", t_foreign_and_newer_files_are_refused_untouched, 30, NULL},
    {"full_database_stops_durable_sends", t_full_database_stops_durable_sends, 60, NULL},
    {"durable_send_from_the_runtime_thread_is_reentrant", t_durable_send_from_the_runtime_thread_is_reentrant, 30, NULL},
};

int main(int argc, char **argv) { return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv); }
