/*
 * crash_child.c — the child of the SIGKILL loop (tests/crash_loop.rs, `make test-crash`): two
 * durable managers, alice and bob, in one process on a lossy embedded memory network, each sending
 * its share of N messages to the other through the C API, resuming where its previous life stopped.
 * The parent kills it (at random moments, or at fault points: RC_FAULT in the library, and
 * RC_CRASH_IN_CALLBACK=n here: SIGKILL inside the n-th event callback), restarts it, and checks
 * the invariants from the log this program appends to:
 *
 *   A <who> <index> <request_id>                              rc_send returned RC_OK
 *   E <who> <seq> <kind> <request_id|-> <sender|-> <index|->  an event (index read from the payload)
 *   X <who> <what>                                            a payload that is not what was sent
 *
 * Each line is one write(2) on an O_APPEND descriptor: it survives a SIGKILL.
 *
 *   crash_child <dir> <messages per sender> <loss>
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reliable_channel.h"

#define TOPIC "/rc-crash/1/room/proto"
#define CHANNEL_CONFIG                                                                                         \
    "{\"sdsConfig\": {\"historyBackend\": \"sqlite\", \"acknowledgementTimeoutMs\": 300, "                  \
    "\"maxRetransmissions\": 1000, \"syncIntervalMs\": 200, \"idleSyncRounds\": 5}, "                      \
    "\"segmentationConfig\": {\"chunkSizeBytes\": 1024}, "                                                  \
    "\"rateLimitConfig\": {\"enabled\": true, \"epochSizeMs\": 1000, \"messagesPerEpoch\": 400, "           \
    "\"accounting\": \"allMessages\"}}"

static int log_fd = -1;
static atomic_long events_seen;
static long crash_in_callback;

static void die(const char *what) {
    fprintf(stderr, "crash_child: %s: %s\n", what, rc_last_error());
    exit(2);
}

static void put(const char *line) {
    size_t n = strlen(line);
    if (write(log_fd, line, n) != (ssize_t)n) {
        perror("crash_child: write");
        exit(2);
    }
}

/* Payload of message `index` of `who`: "<who>:<index>:" then a pattern of a size from 1 to
 * 4,000 bytes (a third of them several chunks long). */
static size_t make_payload(const char *who, long index, unsigned char *buf, size_t cap) {
    int head = snprintf((char *)buf, cap, "%s:%ld:", who, index);
    size_t len = (size_t)head + (index % 3 == 0 ? 1500 + (size_t)(index * 397) % 2500 : 1 + (size_t)(index * 131) % 700);
    if (len > cap) len = cap;
    for (size_t i = (size_t)head; i < len; i++) buf[i] = (unsigned char)(i * 31 + (size_t)index);
    return len;
}

static void on_event(const rc_event *e, void *user_data) {
    const char *who = user_data;
    char line[512], idx[64] = "-";
    if (e->kind == RC_EVENT_MESSAGE_RECEIVED) {
        unsigned char want[4096];
        char sender[32];
        long index = -1;
        if (sscanf((const char *)e->payload, "%31[a-z]:%ld:", sender, &index) != 2 || e->payload_len > sizeof want) {
            snprintf(line, sizeof line, "X %s unparsable payload of %zu bytes\n", who, e->payload_len);
            put(line);
            return;
        }
        size_t len = make_payload(sender, index, want, sizeof want);
        if (len != e->payload_len || memcmp(want, e->payload, len) != 0) {
            snprintf(line, sizeof line, "X %s payload %s:%ld corrupted\n", who, sender, index);
            put(line);
        }
        snprintf(idx, sizeof idx, "%ld", index);
    }
    snprintf(line, sizeof line, "E %s %llu %d %s %s %s\n", who, (unsigned long long)e->seq, (int)e->kind,
             e->request_id ? e->request_id : "-", e->sender_id ? e->sender_id : "-", idx);
    put(line);
    if (crash_in_callback > 0 && atomic_fetch_add(&events_seen, 1) + 1 == crash_in_callback) raise(SIGKILL);
}

static rc_manager *manager(const char *dir, const char *who, double loss) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"transport\": {\"kind\": \"memory\", \"network\": \"crash\", \"loss\": %g}, "
             "\"storage\": {\"path\": \"%s/%s.db\"}}",
             loss, dir, who);
    rc_manager *m = NULL;
    if (rc_manager_new(cfg, &m) != RC_OK) die("rc_manager_new");
    if (rc_set_event_callback(m, on_event, (void *)who) != RC_OK) die("rc_set_event_callback");
    if (rc_open_channel(m, "room", TOPIC, who, CHANNEL_CONFIG) != RC_OK) die("rc_open_channel");
    return m;
}

/* Sends accepted in earlier lives (A lines of `who`). */
static long accepted_before(const char *path, const char *who) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512], w[32];
    long n = 0, index;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "A %31s %ld", w, &index) == 2 && strcmp(w, who) == 0 && index + 1 > n) n = index + 1;
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: crash_child <dir> <messages per sender> <loss>\n");
        return 2;
    }
    const char *dir = argv[1];
    long total = atol(argv[2]);
    double loss = atof(argv[3]);
    const char *c = getenv("RC_CRASH_IN_CALLBACK");
    crash_in_callback = c ? atol(c) : 0;
    char path[512];
    snprintf(path, sizeof path, "%s/events.log", dir);
    long next[2] = {accepted_before(path, "alice"), accepted_before(path, "bob")};
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd < 0) {
        perror("crash_child: open the log");
        return 2;
    }
    static const char *names[2] = {"alice", "bob"};
    rc_manager *m[2] = {manager(dir, "alice", loss), manager(dir, "bob", loss)};
    put("S started\n");
    /* Paced, so that the sends span many lives (RC_CRASH_PACE_MS, default 10). */
    const char *pace = getenv("RC_CRASH_PACE_MS");
    struct timespec pause = {0, (pace ? atol(pace) : 10) * 1000 * 1000};
    while (next[0] < total || next[1] < total) {
        for (int w = 0; w < 2; w++) {
            if (next[w] >= total) continue;
            unsigned char payload[4096];
            char rid[64], line[256];
            size_t len = make_payload(names[w], next[w], payload, sizeof payload);
            rc_status st = rc_send(m[w], "room", payload, len, 0, rid);
            if (st == RC_ERR_QUEUE_FULL) continue;
            if (st != RC_OK) die("rc_send");
            snprintf(line, sizeof line, "A %s %ld %s\n", names[w], next[w], rid);
            put(line);
            next[w]++;
        }
        nanosleep(&pause, NULL);
    }
    put("S sent\n");
    /* The parent kills this process once the log shows everything delivered. */
    for (;;) sleep(1000);
}
