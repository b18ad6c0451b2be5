/*
 * participant.c — one participant of a reliable channel over the native Waku Relay transport, for
 * the multi-process tests (tests/relay_proc/run.sh: loopback; tests/netns/run.sh: network
 * namespaces) and `make demo-relay`. One process, one manager, one channel.
 *
 *   participant --name alice --dir DIR [--listen MULTIADDR] [--peer-of NAME]... [--expect b,c]
 *               [--texts N] [--big BYTES] [--storage FILE] [--hold-until FILE]
 *               [--leave-after-first] [--skip-first] [--loss P] [--seed N] [--timeout-s S] [--quiet]
 *
 * - Writes its first listen address to DIR/NAME.addr; `--peer-of bob` waits for DIR/bob.addr and
 *   dials it (configured peers: redialled with backoff).
 * - Sends N texts "NAME:text:i" then (with --big) one message of BYTES bytes whose content is a
 *   function of NAME ("NAME:big:" + pattern). With --hold-until FILE, only the first text is sent
 *   before FILE exists.
 * - Every participant in --expect must deliver exactly its texts then its big message, once each,
 *   in order (a duplicate, a reordering or a corrupted payload fails at once); every send of ours
 *   must end DELIVERED (SEND_ERROR fails).
 * - --leave-after-first: send nothing; once the first text of every expected participant arrived,
 *   write DIR/NAME.left and exit 0 (the "leaves" half of a rejoin). --skip-first: this is the
 *   rejoin, a new process: everyone's text 0 was handled in the first life (SDS may bring it again,
 *   as the first message of its sender, or not); everything sent while we were away must arrive,
 *   once, in order; we send all our messages. (The first life sends nothing: a restarted SDS with
 *   an empty log takes its own earlier messages for echoes and could never resolve a dependency on
 *   them.)
 * - When done, writes DIR/NAME.done and stays (answering syncs and repairs) until DIR/X.done exists
 *   for every expected X, then prints a one-line summary and exits 0. Exits 1 on any failure or
 *   after --timeout-s (default 150).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "reliable_channel.h"

#define CHANNEL "relay-room"
#define TOPIC "/relay-proc/1/room/proto"
#define MAX_PEERS 16
#define MAX_SENDS 64
#define NAME_LEN 32

static const char *name = "p", *dir = ".", *listen_addr = "/ip4/127.0.0.1/tcp/0", *storage, *hold_until;
static const char *peer_of[MAX_PEERS];
static int n_peer_of;
static char expect[MAX_PEERS][NAME_LEN];
static int n_expect, texts = 3, leave_after_first, skip_first, quiet, timeout_s = 150;
static long big;
static double loss;
static long seed = 1;

/* Per expected sender: messages received so far (texts, then big). Event thread only. */
static atomic_int got[MAX_PEERS];
static char sent_ids[MAX_SENDS][RC_REQUEST_ID_LEN + 1];
static atomic_int n_sent, n_delivered, failed;
static pthread_mutex_t sent_lock = PTHREAD_MUTEX_INITIALIZER;
static double t0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) {
    va_list ap;
    printf("[%7.2fs %s] ", now_s() - t0, name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void fail(const char *fmt, ...) {
    va_list ap;
    printf("[%7.2fs %s] FAIL: ", now_s() - t0, name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    atomic_store(&failed, 1);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void path_of(char *out, size_t n, const char *who, const char *suffix) { snprintf(out, n, "%s/%s.%s", dir, who, suffix); }

static void touch(const char *who, const char *suffix) {
    char p[512];
    path_of(p, sizeof p, who, suffix);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

/* The big message of `who`: a pattern that depends on the name, so a mix-up is caught. */
static uint8_t *big_payload(const char *who, long len) {
    uint8_t *p = malloc((size_t)len);
    if (!p) return NULL;
    unsigned h = 2166136261u;
    for (const char *c = who; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    int k = snprintf((char *)p, (size_t)len, "%s:big:", who);
    for (long i = k; i < len; i++) p[i] = (uint8_t)((h >> (i % 24)) + (unsigned)i * 31u);
    return p;
}

static int expected_index(const char *sender) {
    for (int i = 0; i < n_expect; i++)
        if (strcmp(expect[i], sender) == 0) return i;
    return -1;
}

static int first_of_everyone(void) {
    for (int i = 0; i < n_expect; i++)
        if (got[i] < 1) return 0;
    return 1;
}

static int total_from_each(void) { return texts + (big > 0 ? 1 : 0); }

static int received_everything(void) {
    for (int i = 0; i < n_expect; i++)
        if (got[i] < total_from_each()) return 0;
    return 1;
}

static void on_event(const rc_event *e, void *ud) {
    (void)ud;
    switch (e->kind) {
    case RC_EVENT_MESSAGE_RECEIVED: {
        int i = expected_index(e->sender_id);
        if (i < 0) {
            fail("message from unexpected sender %s", e->sender_id);
            return;
        }
        int n = got[i];
        if (skip_first && n == 0 && texts > 1) {
            /* The rejoin: text 0 was handled by the first life; SDS may or may not bring it again
             * (this life starts with an empty log), but from then on everything, once, in order. */
            char t0s[96];
            snprintf(t0s, sizeof t0s, "%s:text:0", e->sender_id);
            if (e->payload_len != strlen(t0s) || memcmp(e->payload, t0s, e->payload_len) != 0) n = 1;
        }
        if (n >= total_from_each()) {
            fail("extra message from %s (%zu bytes): a duplicate", e->sender_id, e->payload_len);
            return;
        }
        if (n < texts) {
            char want[96];
            snprintf(want, sizeof want, "%s:text:%d", e->sender_id, n);
            if (e->payload_len != strlen(want) || memcmp(e->payload, want, e->payload_len) != 0) {
                fail("from %s: expected \"%s\", got %zu bytes \"%.*s\" (out of order or duplicate)", e->sender_id, want, e->payload_len,
                     (int)(e->payload_len < 40 ? e->payload_len : 40), (const char *)e->payload);
                return;
            }
            if (!quiet) say("received from %s: %s", e->sender_id, want);
        } else {
            uint8_t *want = big_payload(e->sender_id, big);
            int ok = want && e->payload_len == (size_t)big && memcmp(e->payload, want, (size_t)big) == 0;
            free(want);
            if (!ok) {
                fail("from %s: the big message (%zu bytes) is not the expected %ld bytes", e->sender_id, e->payload_len, big);
                return;
            }
            if (!quiet) say("received from %s: %ld-byte message, byte-identical", e->sender_id, big);
        }
        got[i] = n + 1;
        break;
    }
    case RC_EVENT_MESSAGE_DELIVERED:
        atomic_fetch_add(&n_delivered, 1);
        if (!quiet) say("delivered: %s", e->request_id);
        break;
    case RC_EVENT_SEND_ERROR:
        fail("send error on %s: %s", e->request_id, e->error ? e->error : "?");
        break;
    case RC_EVENT_MESSAGE_LOST:
        fail("message lost (from %s): %s", e->sender_id ? e->sender_id : "?", e->error ? e->error : "?");
        break;
    default:
        break;
    }
}

static int send_one(rc_manager *m, const uint8_t *p, size_t len) {
    char rid[RC_REQUEST_ID_LEN + 1];
    rc_status st = rc_send(m, CHANNEL, p, len, 0, rid);
    if (st != RC_OK) {
        fail("rc_send: %s: %s", rc_status_name(st), rc_last_error());
        return -1;
    }
    pthread_mutex_lock(&sent_lock);
    int k = atomic_fetch_add(&n_sent, 1);
    if (k < MAX_SENDS) memcpy(sent_ids[k], rid, sizeof rid);
    pthread_mutex_unlock(&sent_lock);
    return 0;
}

static void send_text(rc_manager *m, int i) {
    char t[96];
    snprintf(t, sizeof t, "%s:text:%d", name, i);
    if (send_one(m, (const uint8_t *)t, strlen(t)) == 0 && !quiet) say("sent %s", t);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int wait_file(const char *path, double deadline) {
    while (!exists(path)) {
        if (now_s() > deadline) return -1;
        sleep_ms(20);
    }
    return 0;
}

static void parse_expect(const char *list) {
    const char *s = list;
    while (*s && n_expect < MAX_PEERS) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n > 0 && n < NAME_LEN) {
            memcpy(expect[n_expect], s, n);
            expect[n_expect][n] = 0;
            n_expect++;
        }
        if (!c) break;
        s = c + 1;
    }
}

static int usage(void) {
    fprintf(stderr, "usage: participant --name N --dir D [--listen A] [--peer-of N]... [--expect a,b] [--texts N] [--big B]\n"
                    "       [--storage F] [--hold-until F] [--leave-after-first] [--skip-first] [--loss P] [--seed S]\n"
                    "       [--timeout-s S] [--quiet]\n");
    return 2;
}

int main(int argc, char **argv) {
    t0 = now_s();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--leave-after-first")) leave_after_first = 1;
        else if (!strcmp(a, "--skip-first")) skip_first = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!v) return usage();
        else {
            i++;
            if (!strcmp(a, "--name")) name = v;
            else if (!strcmp(a, "--dir")) dir = v;
            else if (!strcmp(a, "--listen")) listen_addr = v;
            else if (!strcmp(a, "--peer-of") && n_peer_of < MAX_PEERS) peer_of[n_peer_of++] = v;
            else if (!strcmp(a, "--expect")) parse_expect(v);
            else if (!strcmp(a, "--texts")) texts = atoi(v);
            else if (!strcmp(a, "--big")) big = atol(v);
            else if (!strcmp(a, "--storage")) storage = v;
            else if (!strcmp(a, "--hold-until")) hold_until = v;
            else if (!strcmp(a, "--loss")) loss = atof(v);
            else if (!strcmp(a, "--seed")) seed = atol(v);
            else if (!strcmp(a, "--timeout-s")) timeout_s = atoi(v);
            else return usage();
        }
    }
    if (texts < 1 || texts > MAX_SENDS - 1 || big < 0 || big > RC_MAX_PAYLOAD_BYTES) return usage();
    double deadline = t0 + timeout_s;

    /* The peers' addresses, as they wrote them. */
    char peers[MAX_PEERS * 160 + 16] = "";
    for (int i = 0; i < n_peer_of; i++) {
        char p[512], addr[256] = "";
        path_of(p, sizeof p, peer_of[i], "addr");
        if (wait_file(p, deadline) != 0) {
            fail("no address from %s", peer_of[i]);
            return 1;
        }
        FILE *f = fopen(p, "r");
        if (!f || !fgets(addr, sizeof addr, f)) {
            if (f) fclose(f);
            fail("cannot read %s", p);
            return 1;
        }
        fclose(f);
        addr[strcspn(addr, "\r\n")] = 0;
        size_t len = strlen(peers);
        snprintf(peers + len, sizeof peers - len, "%s\"%s\"", i ? "," : "", addr);
    }

    char storage_json[600] = "";
    if (storage) snprintf(storage_json, sizeof storage_json, ", \"storage\": {\"path\": \"%s\"}", storage);
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"transport\": {\"kind\": \"relay\", \"listen\": [\"%s\"], \"peers\": [%s], \"clusterId\": 42, \"shard\": 7,"
             " \"loss\": %g, \"seed\": %ld}%s,"
             " \"channelDefaults\": {\"sdsConfig\": {\"historyBackend\": \"%s\", \"acknowledgementTimeoutMs\": 1000,"
             " \"maxRetransmissions\": 60, \"syncIntervalMs\": 1000, \"idleSyncRounds\": 5, \"dependencyTimeoutMs\": 120000},"
             " \"rateLimitConfig\": {\"enabled\": false}}}",
             listen_addr, peers, loss, seed, storage_json, storage ? "sqlite" : "memory");
    rc_manager *m = NULL;
    rc_status st = rc_manager_new(cfg, &m);
    if (st != RC_OK) {
        fail("rc_manager_new: %s: %s", rc_status_name(st), rc_last_error());
        return 1;
    }
    char *addrs = NULL;
    if ((st = rc_relay_listen_addresses(m, &addrs)) != RC_OK) {
        fail("rc_relay_listen_addresses: %s: %s", rc_status_name(st), rc_last_error());
        rc_manager_free(m);
        return 1;
    }
    /* The first address of the JSON array ["...", ...]. */
    char first[256] = "";
    const char *q = strchr(addrs, '"');
    const char *e = q ? strchr(q + 1, '"') : NULL;
    if (q && e && (size_t)(e - q - 1) < sizeof first) memcpy(first, q + 1, (size_t)(e - q - 1));
    say("listening on %s", first);
    rc_string_free(addrs);
    {
        char p[512], tmp[520];
        path_of(p, sizeof p, name, "addr");
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%s\n", first);
            fclose(f);
            rename(tmp, p);
        }
    }
    rc_set_event_callback(m, on_event, NULL);
    if ((st = rc_open_channel(m, CHANNEL, TOPIC, name, NULL)) != RC_OK) {
        fail("rc_open_channel: %s: %s", rc_status_name(st), rc_last_error());
        rc_manager_free(m);
        return 1;
    }

    int next_text = 0, big_sent = 0, done_written = 0, rc = 1;
    if (!leave_after_first) send_text(m, next_text++);
    while (now_s() < deadline && !atomic_load(&failed)) {
        int held = hold_until && !exists(hold_until);
        if (!held && !leave_after_first) {
            while (next_text < texts) send_text(m, next_text++);
            if (big > 0 && !big_sent) {
                uint8_t *p = big_payload(name, big);
                if (p && send_one(m, p, (size_t)big) == 0 && !quiet) say("sent a %ld-byte message", big);
                free(p);
                big_sent = 1;
            }
        }
        if (leave_after_first && first_of_everyone()) {
            say("leaving (everyone's first text received)");
            touch(name, "left");
            rc = 0;
            break;
        }
        int mine = texts + (big > 0 ? 1 : 0);
        if (!done_written && !leave_after_first && received_everything() && atomic_load(&n_delivered) >= mine) {
            say("done: everything received once and in order, %d sends delivered", atomic_load(&n_delivered));
            touch(name, "done");
            done_written = 1;
        }
        if (done_written) {
            int all = 1;
            for (int i = 0; i < n_expect; i++) {
                char p[512];
                path_of(p, sizeof p, expect[i], "done");
                if (!exists(p)) all = 0;
            }
            if (all) {
                rc = 0;
                break;
            }
        }
        sleep_ms(50);
    }
    if (rc != 0 && !atomic_load(&failed)) {
        char missing[512] = "";
        for (int i = 0; i < n_expect; i++) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, " %s:%d/%d", expect[i], got[i], total_from_each());
        }
        fail("timed out after %d s: received%s; %d of %d sends delivered", timeout_s, missing, atomic_load(&n_delivered), atomic_load(&n_sent));
    }
    char *stats = NULL;
    if (rc_channel_stats_json(m, CHANNEL, &stats) == RC_OK) {
        const char *r = strstr(stats, "\"relay\"");
        say("stats: %s", r ? r : stats);
        rc_string_free(stats);
    }
    if ((st = rc_manager_free(m)) != RC_OK) {
        fail("rc_manager_free: %s", rc_status_name(st));
        rc = 1;
    }
    if (atomic_load(&failed)) rc = 1;
    say("%s: sent %d, delivered %d, received from %d participants", rc == 0 ? "PASS" : "FAIL", atomic_load(&n_sent), atomic_load(&n_delivered), n_expect);
    return rc;
}
