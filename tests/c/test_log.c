/*
 * test_log.c — the log callback (rc_set_log_callback) and RC_LOG, exercised from C.
 *
 *   tests/c/run.sh                  builds this with ASan+UBSan and without (under valgrind), and
 *                                   runs it once more with RC_LOG=warn (the stderr logger)
 *   build/tests-c/test_log [name…]  runs every test, or those whose name contains an argument
 *
 * The log callback is process-wide: every test installs its own and removes it before it ends.
 * Records of the runtime thread are delivered synchronously, before the runtime handles its next
 * command: after a barrier (a round trip through the runtime thread) they have all arrived.
 */
#define _POSIX_C_SOURCE 200809L

/* harness.h is shared with the other test programs: not every helper is used here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"
#pragma GCC diagnostic pop

static const char MARKER[] = "RELIABLE-CHANNEL-API/1";
#define TOPIC "/rc-log-test/1/chat/proto"

/* ------------------------------------------------------------------------------------------ */
/* A log recorder: an rc_log_fn that copies every record and optionally runs a hook.          */

typedef struct {
    rc_log_level level;
    char target[128];
    char *message;
} log_rec;

typedef struct log_sink log_sink;
struct log_sink {
    pthread_mutex_t mu;
    log_rec *rec;
    size_t n, cap;
    int bad_records; /* NULL strings or a level outside ERROR..TRACE */
    void (*hook)(log_sink *s, rc_log_level level, const char *message);
    void *ctx;
};

static void sink_init(log_sink *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void sink_destroy(log_sink *s) {
    CHECK_MSG(s->bad_records == 0, "%d malformed log records", s->bad_records);
    for (size_t i = 0; i < s->n; i++) free(s->rec[i].message);
    free(s->rec);
    pthread_mutex_destroy(&s->mu);
}

static void on_log(void *user_data, rc_log_level level, const char *target, const char *message) {
    log_sink *s = user_data;
    pthread_mutex_lock(&s->mu);
    if (!target || !message || level < RC_LOG_ERROR || level > RC_LOG_TRACE) {
        s->bad_records++;
    } else {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->rec = realloc(s->rec, s->cap * sizeof *s->rec);
            if (!s->rec) abort();
        }
        log_rec *r = &s->rec[s->n++];
        r->level = level;
        snprintf(r->target, sizeof r->target, "%s", target);
        r->message = strdup(message);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->hook) s->hook(s, level, message);
}

/* Records of `level` (0 = any) whose message contains `needle` (NULL = any). */
static size_t sink_count(log_sink *s, rc_log_level level, const char *needle) {
    size_t c = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        if ((!level || s->rec[i].level == level) && (!needle || strstr(s->rec[i].message, needle))) c++;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* Records less severe than `max` (e.g. INFO and below for max = WARN). */
static size_t sink_count_above(log_sink *s, rc_log_level max) {
    size_t c = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) c += s->rec[i].level > max;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* A copy of the first record whose message contains `needle` (to free), or NULL. */
static log_rec *sink_find(log_sink *s, const char *needle) {
    log_rec *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && !found; i++)
        if (strstr(s->rec[i].message, needle)) {
            found = malloc(sizeof *found);
            if (!found) abort();
            *found = s->rec[i];
            found->message = strdup(s->rec[i].message);
        }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void rec_free(log_rec *r) {
    if (r) free(r->message);
    free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Fixtures                                                                                   */

/* A host-transport manager with the channel "chat" open. */
static rc_manager *host_with_channel(void) {
    rc_manager *h = mk_host();
    CHECK_ST(rc_open_channel(h, "chat", TOPIC, "me", NULL), RC_OK);
    barrier(h, "chat");
    return h;
}

/* Hands `h` a WakuMessage on the channel's topic: `payload`, with or without the marker. */
static void receive(rc_manager *h, const char *payload, int with_marker) {
    rc_waku_message m = {TOPIC, (const uint8_t *)payload, strlen(payload), with_marker ? (const uint8_t *)MARKER : NULL,
                         with_marker ? strlen(MARKER) : 0, 1, false};
    CHECK_ST(rc_transport_receive(h, &m, NULL), RC_OK);
}

/* Garbage claiming to be ours: the marker, then bytes that are not an SDS message. */
static void receive_garbage(rc_manager *h) { receive(h, "payload", 1); }

static void set_sink(log_sink *s, rc_log_level max) { CHECK_ST(rc_set_log_callback(on_log, s, max), RC_OK); }

static void unset_sink(void) { CHECK_ST(rc_set_log_callback(NULL, NULL, RC_LOG_OFF), RC_OK); }

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */

/* A peer's garbage (marker present, not an SDS message), an undecryptable message and a message
 * without the marker are each dropped with one WARN record naming the channel and the reason. */
static void t_dropped_messages_are_warnings(void) {
    log_sink s;
    sink_init(&s);
    set_sink(&s, RC_LOG_WARN);
    rc_manager *h = host_with_channel();

    receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(stat_of(h, "chat", "droppedInvalid") == 1, "droppedInvalid %lld", stat_of(h, "chat", "droppedInvalid"));
    CHECK_MSG(sink_count(&s, RC_LOG_WARN, "not a valid SDS message") == 1, "%zu WARN records about the malformed message",
              sink_count(&s, RC_LOG_WARN, "not a valid SDS message"));
    log_rec *r = sink_find(&s, "not a valid SDS message");
    if (r) {
        CHECK_MSG(strncmp(r->target, "reliable_channel", 16) == 0, "target %s", r->target);
        CHECK_MSG(strstr(r->message, "chat"), "the record does not name the channel: %s", r->message);
    }
    rec_free(r);

    receive(h, "no marker here", 0);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&s, RC_LOG_WARN, "marker") == 1, "%zu WARN records about the missing marker",
              sink_count(&s, RC_LOG_WARN, "marker"));

    counting_cipher cc = {.tag = 7};
    atomic_store(&cc.fail_decrypt, 1);
    CHECK_ST(rc_set_encryption(h, NULL, cc_encrypt, cc_decrypt, &cc, NULL), RC_OK);
    receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&s, RC_LOG_WARN, "decrypt") == 1, "%zu WARN records about the undecryptable message",
              sink_count(&s, RC_LOG_WARN, "decrypt"));

    CHECK_ST(rc_manager_free(h), RC_OK);
    unset_sink();
    CHECK(sink_count_above(&s, RC_LOG_WARN) == 0);
    sink_destroy(&s);
}

/* Records above max_level are not delivered: channel opened/closed are INFO. */
static void t_level_filter(void) {
    log_sink s;
    sink_init(&s);
    set_sink(&s, RC_LOG_WARN);
    rc_manager *h = host_with_channel();
    CHECK_MSG(sink_count(&s, 0, "opened") == 0, "an INFO record delivered with max_level WARN");

    set_sink(&s, RC_LOG_INFO);
    CHECK_ST(rc_open_channel(h, "second", "/rc-log-test/1/second/proto", "me", NULL), RC_OK);
    barrier(h, "second");
    CHECK_MSG(sink_count(&s, RC_LOG_INFO, "second") == 1, "%zu INFO records of \"second\" opening", sink_count(&s, RC_LOG_INFO, "second"));
    log_rec *r = sink_find(&s, "second");
    if (r) CHECK_MSG(strstr(r->message, "opened"), "INFO record: %s", r->message);
    rec_free(r);
    CHECK_ST(rc_close_channel(h, "second"), RC_OK);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&s, RC_LOG_INFO, "closed") == 1, "%zu INFO records of \"second\" closing", sink_count(&s, RC_LOG_INFO, "closed"));
    CHECK(sink_count_above(&s, RC_LOG_INFO) == 0);

    /* TRACE: a summary of the bytes of every message received. */
    set_sink(&s, RC_LOG_DEBUG);
    receive(h, "no marker", 0);
    barrier(h, "chat");
    CHECK(sink_count(&s, RC_LOG_TRACE, NULL) == 0);
    set_sink(&s, RC_LOG_TRACE);
    receive(h, "no marker", 0);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&s, RC_LOG_TRACE, "received 9 B 6e6f206d61726b6572") == 1, "%zu TRACE records of the message received",
              sink_count(&s, RC_LOG_TRACE, "received 9 B"));

    /* A callback with max_level OFF gets nothing. */
    size_t before = sink_count(&s, 0, NULL);
    set_sink(&s, RC_LOG_OFF);
    receive_garbage(h);
    CHECK_ST(rc_open_channel(h, "third", "/rc-log-test/1/third/proto", "me", NULL), RC_OK);
    barrier(h, "third");
    CHECK_MSG(sink_count(&s, 0, NULL) == before, "records delivered with max_level OFF");

    CHECK_ST(rc_manager_free(h), RC_OK);
    unset_sink();
    sink_destroy(&s);
}

/* From inside the log callback every rc_* function returning rc_status is refused with
 * RC_ERR_REENTRANT (output parameters untouched); afterwards the library works normally. */
typedef struct {
    rc_manager *mgr;
    atomic_int calls;
    rc_status st[8];
    int outputs_written;
    int errors_named;
} reent_ctx;

static void reent_hook(log_sink *s, rc_log_level level, const char *message) {
    (void)level;
    reent_ctx *c = s->ctx;
    if (!strstr(message, "not a valid SDS message") || atomic_fetch_add(&c->calls, 1) != 0) return;
    char rid[RC_REQUEST_ID_LEN + 1] = "";
    char *json = NULL;
    rc_manager *fresh = NULL;
    rc_waku_message m = {TOPIC, (const uint8_t *)"x", 1, NULL, 0, 1, false};
    c->st[0] = rc_send(c->mgr, "chat", (const uint8_t *)"hi", 2, 0, rid);
    c->st[1] = rc_channel_stats_json(c->mgr, "chat", &json);
    c->st[2] = rc_set_log_callback(NULL, NULL, RC_LOG_OFF);
    c->st[3] = rc_manager_new(NULL, &fresh);
    c->st[4] = rc_open_channel(c->mgr, "other", "/rc-log-test/1/other/proto", "me", NULL);
    c->st[5] = rc_transport_receive(c->mgr, &m, NULL);
    c->st[6] = rc_close_channel(c->mgr, "chat");
    c->st[7] = rc_manager_free(c->mgr);
    c->outputs_written = rid[0] != 0 || json != NULL || fresh != NULL;
    c->errors_named = strstr(rc_last_error(), "log callback") != NULL;
    /* Functions without a status are fine. */
    if (strcmp(rc_status_name(RC_ERR_REENTRANT), "RC_ERR_REENTRANT") != 0 || !rc_version()) c->errors_named = 0;
}

static void t_calls_from_the_callback_are_refused(void) {
    log_sink s;
    sink_init(&s);
    reent_ctx c;
    memset(&c, 0, sizeof c);
    rc_manager *h = host_with_channel();
    c.mgr = h;
    s.hook = reent_hook;
    s.ctx = &c;
    set_sink(&s, RC_LOG_WARN);
    receive_garbage(h);
    barrier(h, "chat");
    CHECK(atomic_load(&c.calls) == 1);
    for (int i = 0; i < 8; i++)
        CHECK_MSG(c.st[i] == RC_ERR_REENTRANT, "call %d from the log callback: %s", i, rc_status_name((int)c.st[i]));
    CHECK_MSG(!c.outputs_written, "an output parameter was written by a refused call");
    CHECK_MSG(c.errors_named, "rc_last_error() does not name the log callback");
    /* The refused calls changed nothing: the callback is still installed, the channel open. */
    receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&s, RC_LOG_WARN, "not a valid SDS message") == 2, "%zu records", sink_count(&s, RC_LOG_WARN, "not a valid SDS message"));
    CHECK_ST(send_str(h, "chat", "after", NULL), RC_OK);
    CHECK_ST(rc_manager_free(h), RC_OK);
    unset_sink();
    sink_destroy(&s);
}

/* NULL removes the callback; a replacement takes over; an invalid max_level changes nothing. */
static void t_replace_and_remove(void) {
    log_sink a, b;
    sink_init(&a);
    sink_init(&b);
    rc_manager *h = host_with_channel();
    set_sink(&a, RC_LOG_WARN);
    receive_garbage(h);
    barrier(h, "chat");
    CHECK(sink_count(&a, RC_LOG_WARN, "not a valid SDS message") == 1);

    unset_sink();
    receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&a, 0, NULL) == 1, "a removed callback was called");

    set_sink(&b, RC_LOG_WARN);
    CHECK_ST_ERR(rc_set_log_callback(on_log, &a, RC_LOG_TRACE + 1), RC_ERR_INVALID_ARGUMENT, "max_level");
    CHECK_ST_ERR(rc_set_log_callback(on_log, &a, -1), RC_ERR_INVALID_ARGUMENT, "max_level");
    receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(sink_count(&b, RC_LOG_WARN, "not a valid SDS message") == 1 && sink_count(&a, 0, NULL) == 1,
              "after a refused replacement: %zu records in the old callback, %zu in the new", sink_count(&b, 0, NULL),
              sink_count(&a, 0, NULL));
    CHECK_ST(rc_manager_free(h), RC_OK);
    unset_sink();
    sink_destroy(&a);
    sink_destroy(&b);
}

/* rc_set_log_callback returns only once calls of the callback it replaces have returned: the
 * caller may free the old user_data right after. */
typedef struct {
    atomic_int entered, finished;
} slow_ctx;

static void slow_hook(log_sink *s, rc_log_level level, const char *message) {
    (void)level;
    (void)message;
    slow_ctx *c = s->ctx;
    if (atomic_fetch_add(&c->entered, 1) != 0) return;
    sleep_ms(T(200)); /* long enough for the test thread to call rc_set_log_callback meanwhile */
    atomic_store(&c->finished, 1);
}

static void t_replacement_waits_for_calls_in_progress(void) {
    log_sink s;
    sink_init(&s);
    slow_ctx c;
    memset(&c, 0, sizeof c);
    s.hook = slow_hook;
    s.ctx = &c;
    rc_manager *h = host_with_channel();
    set_sink(&s, RC_LOG_WARN);
    receive_garbage(h);
    POLL_UNTIL(atomic_load(&c.entered) >= 1, 10000);
    CHECK(atomic_load(&c.entered) >= 1);
    unset_sink();
    CHECK_MSG(atomic_load(&c.finished) == 1, "rc_set_log_callback returned while the replaced callback was running");
    CHECK_ST(rc_manager_free(h), RC_OK);
    sink_destroy(&s);
}

/* A flood of garbage is rate limited per call site: every dropped message is either a record or
 * counted in a "N similar records suppressed" summary (the last one delivered when the callback
 * is replaced). Runs last: it uses up the call site's burst. */
static void t_flood_is_rate_limited(void) {
    enum { FLOOD = 300 };
    log_sink s;
    sink_init(&s);
    rc_manager *h = host_with_channel();
    set_sink(&s, RC_LOG_WARN);
    for (int i = 0; i < FLOOD; i++) receive_garbage(h);
    barrier(h, "chat");
    CHECK_MSG(stat_of(h, "chat", "droppedInvalid") == FLOOD, "droppedInvalid %lld", stat_of(h, "chat", "droppedInvalid"));
    unset_sink(); /* delivers the pending summaries to this callback */

    log_rec *first = sink_find(&s, "not a valid SDS message");
    size_t records = sink_count(&s, RC_LOG_WARN, "not a valid SDS message");
    long long suppressed = 0;
    size_t summaries = 0;
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++) {
        if (!first || strcmp(s.rec[i].target, first->target) != 0 || !strstr(s.rec[i].message, "similar records suppressed")) continue;
        summaries++;
        suppressed += strtoll(s.rec[i].message, NULL, 10);
    }
    pthread_mutex_unlock(&s.mu);
    CHECK_MSG(records >= 1 && records < FLOOD / 2, "%zu of %d records delivered", records, FLOOD);
    CHECK_MSG(summaries >= 1, "no summary of the suppressed records");
    CHECK_MSG((long long)records + suppressed == FLOOD, "%zu records + %lld suppressed != %d dropped messages", records, suppressed,
              FLOOD);
    rec_free(first);
    CHECK_ST(rc_manager_free(h), RC_OK);
    sink_destroy(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* RC_LOG (run by run.sh as `RC_LOG=warn test_log`): without a callback, records go to stderr. */

static char *read_all(FILE *f) {
    fflush(f);
    long len = ftell(f);
    char *buf = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    if (!buf) abort();
    rewind(f);
    size_t got = fread(buf, 1, (size_t)(len > 0 ? len : 0), f);
    buf[got] = 0;
    fseek(f, 0, SEEK_END);
    return buf;
}

static size_t occurrences(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void t_rc_log_sends_records_to_stderr(void) {
    const char *env = getenv("RC_LOG");
    CHECK_MSG(env && strcmp(env, "warn") == 0, "run with RC_LOG=warn (RC_LOG=%s)", env ? env : "(unset)");
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    if (!tmp) return;
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);

    rc_manager *h = host_with_channel(); /* the first rc_manager_new reads RC_LOG */
    receive_garbage(h);
    barrier(h, "chat");
    char *out = read_all(tmp);
    size_t on_stderr = occurrences(out, "not a valid SDS message");
    int shape = strstr(out, "WARN reliable_channel") != NULL;
    int info = strstr(out, "opened") != NULL;
    free(out);

    /* A callback takes over from stderr; removing it goes back to stderr. */
    log_sink s;
    sink_init(&s);
    set_sink(&s, RC_LOG_WARN);
    receive_garbage(h);
    barrier(h, "chat");
    out = read_all(tmp);
    size_t with_callback = occurrences(out, "not a valid SDS message");
    free(out);
    unset_sink();
    receive_garbage(h);
    barrier(h, "chat");
    out = read_all(tmp);
    size_t after = occurrences(out, "not a valid SDS message");
    free(out);
    CHECK_ST(rc_manager_free(h), RC_OK);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(tmp);
    CHECK_MSG(on_stderr == 1 && shape, "RC_LOG=warn: %zu records on stderr, \"WARN reliable_channel\" %s", on_stderr,
              shape ? "found" : "missing");
    CHECK_MSG(!info, "RC_LOG=warn printed an INFO record");
    CHECK_MSG(with_callback == 1 && sink_count(&s, RC_LOG_WARN, "not a valid SDS message") == 1, "with a callback: %zu on stderr, %zu to the callback",
              with_callback - 1, sink_count(&s, RC_LOG_WARN, "not a valid SDS message"));
    CHECK_MSG(after == 2, "callback removed: %zu records on stderr in all, want 2", after);
    sink_destroy(&s);
}

/* A send the transport cannot publish is given up: one ERROR from the transport, one WARN naming
 * the send, nothing logged for it below WARN when the callback asks for WARN. */
static void t_send_given_up_is_a_warning(void) {
    log_sink s;
    sink_init(&s);
    set_sink(&s, RC_LOG_WARN);
    rc_manager *h = host_with_channel(); /* no rc_set_transport: nothing can be published */
    char rid[RC_REQUEST_ID_LEN + 1];
    CHECK_ST(rc_send(h, "chat", (const uint8_t *)"hello", 5, 0, rid), RC_OK);
    POLL_UNTIL(sink_count(&s, RC_LOG_WARN, "given up") >= 1, 5000);
    CHECK_MSG(sink_count(&s, RC_LOG_WARN, "given up") == 1, "%zu WARN records about the send given up", sink_count(&s, RC_LOG_WARN, "given up"));
    log_rec *r = sink_find(&s, "given up");
    CHECK_MSG(r && strstr(r->message, rid) && strstr(r->message, "chat"), "the WARN names the channel and the send: %s",
              r ? r->message : "(none)");
    rec_free(r);
    CHECK_MSG(sink_count(&s, RC_LOG_ERROR, "not published") == 1, "%zu ERROR records from the transport",
              sink_count(&s, RC_LOG_ERROR, "not published"));
    rc_manager_free(h);
    unset_sink();
    sink_destroy(&s);
}

static const test_case TESTS[] = {
    {"dropped_messages_are_warnings", t_dropped_messages_are_warnings, 20, NULL},
    {"level_filter", t_level_filter, 20, NULL},
    {"send_given_up_is_a_warning", t_send_given_up_is_a_warning, 20, NULL},
    {"calls_from_the_callback_are_refused", t_calls_from_the_callback_are_refused, 20, NULL},
    {"replace_and_remove", t_replace_and_remove, 20, NULL},
    {"replacement_waits_for_calls_in_progress", t_replacement_waits_for_calls_in_progress, 20, NULL},
    {"flood_is_rate_limited", t_flood_is_rate_limited, 60, NULL}, /* last: see the test */
};

/* RC_LOG is read once per process: its test runs alone, in a process started with RC_LOG set. */
static const test_case ENV_TESTS[] = {
    {"rc_log_sends_records_to_stderr", t_rc_log_sends_records_to_stderr, 20, NULL},
};

int main(int argc, char **argv) {
    if (getenv("RC_LOG")) return run_tests(ENV_TESTS, sizeof ENV_TESTS / sizeof ENV_TESTS[0], argc, argv);
    return run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv);
}
