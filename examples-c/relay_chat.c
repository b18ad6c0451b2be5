/*
 * relay_chat.c — an interactive chat across machines over the native Waku Relay transport.
 *
 *   relay_chat alice                      prints the address to give the others, then chats
 *   relay_chat bob <address of alice>     joins alice (any participant's address will do)
 *   relay_chat NAME [ADDRESS] --listen /ip4/0.0.0.0/tcp/60000     a fixed port (default: any)
 *   relay_chat                            (no argument) a self-test: alice and bob in one process
 *                                         on loopback exchange a line and a file, then exit 0
 *
 * Each participant is a Waku Relay node itself (no Waku node to run beside it): the library's
 * "relay" transport, on the private cluster 42, shard 0. Lines typed are sent to the channel;
 * `/send <file>` sends a file (up to 1 MiB) with a progress line; `/peers` shows the relay's peers
 * and mesh; `/quit` (or end of input) leaves. Every event is printed; files received are saved as
 * received-<sender>-<name>.
 *
 * Reliability is end to end (SDS): a participant that joins late or loses its connection for a
 * while gets what it missed once it is back, in order; a send shows DELIVERED once acknowledged.
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
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

#define CHANNEL "relay-chat"
#define TOPIC "/relay-chat/1/room/proto"
#define FILE_TAG "RCFILE"
#define MAX_LINE 4096
#define CHUNK_BYTES 102400 /* the default segmentationConfig.chunkSizeBytes */

/* Short acknowledgement timeout and syncs for an interactive chat; no RLN budget (cluster 42 is
 * private: The Waku Network's 100 messages per 10 minutes does not apply). */
static const char *CONFIG_FMT =
    "{\"transport\": {\"kind\": \"relay\", \"listen\": [\"%s\"], \"peers\": [%s], \"clusterId\": 42, \"shard\": 0},"
    " \"channelDefaults\": {\"sdsConfig\": {\"acknowledgementTimeoutMs\": 2000, \"maxRetransmissions\": 30,"
    " \"syncIntervalMs\": 2000, \"idleSyncRounds\": 5}, \"rateLimitConfig\": {\"enabled\": false}}}";

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int tty;
static char progress[200];

static void say(const char *who, const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&out_lock);
    if (tty && progress[0]) printf("\r\033[2K");
    if (who) printf("[%s] ", who);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (tty && progress[0]) printf("%s", progress);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void set_progress(const char *line) {
    pthread_mutex_lock(&out_lock);
    if (tty) {
        printf("\r\033[2K%s", line ? line : "");
        snprintf(progress, sizeof progress, "%s", line ? line : "");
    } else if (line) {
        printf("%s\n", line);
    }
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

/* One participant: its manager and what its event callback counts. */
typedef struct {
    const char *name;
    rc_manager *mgr;
    int save_files;
    atomic_int received_lines, received_files, delivered, errors;
    char file_rid[RC_REQUEST_ID_LEN + 1]; /* the file send in flight, for the progress line */
    atomic_int file_done;
} chat;

static void on_event(const rc_event *e, void *ud) {
    chat *c = ud;
    switch (e->kind) {
    case RC_EVENT_MESSAGE_RECEIVED: {
        size_t tag = strlen(FILE_TAG) + 1;
        if (e->payload_len > tag && memcmp(e->payload, FILE_TAG, tag) == 0) {
            const char *fname = (const char *)e->payload + tag;
            size_t nlen = strnlen(fname, e->payload_len - tag);
            if (tag + nlen >= e->payload_len) break;
            const uint8_t *data = e->payload + tag + nlen + 1;
            size_t len = e->payload_len - tag - nlen - 1;
            char path[300] = "";
            if (c->save_files) {
                const char *base = strrchr(fname, '/');
                snprintf(path, sizeof path, "received-%s-%s", e->sender_id, base ? base + 1 : fname);
                FILE *f = fopen(path, "wb");
                if (f) {
                    fwrite(data, 1, len, f);
                    fclose(f);
                }
            }
            say(c->name, "%s sent a file: %s (%zu bytes)%s%s", e->sender_id, fname, len, path[0] ? ", saved as " : "", path);
            atomic_fetch_add(&c->received_files, 1);
        } else {
            say(c->name, "%s: %.*s", e->sender_id, (int)e->payload_len, (const char *)e->payload);
            atomic_fetch_add(&c->received_lines, 1);
        }
        break;
    }
    case RC_EVENT_MESSAGE_SENT:
        break;
    case RC_EVENT_MESSAGE_DELIVERED:
        atomic_fetch_add(&c->delivered, 1);
        if (strcmp(e->request_id, c->file_rid) == 0) atomic_store(&c->file_done, 1);
        say(c->name, "(delivered %s)", e->request_id);
        break;
    case RC_EVENT_SEND_ERROR:
        atomic_fetch_add(&c->errors, 1);
        if (strcmp(e->request_id, c->file_rid) == 0) atomic_store(&c->file_done, -1);
        say(c->name, "send %s failed: %s", e->request_id, e->error);
        break;
    case RC_EVENT_MESSAGE_LOST:
        say(c->name, "a message from %s was lost: %s", e->sender_id ? e->sender_id : "?", e->error);
        break;
    }
}

/* A number in the stats JSON ("key": n), or -1. */
static long stat_of(const char *json, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

static void show_peers(chat *c) {
    char *s = NULL;
    if (rc_channel_stats_json(c->mgr, CHANNEL, &s) != RC_OK) return;
    say(c->name, "relay: %ld peers connected, %ld in the mesh; %ld messages received, %ld published",
        stat_of(s, "connectedPeers"), stat_of(s, "meshPeers"), stat_of(s, "received"), stat_of(s, "published"));
    rc_string_free(s);
}

static int start(chat *c, const char *name, const char *listen, const char *peer) {
    memset(c, 0, sizeof *c);
    c->name = name;
    char peers[600] = "";
    if (peer) snprintf(peers, sizeof peers, "\"%s\"", peer);
    char cfg[2048];
    snprintf(cfg, sizeof cfg, CONFIG_FMT, listen, peers);
    rc_status st = rc_manager_new(cfg, &c->mgr);
    if (st != RC_OK) {
        fprintf(stderr, "cannot start: %s: %s\n", rc_status_name(st), rc_last_error());
        return -1;
    }
    rc_set_event_callback(c->mgr, on_event, c);
    if ((st = rc_open_channel(c->mgr, CHANNEL, TOPIC, name, NULL)) != RC_OK) {
        fprintf(stderr, "cannot open the channel: %s: %s\n", rc_status_name(st), rc_last_error());
        rc_manager_free(c->mgr);
        return -1;
    }
    char *addrs = NULL;
    if (rc_relay_listen_addresses(c->mgr, &addrs) == RC_OK) {
        say(name, "listening on %s", addrs);
        rc_string_free(addrs);
    }
    return 0;
}

/* The first address from rc_relay_listen_addresses, into out. */
static int first_address(chat *c, char *out, size_t n) {
    char *addrs = NULL;
    if (rc_relay_listen_addresses(c->mgr, &addrs) != RC_OK) return -1;
    const char *q = strchr(addrs, '"'), *e = q ? strchr(q + 1, '"') : NULL;
    int ok = q && e && (size_t)(e - q - 1) < n;
    if (ok) {
        memcpy(out, q + 1, (size_t)(e - q - 1));
        out[e - q - 1] = 0;
    }
    rc_string_free(addrs);
    return ok ? 0 : -1;
}

static int send_text(chat *c, const char *line) {
    char rid[RC_REQUEST_ID_LEN + 1];
    rc_status st = rc_send(c->mgr, CHANNEL, (const uint8_t *)line, strlen(line), 0, rid);
    if (st != RC_OK) say(c->name, "cannot send: %s: %s", rc_status_name(st), rc_last_error());
    return st == RC_OK ? 0 : -1;
}

/* Sends data as a file message: "RCFILE\0<name>\0<bytes>". */
static int send_file_bytes(chat *c, const char *fname, const uint8_t *data, size_t len) {
    size_t tag = strlen(FILE_TAG) + 1, nlen = strlen(fname) + 1;
    if (tag + nlen + len > RC_MAX_PAYLOAD_BYTES) {
        say(c->name, "%s: %zu bytes is over the %d-byte limit of one message", fname, len, RC_MAX_PAYLOAD_BYTES);
        return -1;
    }
    uint8_t *p = malloc(tag + nlen + len);
    if (!p) return -1;
    memcpy(p, FILE_TAG, tag);
    memcpy(p + tag, fname, nlen);
    if (len) memcpy(p + tag + nlen, data, len);
    char rid[RC_REQUEST_ID_LEN + 1];
    char *before = NULL;
    long sent0 = 0;
    if (rc_channel_stats_json(c->mgr, CHANNEL, &before) == RC_OK) {
        sent0 = stat_of(before, "chunksSent");
        rc_string_free(before);
    }
    atomic_store(&c->file_done, 0);
    rc_status st = rc_send(c->mgr, CHANNEL, p, tag + nlen + len, 0, rid);
    free(p);
    if (st != RC_OK) {
        say(c->name, "cannot send %s: %s: %s", fname, rc_status_name(st), rc_last_error());
        return -1;
    }
    memcpy(c->file_rid, rid, sizeof rid);
    long chunks = (long)((tag + nlen + len + CHUNK_BYTES - 1) / CHUNK_BYTES);
    say(c->name, "sending %s (%zu bytes, %ld chunks) as %s", fname, len, chunks, rid);
    /* The progress line: chunks handed to the relay, then chunks still unacknowledged. */
    for (int i = 0; i < 1500 && atomic_load(&c->file_done) == 0; i++) {
        char *s = NULL;
        if (rc_channel_stats_json(c->mgr, CHANNEL, &s) == RC_OK) {
            long sent = stat_of(s, "chunksSent") - sent0, unacked = stat_of(s, "outgoingUnacknowledged");
            char line[200];
            snprintf(line, sizeof line, "  %s: %ld/%ld chunks sent, %ld awaiting acknowledgement", fname, sent < chunks ? sent : chunks, chunks,
                     unacked < 0 ? 0 : unacked);
            set_progress(line);
            rc_string_free(s);
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    set_progress(NULL);
    progress[0] = 0;
    if (tty) printf("\r\033[2K");
    say(c->name, "%s: %s", fname, atomic_load(&c->file_done) == 1 ? "delivered" : atomic_load(&c->file_done) < 0 ? "failed" : "still in flight");
    return atomic_load(&c->file_done) == 1 ? 0 : -1;
}

static int send_file(chat *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(c->name, "cannot open %s", path);
        return -1;
    }
    uint8_t *buf = malloc(RC_MAX_PAYLOAD_BYTES + 1);
    size_t len = buf ? fread(buf, 1, RC_MAX_PAYLOAD_BYTES + 1, f) : 0;
    fclose(f);
    int rc = buf ? send_file_bytes(c, path, buf, len) : -1;
    free(buf);
    return rc;
}

static int wait_until(atomic_int *v, int want, int seconds) {
    for (int i = 0; i < seconds * 20 && atomic_load(v) < want; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return atomic_load(v) >= want ? 0 : -1;
}

/* No argument: alice and bob in this process, over loopback, as two separate relay nodes. */
static int self_test(void) {
    chat alice, bob;
    if (start(&alice, "alice", "/ip4/127.0.0.1/tcp/0", NULL) != 0) return 1;
    char addr[300];
    if (first_address(&alice, addr, sizeof addr) != 0 || start(&bob, "bob", "/ip4/127.0.0.1/tcp/0", addr) != 0) {
        rc_manager_free(alice.mgr);
        return 1;
    }
    int rc = 0;
    rc |= send_text(&alice, "hello bob, this is alice over Waku Relay");
    rc |= send_text(&bob, "hi alice!");
    size_t len = 300 * 1024;
    uint8_t *data = malloc(len);
    if (!data) rc = 1;
    for (size_t i = 0; data && i < len; i++) data[i] = (uint8_t)(i * 7);
    if (data) rc |= send_file_bytes(&bob, "notes.bin", data, len);
    free(data);
    rc |= wait_until(&bob.received_lines, 1, 60);
    rc |= wait_until(&alice.received_lines, 1, 60);
    rc |= wait_until(&alice.received_files, 1, 60);
    rc |= wait_until(&alice.delivered, 1, 60);
    show_peers(&alice);
    rc |= atomic_load(&alice.errors) | atomic_load(&bob.errors);
    rc_manager_free(bob.mgr);
    rc_manager_free(alice.mgr);
    say(NULL, "self-test: %s", rc == 0 ? "ok" : "FAILED");
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    tty = isatty(STDOUT_FILENO);
    const char *name = NULL, *peer = NULL, *listen = "/ip4/0.0.0.0/tcp/0";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
        else if (!name) name = argv[i];
        else if (!peer) peer = argv[i];
        else {
            fprintf(stderr, "usage: relay_chat NAME [ADDRESS] [--listen MULTIADDR]\n");
            return 2;
        }
    }
    if (!name) return self_test();

    chat c;
    if (start(&c, name, listen, peer) != 0) return 1;
    c.save_files = 1;
    char addr[300];
    if (first_address(&c, addr, sizeof addr) == 0) {
        say(name, "others join with:  relay_chat <name> %s", addr);
        say(name, "(from another machine, use this machine's address instead of %s)", strncmp(addr, "/ip4/0.0.0.0", 12) ? "the one shown" : "0.0.0.0");
    }
    say(name, "type a line to send it; /send <file>, /peers, /quit");
    char line[MAX_LINE];
    for (;;) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int r = poll(&pfd, 1, 1000);
        if (r < 0) break;
        if (r == 0) continue;
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/peers")) show_peers(&c);
        else if (!strncmp(line, "/send ", 6)) send_file(&c, line + 6);
        else send_text(&c, line);
    }
    say(name, "leaving");
    rc_manager_free(c.mgr);
    return 0;
}
