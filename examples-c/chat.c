/*
 * chat.c — two participants chat and share a 1 MiB file over a lossy network, in C.
 *
 *   make demo                 # builds the library and the C examples, runs this program
 *   build/examples/chat       # once built
 *
 * alice and bob each run their own rc_manager (its own runtime and event threads) on the
 * library's embedded in-process network ("memory" transport). Every manager drops 20 % of the
 * WakuMessages it publishes, reproducibly from its seed; reliability comes from SDS alone
 * (acknowledgements, retransmission after acknowledgementTimeoutMs, syncs, store retrieval).
 *
 * Every chunk goes through an encryption hook. The cipher here is a TOY (XOR keystream plus a
 * checksum) that only shows where encryption plugs in: it is NOT secure. A real application
 * plugs in Logos Chat's encryption (or its own AEAD) at exactly the same place.
 *
 * The program prints every event, a live progress line while the file travels, then a summary.
 * It exits 0 once the file arrived byte-identical, every text arrived, and every send is
 * DELIVERED; it exits 1 on any SEND_ERROR, a corrupted payload, or after 60 seconds.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reliable_channel.h"

#define CHANNEL "design-review"
#define TOPIC "/chat-demo/1/design-review/proto"
#define FILE_NAME "design-doc.bin"
#define FILE_SIZE (1024 * 1024) /* exactly the largest payload one send may carry */
#define OVERALL_TIMEOUT_MS 60000
#define MAX_SENDS 16

/* Lossy embedded network, fast acknowledgements, no RLN rate limit (a demo should finish in
 * seconds; the default budget of 100 messages per 10 minutes is for The Waku Network). */
static const char *CONFIG_FMT =
    "{\"transport\": {\"kind\": \"memory\", \"network\": \"chat-demo\", \"loss\": 0.2, \"seed\": %d},"
    " \"channelDefaults\": {"
    "   \"sdsConfig\": {\"acknowledgementTimeoutMs\": 500, \"maxRetransmissions\": 30,"
    "                   \"syncIntervalMs\": 1000, \"idleSyncRounds\": 5},"
    "   \"rateLimitConfig\": {\"enabled\": false}}}";

/* ------------------------------------------------------------------------------------------ */
/* Time and console                                                                           */

static double start_s;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int tty;
static char progress[160]; /* the live line kept at the bottom of a terminal */

/* Prints one event line (callable from any thread). */
static void say(const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&out_lock);
    if (tty && progress[0]) printf("\r\033[2K");
    printf("[%6.2fs] ", now_s() - start_s);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (tty && progress[0]) printf("%s", progress);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void set_progress(const char *line, int final) {
    pthread_mutex_lock(&out_lock);
    snprintf(progress, sizeof progress, "%s", line);
    if (tty) {
        printf("\r\033[2K%s%s", progress, final ? "\n" : "");
    } else {
        printf("[%6.2fs] %s\n", now_s() - start_s, progress);
    }
    if (final) progress[0] = '\0';
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

/* ------------------------------------------------------------------------------------------ */
/* A TOY cipher for the encryption hook. NOT SECURE: it only shows the plumbing.              */
/*   ciphertext = "TX" | fnv1a32(plaintext) (4 bytes, big endian) | plaintext XOR keystream   */
/* The checksum lets decrypt refuse foreign or corrupted input (return non-zero), which the   */
/* library turns into a dropped message (counted as droppedUndecryptable, MESSAGE_LOST).     */

typedef struct {
    uint64_t key;
    atomic_uint encrypted, decrypted, refused;
} toy_key;

static atomic_int keys_freed;

static uint32_t fnv1a32(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static void toy_xor(uint64_t key, const char *channel_id, const uint8_t *in, uint8_t *out, size_t n) {
    uint64_t s = key ^ fnv1a32((const uint8_t *)channel_id, strlen(channel_id));
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) { /* splitmix64 step: the keystream */
            s += 0x9e3779b97f4a7c15ull;
        }
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        out[i] = in[i] ^ (uint8_t)((z ^ (z >> 31)) >> (8 * (i % 8)));
    }
}

/* rc_crypto_fn: runs on the manager's runtime thread, once per WakuMessage. */
static int toy_encrypt(void *user_data, const char *channel_id, const uint8_t *in, size_t len, rc_buffer *out) {
    toy_key *k = user_data;
    uint8_t *buf = malloc(len + 6);
    if (!buf) return 1;
    uint32_t sum = fnv1a32(in, len);
    buf[0] = 'T';
    buf[1] = 'X';
    for (int i = 0; i < 4; i++) buf[2 + i] = (uint8_t)(sum >> (24 - 8 * i));
    toy_xor(k->key, channel_id, in, buf + 6, len);
    rc_status st = rc_buffer_append(out, buf, len + 6); /* the library copies it */
    free(buf);
    atomic_fetch_add(&k->encrypted, 1);
    return st == RC_OK ? 0 : 1;
}

static int toy_decrypt(void *user_data, const char *channel_id, const uint8_t *in, size_t len, rc_buffer *out) {
    toy_key *k = user_data;
    if (len < 6 || in[0] != 'T' || in[1] != 'X') goto refuse;
    uint8_t *buf = malloc(len - 6 + 1);
    if (!buf) return 1;
    toy_xor(k->key, channel_id, in + 6, buf, len - 6);
    uint32_t sum = ((uint32_t)in[2] << 24) | ((uint32_t)in[3] << 16) | ((uint32_t)in[4] << 8) | in[5];
    if (fnv1a32(buf, len - 6) != sum) {
        free(buf);
        goto refuse;
    }
    rc_status st = rc_buffer_append(out, buf, len - 6);
    free(buf);
    atomic_fetch_add(&k->decrypted, 1);
    return st == RC_OK ? 0 : 1;
refuse:
    atomic_fetch_add(&k->refused, 1);
    return 1;
}

/* rc_free_fn: the library calls it exactly once, when it no longer uses the key. */
static void toy_key_free(void *user_data) {
    free(user_data);
    atomic_fetch_add(&keys_freed, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* The conversation: who sent what, and what happened to it.                                 */

typedef struct participant participant;

typedef struct {
    char request_id[RC_REQUEST_ID_LEN + 1];
    const participant *from;
    char label[64];
    uint8_t *payload; /* our copy, to check what the peer receives */
    size_t len;
    double sent_at, delivered_at, received_at;
    int received;  /* RECEIVED by the peer, byte-identical */
    int delivered; /* DELIVERED to the sender */
} send_record;

struct participant {
    const char *name;
    rc_manager *mgr;
    participant *peer;
    toy_key *key; /* owned by the library once rc_set_encryption succeeded */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    send_record sends[MAX_SENDS];
    int n_sends;
    int failures;   /* SEND_ERROR, corrupted or unexpected payloads */
    int lost;       /* MESSAGE_LOST events */
    int file_ok;    /* the file arrived byte-identical at bob */
    uint8_t *file;
} app = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static send_record *find_send(const char *request_id) {
    for (int i = 0; i < app.n_sends; i++)
        if (request_id && strcmp(app.sends[i].request_id, request_id) == 0) return &app.sends[i];
    return NULL;
}

/* Sends and records under app.lock, so that no event can outrun the record. */
static int send_locked(participant *p, const char *label, const uint8_t *data, size_t len) {
    if (app.n_sends == MAX_SENDS) return -1;
    send_record *r = &app.sends[app.n_sends];
    rc_status st = rc_send(p->mgr, CHANNEL, data, len, 0, r->request_id);
    if (st != RC_OK) {
        say("%-5s rc_send failed: %s (%s)", p->name, rc_status_name(st), rc_last_error());
        app.failures++;
        return -1;
    }
    r->from = p;
    snprintf(r->label, sizeof r->label, "%s", label);
    r->payload = malloc(len);
    if (!r->payload) abort();
    memcpy(r->payload, data, len);
    r->len = len;
    r->sent_at = now_s();
    app.n_sends++;
    if (len > 200)
        say("%-5s -> send     %.8s  %s (%zu bytes, %zu chunks)", p->name, r->request_id, label, len,
            (len + 102399) / 102400);
    else
        say("%-5s -> send     %.8s  \"%.*s\"", p->name, r->request_id, (int)len, (const char *)data);
    return 0;
}

static int send_text(participant *p, const char *text) {
    pthread_mutex_lock(&app.lock);
    int rc = send_locked(p, text, (const uint8_t *)text, strlen(text));
    pthread_mutex_unlock(&app.lock);
    return rc;
}

/* rc_event_fn: runs on the manager's event thread; events of a channel arrive in order. */
static void on_event(const rc_event *ev, void *user_data) {
    participant *me = user_data;
    pthread_mutex_lock(&app.lock);
    send_record *r = find_send(ev->request_id);
    switch (ev->kind) {
    case RC_EVENT_MESSAGE_RECEIVED:
        if (!r || r->from == me || r->len != ev->payload_len || memcmp(r->payload, ev->payload, r->len) != 0) {
            say("%-5s <- RECEIVED %.8s  UNEXPECTED or CORRUPTED payload (%zu bytes)", me->name,
                ev->request_id, ev->payload_len);
            app.failures++;
            break;
        }
        if (r->received) { /* exactly once is part of the contract */
            say("%-5s <- RECEIVED %.8s  TWICE", me->name, ev->request_id);
            app.failures++;
            break;
        }
        r->received = 1;
        r->received_at = now_s();
        if (ev->payload_len == FILE_SIZE) {
            app.file_ok = 1;
            say("%-5s <- RECEIVED %.8s  %s from %s: %zu bytes, byte-identical", me->name, ev->request_id,
                FILE_NAME, ev->sender_id, ev->payload_len);
            /* Replying from inside the event callback is allowed (rc_send never blocks). */
            char reply[128];
            snprintf(reply, sizeof reply, "Got %s (%zu bytes), checksum ok. Reviewing it now.", FILE_NAME,
                     ev->payload_len);
            send_locked(me, reply, (const uint8_t *)reply, strlen(reply));
        } else {
            say("%-5s <- RECEIVED %.8s  from %s: \"%.*s\"", me->name, ev->request_id, ev->sender_id,
                (int)ev->payload_len, (const char *)ev->payload);
        }
        break;
    case RC_EVENT_MESSAGE_SENT:
        say("%-5s    SENT     %.8s  every chunk handed to the network", me->name, ev->request_id);
        break;
    case RC_EVENT_MESSAGE_DELIVERED:
        if (r) {
            r->delivered = 1;
            r->delivered_at = now_s();
        }
        say("%-5s    DELIVERED %.8s after %.2fs (acknowledged end to end)", me->name, ev->request_id,
            r ? r->delivered_at - r->sent_at : 0.0);
        break;
    case RC_EVENT_SEND_ERROR:
        say("%-5s    SEND_ERROR %.8s  %s", me->name, ev->request_id, ev->error);
        app.failures++;
        break;
    case RC_EVENT_MESSAGE_LOST:
        say("%-5s    MESSAGE_LOST %s", me->name, ev->error);
        app.lost++;
        break;
    }
    pthread_cond_broadcast(&app.changed);
    pthread_mutex_unlock(&app.lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Statistics: rc_channel_stats_json returns a flat JSON object of counters.                 */

static unsigned long long stat_of(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

static char *stats(participant *p) {
    char *json = NULL;
    if (rc_channel_stats_json(p->mgr, CHANNEL, &json) != RC_OK) return NULL;
    return json; /* release with rc_string_free */
}

static int setup(participant *p, int seed) {
    char config[1024];
    snprintf(config, sizeof config, CONFIG_FMT, seed);
    rc_status st = rc_manager_new(config, &p->mgr);
    if (st != RC_OK) {
        fprintf(stderr, "%s: rc_manager_new: %s: %s\n", p->name, rc_status_name(st), rc_last_error());
        return -1;
    }
    /* The event callback first, so that no event is missed. */
    st = rc_set_event_callback(p->mgr, on_event, p);
    /* The hook for every channel of this manager (channel_id NULL); the library owns the key
     * from now on and frees it with toy_key_free. */
    p->key = calloc(1, sizeof *p->key);
    if (!p->key) return -1;
    p->key->key = 0x5eed0fc0ffee1234ull; /* both sides share the (toy) key */
    if (st == RC_OK) st = rc_set_encryption(p->mgr, NULL, toy_encrypt, toy_decrypt, p->key, toy_key_free);
    if (st != RC_OK) {
        free(p->key); /* on failure the library did not take it */
        p->key = NULL;
    }
    if (st == RC_OK) st = rc_open_channel(p->mgr, CHANNEL, TOPIC, p->name, NULL);
    if (st != RC_OK) {
        fprintf(stderr, "%s: setup: %s: %s\n", p->name, rc_status_name(st), rc_last_error());
        return -1;
    }
    return 0;
}

static int complete_locked(void) {
    if (!app.file_ok) return 0;
    for (int i = 0; i < app.n_sends; i++)
        if (!app.sends[i].received || !app.sends[i].delivered) return 0;
    return 1;
}

int main(void) {
    tty = isatty(STDOUT_FILENO);
    start_s = now_s();
    participant alice = {"alice", NULL, NULL, NULL}, bob = {"bob", NULL, NULL, NULL};
    alice.peer = &bob;
    bob.peer = &alice;

    printf("libreliable_channel %s: alice and bob on an embedded network dropping 20%% of messages,\n"
           "chunks encrypted by a TOY cipher (not secure; real apps plug in Logos Chat's encryption).\n\n",
           rc_version());
    if (setup(&alice, 1) != 0 || setup(&bob, 2) != 0) return 1;

    /* The file: 1 MiB of reproducible pseudo-random bytes. */
    app.file = malloc(FILE_SIZE);
    if (!app.file) return 1;
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < FILE_SIZE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        app.file[i] = (uint8_t)x;
    }

    /* rc_open_channel queues the subscription; a stats call is a round trip through the
     * runtime thread, so once it returns both sides are listening. */
    rc_string_free(stats(&alice));
    rc_string_free(stats(&bob));

    int ok = send_text(&alice, "Hi Bob! I'm sending you the design doc for review.") == 0;
    ok = ok && send_text(&bob, "Hi Alice, go ahead, I'm online.") == 0;
    pthread_mutex_lock(&app.lock);
    ok = ok && send_locked(&alice, FILE_NAME, app.file, FILE_SIZE) == 0;
    pthread_mutex_unlock(&app.lock);
    ok = ok && send_text(&alice, "It's about the segmentation layer; section 3 is the interesting one.") == 0;
    ok = ok && send_text(&bob, "Great, the chunking design was the part I wanted to see.") == 0;

    /* Wait for completion, updating the progress line from the channel counters. */
    double deadline = start_s + OVERALL_TIMEOUT_MS / 1000.0;
    int done = 0, file_seen = 0;
    double last_progress = 0;
    while (ok) {
        pthread_mutex_lock(&app.lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        if (!complete_locked() && app.failures == 0) pthread_cond_timedwait(&app.changed, &app.lock, &ts);
        done = complete_locked();
        int failures = app.failures, file_ok = app.file_ok;
        pthread_mutex_unlock(&app.lock);
        if (failures) break;

        if (!file_seen) {
            double t = now_s();
            if (file_ok || t - last_progress >= (tty ? 0.2 : 1.0)) {
                char *a = stats(&alice), *b = stats(&bob);
                unsigned long long held = file_ok ? FILE_SIZE : stat_of(b, "reassemblyBytes");
                char line[160];
                snprintf(line, sizeof line,
                         "file %-14s %4llu/%d KiB at bob [%-20.*s] | alice: %llu chunks sent, %llu retransmitted",
                         FILE_NAME, held / 1024, FILE_SIZE / 1024, (int)(held * 20 / FILE_SIZE),
                         "####################", stat_of(a, "chunksSent"), stat_of(a, "retransmissions"));
                rc_string_free(a);
                rc_string_free(b);
                set_progress(line, file_ok);
                file_seen = file_ok;
                last_progress = t;
            }
        }
        if (done) break;
        if (now_s() > deadline) {
            say("TIMEOUT: not complete after %d s", OVERALL_TIMEOUT_MS / 1000);
            break;
        }
    }

    /* Summary. */
    printf("\nSummary (%.2fs)\n", now_s() - start_s);
    pthread_mutex_lock(&app.lock);
    for (int i = 0; i < app.n_sends; i++) {
        send_record *r = &app.sends[i];
        printf("  %-5s %s  %-46.46s %s", r->from->name, r->request_id, r->label,
               r->delivered ? "DELIVERED" : "not delivered");
        if (r->delivered) printf(" in %.2fs", r->delivered_at - r->sent_at);
        printf("%s\n", r->received ? ", received intact" : ", NOT received");
    }
    int failures = app.failures, lost = app.lost, file_ok = app.file_ok;
    pthread_mutex_unlock(&app.lock);
    participant *ps[2] = {&alice, &bob};
    for (int i = 0; i < 2; i++) {
        char *j = stats(ps[i]);
        printf("  %-5s chunks sent %llu, retransmitted %llu, syncs %llu, acks %llu, duplicates %llu,"
               " dropped undecryptable %llu; toy cipher: %u encrypted, %u decrypted\n",
               ps[i]->name, stat_of(j, "chunksSent"), stat_of(j, "retransmissions"), stat_of(j, "syncsSent"),
               stat_of(j, "acks"), stat_of(j, "duplicates"), stat_of(j, "droppedUndecryptable"),
               atomic_load(&ps[i]->key->encrypted), atomic_load(&ps[i]->key->decrypted));
        rc_string_free(j);
    }
    if (lost) printf("  %d MESSAGE_LOST event(s)\n", lost);

    /* rc_manager_free drains, joins the library's threads and runs every finalizer. */
    rc_status fa = rc_manager_free(alice.mgr), fb = rc_manager_free(bob.mgr);
    int keys = atomic_load(&keys_freed);
    for (int i = 0; i < app.n_sends; i++) free(app.sends[i].payload);
    free(app.file);

    int success = ok && done && file_ok && failures == 0 && fa == RC_OK && fb == RC_OK && keys == 2;
    printf("  keys released by the library: %d of 2\n", keys);
    printf("%s\n", success ? "OK: the file arrived byte-identical and every message was delivered."
                           : "FAILED");
    return success ? 0 : 1;
}
